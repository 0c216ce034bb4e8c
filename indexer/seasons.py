"""Past-season comparison: a parcel's value now against the same time of year in its other seasons.

One rule, used by the assistant, the command line and the app alike.

Seasons are calendar years. Two ways to pair, and every result says which it used (`method`):

* ``closest day of year`` (`compare_past_seasons`): for an observation on date d and each other
  year Y of the parcel's history, the same calendar day in Y (29 February -> 28 February) is the
  anchor; the usable observation of the parcel closest to the anchor, at most
  DOY_TOLERANCE_DAYS = 15 days away, is the pair (ties: the earlier date). This is the closest day
  of year, not the nearest stored date: 2019-10-28 pairs with 2018-10-18 (10 days from
  2018-10-28) rather than 2018-10-13 (15 days). A year with no usable observation within the
  tolerance is listed in `missing_seasons`, never paired with something further away.
* ``same-window means`` (`compare_windows`): the mean of the usable observations in a date window
  (a month, a season) against the mean of the usable observations in the same window shifted to
  each other year, with their counts.

Deltas are signed, now minus then. A change whose size is at most the index's noise is "stable":
NOISE holds, per index mean, the median absolute change between two consecutive usable, fully clear
(>= 99 % clear pixels) observations of the same parcel at most 5 days apart (`measure_noise`;
Sentinel-2A and 2B revisit a parcel every 5 days from the same orbit, so such pairs see nearly the
same crop, and the median keeps the real changes that do happen in 5 days, harvests and fast
green-ups, out of the estimate). Measured on the Flanders sample (19 parcels, 2018-08..2019-11)
indexed under quality rule 2: see NOISE_MEASURED for the number of pairs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from indexer.analysis import finite_or_none
from indexer.core.errors import InputError
from indexer.observations import Suspects, usable_mask

DOY_TOLERANCE_DAYS = 15
#: Sentinel-2A and 2B together pass over a parcel every 5 days: an archive whose first or last
#: record lies within one revisit of a window's edge covers that edge.
REVISIT_DAYS = 5
#: Consecutive observations at most this many days apart are "repeated" for the noise measure.
NOISE_MAX_GAP_DAYS = 5
#: Share of clear parcel pixels both observations of a noise pair need.
NOISE_MIN_VALID_FRACTION = 0.99
#: Per index mean: the change within which a comparison is "stable" (see the module docstring).
NOISE: dict[str, float] = {
    "ndvi_mean": 0.045, "ndwi_mean": 0.049, "ndmi_mean": 0.036,
    "savi_mean": 0.052, "evi_mean": 0.068, "ndre_mean": 0.043,
}
#: How NOISE was measured (`measure_noise` on a store of ../shared/data/worldcereal-flanders).
NOISE_MEASURED = ("Flanders sample (19 parcels, 72 dates) indexed under quality rule 2: 106 pairs of usable, "
                  ">= 99 % clear observations of one parcel at most 5 days apart")

CLOSEST_DOY, SAME_WINDOW = "closest day of year", "same-window means"


def same_day_in(date: dt.date, year: int) -> dt.date:
    """The calendar day of `date` in `year` (29 February -> 28 February)."""
    try:
        return date.replace(year=year)
    except ValueError:
        return date.replace(year=year, day=28)


def _as_date(value: object, name: str = "date") -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date in YYYY-MM-DD form", field=name, value=value) from None


def noise_of(column: str) -> float:
    """The measured noise of an index statistic column (its mean's noise for other statistics)."""
    if column in NOISE:
        return NOISE[column]
    base = column.rsplit("_", 1)[0] + "_mean"
    if base in NOISE:
        return NOISE[base]
    raise InputError(f"no measured noise for column {column!r}; known: {', '.join(NOISE)}", field="column",
                     value=column)


def change_word(delta: float, noise: float) -> str:
    """"stable" within the noise, else "higher" or "lower"."""
    if abs(delta) <= noise:
        return "stable"
    return "higher" if delta > 0 else "lower"


@dataclass(frozen=True)
class SeasonPair:
    """One past-season counterpart of an observation (or of a window's mean)."""

    season: int
    past_season: int
    column: str
    value: float
    past_value: float
    noise: float
    method: str
    date: str | None = None  # the observation (closest-DOY pairing)
    past_date: str | None = None
    gap_days: int | None = None  # past_date minus the anchor, signed
    record_id: int | None = None
    past_record_id: int | None = None
    window: tuple[str, str] | None = None  # the windows (same-window means)
    past_window: tuple[str, str] | None = None
    n: int | None = None
    past_n: int | None = None
    past_record_ids: tuple[int, ...] = field(default_factory=tuple)
    record_ids: tuple[int, ...] = field(default_factory=tuple)  # the observations now (same-window means)
    #: Same-window means: the windows were narrowed to the part of the year the parcel's archive
    #: covers in both years (`window` and `past_window` are the narrowed ones).
    narrowed: bool = False

    @property
    def delta(self) -> float:
        """Now minus then."""
        return self.value - self.past_value

    @property
    def change(self) -> str:
        """"stable", "higher" or "lower" (see `change_word`)."""
        return change_word(self.delta, self.noise)

    def to_dict(self) -> dict:
        return {**asdict(self), "delta": self.delta, "change": self.change}


@dataclass(frozen=True)
class SeasonComparison:
    """An observation or window against the parcel's other seasons."""

    parcel_id: str
    column: str
    method: str
    pairs: tuple[SeasonPair, ...]
    missing_seasons: tuple[int, ...]  # other years with no usable counterpart
    tolerance_days: int | None = None

    def to_dict(self) -> dict:
        return {"parcel_id": self.parcel_id, "column": self.column, "method": self.method,
                "tolerance_days": self.tolerance_days, "missing_seasons": list(self.missing_seasons),
                "pairs": [p.to_dict() for p in self.pairs]}


def _usable_history(history: pd.DataFrame, column: str, suspects: Suspects | None) -> pd.DataFrame:
    if column not in history.columns:
        raise InputError(f"records have no column {column!r}", field="column", value=column)
    usable = history["usable"].to_numpy(bool) if "usable" in history.columns else usable_mask(history, suspects)
    rows = history[usable & history[column].notna().to_numpy()].copy()
    rows["_day"] = [_as_date(d) for d in rows["date"]]
    return rows


def _years(history: pd.DataFrame) -> list[int]:
    return sorted({_as_date(d).year for d in history["date"]})


def _record_id(row: Mapping) -> int | None:
    value = finite_or_none(row.get("record_id"))
    return None if value is None else int(value)


def compare_past_seasons(history: pd.DataFrame, date: str | dt.date, column: str = "ndvi_mean", *,
                         tolerance_days: int = DOY_TOLERANCE_DAYS, suspects: Suspects | None = None,
                         noise: float | None = None) -> SeasonComparison:
    """The observation of one parcel on `date` against its other seasons, by closest day of year.

    `history`: every record of the parcel (a `usable` column, else `suspects` from the store's
    `find_suspects`, decides which records count). InputError when `date` is not a usable
    observation of the parcel: an unusable date has nothing to compare.
    """
    if history.empty:
        raise InputError("no records to compare", field="history")
    parcel = str(history["parcel_id"].iloc[0])
    day = _as_date(date)
    rows = _usable_history(history, column, suspects)
    target = rows[rows["_day"] == day]
    if target.empty:
        raise InputError(f"parcel {parcel!r} has no usable {column} on {day.isoformat()}", field="date",
                         value=day.isoformat())
    now = target.iloc[0]
    noise = noise_of(column) if noise is None else noise
    pairs, missing = [], []
    for year in _years(history):
        if year == day.year:
            continue
        anchor = same_day_in(day, year)
        gaps = np.array([(d - anchor).days for d in rows["_day"]])
        near = np.flatnonzero(np.abs(gaps) <= tolerance_days) if len(gaps) else np.array([], dtype=int)
        if not len(near):
            missing.append(year)
            continue
        best = min(near, key=lambda i: (abs(gaps[i]), gaps[i]))  # ties: the earlier date
        then = rows.iloc[best]
        pairs.append(SeasonPair(season=day.year, past_season=year, column=column, value=float(now[column]),
                                past_value=float(then[column]), noise=noise, method=CLOSEST_DOY,
                                date=day.isoformat(), past_date=then["_day"].isoformat(), gap_days=int(gaps[best]),
                                record_id=_record_id(now), past_record_id=_record_id(then)))
    return SeasonComparison(parcel, column, CLOSEST_DOY, tuple(sorted(pairs, key=lambda p: -p.past_season)),
                            tuple(sorted(missing, reverse=True)), tolerance_days)


def compare_windows(history: pd.DataFrame, date_from: str | dt.date, date_to: str | dt.date,
                    column: str = "ndvi_mean", *, suspects: Suspects | None = None,
                    noise: float | None = None) -> SeasonComparison:
    """The mean of one parcel's usable observations in a window against the same window in each
    other year (the window shifted by whole years; both ends inclusive).

    Each pair compares the same days of the year: where the parcel's records (any, usable or not:
    what the archive covers) begin or end inside either window, more than one revisit
    (REVISIT_DAYS) from its edge, both windows are narrowed to the days of the year the archive
    covers in both years (`narrowed`). Without that, 2019 against 2018 on an archive that starts in
    August 2018 compares a whole spring and summer with an autumn of stubble.

    A year whose window holds no usable observation is in `missing_seasons`. InputError when the
    window itself holds none.
    """
    if history.empty:
        raise InputError("no records to compare", field="history")
    start, end = _as_date(date_from, "date_from"), _as_date(date_to, "date_to")
    if start > end:
        raise InputError(f"window {start} .. {end} ends before it starts", field="date_to", value=end.isoformat())
    parcel = str(history["parcel_id"].iloc[0])
    rows = _usable_history(history, column, suspects)
    noise = noise_of(column) if noise is None else noise

    def inside(a: dt.date, b: dt.date) -> pd.DataFrame:
        return rows[[a <= d <= b for d in rows["_day"]]]

    now = inside(start, end)
    if now.empty:
        raise InputError(f"parcel {parcel!r} has no usable {column} from {start} to {end}", field="date_from",
                         value=start.isoformat())
    days = [_as_date(d) for d in history["date"]]
    first, last = min(days), max(days)
    pairs, missing = [], []
    for year in _years(history):
        shift = year - start.year
        if shift == 0:
            continue
        a, b = same_day_in(start, start.year + shift), same_day_in(end, end.year + shift)
        span = min((end - start).days, (b - a).days)
        # Days from each window's start that the archive covers in both years; an edge within one
        # revisit of the window's (an archive whose last pass is 5 days before a month's end) is not
        # a gap.
        lo = max((max(start, first) - start).days, (max(a, first) - a).days)
        hi = min((min(end, last) - start).days, (min(b, last) - a).days)
        if lo > hi:
            missing.append(year)
            continue
        lo = lo if lo > REVISIT_DAYS else 0
        hi = hi if span - hi > REVISIT_DAYS else span
        narrowed = lo > 0 or hi < span
        s_now, e_now = start + dt.timedelta(days=lo), (start + dt.timedelta(days=hi)) if hi < span else end
        s_then, e_then = a + dt.timedelta(days=lo), (a + dt.timedelta(days=hi)) if hi < span else b
        here, then = inside(s_now, e_now), inside(s_then, e_then)
        if then.empty or here.empty:
            missing.append(year)
            continue
        pairs.append(SeasonPair(season=start.year, past_season=year, column=column, value=float(here[column].mean()),
                                past_value=float(then[column].mean()), noise=noise, method=SAME_WINDOW,
                                window=(s_now.isoformat(), e_now.isoformat()),
                                past_window=(s_then.isoformat(), e_then.isoformat()),
                                n=len(here), past_n=len(then),
                                past_record_ids=tuple(i for i in map(_record_id, then.to_dict("records")) if i is not None),
                                record_ids=tuple(i for i in map(_record_id, here.to_dict("records")) if i is not None),
                                narrowed=narrowed))
    return SeasonComparison(parcel, column, SAME_WINDOW, tuple(sorted(pairs, key=lambda p: -p.past_season)),
                            tuple(sorted(missing, reverse=True)))


def measure_noise(records: pd.DataFrame, columns: tuple[str, ...] | None = None, *,
                  suspects: Suspects | None = None, max_gap_days: int = NOISE_MAX_GAP_DAYS,
                  min_valid_fraction: float = NOISE_MIN_VALID_FRACTION) -> dict[str, tuple[float, int]]:
    """Column -> (median absolute change, number of pairs) over consecutive usable observations of
    the same parcel at most `max_gap_days` apart, both at least `min_valid_fraction` clear: how
    NOISE was measured (see the module docstring)."""
    columns = tuple(NOISE) if columns is None else columns
    usable = records[usable_mask(records, suspects) & (records["valid_fraction"] >= min_valid_fraction).to_numpy()]
    usable = usable.sort_values(["parcel_id", "date"])
    out = {}
    for column in columns:
        changes = []
        for _, group in usable.groupby("parcel_id"):
            days = np.array([_as_date(d).toordinal() for d in group["date"]])
            values = group[column].to_numpy(float)
            close = np.diff(days) <= max_gap_days
            step = np.abs(np.diff(values))[close]
            changes.extend(step[np.isfinite(step)])
        out[column] = (float(np.median(changes)) if changes else float("nan"), len(changes))
    return out
