"""Training pairs as token rows: prompts, targets, and which target tokens state a fact."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from indexer.analysis import fact_spans
from xvision_model.finetune.dataset import PairSet
from xvision_model.finetune.seeds import numpy_rng


@dataclass
class Encoded:
    """A PairSet as tensors and token rows (row i of everything is pair i).

    `facts[i][j]` says whether target token j of row i states a fact (`indexer.analysis.fact_spans`:
    a class key phrase or a number); None when not asked for (`encode(marks=True)`) or when the
    tokenizer cannot give character offsets.
    """

    features: torch.Tensor
    prompts: list[list[int]]
    targets: list[list[int]]
    stats: torch.Tensor  # [N, K] standardized record statistics (NaN: missing)
    source: PairSet | None = None
    tokenizer: PreTrainedTokenizerBase | None = None
    max_target: int | None = None
    facts: list[list[bool]] | None = None
    #: Language -> prompt token ids, for rows `rephrased` into another language.
    prompt_ids: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def rephrased(self, share: float, seed: int, variant: int) -> Encoded:
        """A copy whose targets are, for `share` of the rows, the analysis in phrasing `variant` (>= 1).

        When the rows are written in several languages (`prompt_ids`), each rephrased row is also
        asked in a language drawn anew (uniformly): over the epochs every record is seen in every
        language, at the cost of one language per record and epoch.
        """
        if share <= 0 or self.source is None:
            return self
        rng = numpy_rng(seed, "rephrase", variant)
        pick = rng.random(len(self)) < share
        rows = np.flatnonzero(pick).tolist()
        langs = sorted(self.prompt_ids)
        drawn = numpy_rng(seed, "language", variant).integers(0, len(langs), len(self)) if len(langs) > 1 else None
        pairs = [self.source.pairs[i] for i in rows]
        if drawn is not None:
            pairs = [self.source.in_language(p, langs[drawn[i]]) for i, p in zip(rows, pairs)]
        texts = [self.source.rephrase(p, variant=variant) for p in pairs]
        targets, facts = list(self.targets), None if self.facts is None else list(self.facts)
        prompts = list(self.prompts)
        new_targets, new_facts = tokenize_targets(self.tokenizer, texts, self.max_target, marks=facts is not None)
        for k, i in enumerate(rows):
            targets[i] = new_targets[k]
            prompts[i] = self.prompt_ids.get(pairs[k].lang, prompts[i])
            if facts is not None:
                facts[i] = new_facts[k]
        return dataclasses.replace(self, targets=targets, facts=facts, prompts=prompts)


def tokenize_targets(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_target: int | None,
                     marks: bool = False) -> tuple[list[list[int]], list[list[bool]] | None]:
    """Token ids of `texts` (cut to `max_target`) and, with `marks`, which of them state a fact
    (None without marks or without character offsets, i.e. with a slow tokenizer)."""
    offsets = marks and bool(getattr(tokenizer, "is_fast", False))
    if not texts:
        return [], ([] if offsets else None)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets)
    ids = [row[:max_target] if max_target is not None else row for row in encoded["input_ids"]]
    if not offsets:
        return ids, None
    facts = []
    for text, row, token_offsets in zip(texts, ids, encoded["offset_mapping"]):
        # A token states a fact when any of its characters lies in a fact span: count the marked
        # characters up to each offset once, then every token is one subtraction.
        marked = np.zeros(len(text), dtype=np.int32)
        for start, end in fact_spans(text):
            marked[start:end] = 1
        upto = np.concatenate(([0], np.cumsum(marked)))
        bounds = np.asarray(token_offsets[:len(row)], dtype=np.int64).reshape(-1, 2)
        facts.append((upto[bounds[:, 1]] > upto[bounds[:, 0]]).tolist())
    return ids, facts


def encode(pairs: PairSet, tokenizer: PreTrainedTokenizerBase, max_target: int | None,
           stat_scale: tuple[np.ndarray, np.ndarray], marks: bool = False) -> Encoded:
    """`pairs` tokenized; `marks`: also mark the target tokens that state a fact."""
    prompts: dict[str, list[int]] = {}
    for p in pairs.pairs:
        if p.prompt not in prompts:
            prompts[p.prompt] = tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
    rows = [p.row for p in pairs.pairs]
    targets, facts = tokenize_targets(tokenizer, [p.text for p in pairs.pairs], max_target, marks)
    mean, std = stat_scale
    stats = torch.from_numpy(((pairs.stats[rows] - mean) / std).astype(np.float32))
    by_lang = {code: tokenizer(text, add_special_tokens=False)["input_ids"] for code, text in pairs.prompts.items()}
    return Encoded(torch.from_numpy(pairs.features[rows]).float(), [prompts[p.prompt] for p in pairs.pairs], targets,
                   stats, pairs, tokenizer, max_target, facts, by_lang)


def stat_scale(pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each statistic over the training records (for the auxiliary targets)."""
    values = pairs.stats[sorted({p.row for p in pairs.pairs})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return np.nan_to_num(mean), np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)


def token_rows(train_pairs: PairSet, val_pairs: PairSet, tokenizer: PreTrainedTokenizerBase, *, prompts: list[str],
               max_length: int | None, visual_tokens: int, marks: bool) -> tuple[Encoded, Encoded]:
    """Training and validation token rows; targets cut so that [visual | prompt | target + EOS]
    fits `max_length` positions; statistics standardized by the training records'."""
    longest_prompt = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    max_target = (max_length or 10**9) - visual_tokens - longest_prompt - 1
    scale = stat_scale(train_pairs)
    return encode(train_pairs, tokenizer, max_target, scale, marks), encode(val_pairs, tokenizer, max_target, scale)
