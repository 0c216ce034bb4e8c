"""The typed turn the chain's steps pass along, and the context that brings store facts to them.

A `Turn` is one question on its way through plan -> retrieve -> generate -> ground -> compose:
each step is a plain function that takes a turn (and what it needs, injected) and returns a new
one (`dataclasses.replace`). `AnswerContext` is the only way a kind of answer reads the store:
`StoreAnswerContext` wraps the retrievers over a real store, `ListContext` answers the same calls
from a list of documents (tests inject one, with hand-made records).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.documents import Document

from assistant.plan import QueryPlan, StoreContext
from indexer.observations import SuspectDate


@dataclass(frozen=True)
class Found:
    """What a kind retrieved: `records` (the observations the answer is about), `extra` (other
    records it compares them with: past seasons, same-crop parcels, neighbours of a date), `similar`
    (nearest records with `distance`), and `focus`, the one observation a generator may describe."""

    records: tuple[Document, ...] = ()
    extra: tuple[Document, ...] = ()
    similar: tuple[Document, ...] = ()
    focus: Document | None = None

    @property
    def all(self) -> list[Document]:
        return [*self.records, *self.extra, *self.similar]


@dataclass(frozen=True)
class Turn:
    """One question, as far as the chain has got with it."""

    question: str
    lang: str = "en"
    plan: QueryPlan | None = None
    kind: str = "clarify"
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    found: Found = field(default_factory=Found)
    generated: str | None = None
    generation_stopped: bool = False
    #: {"text", "source": "generated" | "stored", optional "rejected", "problems"}.
    analysis: Mapping[str, Any] | None = None
    #: An instruct model's whole answer, once it passed the gate.
    answer_text: str | None = None


class AnswerContext(Protocol):
    """What a kind of answer may know about the store (injected; see the module docstring)."""

    context: StoreContext
    suspects: Mapping[str, SuspectDate]

    def dates(self) -> list[str]: ...

    def records(self, *, parcel_ids: Sequence[str] | None = None, date_from: str | None = None,
                date_to: str | None = None, attributes: Mapping[str, Sequence[str]] | None = None,
                bbox: Sequence[float] | None = None, point: Sequence[float] | None = None,
                radius_m: float | None = None) -> list[Document]: ...

    def similar(self, record_id: int, k: int, *, date_from: str | None = None, date_to: str | None = None,
                attributes: Mapping[str, Sequence[str]] | None = None, bbox: Sequence[float] | None = None,
                parcel_ids: Sequence[str] | None = None) -> list[Document]: ...


def _in(doc: Document, parcel_ids, date_from, date_to, attributes) -> bool:
    m = doc.metadata
    if parcel_ids is not None and m["parcel_id"] not in parcel_ids:
        return False
    if date_from and m["date"] < date_from or date_to and m["date"] > date_to:
        return False
    for col, values in (attributes or {}).items():
        if str(m.get("attributes", {}).get(col.removeprefix("attr_"))) not in set(values):
            return False
    return True


@dataclass
class ListContext:
    """An `AnswerContext` over a list of documents (tests; small stores). `vectors` (record_id ->
    sequence of floats) serve `similar` by cosine similarity; without them it returns nothing."""

    docs: Sequence[Document]
    context: StoreContext = field(default_factory=StoreContext)
    suspects: Mapping[str, SuspectDate] = field(default_factory=dict)
    vectors: Mapping[int, Sequence[float]] = field(default_factory=dict)

    def dates(self) -> list[str]:
        return sorted({d.metadata["date"] for d in self.docs})

    def records(self, *, parcel_ids=None, date_from=None, date_to=None, attributes=None, bbox=None, point=None,
                radius_m=None) -> list[Document]:
        ids = set(parcel_ids) if parcel_ids is not None else None
        out = [d for d in self.docs if _in(d, ids, date_from, date_to, attributes)]
        return sorted(out, key=lambda d: (d.metadata["parcel_id"], d.metadata["date"]))

    def similar(self, record_id, k, *, date_from=None, date_to=None, attributes=None, bbox=None,
                parcel_ids=None) -> list[Document]:
        import numpy as np

        if record_id not in self.vectors:
            return []
        target = next(d for d in self.docs if d.metadata["record_id"] == record_id)
        v = np.asarray(self.vectors[record_id], dtype=float)
        scored = []
        for d in self.docs:
            rid = d.metadata["record_id"]
            if (rid not in self.vectors or d.metadata["parcel_id"] == target.metadata["parcel_id"]
                    or not d.metadata["valid"] or not _in(d, set(parcel_ids) if parcel_ids is not None else None,
                                                          date_from, date_to, attributes)):
                continue
            w = np.asarray(self.vectors[rid], dtype=float)
            s = float(v @ w / (np.linalg.norm(v) * np.linalg.norm(w)))
            scored.append((s, d))
        scored.sort(key=lambda p: -p[0])
        return [Document(page_content=d.page_content, metadata={**d.metadata, "score": s, "distance": 1.0 - s})
                for s, d in scored[:k]]


class StoreAnswerContext:
    """An `AnswerContext` over a store, through the assistant's LangChain retrievers."""

    def __init__(self, store, context: StoreContext, suspects: Mapping[str, SuspectDate], target, similar) -> None:
        self.store = store
        self.context = context
        self.suspects = suspects
        self._target = target
        self._similar = similar

    def dates(self) -> list[str]:
        return self.store.dates()

    def records(self, *, parcel_ids=None, date_from=None, date_to=None, attributes=None, bbox=None, point=None,
                radius_m=None) -> list[Document]:
        from assistant.retrievers import target_query

        return self._target.invoke(target_query(
            parcel_ids=parcel_ids, date_from=date_from, date_to=date_to, attributes=attributes, bbox=bbox,
            point=point, radius_m=radius_m))

    def similar(self, record_id, k, *, date_from=None, date_to=None, attributes=None, bbox=None,
                parcel_ids=None) -> list[Document]:
        from assistant.retrievers import similar_query

        return self._similar.invoke(similar_query(record_id, k=k, date_from=date_from, date_to=date_to,
                                                  attributes=attributes, bbox=bbox, parcel_ids=parcel_ids))


def as_date(text: str) -> dt.date:
    return dt.date.fromisoformat(str(text)[:10])
