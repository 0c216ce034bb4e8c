"""The one place where visual tokens meet text tokens; training and generation both call `splice`.

Each row is ``[visual tokens | prompt tokens | target tokens + EOS]`` and rows are LEFT-padded to
the longest one, for training as well as for generation: the last position of every row is then
real, so the LM's next-token prediction for the whole batch sits at ``[:, -1]``, and one padding
convention serves both paths. Position ids count real tokens only (``cumsum(mask) - 1``, 0 on
padding), exactly what ``transformers`` derives from the attention mask during ``generate``, so a
row sees the same positions alone or in a batch, in training or in serving.

Labels follow LLaVA: -100 (ignored by the loss) on padding, visual and prompt positions; only the
target and its EOS are learned. The seed trained on its own prompt; this does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from indexer.core.errors import InputError

IGNORE_INDEX = -100


@dataclass
class SpliceBatch:
    """Inputs for a Hugging Face causal LM: all tensors are [B, T] (embeds [B, T, H]); `visual`
    is the [B, V, H] visual tokens spliced in (training reads them for its auxiliary head)."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor | None = None
    visual: torch.Tensor | None = None


def _as_rows(ids: Sequence[Sequence[int]] | torch.Tensor, mask: torch.Tensor | None, name: str) -> list[list[int]]:
    """Token rows as lists; a tensor's padding (mask == 0) is dropped."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 2:
            raise InputError(f"{name} must be [B, L], got {tuple(ids.shape)}")
        if mask is None:
            return ids.tolist()
        return [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    return [list(map(int, row)) for row in ids]


def splice(
    visual: torch.Tensor,
    prompt_ids: Sequence[Sequence[int]] | torch.Tensor,
    embed_tokens: nn.Embedding,
    *,
    target_ids: Sequence[Sequence[int]] | torch.Tensor | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    prompt_mask: torch.Tensor | None = None,
    target_mask: torch.Tensor | None = None,
) -> SpliceBatch:
    """Build a left-padded ``[visual | prompt | target + EOS]`` batch.

    Args:
        visual: [B, V, H] visual tokens (the adapter's output); cast to the embedding dtype.
        prompt_ids: B rows of prompt token ids (lists, or a [B, L] tensor with `prompt_mask`).
        embed_tokens: the LM's input embedding.
        target_ids: B rows of target ids for training; None for generation (no labels then).
        eos_id: appended to each target that does not already end with it.
        pad_id: token whose embedding fills padding (masked out, so its value never matters).
        prompt_mask, target_mask: masks for tensor inputs whose padding must be dropped.
    """
    if visual.dim() != 3:
        raise InputError(f"visual tokens must be [B, V, H], got {tuple(visual.shape)}")
    batch, n_visual, width = visual.shape
    if width != embed_tokens.embedding_dim:
        raise InputError(f"visual tokens are {width}-d but the LM embeds tokens in {embed_tokens.embedding_dim}-d")
    prompts = _as_rows(prompt_ids, prompt_mask, "prompt_ids")
    targets = _as_rows(target_ids, target_mask, "target_ids") if target_ids is not None else None
    if len(prompts) != batch or (targets is not None and len(targets) != batch):
        raise InputError(
            f"batch sizes differ: {batch} visual rows, {len(prompts)} prompts"
            + (f", {len(targets)} targets" if targets is not None else "")
        )
    if targets is not None and eos_id is not None:
        targets = [t if t and t[-1] == eos_id else t + [eos_id] for t in targets]

    texts = [p + (targets[i] if targets is not None else []) for i, p in enumerate(prompts)]
    length = n_visual + max(len(t) for t in texts)
    device = embed_tokens.weight.device

    ids = torch.full((batch, length), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, length), dtype=torch.long)
    is_visual = torch.zeros((batch, length), dtype=torch.bool)
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long) if targets is not None else None
    for i, text in enumerate(texts):
        start = length - n_visual - len(text)
        attention[i, start:] = 1
        is_visual[i, start:start + n_visual] = True
        ids[i, start + n_visual:] = torch.tensor(text, dtype=torch.long)
        if labels is not None and targets[i]:
            labels[i, length - len(targets[i]):] = torch.tensor(targets[i], dtype=torch.long)

    ids, attention, is_visual = ids.to(device), attention.to(device), is_visual.to(device)
    embeds = embed_tokens(ids)
    # masked_scatter fills row-major, the order of visual.flatten(0, 1); it keeps autograd to the adapter.
    embeds = embeds.masked_scatter(is_visual.unsqueeze(-1), visual.to(device=device, dtype=embeds.dtype))
    position_ids = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)
    return SpliceBatch(
        inputs_embeds=embeds,
        attention_mask=attention,
        position_ids=position_ids,
        labels=labels.to(device) if labels is not None else None,
        visual=visual,
    )
