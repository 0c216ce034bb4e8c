"""`xvision eval` and `xvision describe` as a user runs them, on a real (tiny) store and a saved model."""

from __future__ import annotations

import json

import pytest

from assistant.grounding import check_analysis
from indexer.pipeline import IndexConfig, index
from indexer.store import Store
from xvision.cli import main
from xvision_model.artifacts import save_model
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder
from xvision_model.lm import LoraSettings
from xvision_model.tiny import build_tiny_model
from tiny_models import randomise

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def store(hesbaye_dir, tmp_path_factory):
    """One real Hesbaye date on a 20-pixel grid (25 cells)."""
    out = tmp_path_factory.mktemp("cmd") / "store"
    index(IndexConfig(store=out, inputs=(str(hesbaye_dir / "S2_L2A_hesbaye_2021-07-01.tif"),), grid=20,
                      progress=False), build_encoder(DEFAULT_ENCODER))
    return out


@pytest.fixture(scope="module")
def model_dir(store, tmp_path_factory):
    """A model that never learned anything (random weights): what it states is mostly wrong."""
    records = Store.open(store).records()
    model = build_tiny_model([*records["analysis"], *records["analysis_fr"]], in_dim=64, num_tokens=4,
                             vocab_size=400, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64,
                             max_positions=256, lora=LoraSettings(r=4, alpha=8), seed=0)
    randomise(model, seed=3)
    out = tmp_path_factory.mktemp("cmd") / "model"
    save_model(model, out, encoder_id=Store.open(store).encoder_id, profile="tiny")
    return out


def test_describe_says_when_the_grounding_gate_would_set_the_text_aside(store, model_dir, capsys):
    table = Store.open(store).records().sort_values("record_id").head(6)
    warned = 0
    for record in table.to_dict("records"):
        args = [record["parcel_id"], "--date", record["date"], "--store", str(store), "--model", str(model_dir),
                "--lang", "fr"]
        assert main(["describe", *args, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        verdict = check_analysis(result["text"], record)  # the assistant's own gate, on what users see
        assert result["gate"] == {"passes": verdict.ok, "problems": list(verdict.problems)}
        assert main(["describe", *args]) == 0
        shown = capsys.readouterr().out
        assert result["text"] in shown
        assert ("WARNING: the assistant's grounding gate would set this text aside" in shown) == (not verdict.ok)
        warned += not verdict.ok
    assert warned  # a model that learned nothing states wrong classes


def test_eval_reports_each_language_with_shown_beside_decoded(store, model_dir, capsys):
    assert main(["eval", "--model", str(model_dir), "--store", str(store), "--lang", "both", "--limit", "4",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 8 and scores["repair"] == "fill" and set(scores["by_lang"]) == {"en", "fr"}
    for part in scores["by_lang"].values():
        assert part["n"] == 4 and set(part["per_aspect"]) == set(part["raw"]["per_aspect"])
    assert main(["eval", "--model", str(model_dir), "--store", str(store), "--lang", "both", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "English (4 records)" in out and "French (4 records)" in out and "decoded" in out


def test_export_onnx_then_ask_serves_the_export_with_the_same_analysis(store, model_dir, capsys, tmp_path, monkeypatch):
    """`xvision export-onnx` as a user runs it; `xvision ask` then writes the same analysis from
    the export as torch does from the weights."""
    import shutil

    from xvision_model.serving import serving_status

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    assert not serving_status(model).present
    assert main(["export-onnx", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {model / 'serve'}" in out and "largest logit difference from torch" in out
    assert serving_status(model).usable
    record = Store.open(store).records().sort_values("record_id").iloc[0]
    question = f"How was {record['parcel_id']} on {record['date']}?"
    answers = {}
    for backend in ("onnx", "torch"):
        monkeypatch.setenv("XVISION_GENERATOR", backend)
        assert main(["ask", question, "--store", str(store), "--model", str(model), "--json"]) == 0
        answers[backend] = json.loads(capsys.readouterr().out)["answer"]
    assert answers["onnx"] == answers["torch"]


def test_export_onnx_help_says_what_it_is_for(capsys):
    with pytest.raises(SystemExit):
        main(["export-onnx", "--help"])
    assert "instead of loading torch" in capsys.readouterr().out
