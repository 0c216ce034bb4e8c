"""A cold `xvision ask` imports only what its answer needs (issue 20).

Each question runs in a fresh interpreter (`xvision.cli.main`, as the console script does) on a
store the committed demo generator fits, so the generator is chosen for every answer; the
interpreter then reports which heavy packages it imported. An answer that needs no generated text
(a refusal, a history, a ranking) must not import torch, transformers or peft. One that uses the
generator runs the model's ONNX export (committed with the demo model) on ONNX Runtime and imports
none of them either; served by torch (``XVISION_GENERATOR=torch``, or a model without a current
export) it imports torch and transformers but not peft (the saved LoRA is folded without it), and
loads the tiny generator on one CPU thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "tiny-demo"
HEAVY = ("torch", "transformers", "peft", "onnxruntime")
#: Runs the CLI, then prints the heavy packages it imported as the last line of stderr.
PROBE = ("import json, sys\n"
         "from xvision.cli import main\n"
         "rc = main(sys.argv[1:])\n"
         f"print(json.dumps({{'rc': rc, 'imported': sorted(m for m in {HEAVY!r} if m in sys.modules)}}), "
         "file=sys.stderr)\n")

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "model_card.json").is_file(), reason="no committed demo model")


@pytest.fixture(scope="module")
def farm_store(tmp_path_factory) -> Path:
    """The generated farm indexed with the default encoder (the demo model's)."""
    from eval import farm
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    inputs = tmp_path_factory.mktemp("farm")
    farm.write_farm(inputs)
    store = tmp_path_factory.mktemp("farm-store") / "store"
    index(IndexConfig(store=store, inputs=(str(inputs),), parcels=inputs / "parcels.geojson", progress=False),
          build_encoder(DEFAULT_ENCODER))
    return store


def _ask(store: Path, question: str, backend: str = "auto") -> tuple[dict, dict]:
    env = {**os.environ, "XVISION_GENERATOR": backend}
    done = subprocess.run([sys.executable, "-c", PROBE, "ask", question, "--store", str(store), "--model",
                           str(DEMO_MODEL), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    assert probe["rc"] == 0, done.stderr
    return json.loads(done.stdout), probe


@pytest.mark.parametrize("question", [
    "What is the weather forecast for Ghent tomorrow?",  # declined: off topic
    "NDVI history of farm-02 in 2022",
    "Which parcels had the highest NDVI in June 2023?",
    "How was farm-01 on 2021-06-24?",  # an unusable date: said so, nothing generated
])
def test_an_answer_without_generated_text_imports_no_torch(farm_store, question):
    result, probe = _ask(farm_store, question)
    assert any("generator: explicit model" in note for note in result["plan"]["notes"])  # the model was chosen ...
    assert result["timings"]["load"] is None  # ... and never loaded
    assert probe["imported"] == [], f"{question!r} imported {probe['imported']}"


def _generated(result: dict) -> bool:
    return result["plan"].get("analysis_source") == "generated" or any(
        note.startswith("generated analysis") for note in result["plan"]["notes"])


def test_an_answer_with_generated_text_runs_the_onnx_export_without_torch(farm_store):
    result, probe = _ask(farm_store, "How is farm-04 doing on 2023-06-24?")
    assert _generated(result), result["plan"]["notes"]
    assert probe["imported"] == ["onnxruntime"]
    timings = result["timings"]
    assert timings["load"] > 0 and timings["generate"] > 0
    torch_result, torch_probe = _ask(farm_store, "How is farm-04 doing on 2023-06-24?", backend="torch")
    assert torch_probe["imported"] == ["torch", "transformers"]  # torch serving: still no peft
    assert torch_result["answer"] == result["answer"]  # the same analysis either way


def test_a_stale_export_is_not_used_and_the_answer_says_so(farm_store, tmp_path, monkeypatch):
    """An export that no longer matches the model's files (here: one file edited) is never run.
    By default torch serves the model and the answer warns; with XVISION_GENERATOR=onnx the
    generator fails, the answer still comes from the stored analyses, and the note says why."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, model)
    (model / "adapter_config.json").write_text((model / "adapter_config.json").read_text() + "\n")
    question = "How is farm-04 doing on 2023-06-24?"
    for backend in ("auto", "onnx"):
        env = {**os.environ, "XVISION_GENERATOR": backend}
        done = subprocess.run([sys.executable, "-m", "xvision.cli", "ask", question, "--store", str(farm_store),
                               "--model", str(model), "--json"], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        if backend == "auto":
            assert _generated(result) and any("stale" in w for w in result["warnings"]), result["warnings"]
        else:
            assert not _generated(result) and any("stale" in n for n in result["plan"]["notes"]), result["plan"]


def test_the_tiny_generator_loads_on_one_cpu_thread_and_gives_torch_its_setting_back(farm_store, monkeypatch):
    """Served by torch, the tiny profile's one thread (XVisionChatModel.threads) holds from the
    load on, where the LoRA fold runs (0.2-0.6 s on two threads of a busy 2-core machine, 0.17 s
    on one); the process's own torch setting comes back once the answer is written."""
    import torch

    monkeypatch.setenv("XVISION_GENERATOR", "torch")

    import xvision_model.artifacts as artifacts
    from assistant.api import Assistant

    if torch.cuda.is_available():
        pytest.skip("on a GPU the load keeps torch's threads")
    real_load, seen = artifacts.load_model, []

    def load_model(*args, **kwargs):  # the real load, with the thread count it ran under
        seen.append(torch.get_num_threads())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(artifacts, "load_model", load_model)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assistant = Assistant.open(farm_store, DEMO_MODEL)
        result = assistant.ask("How is farm-04 doing on 2023-06-24?")
        assert result["answer"] and assistant.last_timings["load"] > 0
        assert seen == [1]
        assert assistant.generator.threads == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
