"""`xvision ask` and `Assistant` end to end with the real parser, on the farm store, without a model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import assistant.models
from assistant.api import Assistant
from assistant.models import BUNDLED_MODEL
from xvision.cli import main


@pytest.fixture
def no_bundled_model(monkeypatch, tmp_path):
    """As in a clone without the committed demo model: answers are composed from stored analyses."""
    monkeypatch.setattr(assistant.models, "BUNDLED_MODEL", tmp_path / "no-bundled-model")
    return tmp_path / "no-bundled-model"


def _ask(capsys, *args):
    rc = main(["ask", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_output_has_the_documented_keys_and_cites_the_store(capsys, farm_store, view, no_bundled_model):
    rc, out, _ = _ask(capsys, "How was farm-02 in September 2022 compared with September 2021?", "--store",
                      str(farm_store), "--json")
    assert rc == 0
    result = json.loads(out)
    assert list(result) == ["question", "plan", "answer", "citations", "similar", "history", "warnings", "timings"]
    timings = result.pop("timings")
    assert list(timings) == ["startup", "open", "load", "plan", "retrieve", "generate", "ground", "compose", "total"]
    assert timings["load"] is None  # no generator here
    steps = [timings[s] for s in ("plan", "retrieve", "generate", "ground", "compose")]
    assert all(isinstance(t, float) and t >= 0 for t in [timings["open"], timings["total"], *steps])
    assert sum(steps) <= timings["total"] + 1e-3  # the steps are parts of the answer's time
    assert result["plan"]["intent"] == "compare" and result["plan"]["places"]["parcel_ids"] == ["farm-02"]
    records = view.records().set_index(["parcel_id", "date"])
    for cite in result["citations"]:
        row = records.loc[(cite["parcel_id"], cite["date"])]
        assert set(cite) >= {"parcel_id", "date", "indices", "valid_fraction", "cloud_fraction", "source"}
        assert cite["valid_fraction"] == row["valid_fraction"] and cite["source"] == Path(row["source"]).name  # file name, not the server path (issue 22)
        assert all(v == row[k] for k, v in cite["indices"].items())
    assert {("farm-02", "2022-09-07"), ("farm-02", "2021-09-07")} <= {(c["parcel_id"], c["date"]) for c in result["citations"]}
    assert "against" in result["answer"] and result["history"]
    assert any("no generator model fits" in n for n in result["plan"]["notes"])


def test_text_output_is_the_answer_then_a_sources_table(capsys, farm_store):
    rc, out, _ = _ask(capsys, "How is farm-04 doing in June 2023?", "--store", str(farm_store))
    assert rc == 0
    answer, table = out.split("\nsources:\n")
    assert "Parcel farm-04 on 2023-06-24" in answer
    assert "farm-04" in table and "2023-06-24" in table and "S2_L2A_farm_2023-06-24.tif" in table


@pytest.mark.parametrize("question, expected", [
    ("Comment allait la parcelle farm-01 le 24 juin 2021 ?", "aucune observation exploitable le 2021-06-24"),
    ("How was farm-03 on 2023-07-19?", "is suspect"),
    ("How is parcel farm-99 doing?", "Nothing in this store is called"),
    ("How are the rice fields doing in June 2022?", "crop: grassland, maize, sugar beet, winter wheat"),
    ("How was farm-01 in June 2030?", "No acquisition in"),
    ("qwxz vbnm ???", "I answer questions about the 6 parcels"),
    ("What is the capital of France?", "I answer questions about"),
])
def test_questions_without_an_ordinary_answer(capsys, farm_store, question, expected):
    rc, out, err = _ask(capsys, question, "--store", str(farm_store), "--json")
    assert rc == 0 and "Traceback" not in err
    assert expected in json.loads(out)["answer"]


def test_lang_option_and_french_questions(capsys, farm_store):
    rc, out, _ = _ask(capsys, "Comment va la parcelle farm-05 en août 2022 ?", "--store", str(farm_store), "--json")
    assert json.loads(out)["answer"].startswith("Parcelle farm-05 le 2022-08-13")
    rc, out, _ = _ask(capsys, "How is farm-05 in August 2022?", "--store", str(farm_store), "--json", "--lang", "fr")
    assert json.loads(out)["answer"].startswith("Parcelle farm-05 le 2022-08-13")


def test_today_anchors_relative_dates(capsys, farm_store):
    rc, out, _ = _ask(capsys, "How was farm-06 last month?", "--store", str(farm_store), "--json", "--today", "2022-07-10")
    result = json.loads(out)
    assert result["plan"]["window"]["start"] == "2022-06-01" and "2022-06-24" in result["answer"]


def test_a_folder_that_is_not_a_store_is_a_worded_error(capsys, tmp_path):
    rc, _, err = _ask(capsys, "anything", "--store", str(tmp_path))
    assert rc == 2 and err.startswith("xvision ask: error:") and "not an XVision store" in err


def test_python_api_stream_then_last_result(farm_store, no_bundled_model):
    assistant = Assistant.open(farm_store)
    assert assistant.choice.origin == "none"
    assert any(str(no_bundled_model) in n for n in assistant.choice.notes)
    pieces = list(assistant.stream("NDVI history of farm-01 in 2022"))
    assert len(pieces) > 1
    result = assistant.last_result
    assert "".join(pieces) == result["answer"] and result["plan"]["intent"] == "history"
    assert result == assistant.ask("NDVI history of farm-01 in 2022")
    assert re.search(r"lowest \S+ on 2022-08-13", result["answer"])  # the drought's low is named


@pytest.mark.skipif(not BUNDLED_MODEL.is_dir(), reason="the demo model is not in this checkout")
def test_the_bundled_demo_model_answers_with_a_grounded_generated_analysis(farm_store, view):
    """Without --model the assistant uses the committed demo generator (same encoder as the store)."""
    assistant = Assistant.open(farm_store)
    assert assistant.choice.origin == "bundled"
    result = assistant.ask("How was farm-04 on 2023-06-24?")
    assert "farm-04" in result["answer"] and "2023-06-24" in result["answer"]
    row = view.records().set_index(["parcel_id", "date"]).loc[("farm-04", "2023-06-24")]
    cite = next(c for c in result["citations"] if (c["parcel_id"], c["date"]) == ("farm-04", "2023-06-24"))
    assert all(v == row[k] for k, v in cite["indices"].items())
