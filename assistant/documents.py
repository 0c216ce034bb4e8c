"""Store records as LangChain `Document`s, and the citation every answer carries for each record used.

A document's `page_content` is the record's own English analysis; its `metadata` holds what an
answer may state or cite: record id, parcel, date, validity and its reason, valid / cloud / nodata
fractions, the source raster, every index statistic (`ndvi_mean`, `ndvi_p10`, ...), the parcel's
attributes and the French analysis. Values are the store's own (floats untouched, NaN -> None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pathlib import PurePath

from langchain_core.documents import Document

from assistant.store_access import record_attributes
from indexer.core.schema import INDEX_NAMES, MEAN_COLUMNS, STAT_COLUMNS, TEXT_COLUMNS

__all__ = ["DESCRIBE_COLUMNS", "INDEX_NAMES", "MEAN_COLUMNS", "STAT_COLUMNS", "analysis_text", "citation",
           "record_metadata", "record_rows", "to_document", "to_documents", "unique_citations"]

#: The statistics a description rests on: every mean, and NDVI's spread and percentiles.
DESCRIBE_COLUMNS: tuple[str, ...] = (*MEAN_COLUMNS, "ndvi_std", "ndvi_p10", "ndvi_p90")
_SCALARS = ("record_id", "parcel_id", "date", "valid", "invalid_reason", "valid_fraction", "cloud_fraction",
            "nodata_fraction", "n_pixels", "cloud_method", "source", "snow_fraction", "vegsoil_fraction", "quality_rule")


def _clean(value: object) -> object:
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_metadata(row: Mapping) -> dict:
    """The metadata of one record's document (see the module docstring)."""
    meta = {k: _clean(row.get(k)) for k in _SCALARS}
    meta["record_id"] = int(meta["record_id"])
    meta["parcel_id"] = str(meta["parcel_id"])
    meta["date"] = str(meta["date"])[:10]
    meta["valid"] = bool(meta["valid"]) if meta["valid"] is not None else True
    meta["invalid_reason"] = str(meta["invalid_reason"] or "")
    meta["source"] = "" if meta["source"] is None else str(meta["source"])
    for column in STAT_COLUMNS:
        meta[column] = _clean(row.get(column))
    meta["attributes"] = {str(k): _clean(v) for k, v in record_attributes(row).items()}
    meta["analysis_fr"] = str(row.get(TEXT_COLUMNS["fr"]) or "")
    return meta


def to_document(row: Mapping, **extra: object) -> Document:
    """A record as a Document; `extra` (e.g. `score`, `distance`, `window`) joins its metadata."""
    meta = record_metadata(row)
    meta.update(extra)
    return Document(page_content=str(row.get(TEXT_COLUMNS["en"]) or ""), metadata=meta, id=str(meta["record_id"]))


def record_rows(frame) -> list[dict]:
    """Every row of a record table as a dict of Python values (the geometry left out), in table order.

    The same dicts as ``frame.to_dict("records")``, built column by column: a column's `tolist()`
    converts it in one pass, where `to_dict` converts cell by cell (four times slower on a parcel's
    history, and every answer retrieves one or more).
    """
    columns = [c for c in frame.columns if c != "geometry"]
    values = [frame[c].tolist() for c in columns]
    return [dict(zip(columns, row)) for row in zip(*values)]


def to_documents(frame, **extra: object) -> list[Document]:
    """Every row of a record table as a Document, in table order."""
    return [to_document(row, **extra) for row in record_rows(frame)]


def analysis_text(doc: Document, lang: str) -> str:
    """The record's own stored analysis in `lang` ("en" or "fr")."""
    return doc.metadata.get("analysis_fr") or doc.page_content if lang == "fr" else doc.page_content


def citation(doc: Document, columns: Sequence[str] = MEAN_COLUMNS) -> dict:
    """The citation of one record: parcel, date, the statistics used (store values), quality, and the
    source raster's file name."""
    meta = doc.metadata
    return {
        "record_id": meta["record_id"],
        "parcel_id": meta["parcel_id"],
        "date": meta["date"],
        "indices": {c: meta.get(c) for c in columns},
        "valid": meta["valid"],
        "valid_fraction": meta.get("valid_fraction"),
        "cloud_fraction": meta.get("cloud_fraction"),
        # The raster's file name: a citation must not show the server's folders.
        "source": PurePath(str(meta.get("source") or "")).name or None,
    }


def unique_citations(items: Iterable[tuple[Document, Sequence[str]]]) -> list[dict]:
    """Citations of (document, columns used) pairs, one per record, columns of repeats merged."""
    out: dict[int, dict] = {}
    for doc, columns in items:
        rid = doc.metadata["record_id"]
        if rid in out:
            for c in columns:
                out[rid]["indices"].setdefault(c, doc.metadata.get(c))
        else:
            out[rid] = citation(doc, columns)
    return sorted(out.values(), key=lambda c: (c["parcel_id"], c["date"]))
