"""Read-side queries over a store: similar parcels, a parcel's history, and exports."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from indexer.core.indices import STAT_COLUMNS
from indexer.store import Store
from indexer.core.errors import InputError, StoreError

#: Columns shown in tables and used to compare parcels at a glance.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "parcel_id", "date", "valid", "valid_fraction",
    "ndvi_mean", "ndwi_mean", "ndmi_mean", "savi_mean", "evi_mean", "ndre_mean",
)
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
    if k <= 0:
        raise InputError(f"-k must be positive, got {k}")
    target = store.record(parcel_id, date)
    if not target["valid"] and not include_invalid:
        raise StoreError(
            f"parcel {parcel_id!r} on {date} is flagged not valid ({target['invalid_reason']}); "
            "its embedding describes clouds or missing data. Pick another date (see `xvision history`)."
        )
    vector = store.vector(int(target["record_id"]))
    table = store.records.set_index("record_id")
    fetch = k + 1
    while True:
        hits = store.search(vector, fetch)
        rows = table.loc[[i for i, _ in hits]].assign(score=[s for _, s in hits]).reset_index()
        rows = rows[rows["record_id"] != target["record_id"]]
        if not include_same_parcel:
            rows = rows[rows["parcel_id"] != target["parcel_id"]]
        if not include_invalid:
            rows = rows[rows["valid"]]
        if len(rows) >= k or fetch >= store.index.ntotal:
            break
        fetch = min(fetch * 4, store.index.ntotal)
    columns = ["score", *SUMMARY_COLUMNS, "record_id"]
    return rows.head(k)[columns].reset_index(drop=True)


def history(store: Store, parcel_id: str) -> pd.DataFrame:
    """Every date of one parcel, oldest first."""
    rows = store.find(parcel_id)
    if rows.empty:
        raise StoreError(f"{store.path}: no parcel {parcel_id!r} in the store")
    return rows[[*SUMMARY_COLUMNS, "invalid_reason", "analysis", "record_id"]].reset_index(drop=True)


def export_frame(store: Store) -> gpd.GeoDataFrame:
    """One row per record: identifiers, quality, every index statistic, the analyses, geometry."""
    first = ["record_id", "parcel_id", "date", "valid", "invalid_reason", "valid_fraction",
             "cloud_fraction", "nodata_fraction", "n_pixels", "cloud_method", *STAT_COLUMNS,
             "analysis", "analysis_fr"]
    rest = [c for c in store.records.columns if c not in first and c != "geometry"]
    return store.records[[*first, *rest, "geometry"]].sort_values(["parcel_id", "date"]).reset_index(drop=True)


def write_export(store: Store, fmt: str, out: Path) -> int:
    """Write the export in `fmt` to `out`; returns the number of rows."""
    frame = export_frame(store)
    if fmt == "csv":
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table["geometry_wkt"] = frame.geometry.to_wkt()
        table.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    elif fmt == "geojson":
        frame.to_file(out, driver="GeoJSON")
    else:
        raise InputError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    return len(frame)
