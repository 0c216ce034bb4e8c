"""Ordinal targets for the decimals of numbers in the analyses.

The analyses state index values with two decimals ("NDVI 0.61"), and the tiny profile's BPE
vocabulary keeps each pair of decimals as one token ("0", ".", "61"). Plain cross-entropy treats
"60" and "62" as wrong as "15" when the answer is "61", so the language model learns the hundred
decimal tokens as unrelated classes and reads a value out of the visual tokens coarsely
(held-out NDVI off by ~0.02 on average, and most wrong classes sit within 0.02 of a threshold).
With `sigma` > 0, a decimal token that follows "." is trained instead against a Gaussian over
the decimal tokens centred on the right one (`sigma` in hundredths): near misses cost little,
far ones a lot, so the logits over the decimals become a smooth, unimodal function of the value
whose argmax (greedy decoding) is still the right token.

Tokenizers that split numbers digit by digit (Qwen2's own) have no two-digit tokens; there is
then no table (`DecimalTokens.of` returns None) and the loss is plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

DECIMAL_POINT = "."


@dataclass(frozen=True)
class DecimalTokens:
    """The tokenizer's two-digit decimal tokens: `ids` [M], their values `values` [M] (0-99),
    and `index` [V]: the position of a token id in `ids`, -1 for every other token."""

    point_id: int
    ids: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> DecimalTokens | None:
        """The table for `tokenizer`, or None when it has no "." token or fewer than two decimal tokens."""
        vocab = tokenizer.get_vocab()
        point = vocab.get(DECIMAL_POINT)
        found = sorted((int(token), token_id) for token, token_id in vocab.items()
                       if len(token) == 2 and token.isascii() and token.isdigit())
        if point is None or len(found) < 2:
            return None
        ids = torch.tensor([token_id for _, token_id in found])
        index = torch.full((max(len(tokenizer), int(ids.max()) + 1),), -1, dtype=torch.long)
        index[ids] = torch.arange(len(ids))
        return cls(point, ids, torch.tensor([value for value, _ in found], dtype=torch.float32), index)

    def to(self, device: torch.device) -> DecimalTokens:
        return DecimalTokens(self.point_id, self.ids.to(device), self.values.to(device), self.index.to(device))


def decimal_mask(table: DecimalTokens, labels: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Which `labels` (token ids of the tokenizer the table was built from) are decimal tokens
    right after a "." (`previous` holds each label's predecessor)."""
    return (previous == table.point_id) & (table.index[labels] >= 0)


def ordinal_loss(logits: torch.Tensor, labels: torch.Tensor, table: DecimalTokens, sigma: float,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """Summed cross-entropy of `logits` [N, V] against Gaussian targets over the decimal tokens
    centred on each of `labels` [N] (all decimal tokens), `sigma` in hundredths; each row's term
    times `weights` [N] when given."""
    centre = table.values[table.index[labels]]  # [N]
    gauss = torch.exp(-0.5 * ((table.values[None, :] - centre[:, None]) / sigma) ** 2)
    target = gauss / gauss.sum(dim=-1, keepdim=True)
    log_probs = F.log_softmax(logits, dim=-1)[:, table.ids]
    per_row = -(target * log_probs).sum(dim=-1)
    return (per_row if weights is None else per_row * weights).sum()
