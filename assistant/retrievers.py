"""LangChain retrievers over the store: the target record(s), similar parcels, a parcel's history.

Each retriever is a `langchain_core.retrievers.BaseRetriever`; its query (the retriever input) is
a small JSON object saying what to fetch, built by the chain from the query plan with
`target_query`, `similar_query` and `history_query` (so a retriever can also be called by hand,
e.g. ``TargetRetriever(store=view).invoke('{"parcel_ids": ["F-001"], "date_from": "2019-06-01"}')``).
Documents are records (`assistant.documents.to_document`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from shapely.geometry import Point

from assistant.documents import record_rows, to_document, to_documents
from assistant.store_access import RecordFilter, StoreView
from indexer.core.errors import InputError, NotFoundError


def _query(**fields: Any) -> str:
    return json.dumps({k: v for k, v in fields.items() if v not in (None, (), [], {})}, sort_keys=True)


def target_query(parcel_ids: Sequence[str] | None = None, date_from: str | None = None, date_to: str | None = None,
                 attributes: Mapping[str, Sequence[str]] | None = None, bbox: Sequence[float] | None = None,
                 point: Sequence[float] | None = None, radius_m: float | None = None) -> str:
    """The TargetRetriever query: records of these parcels / this area / these attribute values, in the dates."""
    return _query(parcel_ids=list(parcel_ids) if parcel_ids is not None else None, date_from=date_from,
                  date_to=date_to, attributes={k: list(v) for k, v in (attributes or {}).items()},
                  bbox=list(bbox) if bbox else None, point=list(point) if point else None, radius_m=radius_m)


def similar_query(record_id: int, k: int = 5, date_from: str | None = None, date_to: str | None = None,
                  attributes: Mapping[str, Sequence[str]] | None = None, bbox: Sequence[float] | None = None,
                  exclude_parcel_ids: Sequence[str] = (), per_parcel: bool = True,
                  parcel_ids: Sequence[str] | None = None) -> str:
    """The SimilarRetriever query: the `k` records nearest to `record_id`'s embedding, filtered
    (`per_parcel`: each parcel's best record only, so k parcels; `parcel_ids`: only among these)."""
    return _query(record_id=int(record_id), k=int(k), date_from=date_from, date_to=date_to,
                  attributes={k_: list(v) for k_, v in (attributes or {}).items()},
                  bbox=list(bbox) if bbox else None, exclude_parcel_ids=list(exclude_parcel_ids),
                  per_parcel=per_parcel if not per_parcel else None,
                  parcel_ids=list(parcel_ids) if parcel_ids is not None else None)


def history_query(parcel_id: str, windows: Sequence[tuple[str, str, str]] = ()) -> str:
    """The HistoryRetriever query: `parcel_id`'s records in each (start, end, label) window (all when none)."""
    return _query(parcel_id=str(parcel_id), windows=[list(w) for w in windows])


def _parse(query: str | Mapping) -> dict:
    if isinstance(query, Mapping):
        return dict(query)
    try:
        out = json.loads(query)
    except (TypeError, ValueError):
        raise InputError.about("retriever query", f"not a JSON object: {str(query)[:80]!r}", field="query") from None
    if not isinstance(out, dict):
        raise InputError.about("retriever query", "must be a JSON object", field="query", value=out)
    return out


def area_polygon(point: Sequence[float], radius_m: float):
    """The disc of `radius_m` metres around (lon, lat), in WGS84 (buffered in the point's UTM zone)."""
    frame = gpd.GeoSeries([Point(point[0], point[1])], crs="EPSG:4326")
    utm = frame.estimate_utm_crs()
    return frame.to_crs(utm).buffer(float(radius_m)).to_crs("EPSG:4326").iloc[0]


def record_filter(q: Mapping, **overrides: Any) -> RecordFilter:
    """The store filter for a parsed retriever query."""
    polygon = area_polygon(q["point"], q.get("radius_m") or 0.0) if q.get("point") and q.get("radius_m") else None
    if q.get("point") and not q.get("radius_m"):
        polygon = Point(q["point"][0], q["point"][1])
    fields = dict(
        date_from=q.get("date_from"), date_to=q.get("date_to"),
        parcel_ids=tuple(q["parcel_ids"]) if q.get("parcel_ids") is not None else None,
        exclude_parcel_ids=tuple(q.get("exclude_parcel_ids") or ()),
        bbox=tuple(q["bbox"]) if q.get("bbox") else None, polygon=polygon,
        attributes={k: tuple(v) for k, v in (q.get("attributes") or {}).items()},
    )
    fields.update(overrides)
    return RecordFilter(**fields)


class _StoreRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    store: StoreView


class TargetRetriever(_StoreRetriever):
    """Every record (usable or not) of the parcels, area or attribute values asked, in the date range."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        q = _parse(query)
        return to_documents(self.store.records(record_filter(q)))


class SimilarRetriever(_StoreRetriever):
    """The records nearest to one record's embedding: the library's one similar search
    (`indexer.query.similar`: cosine, usable records of other parcels only), filtered by the query's
    dates, attributes and area; ``per_parcel`` (default true) keeps each parcel's best record.

    Each document's metadata adds `score` (cosine similarity) and `distance` (1 - score).
    """

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        from indexer.query import similar

        q = _parse(query)
        rid = int(q["record_id"])
        if self.store.by_ids([rid]).empty:
            raise NotFoundError.about("similar parcels", f"no record {rid} in the store", field="record_id", value=rid)
        where = record_filter(q, exclude_parcel_ids=tuple(q.get("exclude_parcel_ids") or ()))
        hits = similar(self.store.store, record_id=rid, k=int(q.get("k", 5)), where=where,
                       per_parcel=bool(q.get("per_parcel", True)), full=True)
        if hits.empty:
            return []
        return [to_document(row, score=float(row["score"]), distance=float(row["distance"]))
                for row in record_rows(hits)]


class HistoryRetriever(_StoreRetriever):
    """One parcel's records in each requested window (metadata `window` = the window's label)."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        q = _parse(query)
        parcel = str(q["parcel_id"])
        windows = q.get("windows") or [[None, None, "all"]]
        docs: list[Document] = []
        seen: set[int] = set()
        for start, end, label in windows:
            for doc in to_documents(self.store.history(parcel, start, end), window=label):
                if doc.metadata["record_id"] not in seen:
                    seen.add(doc.metadata["record_id"])
                    docs.append(doc)
        return docs
