"""Serving folds a saved LoRA adapter into the base weights without peft (`lm.merge_lora_files`),
to the same tensors as peft's own `merge_and_unload`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xvision_model.artifacts import BASE_DIR, LORA_DIR, load_model, save_model
from xvision_model.lm import LoraSettings, load_base_lm, load_lora, merge_lora, merge_lora_files
from xvision_model.tiny import build_tiny_model
from tiny_models import randomise

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "models" / "tiny-demo"
TEXTS = ["Vigorous vegetation across the parcel, NDVI 0.81.", "Moisture content is low (NDMI -0.12).",
         "Bare soil dominates the ground cover (SAVI 0.15)."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = build_tiny_model(TEXTS, in_dim=8, num_tokens=2, vocab_size=300, hidden=32, layers=2, heads=4, kv_heads=2,
                             intermediate=64, max_positions=64, lora=LoraSettings(r=4, alpha=8), seed=0)
    # peft starts lora_B at zero (a no-op adapter): draw every matrix so the fold changes the weights.
    randomise(model, seed=3)
    out = tmp_path_factory.mktemp("lora") / "model"
    save_model(model, out, encoder_id="test-encoder", profile="tiny")
    return out


def _peft_merged(directory: Path):
    return merge_lora(load_lora(load_base_lm(directory / BASE_DIR), directory / LORA_DIR))


def _assert_same_weights(ours, theirs) -> None:
    mine, peft = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == peft.keys()
    for name, tensor in mine.items():
        assert torch.equal(tensor, peft[name]), name


def test_fold_equals_peft_merge_on_every_tensor(model_dir):
    base = load_base_lm(model_dir / BASE_DIR)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    folded = merge_lora_files(base, model_dir / LORA_DIR)
    assert folded is base
    _assert_same_weights(folded, _peft_merged(model_dir))
    changed = [k for k, v in folded.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(any(t in k for t in LoraSettings().target_modules) for k in changed)


def test_serving_load_uses_the_fold_and_generates_as_peft_does(model_dir):
    served = load_model(model_dir, merge=True)
    assert not served.is_lora
    _assert_same_weights(served.lm, _peft_merged(model_dir))
    trained = load_model(model_dir, trainable=True)  # training keeps peft's LoRA layers
    assert trained.is_lora


@pytest.mark.skipif(not (DEMO_MODEL / "model_card.json").is_file(), reason="no committed demo model")
def test_demo_model_fold_equals_peft_merge():
    ours = merge_lora_files(load_base_lm(DEMO_MODEL / BASE_DIR), DEMO_MODEL / LORA_DIR)
    _assert_same_weights(ours, _peft_merged(DEMO_MODEL))


def test_serving_load_never_imports_peft(model_dir):
    code = ("import sys; from xvision_model.artifacts import load_model; "
            f"m = load_model({str(model_dir)!r}, merge=True); "
            "print('peft' in sys.modules, m.is_lora)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("setting", [{"use_dora": True}, {"rank_pattern": {"q_proj": 2}}, {"bias": "all"}])
def test_adapters_using_other_peft_features_are_left_to_peft(model_dir, tmp_path, setting):
    import shutil

    copy = tmp_path / "lora"
    shutil.copytree(model_dir / LORA_DIR, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, **setting}))
    base = load_base_lm(model_dir / BASE_DIR)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    assert merge_lora_files(base, copy) is None
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())  # untouched


def test_fresh_lora_warns_nothing():
    """peft asks transformers' deprecated `is_gradient_checkpointing` when it wraps a model: the
    FutureWarning told a user of `xvision train --quiet` nothing about their training."""
    import warnings

    from transformers import Qwen2ForCausalLM

    from xvision_model.lm import TinyLMSettings, apply_lora, tiny_qwen2_config

    arch = TinyLMSettings(vocab_size=300, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, max_positions=64)
    lm = Qwen2ForCausalLM(tiny_qwen2_config(300, arch, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert apply_lora(lm, LoraSettings(r=4, alpha=8)).peft_config
