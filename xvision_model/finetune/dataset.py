"""Training pairs from a store: (embedding, prompt, analysis text), split by parcel.

Rows are joined to their embeddings by `record_id` (the FAISS id), never by file order. The
train/validation split hashes the parcel id, so every date of a parcel falls on the same side
(no parcel leaks from training into validation) and the split is the same on every machine and
every run; it is written to ``split.json`` in the model directory together with the store's
fingerprint, so `evaluate` can tell whether it is scoring the store the model was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from indexer.analysis import CLASS_RULES, analysis_seed, finite_or_none, write_analysis
from indexer.chips import MIN_VALID_FRACTION
from indexer.core.errors import InputError
from indexer.core.schema import TEXT_COLUMNS
from indexer.observations import MIN_RELIABLE_PIXELS
from indexer.store import Store
from xvision_model.finetune.seeds import derive_seed, numpy_rng
from xvision_model.model import PROMPTS

LANG_CHOICES: tuple[str, ...] = ("en", "fr", "both")
#: Record statistics behind the classes an analysis states (auxiliary training targets).
CLASS_STAT_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(rule.stat for rule in CLASS_RULES))
SPLIT_NAME = "split.json"
#: Share of the parcels held out for validation.
VAL_FRACTION = 0.2


def languages(lang: str) -> tuple[str, ...]:
    """("en",), ("fr",) or ("en", "fr") for `lang` "en", "fr" or "both"."""
    if lang not in LANG_CHOICES:
        raise InputError(f"language must be one of {', '.join(LANG_CHOICES)}, got {lang!r}", field="lang", value=lang)
    return ("en", "fr") if lang == "both" else (lang,)


@dataclass(frozen=True)
class Pair:
    """One training or evaluation example; `row` indexes the feature matrix of its `PairSet`."""

    row: int
    record_id: int
    parcel_id: str
    date: str
    lang: str
    prompt: str
    text: str
    valid: bool


@dataclass
class PairSet:
    """Examples and the embeddings they use: `features[pair.row]` is the pair's vector and
    `stats[pair.row]` its record's `CLASS_STAT_COLUMNS` (NaN where missing)."""

    features: np.ndarray
    pairs: list[Pair]
    stats: np.ndarray | None = None
    records: list[dict] | None = None  # per row: the record's scalar fields (for `rephrase`)
    #: Whether the texts write `indexer.analysis.NUMBER_SLOT` where a number goes (see `build_pairs`).
    slots: bool = False
    #: Language -> prompt of every language the set is written in (`rephrase` may switch a pair to another).
    prompts: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def parcels(self) -> set[str]:
        return {p.parcel_id for p in self.pairs}

    def select(self, parcels: Iterable[str], keep: bool = True) -> PairSet:
        """The pairs whose parcel is (`keep=True`) or is not in `parcels`; features are shared."""
        wanted = set(parcels)
        return dataclasses.replace(self, pairs=[p for p in self.pairs if (p.parcel_id in wanted) == keep])

    def extended(self, features: np.ndarray, stats: np.ndarray, records: list[dict], pairs: list[Pair]) -> PairSet:
        """A new set with feature rows appended (numbered from `len(self.features)` on, in the
        order given) with their statistics and records, and `pairs` after the existing pairs."""
        start = len(self.features)
        own_records = self.records if self.records is not None else [{} for _ in range(start)]
        return dataclasses.replace(
            self,
            features=np.concatenate([self.features, features.astype(self.features.dtype)]),
            pairs=[*self.pairs, *pairs],
            stats=None if self.stats is None else np.concatenate([self.stats, stats.astype(self.stats.dtype)]),
            records=[*own_records, *records],
        )

    def in_language(self, pair: Pair, lang: str) -> Pair:
        """`pair` asked in `lang` (one of the set's `prompts`); its text is rewritten by `rephrase`."""
        if lang == pair.lang:
            return pair
        return dataclasses.replace(pair, lang=lang, prompt=self.prompts[lang], text="")

    def rephrase(self, pair: Pair, variant: int) -> str:
        """`pair`'s analysis written again from its record by `write_analysis`, phrasing seed `variant`.

        Variant 0 is the stored text. Others state the same classes and values in other words and
        another sentence order: the text is a function of the record's statistics and a seed, so
        a model that learns one text per embedding learns the seed; drawn anew, it learns the
        statistics.
        """
        if (variant == 0 and pair.text) or self.records is None:
            return pair.text
        record = self.records[pair.row]
        seed = derive_seed(analysis_seed(pair.parcel_id, pair.date), "rephrase", variant)
        return written(record, pair.valid, pair.lang, seed, slots=self.slots, small=False)


def written(record: dict, valid: bool, lang: str, seed: int, *, slots: bool, small: bool | None = None) -> str:
    """The analysis `write_analysis` writes for `record`; `small` None: as the indexer decides it
    (fewer than `MIN_RELIABLE_PIXELS` pixels)."""
    if small is None:
        n_pixels = finite_or_none(record.get("n_pixels"))
        small = n_pixels is not None and n_pixels < MIN_RELIABLE_PIXELS
    return write_analysis(record, valid=valid, reason=record.get("invalid_reason") or None, lang=lang, seed=seed,
                          too_small=bool(small and valid), slots=slots)


def one_language_each(pairs: PairSet) -> PairSet:
    """One pair per record of a set written in several languages: each record keeps the language
    its (parcel, date) hash picks, so the languages share the records evenly (training draws the
    language anew every epoch, `tokens.Encoded.rephrased`: a set with each record in every
    language would take as many times longer to train)."""
    langs = sorted(pairs.prompts) or sorted({p.lang for p in pairs.pairs})
    if len(langs) < 2:
        return pairs
    kept = [p for p in pairs.pairs
            if p.lang == langs[analysis_seed(p.parcel_id, p.date) % len(langs)] or p.record_id < 0]
    return dataclasses.replace(pairs, pairs=kept)


#: Share of synthetic "no observation" pairs added to a training set that has no unusable record.
UNOBSERVED_SHARE = 0.03
#: parcel_id prefix of those pairs (never a real parcel: `xvision index` ids are file ids or grid ids).
UNOBSERVED_PREFIX = "~unobserved-"


def with_unobserved(pairs: PairSet, share: float = UNOBSERVED_SHARE, seed: int = 0) -> PairSet:
    """`pairs` plus synthetic pairs teaching that the zero vector means "unusable observation".

    The indexer stores every record flagged not valid (mostly cloud) as the zero vector, and its
    analysis says the date is unusable. A store without such a record (the Hesbaye composites
    are cloud-free) would never show the generator that case, and it would describe a cloud as a
    field. Each added pair is a zero embedding with the text `write_analysis` writes for a
    clouded record, at a random valid-pixel share below the indexer's threshold. Nothing is added
    when the set already holds unusable records or `share` is 0.
    """
    if share <= 0 or not pairs.pairs or any(not p.valid for p in pairs.pairs):
        return pairs
    rng = numpy_rng(seed, "unobserved")
    count = max(4, int(round(share * len(pairs.pairs))))
    langs = sorted({p.lang for p in pairs.pairs})
    prompts = {p.lang: p.prompt for p in pairs.pairs}
    start = len(pairs.features)
    records, added = [], []
    for k in range(count):
        parcel_id, date = f"{UNOBSERVED_PREFIX}{k}", "1970-01-01"
        record = {"parcel_id": parcel_id, "date": date, "valid": False, "invalid_reason": "cloud",
                  "valid_fraction": float(rng.uniform(0.0, MIN_VALID_FRACTION)) if k % 2 else 0.0}
        records.append(record)
        lang = langs[k % len(langs)]
        text = written(record, False, lang, analysis_seed(parcel_id, date), slots=pairs.slots)
        added.append(Pair(row=start + k, record_id=-1 - k, parcel_id=parcel_id, date=date, lang=lang,
                          prompt=prompts[lang], text=text, valid=False))
    zeros = np.zeros((count, pairs.features.shape[1]), np.float32)
    return pairs.extended(zeros, np.full((count, len(CLASS_STAT_COLUMNS)), np.nan, np.float32), records, added)


def build_pairs(store: Store, lang: str = "en", prompts: dict[str, str] | None = None,
                records: pd.DataFrame | None = None, slots: bool = False) -> PairSet:
    """One pair per record and language (each record twice for "both"), ordered by record_id.

    The text is the record's stored analysis; with `slots`, the same text (same phrasing seed)
    with `indexer.analysis.NUMBER_SLOT` where it states a number. Records without an analysis
    text in a requested language are skipped. InputError when the store has no record at all or
    none that is valid.
    """
    prompts = {**PROMPTS, **(prompts or {})}
    langs = languages(lang)
    table = store.records() if records is None else records
    if len(table) == 0:
        raise InputError(f"{store.path}: the store holds no records; index imagery into it first", path=store.path)
    if records is None and not table["valid"].astype(bool).any():
        raise InputError(
            f"{store.path}: none of its {len(table)} records is valid (all cloudy or without data); "
            "there is nothing to learn the analyses from", path=store.path
        )
    table = table.sort_values("record_id")
    features = store.vectors(table["record_id"].to_numpy())
    pairs = []
    for row, rec in enumerate(table.itertuples(index=False)):
        for code in langs:
            text = getattr(rec, TEXT_COLUMNS[code], None)
            if not isinstance(text, str) or not text.strip():
                continue
            if slots:
                text = written(rec._asdict(), bool(rec.valid), code, analysis_seed(str(rec.parcel_id), str(rec.date)),
                               slots=True)
            pairs.append(Pair(row=row, record_id=int(rec.record_id), parcel_id=str(rec.parcel_id),
                              date=str(rec.date), lang=code, prompt=prompts[code], text=text.strip(),
                              valid=bool(rec.valid)))
    if not pairs:
        raise InputError(f"{store.path}: no record has an analysis text in {' or '.join(langs)}", path=store.path,
                         field="lang", value=lang)
    stats = np.column_stack([
        pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64) if c in table else np.full(len(table), np.nan)
        for c in CLASS_STAT_COLUMNS
    ]).astype(np.float32)
    return PairSet(features, pairs, stats, table.drop(columns="geometry", errors="ignore").to_dict("records"),
                   slots=slots, prompts={code: prompts[code] for code in langs})


def class_targets(pairs: PairSet) -> np.ndarray:
    """[len(pairs), len(CLASS_RULES)] int: each pair's class index per aspect of `CLASS_RULES`
    (its record's statistic through the rule), -1 where the record is not valid or lacks it.
    The targets the adapter's "target" bins are fitted to (`xvision_model.adapter.target_edges`)."""
    out = np.full((len(pairs.pairs), len(CLASS_RULES)), -1, dtype=np.int64)
    if pairs.stats is None:
        return out
    for i, pair in enumerate(pairs.pairs):
        if not pair.valid:
            continue
        for k, rule in enumerate(CLASS_RULES):
            value = pairs.stats[pair.row, CLASS_STAT_COLUMNS.index(rule.stat)]
            if np.isfinite(value):
                out[i, k] = rule.labels.index(rule.label(float(value)))
    return out


# -- the split ----------------------------------------------------------------------------------
def parcel_position(parcel_id: str) -> float:
    """Where `parcel_id` falls in [0, 1): a SHA-256 hash, the same on every machine and run."""
    digest = hashlib.sha256(f"xvision-split|{parcel_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out_parcels(parcel_ids: Iterable[str], fraction: float = VAL_FRACTION) -> list[str]:
    """The parcels kept for validation: those hashing below `fraction`.

    With two parcels or more, at least one is held out and at least one kept for training, so
    very small stores still get a validation loss.
    """
    ranked = sorted(set(map(str, parcel_ids)), key=parcel_position)
    held = [p for p in ranked if parcel_position(p) < fraction]
    if len(ranked) >= 2:
        if not held:
            held = ranked[:1]
        elif len(held) == len(ranked):
            held = held[:-1]
    return sorted(held)


def store_fingerprint(store: Store) -> dict:
    """What identifies a store: creation time, encoder and first record (plus, for the record, path and size)."""
    records = store.records()
    first = records.loc[records["record_id"].idxmin()] if len(records) else None
    return {
        "path": str(Path(store.path).resolve()),
        "created": store.manifest.get("created"),
        "encoder": store.encoder_id,
        "first_record": None if first is None else f"{first['parcel_id']}|{first['date']}",
        "count": len(records),
    }


def same_store(a: dict | None, b: dict | None) -> bool:
    """Whether two fingerprints name the same store.

    Creation time (to the second), encoder and the (parcel, date) of record 0 identify a store.
    Its path does not (stores are moved and copied), and records appended since training do not
    make it another store: the held-out parcels stay held out.
    """
    if not a or not b:
        return False
    keys = ("created", "encoder", "first_record")
    return a.get("created") is not None and all(a.get(k) == b.get(k) for k in keys)


@dataclass
class Split:
    """The parcels held out from training, and the store they were drawn from."""

    held_out: list[str]
    fraction: float
    store: dict
    n_parcels: int
    method: str = "sha256('xvision-split|' + parcel_id) / 2**64 < fraction"
    train_parcels: int = field(init=False)

    def __post_init__(self) -> None:
        self.held_out = sorted(map(str, self.held_out))
        self.train_parcels = self.n_parcels - len(self.held_out)

    @classmethod
    def of(cls, store: Store, pairs: PairSet, fraction: float = VAL_FRACTION) -> Split:
        parcels = pairs.parcels
        return cls(held_out_parcels(parcels, fraction), fraction, store_fingerprint(store), len(parcels))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SPLIT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Split | None:
        """The split saved in `directory`, or None when there is none."""
        path = Path(directory) / SPLIT_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(held_out=data["held_out"], fraction=float(data["fraction"]), store=data.get("store") or {},
                       n_parcels=int(data["n_parcels"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a readable split file ({exc})", path=path) from None
