"""Record filters: which records of a store a query may return (date window, parcels, area,
parcel attributes, validity). One filter type serves vector search, table reads and history."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from indexer.core.errors import InputError
from indexer.core.schema import attribute_column


def fold(text: object) -> str:
    """Case- and accent-insensitive form of a label: "Betterave sucrière" -> "betterave sucriere"."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


def _iso(value: str | dt.date | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date in YYYY-MM-DD form", field=name, value=value) from None


@dataclass(frozen=True)
class RecordFilter:
    """Conditions a record must meet; every unset condition lets all records through.

    Dates are ISO strings (or `datetime.date`), both ends inclusive. `record_ids` keeps only
    those records (a selection already computed, e.g. the usable ones). `bbox` (minx, miny, maxx,
    maxy) and `polygon` are in WGS84 and keep the records whose parcel intersects them.
    `attributes` maps a parcel attribute (``crop`` or ``attr_crop``) to one value or several
    (any of them), compared case- and accent-insensitively.
    """

    date_from: str | dt.date | None = None
    date_to: str | dt.date | None = None
    dates: Sequence[str] | None = None
    parcel_ids: Sequence[str] | None = None
    exclude_parcel_ids: Sequence[str] = ()
    record_ids: Sequence[int] | None = None
    exclude_record_ids: Sequence[int] = ()
    bbox: tuple[float, float, float, float] | None = None
    polygon: BaseGeometry | None = None
    attributes: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    valid_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "date_from", _iso(self.date_from, "date_from"))
        object.__setattr__(self, "date_to", _iso(self.date_to, "date_to"))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InputError(f"date window {self.date_from} .. {self.date_to} ends before it starts",
                             field="date_to", value=self.date_to)
        if self.bbox is not None:
            minx, miny, maxx, maxy = (float(v) for v in self.bbox)
            if minx > maxx or miny > maxy:
                raise InputError(f"bounding box {self.bbox} has min > max", field="bbox", value=self.bbox)

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of a record table that pass the filter."""
        keep = np.ones(len(table), dtype=bool)
        if not len(table):
            return keep
        dates = table["date"].astype(str)
        if self.date_from:
            keep &= (dates >= self.date_from).to_numpy()
        if self.date_to:
            keep &= (dates <= self.date_to).to_numpy()
        if self.dates is not None:
            keep &= dates.isin([_iso(d, "dates") for d in self.dates]).to_numpy()
        parcels = table["parcel_id"].astype(str)
        if self.parcel_ids is not None:
            keep &= parcels.isin([str(p) for p in self.parcel_ids]).to_numpy()
        if self.exclude_parcel_ids:
            keep &= ~parcels.isin([str(p) for p in self.exclude_parcel_ids]).to_numpy()
        if self.record_ids is not None:
            keep &= table["record_id"].isin([int(i) for i in self.record_ids]).to_numpy()
        if self.exclude_record_ids:
            keep &= ~table["record_id"].isin([int(i) for i in self.exclude_record_ids]).to_numpy()
        if self.valid_only:
            keep &= table["valid"].astype(bool).to_numpy()
        for name, wanted in self.attributes.items():
            column = attribute_column(name)
            if column not in table.columns:
                known = ", ".join(c for c in table.columns if str(c).startswith("attr_")) or "none"
                raise InputError(f"no parcel attribute {name!r} in the store (attributes: {known})",
                                 field="attributes", value=name)
            values = {fold(v) for v in ([wanted] if isinstance(wanted, str) else wanted)}
            keep &= table[column].map(lambda v: v is not None and v == v and fold(v) in values).to_numpy(bool)
        area = self.polygon
        if self.bbox is not None:
            box = shapely.box(*self.bbox)
            area = box if area is None else area.intersection(box)
        if area is not None:
            keep &= np.asarray(shapely.intersects(table.geometry.to_numpy(), area), dtype=bool)
        return keep
