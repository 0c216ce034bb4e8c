"""The assistant's only door to the store: every read the assistant makes goes through `StoreView`.

A thin layer over the foundation's store query API (`Store.records(filter)`, `search(vector, k,
filter)`, `vectors`, `by_ids`, `history`, `parcels`, `dates`), adding what answering needs on
top: result tables sorted by parcel and date, empty stores answered with empty tables instead of
errors, and hits as plain (record_id, score) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from indexer.core.schema import ATTRIBUTE_PREFIX
from indexer.filters import RecordFilter, fold
from indexer.store import Store

__all__ = ["ATTRIBUTE_PREFIX", "RecordFilter", "StoreView", "fold", "record_attributes"]


def record_attributes(row: Mapping) -> dict[str, object]:
    """The parcel file's own columns of a record (its `attr_*` columns), without the prefix."""
    return {k[len(ATTRIBUTE_PREFIX):]: v for k, v in row.items()
            if isinstance(k, str) and k.startswith(ATTRIBUTE_PREFIX) and not _missing(v)}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class StoreView:
    """Read-only queries over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def open(cls, path: str | Path) -> StoreView:
        return cls(Store.open(path))

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

    def records(self, filter: RecordFilter | None = None) -> gpd.GeoDataFrame:
        """Records matching `filter` (all without one), sorted by parcel and date."""
        frame = self.store.records(filter)
        return frame.sort_values(["parcel_id", "date"]).reset_index(drop=True) if len(frame) else frame

    def by_ids(self, record_ids: Sequence[int]) -> gpd.GeoDataFrame:
        """Records in the order given (NotFoundError naming an unknown id)."""
        ids = [int(i) for i in record_ids]
        return self.store.by_ids(ids) if ids else self.store.records().iloc[0:0]

    def vectors(self, record_ids: Sequence[int]) -> np.ndarray:
        """Embeddings of `record_ids`, in that order (float32, one row each)."""
        return np.asarray(self.store.vectors([int(i) for i in record_ids]), dtype=np.float32)

    def search(self, vector: np.ndarray, k: int, filter: RecordFilter | None = None) -> list[tuple[int, float]]:
        """Up to `k` (record_id, cosine similarity) of records matching `filter`, best first."""
        if len(self.store) == 0:
            return []
        return [(int(h.record_id), float(h.score)) for h in self.store.search(vector, k, filter)]

    def history(self, parcel_id: str, date_from: str | None = None, date_to: str | None = None) -> gpd.GeoDataFrame:
        """The parcel's records within [date_from, date_to], oldest first; NotFoundError when unknown."""
        return self.store.history(parcel_id, date_from=date_from, date_to=date_to).sort_values("date").reset_index(drop=True)

    def parcels(self) -> gpd.GeoDataFrame:
        """One row per parcel: parcel_id, geometry and its attr_* columns (empty for an empty store)."""
        if len(self.store) == 0:
            return gpd.GeoDataFrame({"parcel_id": pd.Series(dtype=str)}, geometry=[], crs="EPSG:4326")
        return self.store.parcels()

    def dates(self) -> list[str]:
        """Acquisition dates held by the store, oldest first."""
        return list(self.store.dates()) if len(self.store) else []
