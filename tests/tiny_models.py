"""Helpers for tests that need a tiny model whose weights are not the initial ones."""

from __future__ import annotations

import torch


def randomise(model: torch.nn.Module, seed: int, std: float = 0.3) -> torch.nn.Module:
    """Draw every matrix of `model` from N(0, std) with `seed`, in place, and return it.

    A freshly built tiny model writes near-uniform noise and peft starts `lora_B` at zero (a no-op
    adapter): drawn weights make its text, and a LoRA fold, change with the weights.
    """
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, std)
    return model
