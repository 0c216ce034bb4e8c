"""Re-reading a stored record's chip from its source gives the chip that was indexed."""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pytest

from indexer.chips import extract_parcels, parcel_window
from indexer.core.errors import InputError
from indexer.parcels import read_parcels
from indexer.pipeline import IndexConfig, index
from indexer.reader import open_scene
from indexer.sources import locate_sources, reread_chips
from indexer.store import Store
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

DATE = "2018-11-12"


@pytest.fixture(scope="module")
def flanders(shared_data, tmp_path_factory):
    folder = shared_data / "worldcereal-flanders"
    if not folder.is_dir():
        pytest.skip(f"Flanders sample not present at {folder}")
    root = tmp_path_factory.mktemp("flanders")
    raster = root / f"S2_L2A_Flanders31UES_{DATE}.tif"
    shutil.copy(folder / raster.name, raster)
    parcels = folder / "parcels_Flanders31UES.gpkg"
    encoder = build_encoder(DEFAULT_ENCODER)
    index(IndexConfig(store=root / "store", inputs=(str(raster),), parcels=parcels, progress=False), encoder)
    return raster, parcels, Store.open(root / "store"), encoder


def test_reread_chips_equal_the_indexed_chips(flanders):
    """LPIS parcels lie on the pixel grid: their WGS84 round trip must not move the window."""
    raster, parcels, store, encoder = flanders
    records = store.records().to_dict("records")
    assert all(r["source"] == str(raster.resolve()) for r in records)
    bands, size = encoder.spec.bands, encoder.spec.input_size
    chips, valid = reread_chips(records, bands, size)
    scene = open_scene(raster)
    original = read_parcels(parcels, None).gdf.to_crs(scene.crs).set_index("parcel_id")
    with scene:
        indexed = extract_parcels(scene, [original.loc[r["parcel_id"]].geometry for r in records],
                                  [r["parcel_id"] for r in records], bands, size)
    for i, chip in enumerate(indexed):
        np.testing.assert_array_equal(chips[i], chip.chip)
        np.testing.assert_array_equal(valid[i], chip.chip_valid)


def test_window_ignores_a_billionth_of_a_metre(flanders):
    raster, parcels, store, _ = flanders
    scene = open_scene(raster)
    original = read_parcels(parcels, None).gdf.to_crs(scene.crs)
    round_trip = original.to_crs("EPSG:4326").to_crs(scene.crs)
    moved = [a != b for a, b in zip(original.geometry.bounds.to_numpy().tolist(),
                                    round_trip.geometry.bounds.to_numpy().tolist())]
    assert any(moved), "the sample should exercise the round-trip error"
    for a, b in zip(original.geometry, round_trip.geometry):
        assert parcel_window(scene, a) == parcel_window(scene, b)


def test_moved_imagery_is_found_by_name_or_reported(flanders, tmp_path):
    raster, _, store, encoder = flanders
    records = store.records().to_dict("records")
    moved = [{**r, "source": str(tmp_path / "gone" / raster.name)} for r in records]
    with pytest.raises(InputError) as err:
        reread_chips(moved, encoder.spec.bands, encoder.spec.input_size)
    assert err.value.field == "imagery" and raster.name in str(err.value)
    lookup = locate_sources([m["source"] for m in moved], [raster.parent])
    assert lookup.missing == () and lookup.found[moved[0]["source"]] == raster
    chips, _ = reread_chips(moved[:2], encoder.spec.bands, encoder.spec.input_size, imagery=[raster.parent])
    assert chips.shape == (2, len(encoder.spec.bands), encoder.spec.input_size, encoder.spec.input_size)
    assert gpd.GeoSeries([r["geometry"] for r in records]).is_valid.all()
