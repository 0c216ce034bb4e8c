"""Issue 18, items 1, 3 and 6 at the library's level: hostile inputs are refused by name with one
line, before any work; sizes are held to `Limits` from headers; verdicts say what is wrong.

Each test was run against the code before the change and failed there (the VRTs were read, the
URL was fetched, the limits did not exist, the 3-band raster was valid or crashed).
"""

from __future__ import annotations

import re
import resource
import zipfile

import pytest

import hostile_files as H
from indexer.core.errors import InputError
from indexer.core.limits import S2_TILE_PIXELS, Limits
from indexer.parcels import read_parcels
from indexer.pipeline import IndexConfig, prepare
from indexer.reader import ReadOptions, discover_inputs, open_scene
from indexer.safe_open import is_virtual


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- item 1: files opened only as what they claim ----------------------------------------------


@pytest.fixture
def secret_csv(tmp_path):
    return H.write_secret_csv(tmp_path / "outside")


def test_vrt_parcels_named_geojson_are_refused(tmp_path, secret_csv):
    path = H.write_vrt_parcels(tmp_path / "upload", secret_csv)
    with pytest.raises(InputError) as err:
        read_parcels(path)
    line = _one_line(err)
    assert str(path) in line and "VRT" in line and "refused" in line
    assert H.SECRET not in line


@pytest.mark.parametrize("name", ["fields.gpkg", "fields.shp", "fields.fgb", "fields.json"])
def test_vrt_parcels_under_any_parcels_name_are_refused(tmp_path, secret_csv, name):
    path = H.write_vrt_parcels(tmp_path / "upload", secret_csv, name=name)
    with pytest.raises(InputError, match=re.escape(name)) as err:
        read_parcels(path)
    assert H.SECRET not in str(err.value)


def test_vrt_parcels_inside_a_zip_are_refused(tmp_path, secret_csv):
    archive = H.write_zip(tmp_path / "fields.zip", {"export/fields.geojson": H.vrt_parcels_xml(f"CSV:{secret_csv}").encode()})
    with pytest.raises(InputError) as err:
        read_parcels(archive)
    line = _one_line(err)
    assert str(archive) in line and "fields.geojson" in line and "VRT" in line
    assert H.SECRET not in line


def test_driver_prefixed_and_virtual_parcels_paths_are_refused(tmp_path, secret_csv):
    for path in (f"CSV:{secret_csv}", f"/vsizip/{tmp_path}/x.zip/fields.geojson", "GeoJSON:/etc/passwd"):
        with pytest.raises(InputError, match="refused") as err:
            read_parcels(path)
        assert H.SECRET not in str(err.value)


def test_vrt_raster_named_tif_is_refused(tmp_path, rasters):
    path = H.write_vrt_raster(tmp_path / "upload", rasters["l2a_stack"])
    with pytest.raises(InputError) as err:
        open_scene(path)
    line = _one_line(err)
    assert str(path) in line and "VRT" in line and "refused" in line


def test_vrt_raster_is_refused_in_a_band_folder_too(tmp_path, rasters):
    folder = tmp_path / "S2_L2A_20210601_bands"
    H.write_stack(folder / "T31UES_20210601_B02.tif", ("B02",), 10.0)
    H.write_vrt_raster(folder, rasters["l2a_stack"], name="T31UES_20210601_B04.tif")
    with pytest.raises(InputError, match=r"B04\.tif.*VRT"):
        open_scene(folder)


def test_a_parcels_file_with_the_wrong_content_is_named(tmp_path):
    path = tmp_path / "fields.gpkg"
    path.write_text('{"type": "FeatureCollection", "features": []}')  # GeoJSON under a GeoPackage name
    with pytest.raises(InputError, match=r"fields\.gpkg: not a GPKG file"):
        read_parcels(path)


def test_vsicurl_sources_are_refused_without_a_request(tmp_path, rasters):
    served = rasters["l2a_stack"].parent
    with H.CountingServer(served) as server:
        url = server.url(rasters["l2a_stack"].name)
        for path in (f"/vsicurl/{url}", url):
            assert is_virtual(path)
            with pytest.raises(InputError, match="refused"):
                open_scene(path)
            with pytest.raises(InputError, match="refused"):
                discover_inputs([path])
        with pytest.raises(InputError, match="refused"):
            read_parcels(f"/vsicurl/{server.url('parcels.geojson')}")
        # A VRT that names the URL, and a STAC item whose asset is the URL: refused, nothing fetched.
        vrt = H.write_vrt_raster(tmp_path / "upload", rasters["l2a_stack"], source=f"/vsicurl/{url}")
        with pytest.raises(InputError, match="VRT"):
            open_scene(vrt)
        item = H.stac_item_with_remote_asset(tmp_path / "stac", url)
        with pytest.raises(InputError, match="not a local file"):
            open_scene(item)
        assert server.requests == []


def test_a_url_the_user_typed_is_read_when_allowed(rasters):
    """The command line allows the paths its user typed: the same URL is then read (GDAL's network
    is on for it alone), through the same GeoTIFF-only driver."""
    with H.CountingServer(rasters["l2a_stack"].parent) as server:
        scene = open_scene(f"/vsicurl/{server.url(rasters['l2a_stack'].name)}", ReadOptions(allow_virtual=True))
        with scene:
            assert scene.bands[:3] == ("B02", "B03", "B04") and scene.width == 64
        assert server.requests
    with H.CountingServer(rasters["parcels"].parent) as server:
        url = server.url(rasters["parcels"].name)
        with pytest.raises(InputError, match="refused"):
            read_parcels(url)
        assert server.requests == []
        assert len(read_parcels(url, allow_virtual=True).gdf) == 2


# --- item 3: limits, checked before any work ---------------------------------------------------


def test_sparse_world_raster_is_refused_before_memory_grows(tmp_path):
    path = H.write_sparse_world_raster(tmp_path / "upload")
    assert path.stat().st_size < 200_000
    before = _peak_rss_mb()
    with pytest.raises(InputError) as err:
        prepare(IndexConfig(store=tmp_path / "store", inputs=(str(path),), grid=10, progress=False))
    line = _one_line(err)
    assert str(path) in line and "36000 x 18000" in line
    assert f"{S2_TILE_PIXELS:,}" in line and "max_raster_pixels" in line
    assert _peak_rss_mb() - before < 100, "memory grew before the refusal"
    assert not (tmp_path / "store").exists()


def test_grid_cells_are_counted_before_they_are_cut(tmp_path, rasters):
    limits = Limits(max_grid_cells=50)
    config = IndexConfig(store=tmp_path / "store", inputs=(str(rasters["l2a_stack"]),), grid=8,
                         read=ReadOptions(limits=limits), progress=False)
    with pytest.raises(InputError, match=r"grid cells: 64, over the limit of 50.*max_grid_cells"):
        prepare(config)
    # The same raster under the default limits: 64 cells are fine.
    summary, _, plan = prepare(IndexConfig(store=tmp_path / "store", inputs=(str(rasters["l2a_stack"]),), grid=8,
                                           progress=False))
    assert len(plan[0][1]) == 64


def test_zip_of_many_features_is_refused_from_its_header(tmp_path):
    count = Limits().max_parcel_features + 1
    archive = H.write_many_features_zip(tmp_path / "fields.zip", count)
    before = _peak_rss_mb()
    with pytest.raises(InputError) as err:
        read_parcels(archive)
    line = _one_line(err)
    assert str(archive) in line and f": {count:,}," in line and f"limit of {count - 1:,}" in line
    assert "max_parcel_features" in line
    assert _peak_rss_mb() - before < 100


def test_vertices_are_limited(tmp_path, rasters):
    with pytest.raises(InputError, match=r"number of vertices: 10, over the limit of 9"):
        read_parcels(rasters["parcels"], limits=Limits(max_parcel_vertices=9))
    assert len(read_parcels(rasters["parcels"], limits=Limits(max_parcel_vertices=10)).gdf) == 2


def test_zip_bomb_is_refused_from_its_directory(tmp_path):
    archive = H.write_bomb_zip(tmp_path / "fields.zip")
    assert archive.stat().st_size < 8_000_000
    before = _peak_rss_mb()
    with pytest.raises(InputError) as err:
        read_parcels(archive)
    line = _one_line(err)
    assert str(archive) in line and "uncompressed size" in line and f"limit of {1 << 30:,}" in line
    assert _peak_rss_mb() - before < 100


def test_zip_with_too_many_entries_is_refused(tmp_path, rasters):
    members = {f"junk/{i}.txt": b"x" for i in range(Limits().max_zip_members)}
    members["fields.geojson"] = rasters["parcels"].read_bytes()
    archive = H.write_zip(tmp_path / "fields.zip", members)
    with pytest.raises(InputError, match=r"number of entries: 101, over the limit of 100"):
        read_parcels(archive)


def test_zip_members_are_extracted_by_base_name_only(tmp_path, rasters):
    archive = H.write_zip(tmp_path / "fields.zip", {"../../escape/fields.geojson": rasters["parcels"].read_bytes()})
    assert len(read_parcels(archive).gdf) == 2
    assert not (tmp_path.parent / "escape").exists()


def test_limits_from_the_environment():
    limits = Limits.from_env({"XVISION_MAX_RASTER_PIXELS": "1_000", "XVISION_MAX_PIXEL_SIZE_M": "20"})
    assert limits.max_raster_pixels == 1000 and limits.max_pixel_size_m == 20.0
    assert limits.max_grid_cells == Limits().max_grid_cells
    with pytest.raises(InputError, match="XVISION_MAX_GRID_CELLS='many' is not a number"):
        Limits.from_env({"XVISION_MAX_GRID_CELLS": "many"})
    with pytest.raises(InputError, match="max_zip_members must be a positive number"):
        Limits(max_zip_members=0)


# --- item 6: honest verdicts -------------------------------------------------------------------


def test_pixels_coarser_than_sentinel2_are_refused(tmp_path):
    coarse = H.write_stack(tmp_path / "S2_coarse_2021-06-01.tif", ("B02", "B03", "B04", "B08"), 1000.0)
    with pytest.raises(InputError) as err:
        open_scene(coarse)
    line = _one_line(err)
    assert str(coarse) in line and "1,000 m" in line and "coarser than Sentinel-2's" in line
    # 60 m, Sentinel-2's coarsest band, is still read.
    with open_scene(H.write_stack(tmp_path / "S2_60m_2021-06-01.tif", ("B02", "B03", "B04", "B08"), 60.0)) as scene:
        assert scene.width == 64
    # Degrees are converted: 0.01 degree is about 1.1 km at the equator.
    geographic = H.write_stack(tmp_path / "S2_deg_2021-06-01.tif", ("B02", "B03", "B04", "B08"), 0.01,
                               crs="EPSG:4326")
    with pytest.raises(InputError, match="coarser than Sentinel-2's"):
        open_scene(geographic)


@pytest.fixture(scope="module")
def encoder():
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    return build_encoder(DEFAULT_ENCODER)


@pytest.mark.parametrize("bands, method", [
    (("B04", "B03", "B02"), "spectral-test"),  # true colour: no NIR, no NDVI
    (("B08", "B04", "B03"), "none"),  # no blue: no cloud test can run (this crashed before)
])
def test_rasters_missing_bands_are_flagged_missing_bands_not_cloud(tmp_path, rasters, encoder, bands, method):
    from indexer.pipeline import index
    from indexer.store import Store

    path = H.write_stack(tmp_path / f"S2_{''.join(bands)}_2021-06-01.tif", bands, 10.0)
    store = tmp_path / "store"
    summary = index(IndexConfig(store=store, inputs=(str(path),), parcels=rasters["parcels"], progress=False), encoder)
    records = Store.open(store).records()
    assert len(records) == 2
    assert set(records["invalid_reason"]) == {"missing bands"}
    assert not records["valid"].any()
    assert set(records["cloud_method"]) == {method}
    assert (records["cloud_fraction"] == 0).all()
    assert summary.flagged == {"missing bands": 2}


def test_complete_rasters_are_still_valid(tmp_path, rasters, encoder):
    from indexer.pipeline import index
    from indexer.store import Store

    path = H.write_stack(tmp_path / "S2_full_2021-06-01.tif", ("B02", "B03", "B04", "B08", "B11"), 10.0)
    index(IndexConfig(store=tmp_path / "store", inputs=(str(path),), parcels=rasters["parcels"], progress=False), encoder)
    records = Store.open(tmp_path / "store").records()
    assert records["valid"].all() and set(records["invalid_reason"]) == {""}


def test_zip_member_names_in_the_archive_are_reported(tmp_path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "x")
    with pytest.raises(InputError, match=r"notes\.zip: the zip holds no shapefile"):
        read_parcels(archive)


def test_a_damaged_zip_member_is_one_line(tmp_path, rasters):
    archive = tmp_path / "fields.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("fields.geojson", rasters["parcels"].read_bytes())
    data = bytearray(archive.read_bytes())
    at = data.index(b'"FeatureCollection"')
    data[at + 1] ^= 0x20  # one flipped bit inside the member: its CRC no longer matches
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        read_parcels(archive)
    line = _one_line(err)
    assert str(archive) in line and "cannot unpack the zip" in line and "CRC" in line
