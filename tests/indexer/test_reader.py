"""Tests for indexer.reader: band naming, dates, radiometry, mixed resolutions, SAFE, STAC, real data."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

import make_rasters as mr
from indexer.core.bands import CROMA_BANDS
from indexer.clouds import cloud_mask
from indexer.radiometry import Radiometry
from indexer.reader import (
    ReadOptions,
    date_from_text,
    discover_inputs,
    open_scene,
    parse_bands_option,
)
from indexer.core.errors import InputError

GRID_10M = from_origin(mr.ORIGIN_X, mr.ORIGIN_Y, 10.0, 10.0)


def read_all(scene):
    with scene:
        return scene.read(Window(0, 0, scene.width, scene.height))


def expected_halves(size: int, band: str, left: dict, right: dict) -> np.ndarray:
    out = np.empty((size, size), np.float32)
    out[:, : size // 2] = left[band]
    out[:, size // 2 :] = right[band]
    return out


# ---------------------------------------------------------------------------------------------
# band names


def test_band_names_from_descriptions(rasters):
    scene = open_scene(rasters["l2a_stack"])
    assert scene.bands == mr.STACK_BANDS
    assert scene.scl_ref is None
    assert scene.level == "L2A"
    assert str(scene.crs) == mr.CRS
    assert scene.transform == GRID_10M
    assert (scene.width, scene.height) == (mr.SIZE, mr.SIZE)
    assert scene.nodata["B04"] == (0.0, float(mr.NODATA))


def test_reflectance_of_the_two_fields(rasters):
    obs = read_all(open_scene(rasters["l2a_stack"]))
    assert obs.reflectance.shape == (len(mr.STACK_BANDS), mr.SIZE, mr.SIZE)
    assert obs.reflectance.dtype == np.float32
    for band in mr.STACK_BANDS:
        values = obs.band(band)
        assert np.nanmax(np.abs(values[2:, 2:30] - mr.VEGETATION[band])) < 1e-6, band
        assert np.nanmax(np.abs(values[2:, 34:62] - mr.BARE_SOIL[band])) < 1e-6, band
    for r, c in mr.NODATA_PIXELS:
        assert np.isnan(obs.reflectance[:, r, c]).all()


def test_bands_option_names_an_unnamed_stack(rasters):
    path = rasters["unnamed_bands"]
    # The library names what to give (the band order) as data; the CLI words it as --bands.
    with pytest.raises(InputError, match=r"not named as a Sentinel-2 band.*band order") as err:
        open_scene(path)
    assert err.value.field == "bands" and err.value.path == str(path)
    labels = parse_bands_option("b2, B3 ,red,nir")
    scene = open_scene(path, ReadOptions(bands=labels))
    assert scene.bands == ("B02", "B03", "B04", "B08")
    obs = read_all(scene)
    assert obs.band("B08")[40, 10] == pytest.approx(0.40, abs=1e-6)
    assert obs.band("B04")[40, 50] == pytest.approx(0.18, abs=1e-6)


def test_bands_option_skip(rasters):
    scene = open_scene(rasters["unnamed_bands"], ReadOptions(bands=("B02", "SKIP", "B04", "B08")))
    assert scene.bands == ("B02", "B04", "B08")
    assert read_all(scene).band("B08")[40, 10] == pytest.approx(0.40, abs=1e-6)


def test_bands_option_wins_over_descriptions(rasters):
    # The user's order is taken even when the file names its bands.
    order = ("B12", "B11", "B08", "B07", "B06", "B05", "B04", "B03", "B02")
    obs = read_all(open_scene(rasters["l2a_stack"], ReadOptions(bands=order)))
    assert obs.band("B02")[40, 10] == pytest.approx(mr.VEGETATION["B12"], abs=1e-6)


def test_bands_option_wrong_count(rasters):
    path = rasters["unnamed_bands"]
    with pytest.raises(InputError) as err:
        open_scene(path, ReadOptions(bands=("B02", "B03")))
    assert str(path) in str(err.value)
    assert "names 2 bands" in str(err.value) and "the file has 4" in str(err.value)
    assert err.value.field == "bands" and err.value.value == "B02,B03"


@pytest.mark.parametrize("value", ["", " , ", "B02,B13", "B02,cloud"])
def test_parse_bands_option_rejects(value):
    with pytest.raises(InputError, match="band") as err:
        parse_bands_option(value)
    assert err.value.field == "bands"


# ---------------------------------------------------------------------------------------------
# dates


def test_date_from_tags(rasters):
    assert open_scene(rasters["l2a_stack"]).date == dt.date(2021, 6, 1)


def test_date_from_name(rasters):
    assert open_scene(rasters["l2a_baseline0400"]).date == dt.date(2023, 3, 15)
    assert open_scene(rasters["l1c_band_folder"]).date == dt.date(2023, 6, 12)


def test_date_from_stac(rasters):
    assert open_scene(rasters["stac_item"]).date == dt.date(2023, 6, 12)


def test_date_option(rasters):
    with pytest.raises(InputError, match="no acquisition date.*give the date") as err:
        open_scene(rasters["undated_stack"])
    assert err.value.field == "date"
    day = dt.date(2020, 7, 14)
    assert open_scene(rasters["undated_stack"], ReadOptions(date=day)).date == day
    # The user's date wins over the file's own.
    assert open_scene(rasters["l2a_stack"], ReadOptions(date=day)).date == day
    assert open_scene(rasters["stac_item"], ReadOptions(date=day)).date == day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S2A_MSIL2A_20170613T101031_87_48", dt.date(2017, 6, 13)),
        ("S2_L2A_hesbaye_2021-06-01.tif", dt.date(2021, 6, 1)),
        ("x_20231399_20230201.tif", dt.date(2023, 2, 1)),  # not a calendar date: skipped
        ("no date here 123", None),
    ],
)
def test_date_from_text(text, expected):
    assert date_from_text(text) == expected


# ---------------------------------------------------------------------------------------------
# radiometry


def test_baseline_0400_offset_gives_the_same_reflectance(rasters):
    old = open_scene(rasters["l2a_stack"])
    new = open_scene(rasters["l2a_baseline0400"])
    assert old.radiometry.offset == 0.0
    assert new.radiometry.offset == -1000.0
    assert new.radiometry.source == "baseline 04.00"
    a, b = read_all(old), read_all(new)
    assert a.bands == b.bands
    np.testing.assert_array_equal(a.reflectance, b.reflectance)  # NaN where both are nodata


def test_dark_pixel_and_nodata_under_baseline_0400(rasters):
    obs = read_all(open_scene(rasters["l2a_baseline0400"]))
    blue = obs.band("B02")
    with rasterio.open(rasters["l2a_baseline0400"]) as src:
        dn = src.read(1)
    assert dn[mr.DARK_PIXEL] == 1005
    assert blue[mr.DARK_PIXEL] == pytest.approx(0.0005, abs=1e-7)  # valid, not masked
    assert dn[mr.ZERO_PIXEL] == 0
    assert np.isnan(blue[mr.ZERO_PIXEL])  # DN 0: nodata in every baseline
    for pixel in mr.NODATA_PIXELS:
        assert dn[pixel] == 65535
        assert np.isnan(blue[pixel])
    assert np.isfinite(obs.reflectance).all(axis=0).sum() == mr.SIZE * mr.SIZE - len(mr.NODATA_PIXELS) - 1


def test_radiometry_masks_nodata_before_the_offset():
    dn = np.array([0, 1, 999, 1000, 1005, 5000, 65535], dtype=np.uint16)
    out = Radiometry(-1000.0, 10000.0, "test").to_reflectance(dn, (0.0, 65535.0))
    np.testing.assert_allclose(out, [np.nan, -0.0999, -0.0001, 0.0, 0.0005, 0.4, np.nan], atol=1e-7)


def test_boa_offset_override(rasters):
    scene = open_scene(rasters["l2a_baseline0400"], ReadOptions(boa_offset=0.0))
    assert scene.radiometry.source == "override"
    assert read_all(scene).band("B08")[40, 10] == pytest.approx(0.40 + 0.1, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# per-band folder at mixed resolutions


def test_mixed_resolution_folder_on_the_10m_grid(rasters):
    folder = rasters["l1c_band_folder"]
    scene = open_scene(folder)
    assert scene.bands == tuple(
        ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    )
    assert (scene.width, scene.height) == (mr.L1C_SIZE, mr.L1C_SIZE)
    assert scene.transform == GRID_10M
    assert scene.level == "L1C"
    assert scene.tile == "31UFS"
    assert scene.radiometry.offset == -1000.0 and scene.radiometry.source == "baseline 05.09"
    with rasterio.open(next(folder.glob("*_B05.tif"))) as src:
        assert (src.width, src.height, src.transform.a) == (30, 30, 20.0)
    obs = read_all(scene)
    assert obs.reflectance.shape == (13, 60, 60)
    # Away from the field edge and the cloud (bilinear blends half a coarse pixel around edges),
    # every band - 10, 20 and 60 m - keeps its value exactly.
    for band in scene.bands:
        values = obs.band(band)
        np.testing.assert_allclose(values[30:, :24], mr.VEGETATION_TOA[band], atol=1e-6, err_msg=band)
        np.testing.assert_allclose(values[30:, 36:], mr.BARE_SOIL_TOA[band], atol=1e-6, err_msg=band)
        np.testing.assert_allclose(values[4:20, 24:36], mr.CLOUD_TOA[band], atol=1e-6, err_msg=band)


def test_window_past_the_raster_edge_is_nan(rasters):
    scene = open_scene(rasters["l1c_band_folder"])
    with scene:
        obs = scene.read(Window(50, 50, 20, 20))
    assert obs.reflectance.shape == (13, 20, 20)
    assert np.isfinite(obs.reflectance[:, :10, :10]).all()
    assert np.isnan(obs.reflectance[:, 10:, :]).all() and np.isnan(obs.reflectance[:, :, 10:]).all()
    assert obs.transform == from_origin(mr.ORIGIN_X + 500, mr.ORIGIN_Y - 500, 10, 10)


def test_safe_like_granule(rasters):
    safe = rasters["safe_granule"]
    assert discover_inputs([safe.parent]) == [safe]
    scene = open_scene(safe)
    assert scene.bands == ("B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B11")
    # The native 10 m file is taken over the product's 20 m copy of the same band.
    assert scene.band_refs["B04"].path.name.endswith("_B04_10m.tif")
    assert "R10m" in scene.band_refs["B04"].path.parts
    assert scene.scl_ref is not None and scene.scl_ref.path.name.endswith("_SCL_20m.tif")
    assert (scene.width, scene.height) == (mr.SAFE_SIZE, mr.SAFE_SIZE) and scene.transform == GRID_10M
    assert (scene.level, scene.tile, scene.date) == ("L2A", "31UFS", dt.date(2023, 6, 12))
    assert scene.radiometry.offset == -1000.0
    obs = read_all(scene)
    for band in scene.bands:
        np.testing.assert_allclose(obs.band(band)[:, :12], mr.VEGETATION[band], atol=1e-6, err_msg=band)
        np.testing.assert_allclose(obs.band(band)[:, 24:], mr.BARE_SOIL[band], atol=1e-6, err_msg=band)
    assert (obs.scl[:, :18] == 4).all() and (obs.scl[:, 18:] == 5).all()  # nearest, never blended


def test_folder_of_several_safe_products(rasters, tmp_path):
    downloads = tmp_path / "downloads"
    first = mr.write_safe_granule(downloads)
    second = downloads / first.name.replace("20230612T150001", "20230612T170000")
    shutil.copytree(first, second)
    # Each product is one acquisition; the folder holding them is not.
    assert discover_inputs([downloads]) == sorted([first, second])
    granule = next((first / "GRANULE").iterdir())
    assert open_scene(granule).bands == open_scene(first).bands


# ---------------------------------------------------------------------------------------------
# STAC


def test_stac_item(rasters):
    path = rasters["stac_item"]
    scene = open_scene(path)
    assert scene.name == mr.STAC_ITEM_ID
    assert scene.level == "L2A"
    assert scene.tile == "31UFS"
    assert scene.radiometry.offset == -1000.0 and scene.radiometry.source == "baseline 05.09"
    assert scene.bands == ("B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12")
    assert scene.scl_ref is not None and scene.scl_ref.path.name == "SCL.tif"
    assert (scene.width, scene.height) == (mr.STAC_SIZE, mr.STAC_SIZE) and scene.transform == GRID_10M
    obs = read_all(scene)
    for band in scene.bands:
        np.testing.assert_allclose(obs.band(band)[:, :14], mr.VEGETATION[band], atol=1e-6, err_msg=band)
        np.testing.assert_allclose(obs.band(band)[:, 18:], mr.BARE_SOIL[band], atol=1e-6, err_msg=band)
    assert (obs.scl[:8, :8] == 8).all()
    mask, method = cloud_mask(obs)
    assert method == "scl"
    assert mask.sum() == 64 and mask[:8, :8].all()


def test_stac_item_found_beside_its_assets(rasters):
    # The folder holds B02.tif ... SCL.tif next to the item: the item is the acquisition.
    path = rasters["stac_item"]
    assert discover_inputs([path.parent]) == [path]


def test_stac_earth_search_offset_flag(rasters, tmp_path):
    item = json.loads(rasters["stac_item"].read_text())
    item["properties"]["earthsearch:boa_offset_applied"] = True
    for asset in item["assets"].values():
        asset["href"] = str(rasters["stac_item"].parent / asset["href"])
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    scene = open_scene(path)
    assert scene.radiometry.offset == 0.0 and scene.radiometry.source == "metadata offset"


# ---------------------------------------------------------------------------------------------
# real samples


def _bigearthnet_folders(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_bigearthnet_real_folders(bigearthnet_dir):
    folders = _bigearthnet_folders(bigearthnet_dir)
    assert len(folders) == 6
    assert discover_inputs([bigearthnet_dir]) == folders
    for folder in folders:
        meta = json.loads(next(folder.glob("*_labels_metadata.json")).read_text())
        scene = open_scene(folder)
        assert scene.bands == CROMA_BANDS, folder.name
        assert (scene.width, scene.height) == (120, 120)
        assert abs(scene.transform.a) == 10.0
        assert scene.date == dt.date.fromisoformat(meta["acquisition_date"][:10]), folder.name
        assert scene.level == "L2A"
        assert scene.radiometry.offset == 0.0  # baselines 02.xx
        with rasterio.open(next(folder.glob("*_B05.tif"))) as src:
            native = src.read(1).astype(np.float64) / 10000
            assert (src.width, src.height) == (60, 60)
        obs = read_all(scene)
        assert obs.reflectance.shape == (12, 120, 120)
        assert np.isfinite(obs.reflectance).all(), folder.name
        # Upsampling keeps the 20 m band's level: means agree closely.
        assert obs.band("B05").mean() == pytest.approx(native.mean(), rel=0.01)


def test_hesbaye_real_stack(hesbaye_dir):
    files = sorted(hesbaye_dir.glob("S2_L2A_hesbaye_*.tif"))
    assert len(files) == 10
    for path in files:
        scene = open_scene(path)
        assert scene.date == dt.date.fromisoformat(path.stem.rsplit("_", 1)[1])
        assert scene.bands == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
        assert all(65535.0 in v for v in scene.nodata.values())
        assert (scene.width, scene.height) == (100, 100)
        assert scene.crs.to_epsg() == 32631
        assert scene.radiometry.offset == 0.0
    path = hesbaye_dir / "S2_L2A_hesbaye_2021-06-01.tif"
    obs = read_all(open_scene(path))
    with rasterio.open(path) as src:
        dn = src.read()
    expected = np.where((dn == 65535) | (dn == 0), np.nan, dn / 10000)
    np.testing.assert_allclose(obs.reflectance, expected, atol=1e-7)
