"""Answers from retrieved records: what is said about each parcel, date and value, and what is cited.

`compose(state)` turns the chain's state (plan, retrieved documents, suspect dates, the checked
analysis) into sentences, citations and the `similar` / `history` lists. Every figure it writes is
a record's value (2 decimals, or a whole percent for fractions) or the difference of two such
values as written; the chain's gate re-checks the whole text (`assistant.grounding.Evidence`).

Choices, documented once:
* A window's observation of a parcel is its latest usable, non-suspect acquisition in the window;
  without a window, the latest one on or before the plan's reference date.
* A comparison window is represented by its usable, non-suspect acquisition nearest in day of year
  to the observation compared.
* Trends run over usable, non-suspect acquisitions; suspect ones are named and left out.
* Ranking uses each parcel's usable, non-suspect acquisitions in the window: with a condition,
  the parcel's most extreme matching record is listed; without one, its latest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from langchain_core.documents import Document

from assistant.documents import DESCRIBE_COLUMNS, MEAN_COLUMNS
from assistant.suspect import SuspectDate
from assistant.wording import ASPECT_NAMES, hundredths, num, pct, say, signed
from indexer.analysis import classify

#: Most parcels listed one by one in an answer.
MAX_LISTED = 12


@dataclass
class Composition:
    """The answer under construction."""

    sentences: list[str] = field(default_factory=list)
    cited: list[tuple[Document, tuple[str, ...]]] = field(default_factory=list)
    similar: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    #: Numbers the answer computes from cited values (a mean, a median), as written.
    derived: list[str] = field(default_factory=list)

    def add(self, sentence: str) -> None:
        self.sentences.append(sentence)

    def end_list(self) -> None:
        """End a list of "item;" sentences with a full stop."""
        if self.sentences and self.sentences[-1].endswith(";"):
            self.sentences[-1] = self.sentences[-1][:-1] + "."

    def cite(self, doc: Document, columns: Sequence[str]) -> None:
        self.cited.append((doc, tuple(columns)))


def _day(doc: Document) -> dt.date:
    return dt.date.fromisoformat(doc.metadata["date"])


def usable(doc: Document, suspects: Mapping[str, SuspectDate]) -> bool:
    return bool(doc.metadata["valid"]) and doc.metadata["date"] not in suspects


def column_of(index: str | None) -> str:
    return f"{(index or 'ndvi').lower()}_mean"


def _label(column: str) -> str:
    return column.split("_")[0].upper()


def values_text(doc: Document, columns: Sequence[str]) -> str:
    parts = []
    for column in columns:
        x = doc.metadata.get(column)
        if x is not None:
            name = _label(column) if column.endswith("_mean") else f"{_label(column)} {column.split('_', 1)[1]}"
            parts.append(f"{name} {num(x)}")
    return ", ".join(parts)


def by_parcel(docs: Sequence[Document]) -> dict[str, list[Document]]:
    out: dict[str, list[Document]] = {}
    for doc in sorted(docs, key=lambda d: (d.metadata["parcel_id"], d.metadata["date"])):
        out.setdefault(doc.metadata["parcel_id"], []).append(doc)
    return out


def pick(docs: Sequence[Document], suspects: Mapping[str, SuspectDate]) -> Document | None:
    """The parcel's observation for the window: latest usable non-suspect, else the latest record."""
    good = [d for d in docs if usable(d, suspects)]
    if good:
        return good[-1]
    return docs[-1] if docs else None


def nearest_usable(docs: Sequence[Document], day: dt.date, suspects: Mapping[str, SuspectDate], n: int = 3) -> list[Document]:
    good = [d for d in docs if usable(d, suspects)]
    return sorted(sorted(good, key=lambda d: (abs((_day(d) - day).days), d.metadata["date"]))[:n],
                  key=lambda d: d.metadata["date"])


def _doy_distance(a: dt.date, b: dt.date) -> int:
    diff = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(diff, 365 - diff)


def describe_record(out: Composition, lang: str, doc: Document, columns: Sequence[str]) -> None:
    meta = doc.metadata
    out.add(say(lang, "record", pid=meta["parcel_id"], date=meta["date"], values=values_text(doc, columns),
                valid=pct(meta.get("valid_fraction")), cloud=pct(meta.get("cloud_fraction"))))
    out.cite(doc, columns)


def report_unusable(out: Composition, lang: str, doc: Document, parcel_docs: Sequence[Document],
                    suspects: Mapping[str, SuspectDate]) -> None:
    meta = doc.metadata
    out.add(say(lang, "unusable", pid=meta["parcel_id"], date=meta["date"], cloud=pct(meta.get("cloud_fraction")),
                valid=pct(meta.get("valid_fraction")), reason=meta.get("invalid_reason") or "flagged not valid"))
    out.cite(doc, ())
    near = nearest_usable(parcel_docs, _day(doc), suspects)
    if near:
        out.add(say(lang, "nearest_usable", pid=meta["parcel_id"], dates=", ".join(
            f"{d.metadata['date']} ({_label(MEAN_COLUMNS[0])} {num(d.metadata['ndvi_mean'])})" if d.metadata.get("ndvi_mean") is not None
            else d.metadata["date"] for d in near)))
        for d in near:
            out.cite(d, ("ndvi_mean",))
    else:
        out.add(say(lang, "no_usable_at_all", pid=meta["parcel_id"]))


def report_suspect(out: Composition, lang: str, doc: Document, suspect: SuspectDate,
                   parcel_docs: Sequence[Document], column: str = "ndvi_mean") -> None:
    """Say the acquisition is suspect, with this parcel's value beside its values on the neighbouring dates."""
    meta = doc.metadata
    around = [d for d in parcel_docs if d.metadata["date"] in (suspect.previous, suspect.next)
              and d.metadata.get(column) is not None]
    values = say(lang, "value_on", index=_label(column), v=num(meta[column]), date=meta["date"])
    if around:
        values += say(lang, "against", items=", ".join(
            say(lang, "value_on", index="", v=num(d.metadata[column]), date=d.metadata["date"]).strip() for d in around))
    out.add(say(lang, "suspect", date=meta["date"], n=suspect.n_parcels, previous=suspect.previous,
                next=suspect.next, pid=meta["parcel_id"], values=values))
    out.counts.append(suspect.n_parcels)
    out.cite(doc, (column,))
    for d in around:
        out.cite(d, (column,))


def compare_pair(out: Composition, lang: str, column: str, a: Document, b: Document) -> int:
    """Say "NDVI a on da against b on db, +delta"; returns the delta in hundredths."""
    x, y = a.metadata[column], b.metadata[column]
    delta = hundredths(x) - hundredths(y)
    direction = say(lang, "higher" if delta > 0 else "lower" if delta < 0 else "same")
    out.add(say(lang, "compare", index=_label(column), a=num(x), da=a.metadata["date"], b=num(y),
                db=b.metadata["date"], delta=signed(delta), direction=direction))
    out.cite(a, (column,))
    out.cite(b, (column,))
    return delta


def compare_parcels(out: Composition, lang: str, column: str, a: Document, b: Document) -> int:
    """Say "NDVI a for A on da against b for B on db, +delta" (two parcels); returns the delta in hundredths."""
    x, y = a.metadata[column], b.metadata[column]
    delta = hundredths(x) - hundredths(y)
    direction = say(lang, "higher" if delta > 0 else "lower" if delta < 0 else "same")
    out.add(say(lang, "compare_parcels", index=_label(column), a=num(x), pa=a.metadata["parcel_id"],
                da=a.metadata["date"], b=num(y), pb=b.metadata["parcel_id"], db=b.metadata["date"],
                delta=signed(delta), direction=direction))
    out.cite(a, (column,))
    out.cite(b, (column,))
    return delta


def history_rows(docs: Sequence[Document], suspects: Mapping[str, SuspectDate], column: str) -> list[dict]:
    return [{"parcel_id": d.metadata["parcel_id"], "date": d.metadata["date"], "record_id": d.metadata["record_id"],
             "window": d.metadata.get("window"), column: d.metadata.get(column), "valid": d.metadata["valid"],
             "suspect": d.metadata["date"] in suspects, "valid_fraction": d.metadata.get("valid_fraction"),
             "cloud_fraction": d.metadata.get("cloud_fraction")} for d in docs]


def trend(out: Composition, lang: str, pid: str, label: str, docs: Sequence[Document],
          suspects: Mapping[str, SuspectDate], column: str) -> None:
    good = [d for d in docs if usable(d, suspects) and d.metadata.get(column) is not None]
    out.add(say(lang, "history_head", pid=pid, index=_label(column), label=label, n=len(good), total=len(docs)))
    out.counts.extend([len(good), len(docs)])
    if len(good) >= 2:
        first, last = good[0], good[-1]
        delta = hundredths(last.metadata[column]) - hundredths(first.metadata[column])
        out.add(say(lang, "history_trend", index=_label(column), a=num(first.metadata[column]), da=first.metadata["date"],
                    b=num(last.metadata[column]), db=last.metadata["date"], delta=signed(delta),
                    direction=say(lang, "rose" if delta > 0 else "fell" if delta < 0 else "flat")))
        hi = max(good, key=lambda d: d.metadata[column])
        lo = min(good, key=lambda d: d.metadata[column])
        out.add(say(lang, "history_extremes", hi=num(hi.metadata[column]), dhi=hi.metadata["date"],
                    lo=num(lo.metadata[column]), dlo=lo.metadata["date"]))
        for d in good:
            out.cite(d, (column,))
    elif good:
        describe_record(out, lang, good[0], (column,))
    bad = [d for d in docs if not d.metadata["valid"]]
    if bad:
        out.add(say(lang, "history_unusable", dates=", ".join(
            f"{d.metadata['date']} ({say(lang, 'cloud_pct', p=pct(d.metadata.get('cloud_fraction')))})" for d in bad[:MAX_LISTED])
            + ("" if len(bad) <= MAX_LISTED else " " + say(lang, "and_more", n=len(bad) - MAX_LISTED).rstrip("."))))
        for d in bad[:MAX_LISTED]:
            out.cite(d, ())
        if len(bad) > MAX_LISTED:
            out.counts.append(len(bad) - MAX_LISTED)
    odd = [d for d in docs if d.metadata["valid"] and d.metadata["date"] in suspects]
    if odd:
        out.add(say(lang, "suspect_excluded", dates=", ".join(
            f"{d.metadata['date']} ({_label(column)} {num(d.metadata[column])})" if d.metadata.get(column) is not None
            else d.metadata["date"] for d in odd)))
        for d in odd:
            out.cite(d, (column,))


def condition_text(lang: str, plan) -> str:
    if plan.condition is not None:
        key = {"<": "cond_lt", "<=": "cond_le", ">": "cond_gt", ">=": "cond_ge"}[plan.condition.op]
        return say(lang, key, index=plan.condition.index.upper(), v=f"{plan.condition.value:g}")
    if plan.class_condition is not None:
        aspect = plan.class_condition.aspect
        return say(lang, "class_cond", aspect=ASPECT_NAMES.get(lang, ASPECT_NAMES["en"]).get(aspect, aspect),
                   label=plan.class_condition.label.replace("_", " "))
    return ""


def class_column(aspect: str) -> str:
    from indexer.analysis import RULE_BY_ASPECT

    return RULE_BY_ASPECT[aspect].stat


def rank(out: Composition, lang: str, plan, docs: Sequence[Document], suspects: Mapping[str, SuspectDate],
         label: str) -> None:
    parcels = by_parcel([d for d in docs if usable(d, suspects)])
    total = len(parcels)
    out.counts.append(total)
    if plan.condition is not None:
        column = column_of(plan.condition.index)
        extreme = min if plan.condition.op in ("<", "<=") else max
        matched, closest = [], []
        for pid, items in parcels.items():
            items = [d for d in items if d.metadata.get(column) is not None]
            if not items:
                continue
            hits = [d for d in items if plan.condition.holds(d.metadata[column])]
            if hits:
                matched.append(extreme(hits, key=lambda d: d.metadata[column]))
            else:
                closest.append(extreme(items, key=lambda d: d.metadata[column]))
        matched.sort(key=lambda d: d.metadata[column], reverse=extreme is max)
        what = condition_text(lang, plan)
    elif plan.class_condition is not None:
        aspect, wanted = plan.class_condition.aspect, plan.class_condition.label
        column = class_column(aspect)
        matched, closest = [], []
        for pid, items in parcels.items():
            hits = [d for d in items if classify(d.metadata).get(aspect) == wanted]
            if hits:
                matched.append(hits[-1])
        matched.sort(key=lambda d: d.metadata.get(column) or 0.0)
        what = condition_text(lang, plan)
    else:
        column = column_of(plan.index)
        latest = [items[-1] for items in parcels.values() if items[-1].metadata.get(column) is not None]
        lowest_first = getattr(plan, "order", None) == "asc"
        latest.sort(key=lambda d: d.metadata[column], reverse=not lowest_first)
        out.add(say(lang, "rank_order_asc" if lowest_first else "rank_order", index=_label(column), label=label))
        _list_records(out, lang, latest, column, cite_unlisted=False)
        return
    if not matched:
        out.add(say(lang, "rank_none", label=label, total=total))
        if closest:
            near = sorted(closest, key=lambda d: abs(d.metadata[column] - plan.condition.value))[0]
            out.add(say(lang, "rank_closest", item=say(lang, "record_short", pid=near.metadata["parcel_id"],
                                                       date=near.metadata["date"], values=values_text(near, (column,)))))
            out.cite(near, (column,))
        return
    out.add(say(lang, "rank_head", what=what, label=label, n=len(matched), total=total))
    out.counts.append(len(matched))
    _list_records(out, lang, matched, column, cite_unlisted=True)


def _list_records(out: Composition, lang: str, docs: Sequence[Document], column: str, *,
                  cite_unlisted: bool) -> None:
    """The first `MAX_LISTED` records with their `column` value, then "and N more".

    `cite_unlisted`: the records past the list are cited too (a filter's count rests on them).
    """
    for d in docs[:MAX_LISTED]:
        out.add(say(lang, "record_short", pid=d.metadata["parcel_id"], date=d.metadata["date"],
                    values=values_text(d, (column,))) + ";")
        out.cite(d, (column,))
    out.end_list()
    if len(docs) > MAX_LISTED:
        out.add(say(lang, "and_more", n=len(docs) - MAX_LISTED))
        out.counts.append(len(docs) - MAX_LISTED)
        if cite_unlisted:
            for d in docs[MAX_LISTED:]:
                out.cite(d, (column,))


def similar_items(out: Composition, lang: str, focus: Document, docs: Sequence[Document]) -> None:
    out.add(say(lang, "similar_head", pid=focus.metadata["parcel_id"], date=focus.metadata["date"]))
    out.cite(focus, ("ndvi_mean", "ndmi_mean"))
    if not docs:
        out.add(say(lang, "similar_none"))
        return
    for d in docs:
        out.add(say(lang, "similar_item", pid=d.metadata["parcel_id"], date=d.metadata["date"],
                    distance=f"{d.metadata['distance']:.3f}", values=values_text(d, ("ndvi_mean", "ndmi_mean"))) + ";")
        out.cite(d, ("ndvi_mean", "ndmi_mean"))
        out.similar.append({"parcel_id": d.metadata["parcel_id"], "date": d.metadata["date"],
                            "distance": d.metadata["distance"], "score": d.metadata["score"],
                            "record_id": d.metadata["record_id"]})
    out.end_list()


__all__ = ["Composition", "DESCRIBE_COLUMNS", "compare_pair", "describe_record", "history_rows", "pick", "rank",
           "report_suspect", "report_unusable", "similar_items", "trend", "usable"]
