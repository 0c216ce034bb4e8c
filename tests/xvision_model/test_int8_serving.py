"""Full-profile models are served with int8 dynamic Linears on the CPU; the tiny profile is not."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from indexer.core.errors import InputError
from xvision_model.artifacts import load_model, save_model
from xvision_model.lm import LoraSettings
from xvision_model.tiny import build_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

TEXTS = ["La parcelle montre une vigueur élevée (NDVI 0.72).", "Humidité faible, sol nu dominant."]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = build_tiny_model(TEXTS, in_dim=16, mode="gap", num_tokens=4, vocab_size=300, hidden=32, layers=2,
                             heads=4, kv_heads=2, intermediate=64, max_positions=128,
                             lora=LoraSettings(r=4, alpha=8), seed=0).eval()
    root = tmp_path_factory.mktemp("int8")
    copy.deepcopy(model.lm).unload().save_pretrained(root / "qwen", safe_serialization=True)
    save_model(model, root / "full", encoder_id="croma-large", profile="full", base_model=str(root / "qwen"))
    save_model(model, root / "tiny", encoder_id="spectral-v2", profile="tiny")
    return root


def _int8_layers(model) -> int:
    return sum(isinstance(m, DynamicInt8Linear) for m in model.lm.modules())


def test_full_profile_serves_int8_on_cpu_and_generates(saved):
    served = load_model(saved / "full", merge=True)
    assert _int8_layers(served) == 2 * 7 + 1  # q k v o gate up down per layer, and lm_head
    text = served.generate_text(torch.randn(1, 16), ["Analyse :"], max_new_tokens=5)
    assert len(text) == 1 and isinstance(text[0], str)
    # Float where it was asked for, or where training continues.
    assert _int8_layers(load_model(saved / "full", merge=True, quantize="none")) == 0
    assert _int8_layers(load_model(saved / "full")) == 0
    assert _int8_layers(load_model(saved / "tiny", merge=True)) == 0


def test_int8_needs_a_merged_model(saved):
    with pytest.raises(InputError, match="merge=True"):
        load_model(saved / "tiny", quantize="int8")
    with pytest.raises(InputError, match="quantize must be"):
        load_model(saved / "tiny", quantize="fp8")
