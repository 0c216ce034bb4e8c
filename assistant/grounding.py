"""The grounding gate: an answer states no fact that the retrieved records do not hold.

Two checks:

* `check_analysis(text, record)` — a generated analysis against its own record: every class it
  states (read back with `indexer.analysis.read_classes`) must be the class the record's indices
  give (`classify`); it must not call a usable observation unusable or state classes for an
  unusable one; every number must be one of the record's values: in a sentence that states a
  class, the statistic of that class's rule (the NDVI mean for vigor, ...; the NDVI spread and
  percentiles for uniformity); in one that only names an index (NDVI, NDMI, ...), a statistic of
  that index. Any failure rejects the text
  (the answer then uses the record's stored analysis, and says so).
* `Evidence.ungrounded(text)` — a whole answer against every retrieved record: each number must be
  a record value at the precision written (2 decimals for indices, whole percent for fractions),
  or, when written with a sign, the difference of two values of the same statistic; besides these
  only years of the dates involved, counts the composer declares and numbers the question itself
  contains are allowed. ISO dates and parcel ids are not numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from indexer.analysis import RULE_BY_ASPECT, classify, finite_or_none, read_classes, says_unusable

from assistant.documents import INDEX_NAMES, STAT_COLUMNS

_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# "percentiles 10-90" / "10th-90th": the names of the NDVI percentiles analyses quote, not facts.
_PERCENTILE_NAMES = re.compile(r"\b10(?:th)?\s*[-\u2013]\s*90(?:th)?\b")
# A number standing alone, with its sign: not the "2" of "Sentinel-2", the "10" of "10th" nor a digit of an id.
_NUMBER = re.compile(r"(?:(?<![\w.])([+\-\u2212])|(?<![\w.+\-\u2212]))(\d+(?:\.\d+)?)(?!\w|\.\d)")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_INDEX_WORD = re.compile(r"\b(" + "|".join(INDEX_NAMES) + r")\b", re.IGNORECASE)
PERCENT_COLUMNS = ("valid_fraction", "cloud_fraction", "nodata_fraction")


def strip_identifiers(text: str, identifiers: Iterable[str] = ()) -> str:
    """`text` without ISO dates and the given identifiers (parcel ids), which hold digits but no facts."""
    for ident in sorted({str(i) for i in identifiers if i}, key=len, reverse=True):
        text = text.replace(ident, " ")
    return _PERCENTILE_NAMES.sub(" ", _ISO_DATE.sub(" ", text))


def numbers(text: str) -> list[tuple[str, str]]:
    """(sign, digits) of every number in `text`, e.g. [("+", "0.16"), ("", "96")]."""
    return [((m.group(1) or "").replace("\u2212", "-"), m.group(2)) for m in _NUMBER.finditer(text)]


def _hundredths(value: float) -> int:
    return int(round(round(value, 2) * 100))


@dataclass
class Evidence:
    """What an answer may state: the values of the retrieved records, and a few declared extras.

    A record's statistics are kept as numbers: an answer retrieves up to hundreds of records and
    states a few numbers, so a stated number is compared with the values near it only, each
    written as the answers write it (1 to 3 decimals), instead of writing every value out.
    """

    extras: set[str] = field(default_factory=set)  # counts, years, numbers of the question
    identifiers: set[str] = field(default_factory=set)
    percents: set[int] = field(default_factory=set)
    _pending: dict[str, list[float]] = field(default_factory=dict, repr=False)  # column -> values added
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _hundredths: dict[str, set[int]] = field(default_factory=dict, repr=False)

    def _columns(self) -> dict[str, np.ndarray]:
        """Column -> every allowed value (the records added so far)."""
        if self._pending:
            for column, xs in self._pending.items():
                self._arrays[column] = np.concatenate([self._arrays.get(column, np.empty(0)), np.asarray(xs, float)])
                self._hundredths.pop(column, None)
            self._pending.clear()
        return self._arrays

    @property
    def hundredths(self) -> dict[str, set[int]]:
        """Column -> every allowed value rounded to hundredths, x 100 (built when first needed)."""
        for column, xs in self._columns().items():
            if column not in self._hundredths:
                self._hundredths[column] = {_hundredths(float(x)) for x in xs}
        return self._hundredths

    def add_record(self, meta: Mapping) -> None:
        """Allow every statistic and fraction of one record (a document's metadata)."""
        self.identifiers.add(str(meta.get("parcel_id", "")))
        date = str(meta.get("date", ""))
        if date[:4].isdigit():
            self.extras.add(str(int(date[:4])))
        for column in STAT_COLUMNS:
            x = finite_or_none(meta.get(column))
            if x is not None:
                self._pending.setdefault(column, []).append(x)
        for column in PERCENT_COLUMNS:
            x = finite_or_none(meta.get(column))
            if x is not None:
                self.percents.add(int(round(100 * x)))

    def allow(self, *items: object) -> None:
        """Declare extra numbers (counts, thresholds of the question, years of the windows)."""
        for item in items:
            x = finite_or_none(item)
            if x is None:
                continue
            self.extras.update({str(item), f"{x:g}", f"{x:.2f}", f"{x:.1f}"})
            if float(x).is_integer():
                self.extras.add(str(int(x)))

    def allow_text(self, text: str) -> None:
        """Allow every number written in `text` (the question: its numbers are the user's own)."""
        for sign, digits in numbers(strip_identifiers(text)):
            self.allow(digits)

    def _is_value(self, digits: str, sign: str) -> bool:
        """Whether some record's value, written with as many decimals (1 to 3), reads `digits`."""
        decimals = len(digits.partition(".")[2])
        if not 1 <= decimals <= 3:
            return False
        written = f"-{digits}" if sign == "-" else digits
        target, half = float(written), 0.5 * 10 ** -decimals + 1e-9
        for xs in self._columns().values():
            # Only values within half a unit of the last decimal can be written so.
            if any(f"{x:.{decimals}f}" == written for x in xs[np.abs(xs - target) <= half]):
                return True
        return False

    def _is_difference(self, digits: str, sign: str) -> bool:
        if "." not in digits:
            return False
        x = int(round(float(digits) * 100)) * (-1 if sign == "-" else 1)
        for column, rounded in self.hundredths.items():
            if any(r - x in rounded for r in rounded):
                return True
        return False

    def ungrounded(self, text: str, extra_identifiers: Iterable[str] = ()) -> list[str]:
        """Numbers in `text` that no retrieved record holds (empty: the answer passes the gate)."""
        bad = []
        for sign, digits in numbers(strip_identifiers(text, [*self.identifiers, *extra_identifiers])):
            if digits in self.extras:
                continue
            if "." not in digits and int(digits) in self.percents:
                continue
            if self._is_value(digits, sign):
                continue
            if sign and self._is_difference(digits, sign):
                continue
            bad.append(f"{sign}{digits}")
        return bad


@dataclass(frozen=True)
class AnalysisCheck:
    """Verdict on one generated analysis: `ok`, and what was wrong when not."""

    ok: bool
    problems: tuple[str, ...] = ()
    classes: Mapping[str, str] = field(default_factory=dict)


def _record_values(meta: Mapping, columns: Iterable[str]) -> set[str]:
    out = set()
    for column in columns:
        x = finite_or_none(meta.get(column))
        if x is not None:
            out.update({f"{x:.2f}", f"{-x:.2f}" if x < 0 else f"{x:.2f}"})
    return out


def check_analysis(text: str, meta: Mapping) -> AnalysisCheck:
    """Whether generated `text` agrees with its record (see the module docstring)."""
    problems: list[str] = []
    stated = read_classes(text)
    valid = bool(meta.get("valid", True))
    if not text.strip():
        return AnalysisCheck(False, ("the generator returned no text",))
    if valid:
        if says_unusable(text):
            problems.append("calls a usable observation unusable")
        expected = classify(meta)
        for aspect, label in stated.items():
            if aspect in expected and expected[aspect] != label:
                problems.append(f"states {aspect} '{label}' where the record's indices give '{expected[aspect]}'")
    else:
        if stated:
            problems.append(f"states classes ({', '.join(sorted(stated))}) for an unusable observation")
        if not says_unusable(text):
            problems.append("does not say that the observation is unusable")
    percents = {int(round(100 * x)) for c in PERCENT_COLUMNS if (x := finite_or_none(meta.get(c))) is not None}
    every = _record_values(meta, STAT_COLUMNS)
    for sentence in _SENTENCE.split(strip_identifiers(text, [str(meta.get("parcel_id", ""))])):
        # A sentence stating a class quotes that class's statistic ("high vigor (NDVI 0.71)" is the
        # NDVI mean, not its 90th percentile); otherwise a number goes with the index it names.
        aspects = read_classes(sentence)
        named = {m.group(1).lower() for m in _INDEX_WORD.finditer(sentence)}
        if aspects:
            columns = [RULE_BY_ASPECT[a].stat for a in aspects]
            if "uniformity" in aspects:
                columns += ["ndvi_p10", "ndvi_p90"]
            allowed, where = _record_values(meta, columns), f" for {'/'.join(sorted(columns))}"
        elif named:
            columns = [f"{i}_{s}" for i in named for s in ("mean", "median", "p10", "p90", "std")]
            allowed, where = _record_values(meta, columns), f" for {'/'.join(sorted(n.upper() for n in named))}"
        else:
            allowed, where = every, ""
        for sign, digits in numbers(sentence):
            written = f"-{digits}" if sign == "-" else digits
            if "." not in digits and int(digits) in percents:
                continue
            if written not in allowed:
                problems.append(f"states {written}{where}, which the record does not hold")
    return AnalysisCheck(not problems, tuple(problems), stated)
