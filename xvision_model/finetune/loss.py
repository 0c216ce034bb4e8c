"""The training loss: cross-entropy on the target tokens of `XVisionModel.splice` batches.

The batch is built by the model's own splice path, the one `generate` uses, so training and
serving cannot drift apart. On top of plain cross-entropy: fact tokens weigh
`StageSettings.fact_weight`, decimals after a "." get ordinal targets (`finetune.numbers`), and in
the vision stage an auxiliary head regresses the record's statistics from the visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xvision_model.finetune.numbers import DecimalTokens, decimal_mask, ordinal_loss
from xvision_model.finetune.profiles import StageSettings
from xvision_model.finetune.tokens import Encoded
from xvision_model.model import XVisionModel
from xvision_model.splice import IGNORE_INDEX


#: Validation batches hold at most this many rows and this many logits (rows x positions x vocabulary).
VALIDATION_ROWS, VALIDATION_LOGITS = 64, 1 << 25


@dataclass
class Objective:
    """What the loss needs besides the model and the batch."""

    device: torch.device
    autocast: bool = False  # bfloat16 autocast (CUDA devices that support it)
    aux: nn.Module | None = None  # training-only head: mean visual token -> record statistics
    decimals: DecimalTokens | None = None  # the tokenizer's two-digit decimal tokens (ordinal targets)


def token_loss(model: XVisionModel, data: Encoded, idx: list[int], *, visual: bool, objective: Objective,
               settings: StageSettings | None = None) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Summed cross-entropy over the target tokens of rows `idx`, their count, and the mean
    squared error of the auxiliary head (None without one, or for text-only batches).

    With `settings` (training) the embeddings are perturbed, fact tokens weighted and, with
    `settings.decimal_sigma`, decimals after a "." get ordinal targets; without (validation) the
    loss is plain cross-entropy.
    """
    features = data.features[idx].to(objective.device) if visual else None
    if features is not None and settings is not None and settings.feature_noise > 0:
        # Relative to each dimension's own spread (the training adapter standardizes its input):
        # a dimension that moves by hundredths would drown in noise scaled to the RMS.
        scale = model.adapter.input_std.to(features.dtype)
        features = features + torch.randn_like(features) * (settings.feature_noise * scale)
    aux_loss = None
    with torch.autocast(device_type=objective.device.type, dtype=torch.bfloat16, enabled=objective.autocast):
        batch = model.splice(features, [data.prompts[i] for i in idx], [data.targets[i] for i in idx])
        # splice right-aligns every row, so the target tokens (and EOS) of all rows lie in the last
        # `span` positions, and the logits that predict them in the last `span + 1`: the vocabulary
        # projection skips the visual and prompt positions of the batch (the loss is the same).
        span = target_span(batch.labels)
        logits = model.run(batch, logits_to_keep=span + 1).logits
        if features is not None and objective.aux is not None:
            wanted = data.stats[idx].to(objective.device)
            known = torch.isfinite(wanted)
            if known.any():
                guess = objective.aux(batch.visual.float().mean(dim=1))
                aux_loss = F.mse_loss(guess[known], wanted[known])
    labels = batch.labels[:, -span:]
    keep = labels != IGNORE_INDEX
    # Only target positions reach the vocabulary-sized float32 cross-entropy.
    picked, wanted = logits[:, :-1][keep].float(), labels[keep]
    weights = fact_weights(data, idx, batch.labels, settings)[:, -span:][keep]
    loss = torch.zeros((), device=picked.device)
    sigma = settings.decimal_sigma if settings is not None else 0.0
    if sigma > 0 and objective.decimals is not None:
        ordinal = decimal_mask(objective.decimals, wanted, batch.labels[:, -span - 1:-1][keep])
        loss = ordinal_loss(picked[ordinal], wanted[ordinal], objective.decimals, sigma, weights[ordinal])
        picked, wanted, weights = picked[~ordinal], wanted[~ordinal], weights[~ordinal]
    loss = loss + (F.cross_entropy(picked, wanted, reduction="none") * weights).sum()
    return loss, int(keep.sum()), aux_loss


def target_span(labels: torch.Tensor) -> int:
    """How many trailing positions of a right-aligned spliced batch hold target tokens (at most
    T - 1: position 0 predicts nothing)."""
    is_target = (labels != IGNORE_INDEX).any(dim=0)
    first = int(is_target.to(torch.int8).argmax()) if bool(is_target.any()) else labels.shape[1] - 1
    return max(1, labels.shape[1] - max(first, 1))


def fact_weights(data: Encoded, idx: list[int], labels: torch.Tensor, settings: StageSettings | None) -> torch.Tensor:
    """[B, T] loss weights aligned with `labels`: `settings.fact_weight` on target tokens that
    state a fact, 1 elsewhere (all ones for validation, or without fact marks)."""
    if settings is None or settings.fact_weight == 1.0 or data.facts is None:
        return torch.ones(labels.shape, device=labels.device)
    # splice right-aligns each row as [... | target | EOS]: the target ends at T - 1. The marks are
    # laid out on the host in one array (one tensor op per row cost ~2 % of a tiny-profile step).
    length = labels.shape[1]
    marks = np.zeros(labels.shape, dtype=bool)
    for r, i in enumerate(idx):
        row = data.facts[i]
        if row:
            marks[r, length - 1 - len(row):length - 1] = row
    weights = torch.ones(labels.shape)
    weights[torch.from_numpy(marks)] = settings.fact_weight
    return weights.to(labels.device)


@torch.no_grad()
def validation_loss(model: XVisionModel, data: Encoded, *, visual: bool, objective: Objective,
                    batch_size: int) -> float | None:
    """Mean per-token cross-entropy over `data` (None when it is empty)."""
    if len(data) == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    # The loss is a sum over rows, so their grouping does not change it: rows of similar length go
    # together (little padding) in batches as large as VALIDATION_LOGITS allows, no smaller than
    # the training micro-batch. On the tiny profile that took a validation pass from ~5 s to ~2 s.
    order = sorted(range(len(data)), key=lambda i: len(data.prompts[i]) + len(data.targets[i]))
    longest = max(len(data.prompts[i]) + len(data.targets[i]) for i in order) + 1 + model.adapter.config.num_tokens * visual
    vocab = int(getattr(model.lm.config, "vocab_size", 0) or 0) or 1
    size = max(batch_size, min(VALIDATION_ROWS, VALIDATION_LOGITS // (longest * vocab)))
    for start in range(0, len(order), size):
        idx = order[start:start + size]
        loss, n, _ = token_loss(model, data, idx, visual=visual, objective=objective)
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)
