"""Read-side queries over a store for people: similar parcels, a parcel's history, and exports.

Built on the store's query API (`Store.search`, `Store.history`, `Store.records`); column lists
come from the record schema.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from indexer.core.errors import InputError, StoreError
from indexer.core.schema import FLAG_COLUMNS, QUALITY_COLUMNS, STAT_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS
from indexer.filters import RecordFilter
from indexer.store import Store

EXPORT_FORMATS = ("csv", "parquet", "geojson")


def similar(
    store: Store,
    parcel_id: str,
    date: str,
    k: int = 10,
    *,
    include_same_parcel: bool = False,
    include_invalid: bool = False,
) -> pd.DataFrame:
    """The `k` records most similar to (parcel, date) by embedding cosine similarity.

    By default other parcels only (a parcel's own dates are its history, not "similar parcels
    elsewhere") and only valid observations (a cloud is similar to every other cloud).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InputError(f"the number of similar records must be positive, got {k}", field="k", value=k)
    target = store.record(parcel_id, date)
    if not target["valid"] and not include_invalid:
        raise StoreError(
            f"parcel {parcel_id!r} on {date} is flagged not valid ({target['invalid_reason']}); "
            "its embedding describes clouds or missing data. Pick another date of its history.",
            path=store.path, field="date", value=date,
        )
    rid = int(target["record_id"])
    where = RecordFilter(
        exclude_record_ids=(rid,),
        exclude_parcel_ids=() if include_same_parcel else (str(target["parcel_id"]),),
        valid_only=not include_invalid,
    )
    hits = store.search(store.vector(rid), k, where)
    rows = store.by_ids([h.record_id for h in hits]).assign(score=[h.score for h in hits])
    return rows[["score", *SUMMARY_COLUMNS, "record_id"]].reset_index(drop=True)


def history(store: Store, parcel_id: str) -> pd.DataFrame:
    """Every date of one parcel, oldest first."""
    rows = store.history(parcel_id)
    return rows[[*SUMMARY_COLUMNS, "invalid_reason", TEXT_COLUMNS["en"], "record_id"]].reset_index(drop=True)


def export_frame(store: Store) -> gpd.GeoDataFrame:
    """One row per record: identifiers, quality, every index statistic, the analyses, geometry."""
    first = ["record_id", "parcel_id", "date", *FLAG_COLUMNS, *QUALITY_COLUMNS, "cloud_method", *STAT_COLUMNS,
             *TEXT_COLUMNS.values()]
    table = store.records()
    first = [c for c in first if c in table.columns]  # optional quality columns of older stores
    rest = [c for c in table.columns if c not in first and c != "geometry"]
    return table[[*first, *rest, "geometry"]].sort_values(["parcel_id", "date"]).reset_index(drop=True)


def write_export(store: Store, fmt: str, out: Path) -> int:
    """Write the export in `fmt` to `out`; returns the number of rows."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}",
                         field="format", value=fmt)
    frame = export_frame(store)
    if fmt == "csv":
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table["geometry_wkt"] = frame.geometry.to_wkt()
        table.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_file(out, driver="GeoJSON")
    return len(frame)
