"""Read-side queries over a store for people: similar parcels, a parcel's history, and exports.

Built on the store's query API (`Store.search`, `Store.history`, `Store.records`); column lists
come from the record schema. `similar` is the one similar-parcel search: the command line, the
assistant's retriever and the app all call it, so "similar" means the same everywhere: cosine
similarity of the stored embeddings, other parcels' usable observations only (the observation
rule of `indexer.observations`), optionally within a crop (`indexer.core.schema.crop_column`) or
a date window. `history` gives each date's observation status by the same rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd

from indexer.core.errors import InputError, StoreError
from indexer.core.schema import (
    FLAG_COLUMNS, QUALITY_COLUMNS, STAT_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS, attribute_columns, crop_column,
)
from indexer.filters import RecordFilter
from indexer.observations import Suspects, find_suspects, observation_statuses, usable_mask
from indexer.store import Store

EXPORT_FORMATS = ("csv", "parquet", "geojson")


def similar(
    store: Store,
    parcel_id: str | None = None,
    date: str | None = None,
    k: int = 10,
    *,
    record_id: int | None = None,
    crop: str | Sequence[str] | None = None,
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    where: RecordFilter | None = None,
    per_parcel: bool = False,
    include_same_parcel: bool = False,
    include_invalid: bool = False,
    suspects: Suspects | None = None,
    full: bool = False,
) -> pd.DataFrame:
    """The `k` records most similar to one record by embedding cosine similarity: the one search
    the command line, the assistant and the app share.

    The record is (`parcel_id`, `date`) or `record_id`. Hits are other parcels only by default (a
    parcel's own dates are its history, not "similar parcels elsewhere") and usable observations
    only (`indexer.observations`: a cloud is similar to every other cloud, and a suspect scene or
    a parcel too small for a reliable value is no reference); `include_invalid` lifts that.
    Optional limits: `crop` (one value or several, matched case- and accent-insensitively on the
    store's crop attribute, `crop_column`), a date window `date_from`..`date_to` (inclusive), and
    any further `where` filter. `per_parcel` keeps each parcel's best record only (k parcels).

    Returns `score` (cosine similarity), `distance` (1 - score), the summary columns, `status`
    and `record_id`, best first; `full` returns every record column instead of the summary ones.
    StoreError when the record itself is not valid (its embedding describes clouds or missing data).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InputError(f"the number of similar records must be positive, got {k}", field="k", value=k)
    if record_id is not None:
        target = store.by_ids([int(record_id)]).iloc[0]
    elif parcel_id is not None and date is not None:
        target = store.record(parcel_id, date)
    else:
        raise InputError("similar needs a record: a parcel and a date, or a record id", field="record_id")
    if not target["valid"] and not include_invalid:
        raise StoreError(
            f"parcel {target['parcel_id']!r} on {target['date']} is flagged not valid ({target['invalid_reason']}); "
            "its embedding describes clouds or missing data. Pick another date of its history.",
            path=store.path, field="date", value=str(target["date"]),
        )
    rid = int(target["record_id"])
    records = store.records()
    suspects = find_suspects(records) if suspects is None else suspects
    attributes = {}
    if crop is not None:
        column = crop_column(records)
        if column is None:
            raise InputError(f"{store.path}: the store has no crop attribute to filter on (attributes: "
                             f"{', '.join(attribute_columns(records)) or 'none'})", path=store.path, field="crop",
                             value=crop)
        attributes[column] = crop
    base = where or RecordFilter()
    allowed = records[base.mask(records)]
    allowed = allowed[RecordFilter(
        date_from=date_from, date_to=date_to, attributes=attributes, exclude_record_ids=(rid,),
        exclude_parcel_ids=() if include_same_parcel else (str(target["parcel_id"]),),
    ).mask(allowed)]
    if not include_invalid:
        allowed = allowed[usable_mask(allowed, suspects)]
    ids = tuple(int(i) for i in allowed["record_id"])
    wanted = k
    while True:  # per_parcel: widen the search until k distinct parcels (or every record) are in
        hits = store.search(store.vector(rid), min(wanted, len(ids)), RecordFilter(record_ids=ids)) if ids else []
        rows = store.by_ids([h.record_id for h in hits]).assign(score=[h.score for h in hits])
        if per_parcel:
            rows = rows.drop_duplicates("parcel_id", keep="first")
        if len(rows) >= k or wanted >= len(ids):
            break
        wanted *= 4
    rows = rows.head(k).assign(distance=lambda t: 1.0 - t["score"])
    rows["status"] = observation_statuses(rows, suspects)["status"].to_numpy() if len(rows) else []
    first = ["score", "distance", *SUMMARY_COLUMNS, "status", "record_id"]
    columns = first + [c for c in rows.columns if c not in first] if full else first
    return rows[columns].reset_index(drop=True)


def history(store: Store, parcel_id: str, *, suspects: Suspects | None = None) -> pd.DataFrame:
    """Every date of one parcel, oldest first, with its observation `status` and `status_reason`
    (`indexer.observations`; suspect dates from the whole store unless `suspects` is given)."""
    rows = store.history(parcel_id)
    suspects = find_suspects(store.records()) if suspects is None else suspects
    rows = pd.concat([rows, observation_statuses(rows, suspects)[["status", "status_reason"]]], axis=1)
    return rows[[*SUMMARY_COLUMNS, "status", "status_reason", "invalid_reason", TEXT_COLUMNS["en"],
                 "record_id"]].reset_index(drop=True)


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
