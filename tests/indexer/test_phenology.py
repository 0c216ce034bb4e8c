"""Crop-calendar events from a parcel's usable series (indexer.phenology)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indexer.phenology import CUT, EMERGENCE, GREEN_UP, HARVEST, PEAK, SENESCENCE, crop_calendar, is_mown


def _history(series: list[tuple[str, float]], invalid: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({"parcel_id": "p", "date": [d for d, _ in series], "record_id": range(len(series)),
                         "valid": [d not in invalid for d, _ in series], "invalid_reason": "",
                         "n_pixels": 100, "valid_fraction": 1.0, "ndvi_mean": [v for _, v in series]})


WHEAT = [("2019-02-10", 0.42), ("2019-03-07", 0.45), ("2019-03-27", 0.62), ("2019-04-21", 0.80),
         ("2019-05-16", 0.86), ("2019-06-10", 0.80), ("2019-06-30", 0.55), ("2019-07-05", 0.52),
         ("2019-07-20", 0.24), ("2019-08-09", 0.22)]


def _kinds(events):
    return [(e.kind, e.start, e.end) for e in events]


def test_winter_wheat_green_up_peak_senescence_harvest():
    events = crop_calendar(_history(WHEAT))
    assert _kinds(events) == [
        (GREEN_UP, "2019-03-27", "2019-04-21"),  # level 0.42 + 0.5 * 0.44 = 0.64; 0.42 is a crop, not soil
        (PEAK, "2019-05-16", "2019-05-16"),
        (SENESCENCE, "2019-06-10", "2019-06-30"),  # below 0.86 - 0.25 * (0.86 - 0.22) = 0.70
        (HARVEST, "2019-07-05", "2019-07-20"),  # the largest fall from the peak to the low: 0.28
    ]
    harvest = events[-1]
    assert (harvest.value_start, harvest.value_end, harvest.record_ids) == (0.52, 0.24, (7, 8))
    assert events[1].dated and not harvest.dated and not events[1].censored


def test_maize_emerges_from_bare_soil_greens_up_and_goes_straight_to_harvest():
    maize = [("2019-04-20", 0.18), ("2019-05-20", 0.20), ("2019-06-15", 0.35), ("2019-07-10", 0.75),
             ("2019-08-10", 0.85), ("2019-09-20", 0.80), ("2019-10-20", 0.22)]
    assert _kinds(crop_calendar(_history(maize))) == [
        (EMERGENCE, "2019-05-20", "2019-06-15"),  # leaves bare soil (< 0.3)
        (GREEN_UP, "2019-06-15", "2019-07-10"),  # level 0.18 + 0.5 * 0.67 = 0.515
        (PEAK, "2019-08-10", "2019-08-10"),
        (HARVEST, "2019-09-20", "2019-10-20"),  # no observation in between: no separate senescence
    ]
    one_step = [p for p in maize if p[0] != "2019-06-15"]  # soil to canopy between two passes
    assert _kinds(crop_calendar(_history(one_step)))[:2] == [(EMERGENCE, "2019-05-20", "2019-07-10"),
                                                             (PEAK, "2019-08-10", "2019-08-10")]


def test_a_cloud_or_a_one_date_dip_is_never_a_harvest_and_grass_cuts_are_not_harvests():
    clouded = _history(WHEAT[:6] + [("2019-06-20", 0.05)] + WHEAT[6:7], invalid=("2019-06-20",))
    assert HARVEST not in [e.kind for e in crop_calendar(clouded)]
    dipped = _history(WHEAT[:5] + [("2019-05-30", 0.27)] + WHEAT[5:])  # a partly clouded record
    assert _kinds(crop_calendar(dipped)) == _kinds(crop_calendar(_history(WHEAT)))
    grass = [("2019-04-01", 0.70), ("2019-05-01", 0.88), ("2019-05-20", 0.55), ("2019-06-15", 0.85),
             ("2019-07-10", 0.60), ("2019-08-01", 0.80)]
    kinds = [e.kind for e in crop_calendar(_history(grass))]
    assert HARVEST not in kinds and SENESCENCE not in kinds and PEAK in kinds


def test_the_harvest_is_the_largest_fall_not_a_dip_on_the_way_down():
    # Flanders maize 013 in 2019: a half-cloudy 0.60 between 0.84 and 0.75, then the harvest.
    maize = [("2019-06-20", 0.56), ("2019-07-05", 0.80), ("2019-08-24", 0.84), ("2019-09-08", 0.60),
             ("2019-09-18", 0.75), ("2019-10-13", 0.42), ("2019-11-22", 0.39)]
    events = crop_calendar(_history(maize))
    assert [(e.start, e.end) for e in events if e.kind == HARVEST] == [("2019-09-18", "2019-10-13")]
    assert [(e.start, e.end) for e in events if e.kind == SENESCENCE] == [("2019-08-24", "2019-09-08")]


def test_a_peak_on_the_first_observation_is_censored_and_windows_filter_events():
    late = [("2018-08-04", 0.85), ("2018-08-24", 0.80), ("2018-09-23", 0.70), ("2018-10-13", 0.20)]
    events = crop_calendar(_history(late))
    assert events[0].kind == PEAK and events[0].censored
    assert events[-1].kind == HARVEST and (events[-1].start, events[-1].end) == ("2018-09-23", "2018-10-13")
    assert _kinds(crop_calendar(_history(late), date_from="2018-10-01", date_to="2018-10-31")) == [
        (HARVEST, "2018-09-23", "2018-10-13")]


def test_prominent_peaks_agree_with_scipy_find_peaks():
    from scipy.signal import find_peaks

    from indexer.phenology import prominent_peaks

    rng = np.random.default_rng(0)
    for trial in range(2000):
        n = int(rng.integers(3, 40))
        # Rounded values make plateaus and ties, the cases where the definitions could drift apart.
        x = np.round(rng.uniform(-1, 1, n), int(rng.integers(1, 3)))
        height, prominence = float(rng.uniform(-0.5, 0.8)), float(rng.uniform(0, 0.6))
        expected, _ = find_peaks(x, height=height, prominence=prominence)
        assert prominent_peaks(x, height, prominence) == expected.tolist(), (x.tolist(), height, prominence)


COVER_THEN_MAIZE = [("2019-02-10", 0.55), ("2019-03-20", 0.70), ("2019-04-11", 0.72), ("2019-04-21", 0.25),
                    ("2019-05-20", 0.22), ("2019-06-15", 0.40), ("2019-07-10", 0.78), ("2019-08-10", 0.85),
                    ("2019-09-20", 0.80), ("2019-10-20", 0.24)]


def test_a_spring_sown_crop_goes_bare_for_sowing_and_is_harvested_in_autumn():
    from indexer.phenology import CLEARED

    kinds = [e.kind for e in crop_calendar(_history(COVER_THEN_MAIZE), crop="Maize")]
    assert kinds.count(CLEARED) == 1 and kinds.count(HARVEST) == 1
    cleared = next(e for e in crop_calendar(_history(COVER_THEN_MAIZE), crop="Maïs") if e.kind == CLEARED)
    assert (cleared.start, cleared.end) == ("2019-04-11", "2019-04-21")
    harvest = next(e for e in crop_calendar(_history(COVER_THEN_MAIZE), crop="maize") if e.kind == HARVEST)
    assert (harvest.start, harvest.end) == ("2019-09-20", "2019-10-20")
    # Without a crop, or for a crop sown in autumn, both falls are harvests (the rule cannot tell).
    for crop in (None, "", "Winter wheat"):
        assert [e.kind for e in crop_calendar(_history(COVER_THEN_MAIZE), crop=crop)].count(HARVEST) == 2, crop
    # Grass is cut, not harvested: both falls, each followed by regrowth or ending in stubble.
    assert [e.kind for e in crop_calendar(_history(COVER_THEN_MAIZE), crop="Permanent grass")].count(CUT) == 2


def test_clearing_for_sowing_follows_the_hemisphere_and_the_crop_calendar():
    from indexer.phenology import CropEvent, cleared_for_sowing, sowing_months

    def fall(end: str) -> CropEvent:
        return CropEvent(HARVEST, end, end, 0.7, 0.2)

    assert sowing_months("Maize") == (4, 5) and sowing_months("Maize", southern=True) == (10, 11)
    assert sowing_months("Sugar beet") == (3, 4) and sowing_months("Winter barley") is None
    assert [cleared_for_sowing(fall(f"2019-{m:02d}-15"), "Maize") for m in range(1, 13)] == \
        [False, True, True, True, True] + [False] * 7
    assert cleared_for_sowing(fall("2019-10-15"), "Maize", southern=True)
    assert not cleared_for_sowing(fall("2019-04-15"), "Maize", southern=True)
    assert not cleared_for_sowing(CropEvent(PEAK, "2019-04-15", "2019-04-15", 0.8, 0.8), "Maize")



# A cut seen on two passes before the regrowth (one low pass alone reads as cloud residue: a one-date dip).
GRASS = [("2019-04-01", 0.70), ("2019-05-01", 0.88), ("2019-05-20", 0.55), ("2019-06-01", 0.62), ("2019-06-15", 0.85),
         ("2019-07-10", 0.60), ("2019-07-20", 0.65), ("2019-08-01", 0.80)]


def test_grass_falling_and_regrowing_is_cut_and_only_with_its_crop_given():
    cuts = [(e.start, e.end) for e in crop_calendar(_history(GRASS), crop="Permanent grass crops") if e.kind == CUT]
    assert cuts == [("2019-05-01", "2019-05-20"), ("2019-06-15", "2019-07-10")]
    # Without the crop, or of a crop that is not mown, the same series has no cut (and no harvest).
    for crop in (None, "Winter wheat"):
        assert CUT not in [e.kind for e in crop_calendar(_history(GRASS), crop=crop)]
    # A fall on the last peak with no regrowth is a cut only down to stubble, as a harvest would be.
    ending = crop_calendar(_history(GRASS[:5] + [("2019-07-10", 0.62)]), crop="prairie permanente")
    assert [(e.start, e.end) for e in ending if e.kind == CUT] == [("2019-05-01", "2019-05-20")]
    mown_out = crop_calendar(_history(GRASS[:5] + [("2019-07-10", 0.30)]), crop="Meadow")
    assert [(e.start, e.end) for e in mown_out if e.kind == CUT][-1] == ("2019-06-15", "2019-07-10")
    assert not [e for e in mown_out if e.kind in (HARVEST, SENESCENCE)]


def test_a_winter_fall_of_grass_is_not_a_cut_and_the_season_follows_the_hemisphere():
    winter = [("2018-11-01", 0.70), ("2018-12-12", 0.89), ("2018-12-17", 0.60), ("2018-12-27", 0.62),
              ("2019-01-20", 0.85), ("2019-02-20", 0.70)]
    assert CUT not in [e.kind for e in crop_calendar(_history(winter), crop="Permanent grass crops")]
    # December is summer south of the equator: there it is a cut.
    south = crop_calendar(_history(winter), crop="Permanent grass crops", southern=True)
    assert [(e.start, e.end) for e in south if e.kind == CUT] == [("2018-12-12", "2018-12-17")]


def test_mown_crops_by_name():
    assert all(is_mown(c) for c in ("Permanent grass crops", "Prairie permanente", "Grasland", "Alfalfa", "luzerne"))
    assert not any(is_mown(c) for c in ("Winter wheat", "Maize", "Barley", None, ""))
