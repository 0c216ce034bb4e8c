"""Tests for indexer.core.indices (through indexer.chips): spyndex formulas against plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import box

import make_rasters as mr
from indexer.chips import extract, parcel_window
from indexer.core.indices import INDICES, STAT_COLUMNS, STATISTICS, available_indices, index_statistics
from indexer.parcels import read_parcels, to_crs
from indexer.reader import ReadOptions, open_scene
from xvision_model.encoders.base import CROMA_BANDS

INDEX_NAMES = ("ndvi", "ndwi", "ndmi", "savi", "evi", "ndre")


def numpy_indices(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The six indices written out by hand (reflectance in, float64 out)."""
    blue, green, red, re1, nir = r["B02"], r["B03"], r["B04"], r.get("B05"), r["B08"]
    swir1 = r.get("B11")
    out = {
        "ndvi": (nir - red) / (nir + red),
        "ndwi": (green - nir) / (green + nir),  # McFeeters
        "savi": 1.5 * (nir - red) / (nir + red + 0.5),  # L = 0.5
        "evi": 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1),
    }
    if swir1 is not None:
        out["ndmi"] = (nir - swir1) / (nir + swir1)
    if re1 is not None:
        out["ndre"] = (nir - re1) / (nir + re1)
    return out


def numpy_stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
        "std": float(np.std(values)),
    }


# ---------------------------------------------------------------------------------------------
# real Hesbaye data

#: A 25 x 25 px square over several Hesbaye fields (rows 30..54, cols 70..94), clear of clouds.
ROWS, COLS = slice(30, 55), slice(70, 95)


@pytest.fixture(scope="module")
def hesbaye_block(hesbaye_dir):
    path = hesbaye_dir / "S2_L2A_hesbaye_2021-06-01.tif"
    with rasterio.open(path) as src:
        names = src.descriptions
        dn = src.read(window=Window.from_slices(ROWS, COLS)).astype(np.float64)
        x0, y0 = src.transform * (COLS.start, ROWS.start)
        x1, y1 = src.transform * (COLS.stop, ROWS.stop)
    reflectance = np.where(dn == 65535, np.nan, dn / 10000)
    return path, {n: reflectance[i] for i, n in enumerate(names)}, box(x0, y1, x1, y0)


def test_hesbaye_indices_match_numpy(hesbaye_block):
    path, reflectance, square = hesbaye_block
    scene = open_scene(path)
    with scene:
        obs = scene.read(parcel_window(scene, square))
    chip = extract(obs, square, "square", CROMA_BANDS, 120)
    assert chip.n_pixels == 25 * 25
    assert chip.valid_fraction == 1.0 and chip.cloud_fraction == 0.0
    assert chip.cloud_method == "spectral-test"
    expected = numpy_indices(reflectance)
    spread = 0.0
    for name in INDEX_NAMES:
        want = numpy_stats(expected[name])
        spread = max(spread, want["p90"] - want["p10"])
        for stat in STATISTICS:
            assert chip.stats[f"{name}_{stat}"] == pytest.approx(want[stat], abs=1e-6), f"{name}_{stat}"
    assert spread > 0.3  # the square covers several fields: the statistics are not trivial
    # index_statistics straight on the float64 reflectance agrees too.
    direct = index_statistics({b: v.ravel() for b, v in reflectance.items()})
    for name in INDEX_NAMES:
        for stat in STATISTICS:
            assert direct[f"{name}_{stat}"] == pytest.approx(numpy_stats(expected[name])[stat], abs=1e-9)


def test_missing_band_gives_nan(hesbaye_block):
    _, reflectance, _ = hesbaye_block
    without_b05 = {b: v.ravel() for b, v in reflectance.items() if b != "B05"}
    assert [i.name for i in available_indices(tuple(without_b05))] == ["ndvi", "ndwi", "ndmi", "savi", "evi"]
    stats = index_statistics(without_b05)
    assert set(stats) == set(STAT_COLUMNS)
    assert all(math.isnan(stats[f"ndre_{s}"]) for s in STATISTICS)
    assert stats["ndvi_mean"] == pytest.approx(numpy_stats(numpy_indices(reflectance)["ndvi"])["mean"], abs=1e-9)


def test_index_band_needs():
    needs = {i.name: set(i.bands()) for i in INDICES}
    assert needs == {
        "ndvi": {"B04", "B08"},
        "ndwi": {"B03", "B08"},
        "ndmi": {"B08", "B11"},
        "savi": {"B04", "B08"},
        "evi": {"B02", "B04", "B08"},
        "ndre": {"B05", "B08"},
    }


# ---------------------------------------------------------------------------------------------
# generated fields: values known analytically


def analytic(r: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in numpy_indices({b: np.float64(x) for b, x in r.items()}).items()}


def test_generated_fields_analytic_values(rasters):
    scene = open_scene(rasters["l2a_stack"])
    parcels = to_crs(read_parcels(rasters["parcels"]).gdf, scene.crs)
    assert list(parcels["parcel_id"]) == ["field-veg", "field-soil"]
    assert list(parcels["crop"]) == ["winter wheat", "bare soil"]
    assert analytic(mr.VEGETATION)["ndvi"] == pytest.approx(9 / 11)
    results = {}
    with scene:
        for pid, geom in zip(parcels["parcel_id"], parcels.geometry):
            results[pid] = extract(scene.read(parcel_window(scene, geom)), geom, pid, CROMA_BANDS, 120)
    for pid, chip in results.items():
        assert chip.n_pixels == 60 * 28
        want = analytic(mr.FIELD_REFLECTANCE[pid])
        for name in INDEX_NAMES:
            for stat in ("mean", "median", "p10", "p90"):
                assert chip.stats[f"{name}_{stat}"] == pytest.approx(want[name], abs=1e-6), (pid, name, stat)
            assert chip.stats[f"{name}_std"] == pytest.approx(0.0, abs=1e-6)
    # Nodata pixels (65535 in every band, or DN 0 in one band) are left out of the statistics.
    assert results["field-veg"].nodata_fraction == pytest.approx(len(mr.NODATA_PIXELS) / 1680)
    assert results["field-soil"].nodata_fraction == pytest.approx(1 / 1680)
    assert results["field-veg"].is_valid() and results["field-soil"].is_valid()


def test_generated_parcels_in_web_mercator(rasters):
    scene = open_scene(rasters["l2a_stack"])
    parcels = to_crs(read_parcels(rasters["parcels_3857"]).gdf, scene.crs)
    assert parcels.crs.to_epsg() == 32631
    geom = parcels.geometry.iloc[0]
    with scene:
        chip = extract(scene.read(parcel_window(scene, geom)), geom, "v", CROMA_BANDS, 120)
    assert chip.n_pixels == 1680
    assert chip.stats["ndvi_mean"] == pytest.approx(9 / 11, abs=1e-6)


def test_stack_without_b05_has_no_ndre(rasters):
    # B02, B03, B04, B08 only: NDRE needs B05 and NDMI needs B11.
    scene = open_scene(rasters["unnamed_bands"], ReadOptions(bands=("B02", "B03", "B04", "B08")))
    geom = box(mr.ORIGIN_X + 20, mr.ORIGIN_Y - 620, mr.ORIGIN_X + 300, mr.ORIGIN_Y - 20)
    with scene:
        chip = extract(scene.read(parcel_window(scene, geom)), geom, "v", CROMA_BANDS, 120)
    want = analytic(mr.VEGETATION)
    for name in ("ndvi", "ndwi", "savi", "evi"):
        assert chip.stats[f"{name}_mean"] == pytest.approx(want[name], abs=1e-6)
    for name in ("ndre", "ndmi"):
        assert all(math.isnan(chip.stats[f"{name}_{s}"]) for s in STATISTICS)
    # The chip still has the encoder's 12 bands: missing ones copied from the nearest wavelength.
    assert chip.chip.shape == (12, 120, 120)
    assert chip.imputed["B05"] == "B04" and chip.imputed["B11"] == "B08"
