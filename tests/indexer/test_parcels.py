"""Tests for indexer.parcels: reading real LPIS samples, ids, geometry repair, footprints, grids."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
from affine import Affine
from shapely.geometry import Polygon, box

from indexer.parcels import (
    Parcels,
    attributes_json,
    grid_parcels,
    in_footprint,
    read_parcels,
    to_crs,
)
from indexer.core.errors import InputError  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "parcels-lpis-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"real parcel samples not present at {SAMPLES}"
)

# file, parcel count, EPSG, crop label columns, id column detected (None: ids generated)
REAL_FILES = [
    ("NL_brpgewaspercelen_definitief_2023_sample.gpkg", 100, 28992, ["gewas", "gewascode"], None),
    ("AT_inspire_schlaege_2025-1_polygon_sample.gpkg.zip", 100, 31287,
     ["SNAR_BEZEICHNUNG", "SNAR_CODE"], None),
    ("DK_Marker_2026_sample.zip", 100, 25832, ["Afgroede", "Afgkode"], None),
    ("SI_EuroCrops_SI_2021_sample.zip", 100, 3794, ["EC_hcat_n", "EC_hcat_c", "RASTLINA"], "ID"),
    ("FR_lpis_iacs_eolearn_import-gpkg-test.gpkg", 193, 2154, ["code_cultu"], "id"),
]

UTM31 = "EPSG:32631"


def _squares(n: int, *, size: float = 100.0, step: float = 1000.0) -> list[Polygon]:
    """n squares of ``size`` m spaced ``step`` m apart along x, near Hesbaye in UTM 31N."""
    x0, y0 = 650000.0, 5610000.0
    return [box(x0 + i * step, y0, x0 + i * step + size, y0 + size) for i in range(n)]


def _tiny_gdf(n: int = 3, **columns) -> gpd.GeoDataFrame:
    data = {"crop": [f"crop{i}" for i in range(n)], **columns}
    return gpd.GeoDataFrame(data, geometry=_squares(n), crs=UTM31)


# ---------------------------------------------------------------------------------------------
# Real files
# ---------------------------------------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize(("name", "count", "epsg", "labels", "id_col"), REAL_FILES)
def test_real_files_load(name, count, epsg, labels, id_col):
    parcels = read_parcels(SAMPLES / name)
    gdf = parcels.gdf
    assert isinstance(parcels, Parcels)
    assert len(gdf) == count
    assert gdf.crs.to_epsg() == epsg
    assert parcels.id_column == id_col
    assert parcels.dropped == []
    assert gdf["parcel_id"].is_unique
    assert (gdf["parcel_id"].str.len() > 0).all()
    assert set(labels) <= set(gdf.columns)
    assert gdf.geometry.is_valid.all()
    assert set(gdf.geom_type) <= {"Polygon", "MultiPolygon"}
    assert list(gdf.columns[:1]) == ["parcel_id"] and gdf.geometry.name == "geometry"
    # Labels are serialisable for storage and search.
    records = [json.loads(s) for s in attributes_json(gdf)]
    assert len(records) == count
    assert all(lab in records[0] for lab in labels)
    assert "parcel_id" not in records[0] and "geometry" not in records[0]


@needs_samples
def test_generated_ids_are_stable_and_named_after_file():
    path = SAMPLES / "NL_brpgewaspercelen_definitief_2023_sample.gpkg"
    first, second = read_parcels(path), read_parcels(str(path))
    assert first.gdf["parcel_id"].tolist() == second.gdf["parcel_id"].tolist()
    assert first.gdf["parcel_id"].iloc[0] == "NL_brpgewaspercelen_definitief_2023_sample-00000"
    at = read_parcels(SAMPLES / "AT_inspire_schlaege_2025-1_polygon_sample.gpkg.zip")
    assert at.gdf["parcel_id"].iloc[1] == "AT_inspire_schlaege_2025-1_polygon_sample-00001"


@needs_samples
def test_real_id_column_float_ids_lose_decimal():
    # GEO_ID is read as float64 (106806035.0) and must become "106806035".
    parcels = read_parcels(SAMPLES / "AT_inspire_schlaege_2025-1_polygon_sample.gpkg.zip", "GEO_ID")
    assert parcels.id_column == "GEO_ID"
    assert parcels.gdf["parcel_id"].iloc[0] == "106806035"
    assert "GEO_ID" in parcels.gdf.columns  # original column kept as-is


@needs_samples
def test_attributes_json_handles_timestamps_bytes_nan():
    gdf = read_parcels(SAMPLES / "AT_inspire_schlaege_2025-1_polygon_sample.gpkg.zip").gdf
    record = json.loads(attributes_json(gdf)[0])
    assert record["GEOM_DATE_CREATED"].startswith("2022-10-01T10:30:09")
    assert record["GML_LENGTH"] is None
    assert record["SNAR_BEZEICHNUNG"].startswith("MÄHWIESE")


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


def test_geojson_round_trip(tmp_path):
    path = tmp_path / "fields.geojson"
    _tiny_gdf(3, Parcel_ID=[7, 8, 9]).to_file(path, driver="GeoJSON")
    parcels = read_parcels(path)
    assert parcels.gdf.crs.to_epsg() == 32631
    assert parcels.id_column == "Parcel_ID"
    assert parcels.gdf["parcel_id"].tolist() == ["7", "8", "9"]
    assert parcels.gdf["crop"].tolist() == ["crop0", "crop1", "crop2"]
    assert parcels.gdf.geometry.iloc[0].equals(_squares(1)[0])


def test_geoparquet_round_trip_fiboa_id(tmp_path):
    path = tmp_path / "fields.parquet"
    _tiny_gdf(3, id=["a", "b", "c"]).to_parquet(path)
    parcels = read_parcels(path)
    assert parcels.gdf.crs.to_epsg() == 32631
    assert parcels.id_column == "id"
    assert parcels.gdf["parcel_id"].tolist() == ["a", "b", "c"]
    assert parcels.gdf.geometry.area.round().tolist() == [10000.0] * 3


def test_plain_shapefile_and_zip_with_subfolder(tmp_path):
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    _tiny_gdf(2).to_file(shp_dir / "fields.shp")
    assert len(read_parcels(shp_dir / "fields.shp").gdf) == 2

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f"deep/folder/{f.name}")
    parcels = read_parcels(archive)
    assert len(parcels.gdf) == 2
    assert parcels.gdf.crs.to_epsg() == 32631
    assert parcels.gdf["parcel_id"].tolist() == ["export-00000", "export-00001"]


def test_zip_without_parcel_file(tmp_path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(InputError, match="notes.zip.*no shapefile"):
        read_parcels(archive)


# ---------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------


def test_explicit_id_column_and_missing_column(tmp_path):
    path = tmp_path / "f.gpkg"
    _tiny_gdf(3, code=[10.0, 11.0, 12.0]).to_file(path)
    parcels = read_parcels(path, id_column="code")
    assert parcels.id_column == "code"
    assert parcels.gdf["parcel_id"].tolist() == ["10", "11", "12"]

    with pytest.raises(InputError) as err:
        read_parcels(path, id_column="nope")
    msg = str(err.value)
    assert "f.gpkg" in msg and "'nope'" in msg and "crop" in msg and "code" in msg


def test_duplicate_ids(tmp_path):
    path = tmp_path / "dups.geojson"
    _tiny_gdf(3, parcel_id=["x", "y", "x"]).to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match=r"dups\.geojson.*'parcel_id'.*'x'"):
        read_parcels(path)


def test_missing_ids(tmp_path):
    path = tmp_path / "holes.gpkg"
    _tiny_gdf(3, id=["a", None, "c"]).to_file(path)
    with pytest.raises(InputError, match=r"holes\.gpkg.*'id'.*without an id"):
        read_parcels(path)


def test_original_parcel_id_column_is_kept_when_another_is_chosen(tmp_path):
    path = tmp_path / "f.gpkg"
    _tiny_gdf(2, parcel_id=["p1", "p2"], code=["c1", "c2"]).to_file(path)
    gdf = read_parcels(path, id_column="code").gdf
    assert gdf["parcel_id"].tolist() == ["c1", "c2"]
    assert gdf["source_parcel_id"].tolist() == ["p1", "p2"]


# ---------------------------------------------------------------------------------------------
# Geometry repair
# ---------------------------------------------------------------------------------------------


def test_bow_tie_repaired_and_degenerate_dropped(tmp_path):
    bow_tie = Polygon([(0, 0), (200, 200), (200, 0), (0, 200), (0, 0)])
    degenerate = Polygon([(0, 0), (100, 100), (200, 200), (0, 0)])  # zero area, line-like
    x0, y0 = 650000, 5610000
    shapes = (box(0, 0, 50, 50), bow_tie, degenerate)
    geoms = [shapely.affinity.translate(g, x0, y0) for g in shapes]
    gdf = gpd.GeoDataFrame({"parcel_id": ["ok", "bow", "flat"]}, geometry=geoms, crs=UTM31)
    path = tmp_path / "bad.gpkg"
    gdf.to_file(path)

    parcels = read_parcels(path)
    assert parcels.repaired == 1
    assert [pid for pid, _ in parcels.dropped] == ["flat"]
    assert parcels.gdf["parcel_id"].tolist() == ["ok", "bow"]
    fixed = parcels.gdf.geometry.iloc[1]
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon"
    assert fixed.area == pytest.approx(20000.0)  # both lobes kept


def test_null_geometry_dropped_and_nothing_left_errors(tmp_path):
    gdf = gpd.GeoDataFrame({"crop": ["a", "b"]}, geometry=[None, _squares(1)[0]], crs=UTM31)
    path = tmp_path / "nulls.gpkg"
    gdf.to_file(path)
    parcels = read_parcels(path)
    assert parcels.dropped == [("nulls-00000", "missing geometry")]
    assert parcels.gdf["parcel_id"].tolist() == ["nulls-00001"]

    line = shapely.LineString([(0, 0), (1, 1)])
    lines = gpd.GeoDataFrame({"crop": ["a"]}, geometry=[line], crs=UTM31)
    path = tmp_path / "lines.geojson"
    lines.to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match=r"lines\.geojson.*no usable polygon"):
        read_parcels(path)


# ---------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
@pytest.mark.parametrize("name", ["nocrs.gpkg", "nocrs.shp"])
def test_file_without_crs(tmp_path, name):
    path = tmp_path / name
    gpd.GeoDataFrame({"crop": ["a"]}, geometry=_squares(1), crs=None).to_file(path)
    with pytest.raises(InputError, match=re.escape(name) + ".*no CRS"):
        read_parcels(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.gpkg"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError) as err:
        read_parcels(path)
    msg = str(err.value)
    assert "corrupt.gpkg" in msg and "\n" not in msg


def test_corrupt_parquet_and_zip(tmp_path):
    for name in ("bad.parquet", "bad.zip"):
        path = tmp_path / name
        path.write_bytes(b"not really " * 50)
        with pytest.raises(InputError, match=re.escape(name)):
            read_parcels(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match=r"empty\.geojson.*no features"):
        read_parcels(empty)

    zero = tmp_path / "zero.gpkg"
    zero.touch()
    with pytest.raises(InputError, match=r"zero\.gpkg.*empty"):
        read_parcels(zero)

    with pytest.raises(InputError, match=r"absent\.gpkg.*not found"):
        read_parcels(tmp_path / "absent.gpkg")


# ---------------------------------------------------------------------------------------------
# Reprojection, footprint, grid, attributes
# ---------------------------------------------------------------------------------------------


def test_in_footprint_on_reprojected_subset():
    ids = [f"p{i}" for i in range(10)]
    squares = gpd.GeoDataFrame({"parcel_id": ids}, geometry=_squares(10), crs=UTM31)
    in_wgs84 = to_crs(squares, "EPSG:4326")
    assert in_wgs84.crs.to_epsg() == 4326
    subset = in_wgs84.iloc[2:9]  # p2..p8
    # Raster box over p0..p4 in UTM; p4 only overlaps by its left half.
    bounds = (649990.0, 5609990.0, 654050.0, 5610200.0)
    kept, outside = in_footprint(subset, UTM31, bounds)
    assert kept["parcel_id"].tolist() == ["p2", "p3", "p4"]
    assert outside == 4
    assert kept.crs.to_epsg() == 32631
    assert kept.geometry.iloc[0].area == pytest.approx(10000.0, rel=1e-6)


@needs_samples
def test_in_footprint_real_parcels():
    fr = read_parcels(SAMPLES / "FR_lpis_iacs_eolearn_import-gpkg-test.gpkg").gdf
    kept, outside = in_footprint(fr, UTM31, tuple(to_crs(fr, UTM31).total_bounds))
    assert (len(kept), outside) == (193, 0)
    kept, outside = in_footprint(fr, UTM31, (0.0, 0.0, 10.0, 10.0))
    assert (len(kept), outside) == (0, 193)


def test_grid_parcels_100_squares():
    transform = Affine(10, 0, 600000, 0, -10, 5700000)
    grid = grid_parcels("EPSG:32631", transform, 100, 100, 10)
    assert len(grid) == 100
    assert grid.crs.to_epsg() == 32631
    assert np.allclose(grid.geometry.area, 10000.0)
    widths = grid.geometry.bounds.eval("maxx - minx")
    assert np.allclose(widths, 100.0)
    assert grid.geometry.union_all().equals(box(600000, 5699000, 601000, 5700000))
    assert grid["parcel_id"].iloc[0] == "grid10-32631-600000-5700000"
    assert grid["parcel_id"].is_unique
    again = grid_parcels("EPSG:32631", transform, 100, 100, 10)
    assert again["parcel_id"].tolist() == grid["parcel_id"].tolist()


def test_grid_parcels_edges_and_crs_without_epsg():
    transform = Affine(10, 0, 600000, 0, -10, 5700000)
    assert len(grid_parcels(UTM31, transform, 105, 99, 10)) == 90  # partial edge cells dropped
    custom = "+proj=tmerc +lat_0=0 +lon_0=4.3 +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m"
    ids = grid_parcels(custom, transform, 20, 20, 10, prefix="g")["parcel_id"]
    assert ids.str.match(r"^g10-wkt[0-9a-f]{8}-600000-5700000$").iloc[0]
    again = grid_parcels(custom, transform, 20, 20, 10, prefix="g")["parcel_id"]
    assert ids.tolist() == again.tolist()
    with pytest.raises(InputError, match="larger than the raster"):
        grid_parcels(UTM31, transform, 5, 5, 10)


def test_attributes_json_values():
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": ["a", "b"],
            "code": np.array([1, 2], dtype=np.int32),
            "area": [1.5, np.nan],
            "day": pd.to_datetime(["2021-05-01", None]),
            "label": ["maïs", None],
            "blob": [b"\xff\x00", b"txt"],
        },
        geometry=_squares(2),
        crs=UTM31,
    )
    first, second = (json.loads(s) for s in attributes_json(gdf))
    assert first == {"code": 1, "area": 1.5, "day": "2021-05-01T00:00:00", "label": "maïs",
                     "blob": "/wA="}
    assert second == {"code": 2, "area": None, "day": None, "label": None, "blob": "txt"}
