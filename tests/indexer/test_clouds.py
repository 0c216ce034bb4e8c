"""Tests for indexer.clouds: SCL masking, s2cloudless, the spectral fallback test and snow."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import box

import make_rasters as mr
from indexer.core.bands import SCL_CLASSES
from indexer.chips import extract, parcel_window
from indexer.chips import ParcelChip
from indexer.clouds import cloud_mask, pixel_quality, snow_test, spectral_cloud_test
from indexer.reader import Observation, open_scene
from xvision_model.encoders.base import CROMA_BANDS


def read_all(scene):
    with scene:
        return scene.read(Window(0, 0, scene.width, scene.height))


def test_scl_fully_clouded_scene(rasters):
    scene = open_scene(rasters["fully_clouded"])
    obs = read_all(scene)
    assert (obs.scl == 9).all()
    mask, method = cloud_mask(obs)
    assert method == "scl"
    assert mask.all()
    # A parcel on it: kept but not valid, because of clouds (not missing data).
    parcel = box(mr.ORIGIN_X + 50, mr.ORIGIN_Y - 250, mr.ORIGIN_X + 250, mr.ORIGIN_Y - 50)
    with scene:
        window_obs = scene.read(parcel_window(scene, parcel))
    chip = extract(window_obs, parcel, "p", CROMA_BANDS, 32)
    assert chip.n_pixels == 400
    assert chip.valid_fraction == 0.0 and chip.cloud_fraction == 1.0 and chip.nodata_fraction == 0.0
    assert not chip.is_valid() and chip.invalid_reason() == "cloud"
    assert np.isnan(chip.stats["ndvi_mean"])
    assert chip.cloud_method == "scl"


def test_scl_classes_masked():
    scl = np.array([list(SCL_CLASSES)], dtype=np.uint8)  # 0..11 in one row
    obs = Observation(("B02", "B03", "B04"), np.zeros((3, 1, 12), np.float32), scl, Window(0, 0, 12, 1), None)
    mask, method = cloud_mask(obs)
    assert method == "scl"
    # Quality rule 2: everything but no data (handled as nodata), vegetation, soil and water is
    # masked, dark (2), unclassified (7) and snow (11) included.
    assert np.flatnonzero(mask[0]).tolist() == [1, 2, 3, 7, 8, 9, 10, 11]
    quality = pixel_quality(obs)
    assert (quality.masked == mask).all() and quality.method == "scl"
    assert np.flatnonzero(quality.snow[0]).tolist() == [11]
    assert np.flatnonzero(quality.vegetation_soil[0]).tolist() == [4, 5]


def _scl_parcel(classes: dict[int, int]) -> "ParcelChip":
    """A 10 x 10 parcel whose pixels carry the given SCL classes (class -> pixel count)."""
    scl = np.concatenate([np.full(n, c, np.uint8) for c, n in classes.items()]).reshape(10, 10)
    reflectance = np.full((4, 10, 10), 0.1, np.float32)
    reflectance[3] = 0.4  # B08: a green canopy where clear
    transform = rasterio.Affine(10, 0, 0, 0, -10, 100)
    obs = Observation(("B02", "B03", "B04", "B08"), reflectance, scl, Window(0, 0, 10, 10), transform)
    return extract(obs, box(0, 0, 100, 100), "p", ("B02", "B03", "B04", "B08"), 16)


def test_a_snowed_in_parcel_is_snow_not_cloud_nor_a_value():
    chip = _scl_parcel({11: 96, 4: 4})  # Flanders 2018-11-12: 96 % snow in SCL
    assert chip.n_pixels == 100 and chip.valid_fraction == pytest.approx(0.04)
    assert chip.snow_fraction == pytest.approx(0.96) and chip.cloud_fraction == 0.0
    assert not chip.is_valid() and chip.invalid_reason() == "snow"
    assert chip.vegsoil_fraction == pytest.approx(0.04)


def test_dark_and_unclassified_pixels_are_not_clear_and_vegetation_soil_share_is_recorded():
    chip = _scl_parcel({2: 40, 7: 35, 4: 10, 5: 5, 6: 10})
    assert chip.valid_fraction == pytest.approx(0.25) and chip.vegsoil_fraction == pytest.approx(0.15)
    assert chip.cloud_fraction == pytest.approx(0.75) and chip.snow_fraction == 0.0
    assert not chip.is_valid() and chip.invalid_reason() == "cloud"
    clear = _scl_parcel({4: 60, 5: 20, 9: 20})
    assert clear.is_valid() and clear.vegsoil_fraction == pytest.approx(0.8)
    assert clear.stats["ndvi_mean"] == pytest.approx(0.6)  # from the 80 clear pixels only


def test_snow_without_scl_by_the_ndsi_test():
    reflectance = np.zeros((4, 1, 3), np.float32)
    # B03, B08, B11 (+B04): snow (bright green, dark SWIR), water (high NDSI, no NIR), a field.
    reflectance[:, 0, 0] = (0.8, 0.7, 0.75, 0.1)
    reflectance[:, 0, 1] = (0.06, 0.04, 0.02, 0.01)
    reflectance[:, 0, 2] = (0.08, 0.06, 0.35, 0.2)
    obs = Observation(("B03", "B04", "B08", "B11"), reflectance, None, Window(0, 0, 3, 1), None)
    assert snow_test(obs)[0].tolist() == [True, False, False]


def test_s2cloudless_detects_the_blob(rasters):
    obs = read_all(open_scene(rasters["l1c_band_folder"]))
    mask, method = cloud_mask(obs)
    assert method == "s2cloudless"
    r0, r1, c0, c1 = mr.CLOUD_BLOB
    assert mask[r0 + 2 : r1 - 2, c0 + 2 : c1 - 2].all()  # the blob, less its blended edge
    # The clear fields, a little away from the blob (dilation and bilinear edges), are clear.
    assert not mask[r1 + 8 :, :].any()
    assert not mask[:, : c0 - 6].any() and not mask[:, c1 + 6 :].any()


def test_s2cloudless_ignores_nodata(rasters):
    obs = read_all(open_scene(rasters["l1c_band_folder"]))
    obs.reflectance[:, 4:20, 24:36] = np.nan  # the cloud's heart becomes unobserved
    mask, _ = cloud_mask(obs)
    assert not mask[4:20, 24:36].any()


def test_spectral_test_on_generated_cloudy_stack(rasters):
    obs = read_all(open_scene(rasters["cloudy_l2a_stack"]))
    mask, method = cloud_mask(obs)
    assert method == "spectral-test"  # no SCL, no B10: neither SCL nor s2cloudless possible
    expected = np.zeros_like(mask)
    expected[26:38, 26:38] = True
    np.testing.assert_array_equal(mask, expected)


def test_spectral_test_on_hesbaye_with_a_white_blob(hesbaye_dir):
    obs = read_all(open_scene(hesbaye_dir / "S2_L2A_hesbaye_2021-06-01.tif"))
    before, method = cloud_mask(obs)
    assert method == "spectral-test"
    assert before.mean() < 0.01  # a clear June composite
    blob = (slice(40, 50), slice(40, 50))
    assert not before[blob].any()
    for band, value in mr.CLOUD_BOA.items():
        obs.band(band)[blob] = value
    after, _ = cloud_mask(obs)
    expected = before.copy()
    expected[blob] = True
    np.testing.assert_array_equal(after, expected)
    # The same blob made dark in SWIR is snow (NDSI >= 0.4), not cloud.
    obs.band("B11")[blob] = 0.05
    assert not spectral_cloud_test(obs)[blob].any()


def test_snowy_bigearthnet_patch_is_not_cloud(bigearthnet_dir):
    folder = bigearthnet_dir / "S2B_MSIL2A_20180204T94161_57_38"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    obs = read_all(open_scene(folder))
    blue, green, red, swir = (obs.band(b) for b in ("B02", "B03", "B04", "B11"))
    visible = np.stack([blue, green, red])
    mean = visible.mean(axis=0)
    bright_white = (mean > 0.20) & (blue > 0.18) & ((visible.max(axis=0) - visible.min(axis=0)) / mean < 0.35)
    # The patch is mostly snow: bright and white in the visible, which alone would read as cloud ...
    assert bright_white.mean() > 0.5
    assert ((green - swir) / (green + swir))[bright_white].min() >= 0.4
    # ... and the NDSI clause keeps it out of the cloud mask.
    mask, method = cloud_mask(obs)
    assert method == "spectral-test"
    assert mask.sum() == 0
    # Snow is masked as itself: the patch's parcels say "snow", never a value of the ground.
    quality = pixel_quality(obs)
    assert quality.snow.mean() > 0.5 and (quality.masked >= quality.snow).all()
