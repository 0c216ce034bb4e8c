"""Record rows that satisfy the record schema, for tests that write a store directly.

    rows = record_rows([("a", "2021-06-01"), ("b", "2021-06-01")], ndvi_mean=0.5)
"""

from __future__ import annotations

import geopandas as gpd
from shapely.geometry import box

from indexer.core.schema import COLUMNS, INPUT_COLUMNS

_DEFAULTS = {"int64": 0, "float64": 0.0, "bool": True, "string": ""}


def record_rows(keys: list[tuple[str, str]], geometry=None, **values) -> gpd.GeoDataFrame:
    """One schema-complete row per (parcel_id, date); `values` set columns (scalars or lists)."""
    n = len(keys)
    data = {c.name: _DEFAULTS[c.dtype] for c in COLUMNS if c.name in INPUT_COLUMNS and c.dtype != "geometry"}
    data.update(valid_fraction=1.0, n_pixels=100, level="L2A", cloud_method="scl", encoder="test-enc",
                source="synthetic.tif")
    data.update(parcel_id=[p for p, _ in keys], date=[d for _, d in keys])
    data.update(values)
    frame = {k: (v if isinstance(v, list) else [v] * n) for k, v in data.items()}
    return gpd.GeoDataFrame(frame, geometry=geometry or [box(5.0, 50.0, 5.001, 50.001)] * n, crs="EPSG:4326")
