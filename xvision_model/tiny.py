"""The `tiny` profile's generator, built in-process: no downloaded weights at all.

A byte-level BPE trained on the given texts, a small randomly initialised Qwen2, a vision adapter
and fresh LoRA layers: the same classes as the full profile, only smaller.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import Qwen2ForCausalLM

from xvision_model.adapter import AdapterConfig, VisionAdapter
from xvision_model.lm import LoraSettings, apply_lora, tiny_qwen2_config
from xvision_model.model import XVisionModel
from xvision_model.tokenizer import train_tokenizer


def build_tiny_model(
    texts: Iterable[str],
    *,
    in_dim: int,
    mode: str = "gap",
    num_tokens: int = 8,
    vocab_size: int = 512,
    hidden: int = 256,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 688,
    max_positions: int = 512,
    lora: LoraSettings | None = LoraSettings(),
    seed: int = 0,
) -> XVisionModel:
    """A randomly initialised tiny XVisionModel (tokenizer trained on `texts`); `lora=None` skips LoRA."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_qwen2_config(
        len(tokenizer), hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
        intermediate=intermediate, max_positions=max_positions, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    lm = Qwen2ForCausalLM(config)
    if lora is not None:
        lm = apply_lora(lm, lora)
    adapter = VisionAdapter(AdapterConfig(mode=mode, in_dim=in_dim, lm_hidden=hidden, num_tokens=num_tokens))
    return XVisionModel(adapter, lm, tokenizer)
