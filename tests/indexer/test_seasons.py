"""Past-season comparison by day of year (indexer.seasons)."""

from __future__ import annotations

import datetime as dt
import pandas as pd
import pytest

from indexer.core.errors import InputError
from indexer.seasons import (
    CLOSEST_DOY, NOISE, SAME_WINDOW, change_word, compare_past_seasons, compare_windows, measure_noise, same_day_in,
)


def _history(points: dict[str, float], invalid: tuple[str, ...] = ()) -> pd.DataFrame:
    dates = sorted(points)
    return pd.DataFrame({"parcel_id": "p", "date": dates, "record_id": range(len(dates)),
                         "valid": [d not in invalid for d in dates], "invalid_reason": "",
                         "n_pixels": 100, "valid_fraction": 1.0, "ndvi_mean": [points[d] for d in dates]})


def test_closest_day_of_year_not_the_nearest_stored_date():
    history = _history({"2018-10-13": 0.30, "2018-10-18": 0.40, "2018-11-20": 0.5, "2019-10-28": 0.70})
    got = compare_past_seasons(history, "2019-10-28")
    assert got.method == CLOSEST_DOY and got.missing_seasons == ()
    (pair,) = got.pairs
    assert (pair.past_date, pair.gap_days, pair.past_season) == ("2018-10-18", -10, 2018)
    assert pair.delta == pytest.approx(0.30) and pair.change == "higher"
    assert (pair.record_id, pair.past_record_id) == (3, 1)


def test_an_unusable_counterpart_is_skipped_and_a_far_one_is_missing():
    history = _history({"2018-10-13": 0.30, "2018-10-18": 0.40, "2019-10-28": 0.70}, invalid=("2018-10-18",))
    (pair,) = compare_past_seasons(history, "2019-10-28").pairs
    assert pair.past_date == "2018-10-13" and pair.gap_days == -15
    got = compare_past_seasons(history, "2019-10-28", tolerance_days=10)
    assert got.pairs == () and got.missing_seasons == (2018,)


def test_ties_take_the_earlier_date_and_leap_days_anchor_on_28_february():
    history = _history({"2019-02-23": 0.2, "2019-03-05": 0.3, "2020-02-29": 0.25})
    (pair,) = compare_past_seasons(history, "2020-02-29").pairs
    assert same_day_in(dt.date(2020, 2, 29), 2019) == dt.date(2019, 2, 28)
    assert pair.past_date == "2019-02-23"  # 5 days before the anchor, as far as 2019-03-05 after it


def test_stable_within_the_measured_noise():
    assert change_word(NOISE["ndvi_mean"] * 0.9, NOISE["ndvi_mean"]) == "stable"
    assert change_word(-NOISE["ndvi_mean"] * 1.1, NOISE["ndvi_mean"]) == "lower"
    history = _history({"2018-06-01": 0.80, "2019-06-03": 0.80 - NOISE["ndvi_mean"] / 2})
    (pair,) = compare_past_seasons(history, "2019-06-03").pairs
    assert pair.change == "stable" and pair.delta < 0


def test_an_unusable_date_has_nothing_to_compare():
    history = _history({"2018-06-01": 0.8, "2019-06-03": 0.1}, invalid=("2019-06-03",))
    with pytest.raises(InputError, match="no usable ndvi_mean on 2019-06-03"):
        compare_past_seasons(history, "2019-06-03")


def test_same_window_means_with_counts():
    history = _history({"2018-06-02": 0.6, "2018-06-20": 0.8, "2018-07-02": 0.1,
                        "2019-06-05": 0.5, "2019-06-25": 0.6})
    got = compare_windows(history, "2019-06-01", "2019-06-30")
    assert got.method == SAME_WINDOW
    (pair,) = got.pairs
    assert (pair.n, pair.past_n, pair.past_window) == (2, 2, ("2018-06-01", "2018-06-30"))
    assert pair.value == pytest.approx(0.55) and pair.past_value == pytest.approx(0.7)
    assert pair.delta == pytest.approx(-0.15) and pair.change == "lower"
    assert pair.past_record_ids == (0, 1)


def test_same_window_means_cover_only_the_days_the_archive_holds_in_both_years():
    # The archive starts in August 2018: 2019 against 2018 is August to the archive's end, both years.
    history = _history({"2018-08-10": 0.3, "2018-10-01": 0.4, "2019-03-01": 0.9, "2019-05-01": 0.9,
                        "2019-08-20": 0.5, "2019-10-05": 0.6, "2019-11-20": 0.7})
    (pair,) = compare_windows(history, "2019-01-01", "2019-12-31").pairs
    assert pair.narrowed
    assert pair.window == ("2019-08-10", "2019-11-20") and pair.past_window == ("2018-08-10", "2018-11-20")
    assert (pair.n, pair.past_n) == (3, 2) and pair.value == pytest.approx(0.6) and pair.past_value == pytest.approx(0.35)
    assert pair.record_ids == (4, 5, 6) and pair.past_record_ids == (0, 1)
    # A window inside what both years hold is not narrowed.
    (june,) = compare_windows(history, "2019-09-01", "2019-10-31").pairs
    assert not june.narrowed and june.past_window == ("2018-09-01", "2018-10-31")


def test_measure_noise_uses_close_clear_pairs_only():
    history = _history({"2019-05-01": 0.50, "2019-05-06": 0.54, "2019-05-11": 0.50, "2019-06-30": 0.9})
    (median, n), = measure_noise(history, ("ndvi_mean",)).values()
    assert n == 2 and median == pytest.approx(0.04)
