"""Vision adapter: config validation, the projector, safetensors round trip."""

from __future__ import annotations

import json

import pytest
import torch

from indexer.core.errors import InputError, WeightsError
from xvision_model.adapter import AdapterConfig, VisionAdapter

# The patch-token projector was removed (a store keeps no patch tokens): one mode is left.
CONFIGS = {
    "gap": AdapterConfig(in_dim=16, lm_hidden=32, num_tokens=4, hidden_mult=2.0),
    "deep": AdapterConfig(in_dim=16, lm_hidden=32, num_tokens=9, depth=3),
}
FEATURES = {"gap": (3, 16), "deep": (3, 16)}


@pytest.mark.parametrize("mode", ["gap", "deep"])
def test_output_shape(mode):
    torch.manual_seed(0)
    adapter = VisionAdapter(CONFIGS[mode])
    out = adapter(torch.randn(*FEATURES[mode]))
    assert out.shape == (3, CONFIGS[mode].num_tokens, 32)
    assert torch.isfinite(out).all()


def test_mlp_layout_follows_config():
    gap, deep = VisionAdapter(CONFIGS["gap"]), VisionAdapter(CONFIGS["deep"])
    assert [type(m).__name__ for m in gap.mlp] == ["Linear", "GELU", "Linear"]
    assert (gap.mlp[0].out_features, gap.mlp[2].out_features) == (64, 4 * 32)
    assert [type(m).__name__ for m in deep.mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert deep.mlp[-1].out_features == 9 * 32


@pytest.mark.parametrize("mode", ["gap", "deep"])
def test_save_load_round_trip(tmp_path, mode):
    torch.manual_seed(1)
    adapter = VisionAdapter(CONFIGS[mode])
    adapter.save(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["adapter.safetensors", "adapter_config.json"]
    loaded = VisionAdapter.load(tmp_path / "a")
    assert loaded.config == adapter.config
    original, restored = adapter.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.allclose(original[key], restored[key]), key
    x = torch.randn(*FEATURES[mode])
    assert torch.allclose(adapter(x), loaded(x))


def test_config_json_round_trip(tmp_path):
    cfg = CONFIGS["deep"]
    cfg.to_json(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["depth"] == 3
    assert AdapterConfig.from_json(tmp_path / "c.json") == cfg


def test_configs_written_with_a_mode_still_load_and_patch_is_refused(tmp_path):
    path = tmp_path / "adapter_config.json"
    path.write_text(json.dumps({"mode": "gap", **CONFIGS["gap"].to_dict()}))
    assert AdapterConfig.from_json(path) == CONFIGS["gap"]
    path.write_text(json.dumps({"mode": "patch", **CONFIGS["gap"].to_dict()}))
    with pytest.raises(WeightsError, match="patch"):
        AdapterConfig.from_json(path)


@pytest.mark.parametrize(
    "kwargs", [{"in_dim": 0}, {"num_tokens": -1}, {"depth": 0}, {"hidden_mult": 0}, {"lm_hidden": 2.5},
              {"standardize": "yes"}],
)
def test_config_validates(kwargs):
    with pytest.raises(InputError):
        AdapterConfig(**kwargs)


def test_bad_config_file_names_path(tmp_path):
    path = tmp_path / "adapter_config.json"
    path.write_text(json.dumps({"mode": "gap", "in_dim": 16, "colour": "blue"}))
    with pytest.raises(WeightsError, match="colour") as err:
        AdapterConfig.from_json(path)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsError, match="adapter_config.json"):
        VisionAdapter.load(tmp_path / "missing")


def test_weights_must_match_config(tmp_path):
    VisionAdapter(CONFIGS["gap"]).save(tmp_path)
    AdapterConfig(in_dim=16, lm_hidden=32, num_tokens=4, depth=3).to_json(tmp_path / "adapter_config.json")
    with pytest.raises(WeightsError, match="adapter.safetensors"):
        VisionAdapter.load(tmp_path)


def test_wrong_feature_shape_is_input_error():
    with pytest.raises(InputError, match="in_dim=16"):
        VisionAdapter(CONFIGS["gap"])(torch.randn(2, 8))
    with pytest.raises(InputError, match="in_dim=16"):
        VisionAdapter(CONFIGS["gap"])(torch.randn(2, 225, 16))  # patch tokens: not an input any more


@pytest.mark.parametrize("mode", ["gap", "deep"])
def test_standardized_input_is_scaled_by_training_statistics_and_saved(tmp_path, mode):
    torch.manual_seed(3)
    cfg = AdapterConfig(**{**CONFIGS[mode].to_dict(), "standardize": True})
    adapter = VisionAdapter(cfg)
    scale = torch.logspace(-3, 1, 16)
    train = torch.randn(*FEATURES[mode]) * scale + 0.5
    train[..., 7] = 0.25  # constant in training: the std floor keeps it finite
    adapter.set_input_scale(train)
    flat = train.reshape(-1, 16)
    assert torch.allclose(adapter.input_mean, flat.mean(0), atol=1e-6)
    assert adapter.input_std[7] > 0 and torch.isfinite(adapter.input_std).all()
    # Same weights without standardization, fed the standardized features by hand.
    plain = VisionAdapter(CONFIGS[mode])
    plain.mlp.load_state_dict(adapter.mlp.state_dict())
    x = torch.randn(*FEATURES[mode]) * scale + 0.5
    expected = plain((x - adapter.input_mean) / adapter.input_std)
    assert torch.allclose(adapter(x), expected, atol=1e-5)
    # The statistics travel in the safetensors file and come back with the config.
    adapter.save(tmp_path / "a")
    loaded = VisionAdapter.load(tmp_path / "a")
    assert loaded.config.standardize
    assert torch.equal(loaded.input_std, adapter.input_std) and torch.allclose(loaded(x), adapter(x))


def test_standardize_is_opt_in_and_old_configs_still_load(tmp_path):
    adapter = VisionAdapter(CONFIGS["gap"])
    assert "input_mean" not in adapter.state_dict()
    with pytest.raises(InputError, match="without standardize"):
        adapter.set_input_scale(torch.randn(4, 16))
    adapter.save(tmp_path)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    del data["standardize"]  # written before the option existed
    (tmp_path / "adapter_config.json").write_text(json.dumps(data))
    assert not VisionAdapter.load(tmp_path).config.standardize
    with pytest.raises(InputError, match="width 16"):
        VisionAdapter(AdapterConfig(**{**CONFIGS["gap"].to_dict(), "standardize": True})).set_input_scale(torch.randn(4, 8))


def test_anchor_undoes_the_spectral_normalization_so_index_means_reach_the_mlp_as_stated():
    """spectral-v2's embedding is f / |f| with a constant component: dividing by it gives back f,
    whose first components are the chip's index means, as `chip_statistics` (the analysis) has them."""
    from indexer.core.indices import INDICES, chip_statistics
    from xvision_model.encoders.base import CROMA_BANDS
    from xvision_model.encoders.registry import anchor_index
    from xvision_model.encoders.spectral import ANCHOR_INDEX, INDEX_CLIP, SpectralIndexEncoder

    assert anchor_index("spectral-v2") == ANCHOR_INDEX == 63 and anchor_index("croma-large") is None
    gen = torch.Generator().manual_seed(0)
    chips = torch.rand(3, len(CROMA_BANDS), 120, 120, generator=gen) * 0.4
    chips[1] *= 2.5  # a brighter parcel: another vector length
    valid = torch.ones(3, 120, 120, dtype=torch.bool)
    valid[2] = False  # nothing observed: the zero vector
    gap = SpectralIndexEncoder()(chips, valid).gap
    adapter = VisionAdapter(AdapterConfig(in_dim=64, lm_hidden=8, num_tokens=2, anchor=ANCHOR_INDEX))
    features = adapter.unanchor(gap)
    stats = chip_statistics(chips[:2].numpy(), valid[:2].numpy(), CROMA_BANDS)
    for row, s in zip(features[:2], stats):
        means = torch.tensor([s[f"{ix.name}_mean"] for ix in INDICES]).clamp(-INDEX_CLIP, INDEX_CLIP)  # as encoded
        assert torch.allclose(row[:len(INDICES)], means, atol=1e-5)
    # The anchor component itself stays: 1 / |f|, the length the normalization removed.
    assert torch.allclose(features[:2, ANCHOR_INDEX], gap[:2, ANCHOR_INDEX])
    assert torch.equal(features[2], torch.zeros(64))
    # Training statistics are taken on the same unanchored features the MLP sees.
    std = VisionAdapter(AdapterConfig(in_dim=64, lm_hidden=8, num_tokens=2, anchor=ANCHOR_INDEX, standardize=True))
    std.set_input_scale(gap)
    assert torch.allclose(std.input_mean, features.double().mean(0).float(), atol=1e-6)


@pytest.mark.parametrize("anchor", [-1, 16, 2.0, True])
def test_anchor_must_be_a_component_of_the_input(anchor):
    with pytest.raises(InputError, match="anchor"):
        AdapterConfig(in_dim=16, anchor=anchor)


def test_numeric_bins_encode_each_feature_piecewise_linearly_over_training_quantiles(tmp_path):
    config = AdapterConfig(in_dim=3, lm_hidden=16, num_tokens=2, standardize=True, numeric_bins=4)
    assert config.mlp_in_dim == 15
    adapter = VisionAdapter(config)
    train = torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 10.0, 0.01])
    adapter.set_input_scale(train)
    scaled = (train - adapter.input_mean) / adapter.input_std
    edges = adapter.bin_edges
    assert edges.shape == (3, 5) and bool((edges[:, 1:] > edges[:, :-1]).all())
    # Quantile bins: about a quarter of the training values in each.
    inside = ((scaled[:, :, None] >= edges[:, :-1]) & (scaled[:, :, None] < edges[:, 1:])).float().mean(0)
    assert torch.allclose(inside, torch.full_like(inside, 0.25), atol=0.02)
    code = adapter.encode_bins(scaled).view(400, 3, 4)
    assert bool(((code >= 0) & (code <= 1)).all())
    # A value on an edge fills the bins below it and none above; the code grows with the value.
    on_edge = edges[:, 2][None, :]
    assert adapter.encode_bins(on_edge).view(3, 4).tolist() == [[1.0, 1.0, 0.0, 0.0]] * 3
    order = scaled[:, 0].argsort()
    assert bool((code[order, 0].sum(1).diff() >= 0).all())
    # Saved and loaded with its edges; an adapter saved before the option loads without them.
    adapter.save(tmp_path / "binned")
    again = VisionAdapter.load(tmp_path / "binned")
    assert torch.equal(again.bin_edges, adapter.bin_edges) and torch.allclose(again(train[:5]), adapter(train[:5]))
    plain = AdapterConfig.from_dict({"in_dim": 3, "lm_hidden": 16, "num_tokens": 2, "standardize": True})
    assert plain.numeric_bins == 0 and plain.mlp_in_dim == 3


@pytest.mark.parametrize("bad, message", [
    (dict(numeric_bins=-1), "numeric_bins must be a non-negative integer"),
    (dict(numeric_bins=True), "numeric_bins must be a non-negative integer"),
    (dict(numeric_bins=4, standardize=False), "numeric_bins needs standardize"),
    (dict(numeric_bins=16, bin_fit="trees"), "bin_fit must be one of quantile, target"),
    (dict(numeric_bins=4, bin_fit="target"), "bin_fit 'target' needs numeric_bins >= 10"),
])
def test_numeric_bins_are_checked(bad, message):
    with pytest.raises(InputError, match=message):
        AdapterConfig(**{"in_dim": 3, "lm_hidden": 16, "standardize": True, **bad})


def test_target_bins_put_a_narrow_step_where_the_training_classes_change(tmp_path):
    """Feature 0 decides a class at 0.3 (raw), feature 1 at 0.6, feature 2 decides nothing: the
    target-fitted edges place a bin of 2 * STEP_HALF_WIDTH standard deviations on each threshold,
    so the code of a value just above a threshold differs from one just below by a whole step,
    where quantile bins (a ramp over a wide bin) move by a few hundredths."""
    from xvision_model.adapter import STEP_HALF_WIDTH

    gen = torch.Generator().manual_seed(0)
    train = torch.rand(2000, 3, generator=gen)
    targets = torch.stack([(train[:, 0] >= 0.3).long(), (train[:, 1] >= 0.6).long()], 1).numpy()
    targets[:50] = -1  # rows without a class (an unusable record) are left out of the fit
    config = AdapterConfig(in_dim=3, lm_hidden=16, num_tokens=2, standardize=True, numeric_bins=16, bin_fit="target")
    adapter = VisionAdapter(config)
    with pytest.raises(InputError, match="one row of class targets per feature row"):
        adapter.set_input_scale(train)
    adapter.set_input_scale(train, targets)
    edges = adapter.bin_edges
    assert edges.shape == (3, 17) and bool((edges[:, 1:] > edges[:, :-1]).all())
    quantile = VisionAdapter(AdapterConfig(**{**config.to_dict(), "bin_fit": "quantile"}))
    quantile.set_input_scale(train)
    for j, threshold in ((0, 0.3), (1, 0.6)):
        at = float((threshold - adapter.input_mean[j]) / adapter.input_std[j])
        # A bin centred on the threshold (within the data's gap between two training values).
        widths = edges[j, 1:] - edges[j, :-1]
        centres = (edges[j, 1:] + edges[j, :-1]) / 2
        narrow = torch.isclose(widths, torch.tensor(2 * STEP_HALF_WIDTH, dtype=widths.dtype), atol=1e-3)
        assert bool(narrow.any()) and float((centres[narrow] - at).abs().min()) < 0.01
        # Raw values 0.004 either side of the threshold (0.014 standard deviations): a full step apart.
        for model, least, most in ((adapter, 0.9, 2.0), (quantile, 0.0, 0.2)):
            below, above = train[:2].clone(), train[:2].clone()
            below[:, j], above[:, j] = threshold - 0.004, threshold + 0.004
            scale = lambda x: (x - model.input_mean) / model.input_std  # noqa: E731
            step = (model.encode_bins(scale(above)) - model.encode_bins(scale(below))).view(2, 3, 16)[:, j].sum(1)
            assert bool((step >= least).all() and (step <= most).all()), (model.config.bin_fit, step)
    # The config and edges travel with the weights.
    adapter.save(tmp_path / "t")
    again = VisionAdapter.load(tmp_path / "t")
    assert again.config.bin_fit == "target" and torch.equal(again.bin_edges, adapter.bin_edges)
