"""The suspect-scene rule and the grounding gate."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.grounding import Evidence, check_analysis, numbers
from assistant.suspect import SuspectRule, find_suspects
from eval import farm
from indexer.analysis import write_analysis


def _frame(series: dict[str, list[float]], dates: list[str]) -> pd.DataFrame:
    rows = [{"parcel_id": p, "date": d, "valid": True, "ndvi_mean": v}
            for p, values in series.items() for d, v in zip(dates, values)]
    return pd.DataFrame(rows)


DATES = ["2022-06-01", "2022-06-11", "2022-06-21", "2022-07-01"]


def test_the_hazy_farm_scene_is_the_only_suspect(view):
    suspects = find_suspects(view.records())
    assert set(suspects) == {farm.HAZY_DATE}
    s = suspects[farm.HAZY_DATE]
    assert s.direction == "drop" and s.n_parcels == 6 and s.previous == "2023-06-24" and s.next == "2023-08-13"
    assert s.median_change_previous < -0.15 and s.median_change_next < -0.15
    # The drought (a fall that lasts) and the cloudy date (flagged unusable, not suspect) are not suspect.
    assert "2022-06-24" not in suspects and farm.CLOUDY_DATE not in suspects


def test_rule_needs_a_scene_wide_jump_that_recovers():
    dip = {f"p{i}": [0.8, 0.3, 0.8, 0.8] for i in range(4)}
    assert list(find_suspects(_frame(dip, DATES))) == ["2022-06-11"]
    harvest = {f"p{i}": [0.8, 0.3, 0.3, 0.25] for i in range(4)}  # drops and stays down
    assert find_suspects(_frame(harvest, DATES)) == {}
    one_field = {"p0": [0.8, 0.3, 0.8, 0.8], **{f"p{i}": [0.8, 0.8, 0.8, 0.8] for i in range(1, 4)}}
    assert find_suspects(_frame(one_field, DATES)) == {}  # one parcel is not the scene
    few = {f"p{i}": [0.8, 0.3, 0.8, 0.8] for i in range(2)}
    assert find_suspects(_frame(few, DATES)) == {}  # fewer than min_parcels compared
    assert list(find_suspects(_frame(few, DATES), SuspectRule(min_parcels=2))) == ["2022-06-11"]
    far = ["2022-06-01", "2022-08-11", "2022-08-21", "2022-09-01"]  # previous date 71 days away
    assert find_suspects(_frame(dip, far)) == {}
    spike = {f"p{i}": [0.3, 0.8, 0.3, 0.3] for i in range(4)}
    assert find_suspects(_frame(spike, DATES))["2022-06-11"].direction == "spike"


def test_numbers_skip_ids_dates_and_band_names():
    assert numbers("Sentinel-2 NDVI 0.71 (+0.16) on 10th-90th, -0.64, 96 %, \u22120.05.") == [
        ("", "0.71"), ("+", "0.16"), ("-", "0.64"), ("", "96"), ("-", "0.05")]


META = {"parcel_id": "farm-01", "date": "2022-06-24", "valid": True, "valid_fraction": 0.96, "cloud_fraction": 0.04,
        "ndvi_mean": 0.7132, "ndvi_p10": 0.61, "ndvi_p90": 0.8, "ndvi_std": 0.04, "ndmi_mean": 0.23, "ndwi_mean": -0.61,
        "savi_mean": 0.45, "evi_mean": 0.5, "ndre_mean": 0.41}
OTHER = {**META, "date": "2021-06-24", "ndvi_mean": 0.5471}


def test_evidence_allows_record_values_and_their_differences_only():
    ev = Evidence()
    ev.add_record(META)
    ev.add_record(OTHER)
    ok = "Parcel farm-01: NDVI 0.71 on 2022-06-24 against 0.55 on 2021-06-24, +0.16 (96 % valid pixels, 4 % cloud)."
    assert ev.ungrounded(ok) == []
    assert ev.ungrounded("NDVI 0.72 on 2022-06-24.") == ["0.72"]  # not the record's 0.71
    assert ev.ungrounded("a change of +0.17") == ["+0.17"]
    assert ev.ungrounded("0.16 unsigned is a difference, not a value") == ["0.16"]
    assert ev.ungrounded("37 % cloud") == ["37"]
    ev.allow(3)
    assert ev.ungrounded("3 parcels in 2022") == []


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(-1.2, 1.2, allow_nan=False), min_size=1, max_size=40),
       picked=st.integers(0, 39), decimals=st.integers(1, 3), nudge=st.sampled_from([0, 0, -1, 1]))
def test_a_number_is_a_value_exactly_when_some_value_is_written_so(values, picked, decimals, nudge):
    # The gate compares a stated number with the values near it only; this is the rule it must
    # equal: some record's value, written with the same decimals, reads the same.
    ev = Evidence()
    for x in values:
        ev.add_record({"parcel_id": "p", "date": "2022-06-24", "ndvi_mean": x})
    x = values[picked % len(values)] + nudge * 10 ** -decimals
    written = f"{x:.{decimals}f}"
    sign, digits = ("-", written[1:]) if written.startswith("-") else ("", written)
    expected = any(f"{v:.{d}f}" == written for v in values for d in (1, 2, 3))
    assert ev._is_value(digits, sign) == expected


def test_stored_analyses_pass_the_analysis_check(view):
    records = view.records()
    for row in records.to_dict("records"):
        for text in (row["analysis"], row["analysis_fr"]):
            verdict = check_analysis(text, row)
            assert verdict.ok, (row["parcel_id"], row["date"], verdict.problems, text)


def test_analysis_check_rejects_a_wrong_number_a_wrong_class_and_misread_clouds():
    good = write_analysis(META, seed=3)
    assert check_analysis(good, META).ok
    wrong_number = good.replace("0.71", "0.66")
    verdict = check_analysis(wrong_number, META)
    assert not verdict.ok and any("0.66" in p for p in verdict.problems)
    # The NDMI value quoted as NDVI: a value the record holds, but not for that index.
    assert not check_analysis("Vegetation shows high vigor (NDVI 0.23).", META).ok
    # The NDVI 90th percentile quoted as the vigor class's value (the mean).
    assert not check_analysis("Vigorous vegetation across the parcel, NDVI 0.80.", META).ok
    assert check_analysis("NDVI ranges from 0.61 to 0.80 (10th-90th percentile), showing moderate heterogeneity.",
                          {**META, "ndvi_std": 0.07}).ok
    wrong_class = "Vegetation shows low vigor (NDVI 0.71)."
    verdict = check_analysis(wrong_class, META)
    assert not verdict.ok and any("vigor 'low'" in p for p in verdict.problems)
    cloudy = {**META, "valid": False}
    assert not check_analysis(good, cloudy).ok  # states classes for an unusable observation
    assert check_analysis(write_analysis(cloudy, valid=False, reason="cloud", seed=1), cloudy).ok
    assert not check_analysis("Observation unusable: clouds.", META).ok
    assert not check_analysis("", META).ok
