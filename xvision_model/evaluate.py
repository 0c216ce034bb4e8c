"""Faithfulness of a trained generator: does the analysis it writes from an embedding state the
classes the record's own index values give, and does what users read fail in any of the ways a
reader would notice?

For every scored record the model sees only the embedding (and the training prompt) and writes
an analysis greedily through `writer.write_analyses`. Class agreement is scored on the model's own
text held to the analysis grammar (`Analysis.generated`), before the rule that shows unusable
records their unusable text: the model is measured, not the rule. For each evaluated aspect
(vigor, moisture, cover) the class read back from that text (`read_classes`) is compared with the
class of the record's statistics (`classify`). A record flagged not valid is right on an aspect
when the text says the observation is unusable (`says_unusable`) and states no class for it.
Numbers are not scored as classes: the grammar writes them from the record; whether they are the
record's is one of the failure shares.

Four failure shares are reported over every scored record, for the decoded text (`raw`, the
model unaided) and for what users see (`shown`): a sentence stated twice, an evaluated aspect not
stated (valid records), an unusable record described as usable, and a number that is not the
record's value at the precision written (`writer.failures`).

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
from indexer.core.errors import EncoderMismatchError, InputError
from indexer.store import Store
from xvision_model.artifacts import load_model, read_card
from indexer.core.schema import STAT_COLUMNS, TEXT_COLUMNS
from xvision_model.finetune.dataset import PROMPTS, Split, build_pairs, languages, same_store, store_fingerprint
from xvision_model.model import XVisionModel
from xvision_model.threads import tiny_cpu_threads, torch_threads
from xvision_model.writer import DEFAULT_MAX_NEW_TOKENS, DEFAULT_REPAIR, failures, write_analyses

FAILURES = ("repeated_sentence", "missing_aspect", "unusable_as_usable", "wrong_number")


def score_analysis(text: str, stats: Mapping[str, object], valid: bool = True) -> dict[str, bool]:
    """Aspect -> whether `text` states the class `stats` give (or, for an invalid record, says unusable)."""
    stated = read_classes(text)
    if not valid:
        unusable = says_unusable(text)
        return {aspect: unusable and aspect not in stated for aspect in EVALUATED_ASPECTS}
    expected = classify(stats)
    return {aspect: stated.get(aspect) == expected[aspect] for aspect in EVALUATED_ASPECTS if aspect in expected}


class Scores:
    """Running class agreement and failure counts over scored (text, record) items."""

    def __init__(self) -> None:
        self.right = {a: 0 for a in EVALUATED_ASPECTS}
        self.total = {a: 0 for a in EVALUATED_ASPECTS}
        self.all_right = 0
        self.n = 0

    def add(self, text: str, record: Mapping[str, object], valid: bool) -> None:
        verdict = score_analysis(text, record, valid)
        for aspect, ok in verdict.items():
            self.right[aspect] += ok
            self.total[aspect] += 1
        self.all_right += bool(verdict) and all(verdict.values())
        self.n += 1

    def result(self) -> dict:
        scored = sum(self.total.values())
        return {
            "overall": sum(self.right.values()) / scored if scored else math.nan,
            "per_aspect": {a: self.right[a] / self.total[a] if self.total[a] else math.nan for a in EVALUATED_ASPECTS},
            "all_three": self.all_right / self.n if self.n else math.nan,
        }


def _open(model_dir: str | Path, store_dir: str | Path) -> tuple[XVisionModel, dict, Store]:
    card = read_card(model_dir)
    store = Store.open(store_dir)
    if card.get("encoder") != store.encoder_id:
        raise EncoderMismatchError(
            f"{store.path}: holds {store.encoder_id!r} embeddings but the model in {model_dir} was trained on "
            f"{card.get('encoder')!r} embeddings; index the imagery with the {card.get('encoder')} encoder",
            path=store.path, field="encoder", value=card.get("encoder"),
        )
    in_dim = card.get("adapter", {}).get("in_dim")
    if in_dim is not None and in_dim != store.manifest.get("dimension", in_dim):
        raise EncoderMismatchError(f"{store.path}: embeddings are {store.manifest['dimension']}-d, the model expects {in_dim}-d",
                                   path=store.path, field="dimension", value=store.manifest["dimension"])
    model = load_model(model_dir, merge=True)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), card, store


def _prompt(card: dict, code: str) -> str:
    return (card.get("training") or {}).get("prompts", {}).get(code) or PROMPTS[code]


def _max_new_tokens(card: dict) -> int:
    return int((card.get("training") or {}).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)


def serving_threads(card: dict) -> int | None:
    """Torch intra-op threads to write with (`xvision_model.threads`: 1 for the tiny profile on the CPU)."""
    return tiny_cpu_threads(card.get("profile"), torch.cuda.is_available())


def evaluate(model_dir: str | Path, store_dir: str | Path, lang: str | None = None, batch_size: int = 32,
             limit: int | None = None, progress: bool = False, scoring: str = "batched",
             threads: int | None | str = "auto", repair: str = DEFAULT_REPAIR) -> dict:
    """Score the model in `model_dir` on the records of `store_dir` (held-out parcels only when it
    is the training store).

    Returns ``{"overall", "per_aspect": {aspect: share}, "all_three", "n", "held_out", "lang",
    "raw": {...}, "failures": {"raw": {...}, "shown": {...}}}``: `overall` is the share of
    (record, aspect) pairs right in the model's grammar text, `all_three` the share of records
    right on every aspect, `n` the number of scored (record, language) items; `raw` the same
    scores of the decoded text; `failures` the shares of items with a repeated sentence, a
    missing aspect, an unusable record described as usable, or a number not the record's. `lang` "both" scores each record
    in English and in French, and `by_lang` holds the same scores for each language alone. `limit` keeps the first records by
    record_id. `scoring` is the writer's (`writer.SCORING`: "batched" and "per_record" give the
    same scores); `repair` the writer's (`writer.REPAIRS`); `threads` the torch threads to write
    with ("auto": `serving_threads`; None: torch's default).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size", value=batch_size)
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}", field="limit", value=limit)
    model, card, store = _open(model_dir, store_dir)
    lang = lang or (card.get("training") or {}).get("lang") or "en"  # default: the languages it was trained in
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
    rows = {int(r["record_id"]): r for r in records.to_dict("records")}
    max_new = _max_new_tokens(card)

    with torch_threads(serving_threads(card) if threads == "auto" else threads):
        return _evaluate(model, pairs, rows, prompts, lang, batch_size, max_new, held_out, progress, scoring, repair)


class _Tally:
    """The scores of one language (or of all): the model's grammar text, the decoded text, failures."""

    def __init__(self) -> None:
        self.model, self.raw = Scores(), Scores()
        self.failed = {where: {f: 0 for f in FAILURES} for where in ("raw", "shown")}
        self.n = 0

    def add(self, analysis, record: Mapping[str, object], valid: bool, lang: str) -> None:
        self.model.add(analysis.generated, record, valid)
        self.raw.add(analysis.raw, record, valid)
        for where, text in (("raw", analysis.raw), ("shown", analysis.text)):
            for name, bad in failures(text, record, lang).items():
                self.failed[where][name] += bad
        self.n += 1

    def result(self) -> dict:
        return {
            **self.model.result(),
            "n": self.n,
            "raw": self.raw.result(),
            "failures": {where: {name: count / max(1, self.n) for name, count in counts.items()}
                         for where, counts in self.failed.items()},
        }


def _evaluate(model: XVisionModel, pairs, rows: dict, prompts: dict, lang: str, batch_size: int, max_new: int,
              held_out: bool, progress: bool, scoring: str, repair: str) -> dict:
    overall, by_lang = _Tally(), {code: _Tally() for code in languages(lang)}
    bar = tqdm(total=len(pairs), desc="evaluate", unit="record", disable=not progress)
    for code in languages(lang):
        chunk_pairs = [p for p in pairs.pairs if p.lang == code]
        for start in range(0, len(chunk_pairs), batch_size):
            chunk = chunk_pairs[start:start + batch_size]
            features = torch.from_numpy(pairs.features[[p.row for p in chunk]])
            analyses = write_analyses(model, features, [rows[p.record_id] for p in chunk], code,
                                      prompt=prompts[code], max_new_tokens=max_new, batch_size=batch_size,
                                      scoring=scoring, repair=repair)
            for pair, analysis in zip(chunk, analyses):
                for tally in (overall, by_lang[code]):
                    tally.add(analysis, rows[pair.record_id], pair.valid, code)
            bar.update(len(chunk))
    bar.close()
    return {**overall.result(), "held_out": held_out, "lang": lang, "repair": repair,
            "by_lang": {code: tally.result() for code, tally in by_lang.items()}}


def describe(model_dir: str | Path, store_dir: str | Path, parcel_id: str, date: str, lang: str = "en") -> dict:
    """The analysis the model writes for one record, beside the record's computed index values.

    Returns ``{"parcel_id", "date", "valid", "invalid_reason", "text" (what users see),
    "generated" (the model's grammar text), "raw" (decoded), "reference", "classes":
    {"generated", "computed"}, "faithful": {aspect: bool}, "indices": {name: value}}``.
    """
    code = languages(lang)[0] if lang != "both" else "en"
    model, card, store = _open(model_dir, store_dir)
    record = store.record(str(parcel_id), str(date))
    features = torch.from_numpy(store.vectors([int(record["record_id"])]))
    with torch_threads(serving_threads(card)):
        analysis = write_analyses(model, features, [record.to_dict()], code, prompt=_prompt(card, code),
                                  max_new_tokens=_max_new_tokens(card))[0]
    valid = bool(record["valid"])
    indices = {}
    for name in STAT_COLUMNS:
        try:
            number = float(record.get(name))
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
        "text": analysis.text,
        "generated": analysis.generated,
        "raw": analysis.raw,
        "reference": str(record.get(TEXT_COLUMNS[code]) or ""),
        "classes": {"generated": read_classes(analysis.generated), "computed": classify(record) if valid else {}},
        "faithful": score_analysis(analysis.generated, record, valid),
        "indices": indices,
    }
