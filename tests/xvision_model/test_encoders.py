"""Encoders: the spectral default's guarantees, the registry, and CROMA's strict weight loading.

CROMA loading is tested on a small torchgeo `CROMA` (64-d, 2 layers) whose checkpoint has the
official layout; the real sizes (and a 1.2 GB full-size checkpoint) are `slow`.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest
import torch

from indexer.core.errors import InputError, WeightsError
from xvision_model.encoders.base import CROMA_BANDS, EncoderOutput
from xvision_model.encoders.croma import VARIANTS, CromaEncoder, find_weights, load_optical_state, sha256_file
from xvision_model.encoders.registry import DEFAULT_ENCODER, ENCODERS, build_encoder
from xvision_model.encoders.spectral import SpectralEncoder, SpectralIndexEncoder

SIZE = 120
OFFICIAL_KEYS = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")


def _chips(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflectance-like chips (0..0.5) and a parcel mask: a disc plus a rectangle, one per row."""
    gen = torch.Generator().manual_seed(seed)
    chips = torch.rand(batch, len(CROMA_BANDS), SIZE, SIZE, generator=gen) * 0.5
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    valid = torch.zeros(batch, SIZE, SIZE, dtype=torch.bool)
    for i in range(batch):
        valid[i] = (yy - 60) ** 2 + (xx - 40 - 10 * i) ** 2 < (25 + 5 * i) ** 2
        valid[i, 90:110, 70:115] = True
    return chips, valid


# -- spectral-v1 and spectral-v2 ----------------------------------------------------------------

@pytest.fixture(scope="module", params=[SpectralEncoder, SpectralIndexEncoder], ids=["v1", "v2"])
def spectral(request) -> SpectralEncoder:
    return request.param()


def test_spectral_shapes(spectral):
    chips, valid = _chips()
    out = spectral(chips, valid)
    assert isinstance(out, EncoderOutput)
    assert out.gap.shape == (3, spectral.spec.dim) == (3, 64)
    assert out.patches.shape == (3, 225, spectral.spec.patch_dim) == (3, 225, 16)
    assert torch.isfinite(out.gap).all() and torch.isfinite(out.patches).all()


def test_spectral_is_deterministic(spectral):
    chips, valid = _chips()
    first, second = spectral(chips, valid), type(spectral)()(chips.clone(), valid.clone())
    assert torch.equal(first.gap, second.gap)
    assert torch.equal(first.patches, second.patches)


def test_spectral_gap_is_l2_normalized(spectral):
    chips, valid = _chips()
    norms = spectral(chips, valid).gap.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_spectral_no_valid_pixel_gives_zero_vector(spectral):
    chips, valid = _chips()
    valid[1] = False
    out = spectral(chips, valid)
    assert torch.equal(out.gap[1], torch.zeros(64))
    assert torch.isfinite(out.patches).all()
    # The other rows are unaffected by an empty neighbour.
    torch.testing.assert_close(out.gap[[0, 2]], spectral(chips[[0, 2]], valid[[0, 2]]).gap)


def test_spectral_ignores_pixels_outside_the_mask(spectral):
    chips, valid = _chips()
    altered = chips.clone()
    outside = (~valid).unsqueeze(1).expand_as(chips)
    altered[outside] = torch.rand(int(outside.sum()), generator=torch.Generator().manual_seed(9))
    before, after = spectral(chips, valid), spectral(altered, valid)
    torch.testing.assert_close(after.gap, before.gap, rtol=0, atol=1e-6)
    torch.testing.assert_close(after.patches, before.patches, rtol=0, atol=1e-6)
    # ... while pixels inside the mask do matter.
    altered[valid.unsqueeze(1).expand_as(chips)] += 0.1
    assert not torch.allclose(spectral(altered, valid).gap, before.gap, atol=1e-3)


def test_spectral_rejects_wrong_chip_shape(spectral):
    with pytest.raises(ValueError, match=spectral.spec.id):
        spectral(torch.zeros(1, 13, SIZE, SIZE), torch.ones(1, SIZE, SIZE, dtype=torch.bool))


def _uniform_field(reflectance: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    chips = torch.stack([torch.full((SIZE, SIZE), reflectance[b]) for b in CROMA_BANDS]).unsqueeze(0)
    valid = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    valid[0, 20:100, 30:90] = True
    chips[0, :, ~valid[0]] = 0.9  # bright surroundings must not leak into the parcel's indices
    return chips, valid


def test_spectral_v2_carries_the_parcel_indices():
    """Undoing the anchor gives the features back; the first ones are the index means."""
    from tests.make_rasters import BARE_SOIL, VEGETATION

    encoder = SpectralIndexEncoder()
    for field, expected in ((VEGETATION, (0.818, 0.333)), (BARE_SOIL, (0.143, -0.143))):
        gap = encoder(*_uniform_field(field)).gap[0]
        features = gap[:-1] / gap[-1]
        ndvi, ndmi = features[0].item(), features[2].item()  # means: ndvi, ndwi, ndmi, savi, evi, ndre
        assert ndvi == pytest.approx(expected[0], abs=1e-3) and ndmi == pytest.approx(expected[1], abs=1e-3)
        savi = 1.5 * (field["B08"] - field["B04"]) / (field["B08"] + field["B04"] + 0.5)
        assert features[3].item() == pytest.approx(savi, abs=1e-3)
        assert features[18].item() == pytest.approx(0.0, abs=1e-6)  # a uniform field has no NDVI spread


def test_spectral_v2_separates_bright_and_dark_fields_of_one_shape():
    """v1 normalized away the vector length; v2 keeps brightness (soil vs. its shadowed twin)."""
    from tests.make_rasters import BARE_SOIL

    dark = {band: value * 0.5 for band, value in BARE_SOIL.items()}
    v2 = SpectralIndexEncoder()
    bright_gap, dark_gap = v2(*_uniform_field(BARE_SOIL)).gap[0], v2(*_uniform_field(dark)).gap[0]
    bright_features, dark_features = bright_gap[:-1] / bright_gap[-1], dark_gap[:-1] / dark_gap[-1]
    # Same ratios -> same NDVI / NDMI, but the band means differ.
    torch.testing.assert_close(bright_features[:3], dark_features[:3], rtol=0, atol=1e-4)
    assert (bright_features[24:36] - dark_features[24:36]).abs().max() > 0.1


def test_spectral_v2_embed_without_reflectance_is_refused():
    chips, valid = _chips()
    with pytest.raises(NotImplementedError, match="reflectance"):
        SpectralIndexEncoder().embed(chips, valid)


# -- registry -----------------------------------------------------------------------------------

def test_registry_default_is_spectral():
    encoder = build_encoder()
    assert DEFAULT_ENCODER == "spectral-v2" and encoder.spec.id == "spectral-v2"
    assert encoder.manifest()["weights_sha256"] is None


def test_registry_unknown_name_lists_choices():
    with pytest.raises(InputError) as info:
        build_encoder("croma-huge")
    message = str(info.value)
    assert "'croma-huge'" in message
    for name in ENCODERS:
        assert name in message


# -- CROMA weights ------------------------------------------------------------------------------

@functools.cache
def _small_croma_template(modalities: tuple[str, ...]):
    from torchgeo.models import CROMA

    # torchgeo's ViT always uses 16 heads, so the ALiBi bias must be built for 16 as well.
    return CROMA(modalities=list(modalities), encoder_dim=64, encoder_depth=2, num_heads=16,
                 patch_size=8, image_size=SIZE)


def _small_croma(modalities=("optical",)):
    # Building the ALiBi bias takes about a second; a copy of one template takes milliseconds.
    return copy.deepcopy(_small_croma_template(tuple(modalities)))


def _official_checkpoint(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Every sub-state-dict of an official CROMA checkpoint, from a small two-modality model."""
    torch.manual_seed(seed)
    full = _small_croma(("sar", "optical"))
    with torch.no_grad():
        for param in full.parameters():
            param.normal_()  # not the init values: a load that silently skips shows up
    return {key: {k: v.clone() for k, v in getattr(full, key).state_dict().items()} for key in OFFICIAL_KEYS}


class NotATensor:
    """A pickled object: `weights_only=True` must refuse to rebuild it."""

    def __init__(self) -> None:
        self.payload = "code"


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, dict[str, torch.Tensor]]:
    return _official_checkpoint()


def test_load_optical_state_loads_every_tensor(tmp_path, checkpoint):
    path = tmp_path / "CROMA_small.pt"
    torch.save(checkpoint, path)
    model = _small_croma()
    load_optical_state(model, path)
    for key in ("s2_encoder", "s2_GAP_FFN"):
        state = getattr(model, key).state_dict()
        assert set(state) == set(checkpoint[key])
        for name, tensor in state.items():
            torch.testing.assert_close(tensor, checkpoint[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    assert not hasattr(model, "s1_encoder")


def test_renamed_key_names_file_and_keys(tmp_path, checkpoint):
    bad = {k: dict(v) for k, v in checkpoint.items()}
    first = sorted(bad["s2_encoder"])[0]
    bad["s2_encoder"]["renamed." + first] = bad["s2_encoder"].pop(first)
    path = tmp_path / "renamed.pt"
    torch.save(bad, path)
    with pytest.raises(WeightsError) as info:
        load_optical_state(_small_croma(), path)
    message = str(info.value)
    assert str(path) in message and "s2_encoder" in message
    assert first in message and "renamed." + first in message


def test_wrong_shape_is_a_weights_error(tmp_path, checkpoint):
    bad = {k: dict(v) for k, v in checkpoint.items()}
    name = next(k for k, v in bad["s2_GAP_FFN"].items() if v.dim() == 2)
    bad["s2_GAP_FFN"][name] = torch.zeros(3, 3)
    path = tmp_path / "shape.pt"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match="wrong shape") as info:
        load_optical_state(_small_croma(), path)
    assert str(path) in str(info.value)


def test_checkpoint_without_s2_encoder(tmp_path, checkpoint):
    path = tmp_path / "no_s2.pt"
    torch.save({k: v for k, v in checkpoint.items() if k != "s2_encoder"}, path)
    with pytest.raises(WeightsError, match="s2_encoder") as info:
        load_optical_state(_small_croma(), path)
    assert str(path) in str(info.value)


def test_bare_state_dict_is_refused(tmp_path, checkpoint):
    path = tmp_path / "flat.pt"
    torch.save(checkpoint["s2_encoder"], path)
    with pytest.raises(WeightsError, match="CROMA layout"):
        load_optical_state(_small_croma(), path)


def test_pickled_code_is_refused(tmp_path, checkpoint):
    path = tmp_path / "pickled.pt"
    torch.save({**checkpoint, "extra": NotATensor()}, path)
    with pytest.raises(WeightsError, match="not a loadable tensor checkpoint") as info:
        load_optical_state(_small_croma(), path)
    assert str(path) in str(info.value)


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(WeightsError, match="not a loadable tensor checkpoint"):
        load_optical_state(_small_croma(), path)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    for variant in VARIANTS.values():
        monkeypatch.delenv(variant.env_var, raising=False)
    return hub


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_missing_weights_names_every_path_and_the_fix(empty_hub, tmp_path, monkeypatch, name):
    variant = VARIANTS[name]
    absent = tmp_path / "nowhere" / "CROMA.pt"
    monkeypatch.setenv(variant.env_var, str(absent))
    with pytest.raises(WeightsError) as info:
        find_weights(variant)
    message = str(info.value)
    looked = [absent] + [empty_hub / "checkpoints" / n for n in variant.cache_names]
    for path in looked:
        assert str(path) in message
    assert variant.official_url in message and variant.env_var in message
    # The fix in the library's own terms (no command-line flag), with the facts as attributes.
    assert "spectral-v2 encoder" in message and "--" not in message
    assert info.value.field == "weights" and info.value.path == str(absent)


def test_weights_found_in_env_then_hub_cache(empty_hub, tmp_path, monkeypatch):
    variant = VARIANTS["croma-large"]
    cached = empty_hub / "checkpoints" / variant.cache_names[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert find_weights(variant) == cached
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"x")
    monkeypatch.setenv(variant.env_var, str(explicit))
    assert find_weights(variant) == explicit


@pytest.fixture
def small_builders(monkeypatch):
    """CromaEncoder with torchgeo's builders swapped for the small CROMA (same code path)."""
    import torchgeo.models

    for variant in VARIANTS.values():
        monkeypatch.setattr(torchgeo.models, variant.builder, lambda modalities: _small_croma(modalities))


def test_croma_encoder_loads_weights_and_records_hash(small_builders, tmp_path, checkpoint):
    path = tmp_path / "CROMA_small.pt"
    torch.save(checkpoint, path)
    encoder = CromaEncoder("croma-large", weights=path)
    assert encoder.weights_sha256 == sha256_file(path)
    assert encoder.manifest()["id"] == "croma-large"
    for name, tensor in encoder.model.s2_encoder.state_dict().items():
        torch.testing.assert_close(tensor, checkpoint["s2_encoder"][name], rtol=0, atol=0)
    chips, valid = _chips(2)
    out = encoder(chips, valid)
    assert out.gap.shape == (2, 64) and out.patches.shape == (2, 225, 64)


def test_croma_encoder_without_weights_is_a_weights_error(small_builders, empty_hub):
    with pytest.raises(WeightsError, match="no weights file found"):
        build_encoder("croma-base")
    with pytest.raises(WeightsError, match="not found"):
        CromaEncoder("croma-base", weights=empty_hub / "absent.pt")


# -- real sizes (slow) --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["croma-base", "croma-large"])
def test_croma_random_init_shapes(name):
    encoder = CromaEncoder(name, random_init=True)
    dim = VARIANTS[name].dim
    assert encoder.spec.id == f"{name}-random-init" and encoder.weights_sha256 is None
    chips, valid = _chips(2)
    out = encoder(chips, valid)
    assert out.gap.shape == (2, dim) and out.patches.shape == (2, 225, dim)
    assert torch.isfinite(out.gap).all() and torch.isfinite(out.patches).all()


@pytest.mark.slow
def test_croma_large_full_size_checkpoint(tmp_path):
    """A random checkpoint with the real layout and sizes (~1.2 GB) loads through CromaEncoder."""
    from torchgeo.models import croma_large

    torch.manual_seed(0)
    full = croma_large(modalities=["sar", "optical"])
    checkpoint = {key: getattr(full, key).state_dict() for key in OFFICIAL_KEYS}
    path = tmp_path / "CROMA_large.pt"
    torch.save(checkpoint, path)
    expected = {k: v.clone() for k, v in checkpoint["s2_GAP_FFN"].items()}
    del full, checkpoint
    encoder = CromaEncoder("croma-large", weights=path)
    for name, tensor in encoder.model.s2_GAP_FFN.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    assert encoder.weights_sha256 == sha256_file(path)
    out = encoder(*_chips(2))
    assert out.gap.shape == (2, 1024) and out.patches.shape == (2, 225, 1024)
    os.remove(path)
