"""The indexing pipeline on generated rasters with known content."""

from __future__ import annotations

import numpy as np
import pytest

import make_rasters as mr
from indexer.analysis import read_classes, says_unusable
from indexer.pipeline import IndexConfig, index
from indexer.store import Store
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder


def _index(store, *inputs, parcels=None, grid=None):
    """Index through the library (the command line has its own tests); print the summary."""
    config = IndexConfig(store=store, inputs=tuple(map(str, inputs)), parcels=parcels, grid=grid, progress=False)
    print("\n".join(index(config, build_encoder(DEFAULT_ENCODER)).lines()))
    return 0


def test_known_fields_get_known_indices_and_classes(rasters, tmp_path, capsys):
    store = tmp_path / "store"
    assert _index(store, rasters["l2a_stack"], parcels=rasters["parcels_3857"]) == 0
    records = Store.open(store).records().set_index("parcel_id")
    veg, soil = mr.VEGETATION, mr.BARE_SOIL
    ndvi = lambda r: (r["B08"] - r["B04"]) / (r["B08"] + r["B04"])  # noqa: E731
    assert records.loc["field-veg", "ndvi_mean"] == pytest.approx(ndvi(veg), abs=1e-3)
    assert records.loc["field-soil", "ndvi_mean"] == pytest.approx(ndvi(soil), abs=1e-3)
    assert records.loc["field-veg", "valid"] and records.loc["field-veg", "valid_fraction"] > 0.95
    assert records.loc["field-veg", "attr_crop"] == "winter wheat"
    # The analysis states the class that the table gives for the record's own NDVI.
    assert read_classes(records.loc["field-veg", "analysis"])["vigor"] == "high"
    assert read_classes(records.loc["field-soil", "analysis"])["vigor"] == "low"


def test_fully_clouded_date_is_flagged_not_low_vigor(rasters, tmp_path, capsys):
    store = tmp_path / "store"
    assert _index(store, rasters["fully_clouded"], grid=16) == 0
    assert "flagged not valid (cloud): 4" in capsys.readouterr().out
    records = Store.open(store).records()
    assert (~records.valid).all() and set(records.invalid_reason) == {"cloud"}
    assert set(records.cloud_method) == {"scl"} and (records.valid_fraction == 0).all()
    for text in [*records.analysis, *records.analysis_fr]:
        assert says_unusable(text)
        assert not {"vigor", "moisture", "cover"} & set(read_classes(text))


def test_unusable_records_are_stored_as_zero_vectors(rasters, tmp_path):
    """Partly clouded cells below the valid share keep their record but embed as zero; clear ones do not."""
    store = tmp_path / "store"
    assert _index(store, rasters["l1c_band_folder"], grid=12) == 0
    opened = Store.open(store)
    records = opened.records()
    flagged, clear = records[~records.valid], records[records.valid]
    assert len(flagged) and len(clear)
    assert (flagged.valid_fraction > 0).any()  # some pixels were seen, still stored as "no observation"
    for record_id in flagged.record_id:
        assert not np.any(opened.vector(int(record_id)))
    for record_id in clear.record_id:
        assert np.linalg.norm(opened.vector(int(record_id))) == pytest.approx(1.0, abs=1e-5)


def test_s2cloudless_path_on_l1c_band_folder(rasters, tmp_path, capsys):
    store = tmp_path / "store"
    assert _index(store, rasters["l1c_band_folder"], grid=12) == 0
    records = Store.open(store).records()
    assert set(records.cloud_method) == {"s2cloudless"} and set(records.level) == {"L1C"}
    assert (~records.valid).any() and records.valid.any()  # the blob's cells flagged, the rest not


def test_stac_item_and_baseline_offset(rasters, tmp_path, capsys):
    """The baseline-04.00 product (DN + 1000) gives the same index values as the plain one."""
    plain, shifted = tmp_path / "plain", tmp_path / "shifted"
    assert _index(plain, rasters["l2a_stack"], grid=16) == 0
    assert _index(shifted, rasters["l2a_baseline0400"], grid=16) == 0
    a = Store.open(plain).records().sort_values("parcel_id")
    b = Store.open(shifted).records().sort_values("parcel_id")
    assert list(a.parcel_id) == list(b.parcel_id)
    assert a.ndvi_mean.to_numpy() == pytest.approx(b.ndvi_mean.to_numpy(), abs=1e-6)
    assert b.radiometry.str.contains("offset -1000").all()
    stac = tmp_path / "stac"
    assert _index(stac, rasters["stac_item"], grid=12) == 0
    assert set(Store.open(stac).records().cloud_method) == {"scl"}
