"""Faithfulness of a trained generator: does the analysis it writes from an embedding state the
classes the record's own index values give?

For every scored record the model sees only the embedding (and the training prompt) and writes
an analysis greedily. For each evaluated aspect (vigor, moisture, cover) the class read back from
that text (`read_classes`) is compared with the class of the record's statistics (`classify`).
A record flagged not valid is right on an aspect when the text says the observation is unusable
(`says_unusable`) and states no class for that aspect. Numbers in generated texts are never
scored: answers quote them from the record.

When the store is the one the model was trained on (same creation time and encoder as recorded
in ``split.json``), only the parcels held out from training are scored; otherwise every record is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm import tqdm

from indexer.analysis import EVALUATED_ASPECTS, classify, read_classes, says_unusable
from indexer.store import Store
from indexer.core.errors import EncoderMismatchError, InputError
from xvision_model.artifacts import load_model, read_card
from xvision_model.finetune.dataset import (
    PROMPTS, TEXT_COLUMNS, Split, build_pairs, languages, same_store, store_fingerprint, store_vectors,
)
from xvision_model.model import XVisionModel

DEFAULT_MAX_NEW_TOKENS = 256
#: Record columns reported next to a generated analysis.
INDEX_SUFFIXES = ("_mean", "_median", "_p10", "_p90", "_std")


def score_analysis(text: str, stats: Mapping[str, object], valid: bool = True) -> dict[str, bool]:
    """Aspect -> whether `text` states the class `stats` give (or, for an invalid record, says unusable)."""
    stated = read_classes(text)
    if not valid:
        unusable = says_unusable(text)
        return {aspect: unusable and aspect not in stated for aspect in EVALUATED_ASPECTS}
    expected = classify(stats)
    return {aspect: stated.get(aspect) == expected[aspect] for aspect in EVALUATED_ASPECTS if aspect in expected}


def _open(model_dir: str | Path, store_dir: str | Path) -> tuple[XVisionModel, dict, Store]:
    card = read_card(model_dir)
    store = Store.open(store_dir)
    if card.get("encoder") != store.encoder_id:
        raise EncoderMismatchError(
            f"{store.path}: holds {store.encoder_id!r} embeddings but the model in {model_dir} was trained on "
            f"{card.get('encoder')!r} embeddings; index the imagery with --encoder {card.get('encoder')}"
        )
    in_dim = card.get("adapter", {}).get("in_dim")
    if in_dim is not None and in_dim != store.manifest.get("dimension", in_dim):
        raise EncoderMismatchError(f"{store.path}: embeddings are {store.manifest['dimension']}-d, the model expects {in_dim}-d")
    model = load_model(model_dir, merge=True)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), card, store


def _prompt(card: dict, code: str) -> str:
    return (card.get("training") or {}).get("prompts", {}).get(code) or PROMPTS[code]


def _max_new_tokens(card: dict) -> int:
    return int((card.get("training") or {}).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)


def _generate(model: XVisionModel, features: torch.Tensor, prompts: list[str], max_new_tokens: int) -> list[str]:
    ids = [model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    rows = model.generate(features, ids, max_new_tokens=max_new_tokens)
    return model.tokenizer.batch_decode(rows, skip_special_tokens=True)


def evaluate(model_dir: str | Path, store_dir: str | Path, lang: str = "en", batch_size: int = 32,
             limit: int | None = None, progress: bool = False) -> dict:
    """Score the model in `model_dir` on the records of `store_dir` (held-out parcels only when it
    is the training store).

    Returns ``{"overall", "per_aspect": {aspect: share}, "all_three", "n", "held_out", "lang"}``:
    `overall` is the share of (record, aspect) pairs right, `all_three` the share of records
    right on every aspect, `n` the number of scored (record, language) items. `lang` "both"
    scores each record in English and in French. `limit` keeps the first records by record_id.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    model, card, store = _open(model_dir, store_dir)
    split = Split.load(model_dir)
    held_out = split is not None and same_store(split.store, store_fingerprint(store))
    records = store.records().sort_values("record_id")
    if held_out:
        records = records[records["parcel_id"].astype(str).isin(set(split.held_out))]
        if records.empty:
            raise InputError(f"{store.path}: none of the {len(split.held_out)} parcels held out from training is in the store")
    if len(records) == 0:
        raise InputError(f"{store.path}: the store holds no records to evaluate")
    if limit is not None:
        records = records.iloc[:limit]
    prompts = {code: _prompt(card, code) for code in languages(lang)}
    pairs = build_pairs(store, lang, prompts=prompts, records=records)
    stats = {int(r["record_id"]): r for r in records.to_dict("records")}
    max_new = _max_new_tokens(card)

    right = {aspect: 0 for aspect in EVALUATED_ASPECTS}
    total = {aspect: 0 for aspect in EVALUATED_ASPECTS}
    all_right = 0
    bar = tqdm(total=len(pairs), desc="evaluate", unit="record", disable=not progress)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs.pairs[start:start + batch_size]
        features = torch.from_numpy(pairs.features[[p.row for p in chunk]])
        texts = _generate(model, features, [p.prompt for p in chunk], max_new)
        for pair, text in zip(chunk, texts):
            verdict = score_analysis(text, stats[pair.record_id], pair.valid)
            for aspect, ok in verdict.items():
                right[aspect] += ok
                total[aspect] += 1
            all_right += bool(verdict) and all(verdict.values())
        bar.update(len(chunk))
    bar.close()
    pairs_scored = sum(total.values())
    return {
        "overall": sum(right.values()) / pairs_scored if pairs_scored else math.nan,
        "per_aspect": {a: right[a] / total[a] if total[a] else math.nan for a in EVALUATED_ASPECTS},
        "all_three": all_right / len(pairs),
        "n": len(pairs),
        "held_out": held_out,
        "lang": lang,
    }


def describe(model_dir: str | Path, store_dir: str | Path, parcel_id: str, date: str, lang: str = "en") -> dict:
    """The analysis the model writes for one record, beside the record's computed index values.

    Returns ``{"parcel_id", "date", "valid", "invalid_reason", "generated", "reference",
    "classes": {"generated", "computed"}, "faithful": {aspect: bool}, "indices": {name: value}}``.
    """
    code = languages(lang)[0] if lang != "both" else "en"
    model, card, store = _open(model_dir, store_dir)
    record = store.record(str(parcel_id), str(date))
    features = torch.from_numpy(store_vectors(store, [int(record["record_id"])]))
    generated = _generate(model, features, [_prompt(card, code)], _max_new_tokens(card))[0]
    valid = bool(record["valid"])
    indices = {}
    for name, value in record.items():
        if isinstance(name, str) and name.endswith(INDEX_SUFFIXES):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                indices[name] = round(number, 4)
    return {
        "parcel_id": str(parcel_id),
        "date": str(date),
        "valid": valid,
        "invalid_reason": str(record.get("invalid_reason") or ""),
        "valid_fraction": float(record.get("valid_fraction", math.nan)),
        "generated": generated,
        "reference": str(record.get(TEXT_COLUMNS[code]) or ""),
        "classes": {"generated": read_classes(generated), "computed": classify(record) if valid else {}},
        "faithful": score_analysis(generated, record, valid),
        "indices": indices,
    }
