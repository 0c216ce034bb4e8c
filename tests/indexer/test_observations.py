"""Observation quality and suspect acquisitions (indexer.observations): the one rule the
assistant, the CLI and the app share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from indexer.core.schema import QUALITY_RULE_VERSION
from indexer.observations import (
    CLOUD, MIN_RELIABLE_PIXELS, NODATA, SNOW, SUSPECT, TOO_SMALL, USABLE, find_suspects, observation_status,
    observation_statuses, parcel_areas, reindex_note, usable_mask,
)

DATES = ["2019-05-01", "2019-05-06", "2019-05-11", "2019-05-16", "2019-05-21"]


def _table(ndvi: dict[str, list[float]], x0: float = 4.0, **extra) -> pd.DataFrame:
    """One area of parcels 1 km apart at most (contiguous), one row per parcel and date."""
    rows = []
    for i, (pid, series) in enumerate(ndvi.items()):
        for date, v in zip(DATES, series):
            rows.append({"parcel_id": pid, "date": date, "valid": True, "invalid_reason": "", "ndvi_mean": v,
                         "valid_fraction": 1.0, "n_pixels": 100,
                         "geometry": box(x0 + 0.004 * i, 50.0, x0 + 0.004 * i + 0.003, 50.003), **extra})
    return pd.DataFrame(rows)


HAZE = {f"p{i}": [0.6, 0.62, 0.2, 0.63, 0.65] for i in range(4)}  # every parcel drops on 05-11 and recovers
HARVEST = {f"p{i}": [0.8, 0.8, 0.25, 0.22, 0.2] for i in range(4)}  # drops and stays: not suspect


def test_scene_wide_drop_that_recovers_is_suspect_and_harvest_is_not():
    found = find_suspects(_table(HAZE))
    assert list(found) == ["2019-05-11"]
    s = found["2019-05-11"]
    assert (s.previous, s.next, s.n_parcels, s.direction) == ("2019-05-06", "2019-05-16", 4, "drop")
    assert s.median_change_previous == pytest.approx(-0.42)
    assert not find_suspects(_table(HARVEST))


def test_fewer_than_three_parcels_or_a_long_gap_is_never_suspect():
    assert not find_suspects(_table(dict(list(HAZE.items())[:2])))
    far = _table(HAZE)
    far = far[far["date"] != "2019-05-21"].copy()
    far.loc[far["date"] == "2019-05-16", "date"] = "2019-06-20"  # the next date 40 days away
    assert not find_suspects(far)


def test_suspects_are_per_area_so_a_haze_in_one_place_does_not_flag_another():
    here = _table(HAZE, x0=4.0)
    there = _table({f"q{i}": [0.6, 0.61, 0.6, 0.62, 0.6] for i in range(4)}, x0=5.5)  # 100 km east, clear
    both = pd.concat([here, there], ignore_index=True)
    areas = parcel_areas(both)
    assert len(set(areas.values())) == 2 and areas["p0"] == areas["p3"] != areas["q0"]
    found = find_suspects(both)
    assert found.get_for("p1", "2019-05-11") is not None
    assert found.get_for("q1", "2019-05-11") is None
    statuses = observation_statuses(both, found)
    flagged = both[statuses["status"] == SUSPECT]
    assert set(flagged["parcel_id"]) == set(HAZE) and set(flagged["date"]) == {"2019-05-11"}
    assert (usable_mask(both, found) == statuses["usable"].to_numpy()).all()


def test_store_wide_scope_would_hide_the_suspect_when_another_area_interleaves_dates():
    # The second area is observed two days after each of the first's dates: one pivot over the
    # store makes every neighbour of a first-area date a second-area date (no common parcels).
    here = _table(HAZE, x0=4.0)
    there = _table({f"q{i}": [0.6] * 5 for i in range(4)}, x0=5.5)
    there["date"] = pd.to_datetime(there["date"]).add(pd.Timedelta(days=2)).dt.strftime("%Y-%m-%d")
    both = pd.concat([here, there], ignore_index=True)
    assert "2019-05-11" in find_suspects(both)
    assert "2019-05-11" not in find_suspects(both, areas=dict.fromkeys(both["parcel_id"], "one"))


@pytest.mark.parametrize("record, status", [
    ({"valid": False, "invalid_reason": "cloud", "valid_fraction": 0.1}, CLOUD),
    ({"valid": False, "invalid_reason": "shadow", "valid_fraction": 0.1}, CLOUD),
    ({"valid": False, "invalid_reason": "snow", "valid_fraction": 0.04, "snow_fraction": 0.96}, SNOW),
    ({"valid": False, "invalid_reason": "nodata", "valid_fraction": 0.0}, NODATA),
    ({"valid": False, "invalid_reason": "missing bands", "valid_fraction": 1.0}, NODATA),
    ({"valid": True, "n_pixels": MIN_RELIABLE_PIXELS - 1}, TOO_SMALL),
    ({"valid": False, "invalid_reason": "cloud", "n_pixels": 2}, CLOUD),  # not observed comes first
    ({"valid": True, "n_pixels": MIN_RELIABLE_PIXELS}, USABLE),
    ({"valid": True}, USABLE),  # an older record without n_pixels: unknown, not guessed
])
def test_status_of_one_record(record, status):
    got = observation_status({"parcel_id": "a", "date": "2019-05-01", **record})
    assert got.status == status
    assert got.usable == (status == USABLE)
    assert got.reason


def test_status_names_the_suspect_evidence_and_too_small_is_left_out_of_the_medians():
    table = _table(HAZE)
    found = find_suspects(table)
    row = table[(table["parcel_id"] == "p0") & (table["date"] == "2019-05-11")].iloc[0]
    got = observation_status(row, found)
    assert got.status == SUSPECT and "2019-05-06" in got.reason and "-0.42" in got.reason
    assert observation_status(row, {"2019-05-11"}).status == SUSPECT
    small = table.assign(n_pixels=np.where(table["parcel_id"] == "p0", 5, 100))
    assert find_suspects(small)["2019-05-11"].n_parcels == 3


def test_reindex_note_counts_records_indexed_before_the_rule():
    table = _table(HAZE)
    assert "20 of 20 records" in reindex_note(table)
    table["quality_rule"] = QUALITY_RULE_VERSION
    assert reindex_note(table) is None
    table.loc[0, "quality_rule"] = np.nan
    assert "1 of 20" in reindex_note(table) and "re-index" in reindex_note(table)


# -- end to end on the real Flanders sample the repository carries (data/worldcereal-flanders) -------

FLANDERS = Path(__file__).resolve().parents[2] / "data" / "worldcereal-flanders"
TOO_SMALL_PARCELS = {"Flanders31UES-017", "Flanders31UES-018", "Flanders31UES-019"}  # 16, 6 and 2 pixels


@pytest.fixture(scope="module")
def flanders(tmp_path_factory):
    """The whole sample indexed by the real pipeline: 19 parcels x 72 dates (about half a minute)."""
    if not (FLANDERS / "parcels_Flanders31UES.gpkg").exists():
        pytest.skip(f"the Flanders sample is not at {FLANDERS}")
    from indexer.pipeline import IndexConfig, index
    from indexer.store import Store
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    path = tmp_path_factory.mktemp("quality") / "flanders"
    files = tuple(str(p) for p in sorted(FLANDERS.glob("S2_L2A_Flanders31UES_*.tif")))
    index(IndexConfig(store=path, inputs=files, parcels=FLANDERS / "parcels_Flanders31UES.gpkg", progress=False),
          build_encoder(DEFAULT_ENCODER))
    store = Store.open(path)
    records = store.records()
    return store, records, find_suspects(records)


def test_flanders_snow_day_is_snow_and_said_so(flanders):
    _, records, suspects = flanders
    day = records[records["date"] == "2018-11-12"]
    statuses = observation_statuses(day, suspects)
    assert not statuses["usable"].any()
    assert (statuses["status"] == SNOW).sum() >= 18  # one parcel is more cloud than snow
    for text in day.loc[statuses["status"] == SNOW, "analysis"]:
        assert "snow" in text and "water" not in text and "visit" not in text
    assert (day["snow_fraction"] > 0.8).sum() >= 18
    from indexer.observations import date_quality

    quality = date_quality(records, suspects).loc["all parcels"]
    assert quality.loc["2018-11-12", "verdict"] == SNOW
    assert quality.loc["2019-11-27", "verdict"] == CLOUD  # the newest date, 100 % cloud


def test_flanders_records_carry_the_new_rule(flanders):
    _, records, _ = flanders
    assert reindex_note(records) is None and (records["quality_rule"] == QUALITY_RULE_VERSION).all()
    valid = records[records["valid"]]
    # Under rule 1, 127 of 795 valid records had under 30 % vegetation or soil pixels.
    assert (valid["vegsoil_fraction"] >= 0.3).all()


def test_flanders_slivers_are_too_small_and_their_analysis_says_so(flanders):
    _, records, suspects = flanders
    statuses = observation_statuses(records, suspects)
    small = records[statuses["status"] == TOO_SMALL]
    assert set(small["parcel_id"]) == TOO_SMALL_PARCELS
    assert small["analysis"].str.contains("too few for a reliable value").all()
    assert small["analysis_fr"].str.contains("trop peu pour une valeur fiable").all()


def test_flanders_october_2019_pairs_with_the_closest_day_of_year(flanders):
    """2019-10-28 is a year after 2018-10-28 (clouded): 2018-10-18 is 10 days away, 2018-10-13 15."""
    from indexer.seasons import compare_past_seasons

    store, _, suspects = flanders
    got = compare_past_seasons(store.history("Flanders31UES-001"), "2019-10-28", suspects=suspects)
    (pair,) = got.pairs
    assert (pair.past_date, pair.gap_days) == ("2018-10-18", -10)
    assert pair.change == "higher" and pair.delta > 0.4  # stubble a year before, a cover crop now


def test_flanders_harvests_match_the_ndvi_series(flanders):
    """Checked by eye against each parcel's usable NDVI: the winter wheat fell from about 0.77 on
    2019-07-05 to 0.26-0.43 on 2019-07-20; the winter barley from 0.64 on 06-20 to 0.29 on 06-30;
    the maize from 0.60 on 09-18 to 0.35 on 10-13; the potatoes from 0.60 on 08-24 to 0.24 on 09-18."""
    from indexer.phenology import HARVEST, crop_calendar

    store, _, suspects = flanders
    expected = {"Flanders31UES-001": ("2019-07-05", "2019-07-20"), "Flanders31UES-003": ("2019-07-05", "2019-07-20"),
                "Flanders31UES-009": ("2019-07-05", "2019-07-20"), "Flanders31UES-010": ("2019-07-05", "2019-07-20"),
                "Flanders31UES-004": ("2019-06-20", "2019-06-30"), "Flanders31UES-007": ("2019-09-18", "2019-10-13"),
                "Flanders31UES-016": ("2019-08-24", "2019-09-18")}
    for parcel, window in expected.items():
        events = crop_calendar(store.history(parcel), suspects=suspects, date_from="2019-06-01", date_to="2019-10-31")
        assert [(e.start, e.end) for e in events if e.kind == HARVEST] == [window], parcel
    grass = crop_calendar(store.history("Flanders31UES-002"), suspects=suspects)
    assert HARVEST not in {e.kind for e in grass}


def test_flanders_similar_within_a_crop(flanders):
    from indexer.query import similar

    store, records, _ = flanders
    got = similar(store, "Flanders31UES-001", "2019-05-16", 5, crop="winter wheat", per_parcel=True)
    crops = records.set_index("record_id").loc[got["record_id"], "attr_crop_name"]
    assert set(crops) == {"Winter wheat"} and got["parcel_id"].is_unique
    assert (got["status"] == USABLE).all() and "Flanders31UES-001" not in set(got["parcel_id"])


def test_statuses_of_a_table_equal_the_status_of_each_record():
    table = _table({**HAZE, "p4": HAZE["p0"]})
    table.loc[0, ["valid", "invalid_reason", "valid_fraction"]] = [False, "snow", 0.04]
    table.loc[1, ["valid", "invalid_reason", "valid_fraction"]] = [False, "cloud", 0.123]
    table.loc[4, ["valid", "invalid_reason", "valid_fraction"]] = [False, "missing bands", np.nan]
    table.loc[table["parcel_id"] == "p4", "n_pixels"] = 7
    found = find_suspects(table)
    got = observation_statuses(table, found)
    for i, row in table.iterrows():
        one = observation_status(row, found)
        assert (got.loc[i, "status"], got.loc[i, "status_reason"], got.loc[i, "usable"]) == (
            one.status, one.reason, one.usable), i
    assert set(got["status"]) == {SNOW, CLOUD, NODATA, TOO_SMALL, SUSPECT, USABLE}


def test_a_store_written_before_the_rule_reads_as_before_and_gets_the_note(tmp_path):
    from indexer.core.schema import OPTIONAL_COLUMNS
    from indexer.store import Store
    from synthetic_records import record_rows

    encoder = {"id": "test-enc", "dim": 4, "weights_sha256": None, "normalization": {}, "bands": ["B04"]}
    store = Store.open_or_create(tmp_path / "s", encoder)
    before = record_rows([("a", "2018-11-12"), ("b", "2018-11-12")], ndvi_mean=0.002)
    before = before.drop(columns=list(OPTIONAL_COLUMNS))  # what rule-1 indexing wrote
    store.upsert(before, np.eye(2, 4, dtype=np.float32))
    store.commit()
    old = Store.open(store.path).records()
    assert not set(OPTIONAL_COLUMNS) & set(old.columns)
    assert observation_statuses(old)["status"].tolist() == [USABLE, USABLE]  # read as before
    assert "2 of 2 records" in reindex_note(old)
    after = record_rows([("a", "2018-11-17")], snow_fraction=0.0, vegsoil_fraction=0.9,
                        quality_rule=QUALITY_RULE_VERSION)
    store = Store.open(store.path)
    store.upsert(after, np.eye(1, 4, dtype=np.float32))
    store.commit()
    mixed = Store.open(store.path).records().sort_values("date")
    assert mixed["snow_fraction"].isna().tolist() == [True, True, False]  # unknown, not zero
    assert "2 of 3 records" in reindex_note(mixed)


def test_date_quality_gives_one_verdict_per_area_and_date():
    from indexer.observations import date_quality

    table = _table(HAZE)
    table.loc[table["date"] == "2019-05-21", ["valid", "invalid_reason"]] = [False, "snow"]
    first = table["date"] == "2019-05-01"
    table.loc[first & table["parcel_id"].isin(["p0", "p1"]), ["valid", "invalid_reason"]] = [False, "cloud"]
    got = date_quality(table).loc["all parcels"]
    assert got.loc["2019-05-21", "verdict"] == SNOW and got.loc["2019-05-21", SNOW] == 4
    assert got.loc["2019-05-11", "verdict"] == SUSPECT and got.loc["2019-05-11", "usable_share"] == 0
    assert got.loc["2019-05-01", "verdict"] == "clear"  # two of four usable: half is enough
    assert got.loc["2019-05-06", "verdict"] == "clear" and (got["records"] == 4).all()
