"""Suspect acquisitions: scenes the cloud mask passed whose values jump scene-wide and come back.

Haze, thin cloud or a shadowed scene lowers every parcel's NDVI on one date, and the next
acquisition shows the fields as they were: no crop does that everywhere at once. The rule, computed
when answering from the records themselves (`find_suspects`):

    For each acquisition date d with usable records, take the nearest earlier and the nearest later
    date with usable records, each at most `max_gap_days` away. Over the parcels usable on all three
    dates, take the median of NDVI(d) - NDVI(previous) and the median of NDVI(d) - NDVI(next).
    The date is suspect when at least `min_parcels` parcels are compared and both medians are beyond
    `threshold` with the same sign (a scene-wide collapse and recovery, or a spike and fall-back).

A harvest (a drop that does not recover) or a green-up (a rise that stays) is never suspect; a
parcel alone doing something odd is not "scene-wide". Suspect records are reported as such and
left out of trends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SuspectRule:
    """Thresholds of the suspect-scene rule (see the module docstring)."""

    column: str = "ndvi_mean"
    threshold: float = 0.15
    max_gap_days: int = 30
    min_parcels: int = 3


DEFAULT_RULE = SuspectRule()


@dataclass(frozen=True)
class SuspectDate:
    """Why one acquisition date is suspect: its neighbours and the parcels' median changes."""

    date: str
    previous: str
    next: str
    n_parcels: int
    median_change_previous: float
    median_change_next: float

    @property
    def direction(self) -> str:
        return "drop" if self.median_change_previous < 0 else "spike"

    def to_dict(self) -> dict:
        return {**asdict(self), "direction": self.direction}


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(str(text)[:10])


def find_suspects(records: pd.DataFrame, rule: SuspectRule = DEFAULT_RULE) -> dict[str, SuspectDate]:
    """Date -> why it is suspect, for every suspect acquisition in `records` (all parcels, all dates).

    `records` needs `parcel_id`, `date`, `valid` and `rule.column`; invalid records and missing
    values are ignored.
    """
    if records is None or len(records) == 0 or rule.column not in records.columns:
        return {}
    usable = records[records["valid"].astype(bool) & records[rule.column].notna()]
    if usable.empty:
        return {}
    table = usable.pivot_table(index="date", columns="parcel_id", values=rule.column, aggfunc="first").sort_index()
    dates = [str(d) for d in table.index]
    values = table.to_numpy(dtype=float)
    out: dict[str, SuspectDate] = {}
    for i in range(1, len(dates) - 1):
        day = _day(dates[i])
        if (day - _day(dates[i - 1])).days > rule.max_gap_days or (_day(dates[i + 1]) - day).days > rule.max_gap_days:
            continue
        both = ~np.isnan(values[i - 1]) & ~np.isnan(values[i]) & ~np.isnan(values[i + 1])
        n = int(both.sum())
        if n < rule.min_parcels:
            continue
        before = float(np.median(values[i, both] - values[i - 1, both]))
        after = float(np.median(values[i, both] - values[i + 1, both]))
        if (before <= -rule.threshold and after <= -rule.threshold) or (before >= rule.threshold and after >= rule.threshold):
            out[dates[i]] = SuspectDate(dates[i], dates[i - 1], dates[i + 1], n, before, after)
    return out
