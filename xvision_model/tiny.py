"""The `tiny` profile's generator, built in-process: no downloaded weights at all.

A byte-level BPE trained on the given texts, a small randomly initialised Qwen2, a vision adapter
and fresh LoRA layers: the same classes as the full profile, only smaller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch
from transformers import Qwen2ForCausalLM

from xvision_model.adapter import AdapterConfig, VisionAdapter
from xvision_model.lm import LoraSettings, TinyLMSettings, apply_lora, tiny_qwen2_config
from xvision_model.model import XVisionModel
from xvision_model.tokenizer import train_tokenizer


def build_tiny_model(
    texts: Iterable[str],
    *,
    in_dim: int,
    num_tokens: int = 8,
    lora: LoraSettings | None = LoraSettings(),
    seed: int = 0,
    **arch: int,
) -> XVisionModel:
    """A randomly initialised tiny XVisionModel (tokenizer trained on `texts`); `lora=None` skips LoRA.

    `arch` overrides fields of `TinyLMSettings` (vocab_size, hidden, layers, ...): without them
    this is the tiny profile's own architecture and vocabulary.
    """
    settings = replace(TinyLMSettings(), **arch)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts, vocab_size=settings.vocab_size)
    lm = Qwen2ForCausalLM(tiny_qwen2_config(len(tokenizer), settings, pad_token_id=tokenizer.pad_token_id,
                                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    if lora is not None:
        lm = apply_lora(lm, lora)
    adapter = VisionAdapter(AdapterConfig(in_dim=in_dim, lm_hidden=settings.hidden, num_tokens=num_tokens))
    return XVisionModel(adapter, lm, tokenizer)
