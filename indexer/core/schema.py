"""The record schema, declared once: every column of a store record, its type and its role.

One record per (parcel, acquisition date). Every reader of a store (export, history, describe,
evaluation, training, the assistant) takes its column lists from here instead of picking columns
by name patterns, and `Store.upsert` checks incoming rows against it (`validate`).

Parcel attributes (the parcels file's own columns, e.g. crop labels) are typed columns named
``attr_<column>``: text stays text, numbers stay numbers, so "the maize fields" is a column
filter. Schema version 1 kept them as one JSON string in ``attributes``; `attributes_from_json`
turns such a store's column into the version-2 columns when it is opened.

Optional columns (`Column.optional`) were added to version 2 without a version bump: a store
written before them reads as it is, their values unknown (NaN), and rows may omit them. They are
the observation-quality rule's (QUALITY_RULE_VERSION, see `indexer.observations`): the snow share,
the vegetation+soil share and the rule version each record was indexed under.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from indexer.core.errors import InputError
from indexer.core.indices import INDICES, STAT_COLUMNS, STATISTICS  # STAT_COLUMNS: part of the schema

SCHEMA_VERSION = 2
#: Version of the observation-quality rule written into each record's ``quality_rule``: 2 treats
#: Sen2Cor dark (2), unclassified (7) and snow (11) pixels as not clear (version 1, recorded by its
#: absence, counted them clear) and records the snow and vegetation+soil shares.
QUALITY_RULE_VERSION = 2
#: Schema versions `Store.open` can read (older ones are upgraded in memory, written as current).
READABLE_VERSIONS = (1, 2)
ATTRIBUTE_PREFIX = "attr_"
#: The one column of schema version 1 that held every parcel attribute as a JSON object.
LEGACY_ATTRIBUTES = "attributes"

#: Column roles.
ID, KEY, PROVENANCE, QUALITY, FLAG, STAT, TEXT, GEOMETRY = (
    "id", "key", "provenance", "quality", "flag", "stat", "text", "geometry")


@dataclass(frozen=True)
class Column:
    """One record column: its name, pandas dtype kind, role and meaning."""

    name: str
    dtype: str  # "int64", "float64", "bool", "string", "geometry"
    role: str
    doc: str
    optional: bool = False  # may be absent from rows and stores (read as unknown)


INDEX_NAMES: tuple[str, ...] = tuple(i.name for i in INDICES)


def stat_column(index: str, statistic: str = "mean") -> str:
    """The column of one index statistic, e.g. ``stat_column("ndvi", "p10") == "ndvi_p10"``."""
    if index not in INDEX_NAMES:
        raise InputError(f"unknown index {index!r}; known: {', '.join(INDEX_NAMES)}", field="index", value=index)
    if statistic not in STATISTICS:
        raise InputError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}",
                         field="statistic", value=statistic)
    return f"{index}_{statistic}"


_BASE: tuple[Column, ...] = (
    Column("record_id", "int64", ID, "FAISS id of the record's embedding; stable when re-indexed"),
    Column("parcel_id", "string", KEY, "parcel identifier (from the parcels file, or a grid cell id)"),
    Column("date", "string", KEY, "acquisition date, ISO YYYY-MM-DD"),
    Column("source", "string", PROVENANCE, "path of the raster, band folder or STAC item the record was read from"),
    Column("tile", "string", PROVENANCE, "Sentinel-2 MGRS tile, when known"),
    Column("level", "string", PROVENANCE, "processing level (L1C or L2A)"),
    Column("source_crs", "string", PROVENANCE, "CRS of the parcels file the geometry came from"),
    Column("valid", "bool", FLAG, "false when too few cloud-free pixels: the observation is unusable"),
    Column("invalid_reason", "string", FLAG, "why the record is not valid (empty when valid)"),
    Column("valid_fraction", "float64", QUALITY, "share of parcel pixels that are clear and have data"),
    Column("cloud_fraction", "float64", QUALITY, "share of parcel pixels masked as cloud or shadow"),
    Column("nodata_fraction", "float64", QUALITY, "share of parcel pixels without data"),
    Column("n_pixels", "int64", QUALITY, "parcel pixels at 10 m"),
    Column("snow_fraction", "float64", QUALITY, "share of observed parcel pixels classified snow (SCL 11); "
           "NaN without SCL or in records indexed before quality rule 2", optional=True),
    Column("vegsoil_fraction", "float64", QUALITY, "share of parcel pixels classified vegetation or bare soil "
           "(SCL 4, 5); NaN without SCL or in records indexed before quality rule 2", optional=True),
    Column("quality_rule", "int64", PROVENANCE, "observation-quality rule the record was indexed under "
           "(QUALITY_RULE_VERSION; absent: rule 1)", optional=True),
    Column("cloud_method", "string", PROVENANCE, "scl, s2cloudless or spectral"),
)
#: One column per index statistic, as `indexer.core.indices` computes them (STAT_COLUMNS).
_STATS: tuple[Column, ...] = tuple(
    Column(name, "float64", STAT, "{1} of {0} over the valid parcel pixels (NaN without its bands)".format(
        *name.upper().split("_")))
    for name in STAT_COLUMNS
)
_REST: tuple[Column, ...] = (
    Column("analysis", "string", TEXT, "agronomic analysis written from the indices, English"),
    Column("analysis_fr", "string", TEXT, "the same analysis, French"),
    Column("imputed_bands", "string", PROVENANCE, "encoder bands filled from the nearest band, e.g. B01<-B02"),
    Column("radiometry", "string", PROVENANCE, "DN offset and scale used, and where they came from"),
    Column("encoder", "string", PROVENANCE, "encoder id of the embedding"),
    Column("indexed_at", "string", PROVENANCE, "UTC time the record was written"),
    Column("geometry", "geometry", GEOMETRY, "parcel polygon, WGS84"),
)

#: Every fixed column, in table order (parcel attributes follow as ``attr_*`` columns).
COLUMNS: tuple[Column, ...] = _BASE + _STATS + _REST
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: The mean of every index: the values shown and compared at a glance.
MEAN_COLUMNS: tuple[str, ...] = tuple(stat_column(i) for i in INDEX_NAMES)
TEXT_COLUMNS: Mapping[str, str] = {"en": "analysis", "fr": "analysis_fr"}
QUALITY_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role == QUALITY)
FLAG_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role == FLAG)
#: Columns rows and stores may lack (read as unknown).
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.optional)
#: Columns a caller hands to `Store.upsert` (the store assigns `record_id`).
INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMN_NAMES if c != "record_id")
#: Columns shown in tables and used to compare parcels at a glance.
SUMMARY_COLUMNS: tuple[str, ...] = ("parcel_id", "date", "valid", "valid_fraction", *MEAN_COLUMNS)

_KIND_CHECKS = {
    "int64": pd.api.types.is_integer_dtype,
    "float64": lambda s: pd.api.types.is_float_dtype(s) or pd.api.types.is_integer_dtype(s),
    "bool": pd.api.types.is_bool_dtype,
    "string": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
}


def attribute_column(name: str) -> str:
    """The record column of a parcel attribute: ``crop`` and ``attr_crop`` both give ``attr_crop``."""
    return name if name.startswith(ATTRIBUTE_PREFIX) else f"{ATTRIBUTE_PREFIX}{name}"


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The parcel-attribute columns of a record table, in table order."""
    return [c for c in frame.columns if isinstance(c, str) and c.startswith(ATTRIBUTE_PREFIX)]


def crop_column(frame: pd.DataFrame) -> str | None:
    """The parcel attribute that names the crop, or None.

    The rule (parcels files name it crop_name, CROP, crop_label, culture...): among the text
    ``attr_*`` columns whose name contains "crop" or "culture", one that also says "name" or
    "label" first, then any; a numeric code column (ct_code) never names the crop.
    """
    candidates = [c for c in attribute_columns(frame)
                  if any(w in c.lower() for w in ("crop", "culture"))
                  and not (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))]
    named = [c for c in candidates if any(w in c.lower() for w in ("name", "label"))]
    return (named or candidates or [None])[0]


def attributes_frame(attributes: pd.DataFrame) -> pd.DataFrame:
    """A parcels file's own columns as ``attr_*`` record columns (numbers stay numeric, the rest text)."""
    out = {}
    for name in attributes.columns:
        series = attributes[name]
        if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            series = series.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
            series = series.astype("string")
        out[attribute_column(str(name))] = series.to_numpy()
    return pd.DataFrame(out, index=attributes.index)


def attributes_from_json(values: pd.Series) -> pd.DataFrame:
    """Schema-1 ``attributes`` JSON strings -> ``attr_*`` columns (one per key seen)."""
    decoded = [json.loads(v) if isinstance(v, str) and v else {} for v in values]
    return attributes_frame(pd.DataFrame(decoded, index=values.index))


def validate(frame: pd.DataFrame, *, with_id: bool = False) -> None:
    """InputError naming the first column of `frame` that is missing or of the wrong type.

    `with_id` also requires ``record_id`` (a stored table rather than rows to upsert).
    """
    required = COLUMN_NAMES if with_id else INPUT_COLUMNS
    missing = [c for c in required if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise InputError(f"record rows lack the column(s) {', '.join(missing)} of the record schema "
                         f"(version {SCHEMA_VERSION})", field=missing[0])
    for column in COLUMNS:
        if column.name not in frame.columns or column.dtype == "geometry":
            continue
        series = frame[column.name]
        if len(series) and series.isna().all() and column.dtype in ("float64", "string"):
            continue  # an all-NaN statistic (no band for it) or an empty text is still that type
        # An optional integer column holds NaN where older rows lack it: float is that column too.
        kind = "float64" if column.optional and column.dtype == "int64" else column.dtype
        if not _KIND_CHECKS[kind](series):
            raise InputError(f"record column {column.name!r} holds {series.dtype}, the schema says {column.dtype}",
                             field=column.name, value=str(series.dtype))
