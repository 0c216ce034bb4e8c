"""The assistant's only door to the store: every read the assistant makes goes through `StoreView`.

It speaks the foundation's store query API (`Store.records(filter)`, `search(vector, k, filter)`,
`vectors`, `by_ids`, `history`, `record`, `parcels`, `dates`; see the foundation issue). Stores
opened by an older `indexer.store` (where `records` is a table attribute and `search` takes no
filter) are served by the same methods here, so the rest of the assistant never needs to know
which one it talks to.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from indexer.core.errors import NotFoundError, StoreError
from indexer.store import Store

try:  # the foundation's filter type, when the store query API is there
    from indexer.store import RecordFilter  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised only before the store query API lands

    @dataclass(frozen=True)
    class RecordFilter:  # type: ignore[no-redef]
        """Which records a query may return (the foundation's `RecordFilter` fields)."""

        date_from: str | None = None
        date_to: str | None = None
        dates: tuple[str, ...] | None = None
        parcel_ids: tuple[str, ...] | None = None
        exclude_parcel_ids: tuple[str, ...] = ()
        exclude_record_ids: tuple[int, ...] = ()
        bbox: tuple[float, float, float, float] | None = None
        polygon: object | None = None
        attributes: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
        valid_only: bool = False


ATTRIBUTE_PREFIX = "attr_"
#: Record columns every answer may cite (quality and provenance beside the statistics).
QUALITY_COLUMNS = ("valid_fraction", "cloud_fraction", "nodata_fraction", "n_pixels")


def fold(text: object) -> str:
    """Lower case without accents: how attribute values are compared."""
    norm = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in norm if not unicodedata.combining(c)).strip().lower()


def record_attributes(row: Mapping) -> dict[str, object]:
    """The parcel file's own columns of a record: `attr_*` columns, or the older `attributes` JSON."""
    out = {k[len(ATTRIBUTE_PREFIX):]: v for k, v in row.items()
           if isinstance(k, str) and k.startswith(ATTRIBUTE_PREFIX) and not _missing(v)}
    raw = row.get("attributes")
    if not out and isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            out = {k: v for k, v in json.loads(raw).items() if not _missing(v)}
        except ValueError:
            out = {}
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class StoreView:
    """Read-only queries over one store, in the foundation API's terms."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._native = callable(getattr(store, "records", None))

    @classmethod
    def open(cls, path: str | Path) -> StoreView:
        return cls(Store.open(path))

    # -- identity ----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.store.path)

    @property
    def encoder_id(self) -> str:
        return self.store.encoder_id

    @property
    def manifest(self) -> dict:
        return self.store.manifest

    def __len__(self) -> int:
        return len(self.store)

    # -- tables ------------------------------------------------------------------------------
    def _table(self) -> gpd.GeoDataFrame:
        return self.store.records() if self._native else self.store.records

    def records(self, filter: RecordFilter | None = None) -> gpd.GeoDataFrame:
        """Records matching `filter` (all without one), sorted by parcel and date."""
        if self._native:
            frame = self.store.records(filter)
        else:
            frame = _apply(self._table(), filter)
        return frame.sort_values(["parcel_id", "date"]).reset_index(drop=True) if len(frame) else frame

    def by_ids(self, record_ids: Sequence[int]) -> gpd.GeoDataFrame:
        ids = [int(i) for i in record_ids]
        if not ids:
            return self._table().iloc[0:0]
        try:
            return self.store.by_ids(ids)
        except KeyError:
            raise NotFoundError.about(self.path, f"no record with id(s) {ids[:5]}", field="record_id", value=ids) from None

    def vectors(self, record_ids: Sequence[int]) -> np.ndarray:
        """Embeddings of `record_ids`, in that order (float32, one row each)."""
        if hasattr(self.store, "vectors"):
            return np.asarray(self.store.vectors([int(i) for i in record_ids]), dtype=np.float32)
        return np.stack([self.store.vector(int(i)) for i in record_ids]).astype(np.float32)

    def search(self, vector: np.ndarray, k: int, filter: RecordFilter | None = None) -> list[tuple[int, float]]:
        """Up to `k` (record_id, cosine similarity) of records matching `filter`, best first."""
        if self._native:
            return [(int(h.record_id), float(h.score)) for h in self.store.search(vector, k, filter)]
        allowed = set(_apply(self._table(), filter)["record_id"].astype(int)) if filter is not None else None
        total = self.store.index.ntotal
        fetch = min(total, max(k * 4, k + 1))
        while True:
            hits = [(i, s) for i, s in self.store.search(vector, fetch) if allowed is None or i in allowed]
            if len(hits) >= k or fetch >= total:
                return hits[:k]
            fetch = min(total, fetch * 4)

    def history(self, parcel_id: str, date_from: str | None = None, date_to: str | None = None) -> gpd.GeoDataFrame:
        """The parcel's records within [date_from, date_to], oldest first; NotFoundError when unknown."""
        if self._native and hasattr(self.store, "history"):
            return self.store.history(parcel_id, date_from=date_from, date_to=date_to)
        table = self._table()
        rows = table[table["parcel_id"] == str(parcel_id)]
        if rows.empty:
            raise NotFoundError.about(self.path, f"no parcel {parcel_id!r} in the store", field="parcel", value=parcel_id)
        if date_from:
            rows = rows[rows["date"] >= date_from]
        if date_to:
            rows = rows[rows["date"] <= date_to]
        return rows.sort_values("date").reset_index(drop=True)

    def parcels(self) -> gpd.GeoDataFrame:
        """One row per parcel: parcel_id, geometry and the parcel file's attributes (attr_* columns)."""
        if self._native and hasattr(self.store, "parcels"):
            return self.store.parcels()
        table = self._table()
        if table.empty:
            return gpd.GeoDataFrame({"parcel_id": pd.Series(dtype=str)}, geometry=[], crs="EPSG:4326")
        first = table.sort_values("date").drop_duplicates("parcel_id")
        attrs = pd.DataFrame([{f"{ATTRIBUTE_PREFIX}{k}": v for k, v in record_attributes(r).items()}
                              for r in first.to_dict("records")], index=first.index)
        out = pd.concat([first[["parcel_id", "geometry"]], attrs], axis=1)
        return gpd.GeoDataFrame(out, geometry="geometry", crs=table.crs).sort_values("parcel_id").reset_index(drop=True)

    def dates(self) -> list[str]:
        """Acquisition dates held by the store, oldest first."""
        if self._native and hasattr(self.store, "dates"):
            return list(self.store.dates())
        table = self._table()
        return sorted(set(table["date"].astype(str))) if len(table) else []


def _apply(table: gpd.GeoDataFrame, flt: RecordFilter | None) -> gpd.GeoDataFrame:
    """`flt` applied to a whole table (older stores, which have no filtered queries)."""
    if flt is None or table.empty:
        return table
    keep = pd.Series(True, index=table.index)
    dates = table["date"].astype(str)
    if flt.date_from:
        keep &= dates >= flt.date_from
    if flt.date_to:
        keep &= dates <= flt.date_to
    if flt.dates is not None:
        keep &= dates.isin(set(flt.dates))
    if flt.parcel_ids is not None:
        keep &= table["parcel_id"].isin(set(map(str, flt.parcel_ids)))
    if flt.exclude_parcel_ids:
        keep &= ~table["parcel_id"].isin(set(map(str, flt.exclude_parcel_ids)))
    if flt.exclude_record_ids:
        keep &= ~table["record_id"].isin(set(map(int, flt.exclude_record_ids)))
    if flt.valid_only:
        keep &= table["valid"].astype(bool)
    if flt.bbox is not None:
        keep &= table.geometry.intersects(box(*flt.bbox))
    if flt.polygon is not None:
        keep &= table.geometry.intersects(flt.polygon)
    if flt.attributes:
        attrs = [record_attributes(r) for r in table[[c for c in table.columns if c != "geometry"]].to_dict("records")]
        for name, wanted in flt.attributes.items():
            key = name[len(ATTRIBUTE_PREFIX):] if name.startswith(ATTRIBUTE_PREFIX) else name
            values = {fold(wanted)} if isinstance(wanted, str) else {fold(w) for w in wanted}
            keep &= pd.Series([fold(a.get(key, "")) in values for a in attrs], index=table.index)
    return table[keep]


def require_records(view: StoreView) -> None:
    """StoreError when the store holds no record at all (answers then say so)."""
    if len(view) == 0:
        raise StoreError.about(view.path, "the store holds no records yet", hint="index imagery into it first")
