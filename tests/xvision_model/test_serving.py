"""The generator served from its ONNX export (xvision_model.serving): the same texts as torch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.analysis import write_analysis
from indexer.core.errors import WeightsError
from xvision_model.artifacts import load_model, save_model
from xvision_model.serving import ServingTokenizer, export_onnx, load_serving, serving_status
from xvision_model.tiny import build_tiny_model
from xvision_model.writer import write_analyses
from tiny_models import randomise

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "models" / "tiny-demo"


def _records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = ("ndvi_mean", "ndmi_mean", "savi_mean", "evi_mean", "ndre_mean", "ndwi_mean")
    out = [{**dict(zip(names, rng.uniform(-0.3, 0.95, len(names)))), "ndvi_std": rng.uniform(0, 0.2),
            "ndvi_p10": rng.uniform(0, 0.5), "ndvi_p90": rng.uniform(0.5, 1.0), "valid_fraction": rng.uniform(0.3, 1),
            "valid": True, "parcel_id": f"p-{i}", "date": "2021-06-01"} for i in range(n)]
    out[-1] = {**out[-1], "valid": False, "invalid_reason": "cloud"}  # an unusable record too
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model with drawn weights (LoRA included, folded at export), saved and exported."""
    texts = [write_analysis(r, seed=i) for i, r in enumerate(_records(60, seed=1))]
    model = build_tiny_model(texts, in_dim=8, num_tokens=2, vocab_size=300, hidden=32, layers=2, heads=2, kv_heads=1,
                             intermediate=48, max_positions=256, seed=0)
    randomise(model, seed=3, std=0.2)
    folder = tmp_path_factory.mktemp("served") / "model"
    save_model(model, folder, encoder_id="spectral-v2", profile="tiny")
    export_onnx(folder)
    torch.set_num_threads(1)
    return folder, load_model(folder, merge=True).eval(), load_serving(folder)


def test_the_export_writes_what_torch_writes_batched_streamed_and_scored(exported):
    folder, model, served = exported
    rows = _records(10, seed=5)
    features = torch.randn(len(rows), 8, generator=torch.Generator().manual_seed(0))
    for lang in ("en", "fr"):
        reference = write_analyses(model, features, rows, lang, max_new_tokens=40, batch_size=4)
        assert write_analyses(served, features.numpy(), rows, lang, max_new_tokens=40, batch_size=4) == reference
        for i in (0, 9):
            pieces: list[str] = []
            streamed = write_analyses(served, features[i:i + 1].numpy(), [rows[i]], lang, max_new_tokens=40,
                                      on_text=pieces.append)
            assert streamed == [reference[i]] and " ".join(pieces) == reference[i].text
    assert len({a.raw for a in reference}) > 1  # the drawn weights write different texts per record


def test_greedy_tokens_and_continuation_scores_match_torch(exported):
    _, model, served = exported
    features = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    rows = [[5, 6, 7, 8], [9], [10, 11, 12]]  # different lengths: left padding
    assert served.generate(features.numpy(), rows, max_new_tokens=12, eos_token_id=-1) == \
        model.generate(features, rows, max_new_tokens=12, eos_token_id=-1)
    tails, owner = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29]], [0, 0, 1, 2]
    expected = model.continuation_logprobs(features, rows, tails, owner)
    assert served.continuation_logprobs(features.numpy(), rows, tails, owner) == pytest.approx(expected, abs=1e-4)


def test_the_serving_tokenizer_is_the_models_tokenizer(exported):
    folder, model, _ = exported
    tokenizer = ServingTokenizer(folder / "tokenizer" / "tokenizer.json")
    for text in [write_analysis(r, lang=lang, seed=i) for i, r in enumerate(_records(8, seed=2)) for lang in ("en", "fr")]:
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids
        assert tokenizer.decode(ids + [model.eos_token_id]) == model.tokenizer.decode(ids, skip_special_tokens=True)


def test_an_export_is_used_only_while_it_matches_the_models_files(exported, tmp_path):
    folder, _, _ = exported
    assert serving_status(folder).usable
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    assert serving_status(copy).usable  # a copy elsewhere is the same model
    (copy / "adapter.safetensors").write_bytes((copy / "adapter.safetensors").read_bytes()[:-1] + b"\0")
    status = serving_status(copy)
    assert not status.usable and status.present and "stale" in status.reason and "export-onnx" in status.reason
    with pytest.raises(WeightsError, match="stale"):
        load_serving(copy)
    shutil.copytree(folder, tmp_path / "no-lm")
    (tmp_path / "no-lm" / "serve" / "lm.onnx").unlink()
    assert "lm.onnx missing" in serving_status(tmp_path / "no-lm").reason
    shutil.rmtree(copy / "serve")
    status = serving_status(copy)
    assert not status.usable and not status.present and "export-onnx" in status.reason


def test_an_instruct_model_is_not_exported(exported, tmp_path):
    folder, _, _ = exported
    copy = tmp_path / "instruct"
    shutil.copytree(folder, copy)
    (copy / "tokenizer" / "chat_template.jinja").write_text("{{ messages }}")
    with pytest.raises(WeightsError, match="chat template"):
        export_onnx(copy)


@pytest.mark.skipif(not (DEMO_MODEL / "model_card.json").is_file(), reason="no committed demo model")
def test_the_committed_demo_model_has_a_current_export_that_writes_what_torch_writes(shared_data, tmp_path):
    """The demo model is served from its export (make demo, the app, `xvision ask`): it must match
    the committed weights, and write the same analyses as torch on real Flanders records."""
    from assistant.store_access import StoreView
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    status = serving_status(DEMO_MODEL)
    assert status.usable, status.reason
    folder = shared_data / "worldcereal-flanders"
    if not folder.is_dir():
        pytest.skip(f"Flanders samples not present at {folder}")
    files = sorted(folder.glob("S2_L2A_Flanders31UES_2019-0[5-6]*.tif"))[:3]
    store = tmp_path / "store"
    index(IndexConfig(store=store, inputs=tuple(map(str, files)), parcels=folder / "parcels_Flanders31UES.gpkg",
                      progress=False), build_encoder(DEFAULT_ENCODER))
    view = StoreView.open(store)
    table = view.records().sort_values("record_id")
    records = [r.to_dict() for _, r in table.iterrows()]
    features = view.vectors([int(i) for i in table["record_id"]])
    assert len(records) > 40 and not all(r["valid"] for r in records)  # clear and clouded dates
    model = load_model(DEMO_MODEL, merge=True).eval()
    served = load_serving(DEMO_MODEL)
    for lang in ("en", "fr"):
        assert write_analyses(served, features, records, lang) == write_analyses(model, torch.from_numpy(features),
                                                                                 records, lang)
