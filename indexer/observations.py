"""Observation quality: whether a record can be read as the crop's condition, and why not.

One rule, used by the assistant, the command line and the app alike.

Status of a record (`observation_status`, `observation_statuses`), first match wins:

    cloud / snow / nodata   the indexer flagged it not valid (fewer than 30 % of the parcel's pixels
                            clear, `indexer.chips.MIN_VALID_FRACTION`); the reason is its
                            `invalid_reason` ("shadow" and other cloud-mask reasons read as cloud).
    too_small               the parcel has fewer than MIN_RELIABLE_PIXELS = 20 pixels at 10 m
                            (0.2 ha). Below that most pixels straddle the parcel edge (a 4 x 5
                            parcel has 14 of 20 pixels on its border) and Sentinel-2's geolocation
                            error (up to ~1 pixel) moves a good share of them onto the neighbour,
                            so its mean is as much the hedge or the road as the crop.
    suspect                 a valid record on an acquisition the suspect-scene rule finds suspect
                            for the parcel's area (below).
    usable                  everything else.

Only `usable` records are read as the crop's condition (trends, rankings, comparisons, calendar
events); the others are reported with their reason.

Suspect acquisitions (`find_suspects`), moved here from the assistant so that the map and the
assistant flag the same dates. Haze, thin cloud or a shadowed scene lowers every parcel's NDVI on
one date, and the next acquisition shows the fields as they were: no crop does that everywhere at
once. Per area and date:

    take the nearest earlier and the nearest later date with usable records in the same area, each
    at most 30 days away. Over the parcels usable on all three dates, take the median of
    NDVI(d) - NDVI(previous) and of NDVI(d) - NDVI(next). The date is suspect for that area when at
    least 3 parcels are compared and both medians are beyond 0.15 with the same sign (a collapse
    and recovery, or a spike and fall-back).

A harvest (a drop that does not recover) or a green-up (a rise that stays) is never suspect.

Scope: per area, not store-wide. A haze is a property of one acquisition over one place, and a
store often holds several places observed on different dates (the demo holds Flanders and
Hesbaye): store-wide, a Flanders date's "previous" acquisition may be a Hesbaye one with no
Flanders parcel on it, which hides real suspects, and one place's haze would speak for the other.
An area (`parcel_areas`) is a group of parcels whose bounding boxes, grown by AREA_GAP_DEG / 2
(0.005°, about 500 m), touch: contiguous farmland and the cells of one raster fall in one area,
separate samples in separate ones. On a store of one area (the Flanders sample) the two scopes
agree.

Stores indexed before the current quality rule (QUALITY_RULE_VERSION; records without the
``quality_rule`` column or with an older value) counted SCL dark (2), unclassified (7) and snow (11)
pixels as clear, and have no snow or vegetation+soil share: they read as before, the missing
values as unknown, and `reindex_note` says how many such records there are and that re-indexing
applies the new rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import shapely

from indexer.analysis import finite_or_none
from indexer.core.schema import QUALITY_RULE_VERSION

#: Parcels with fewer pixels (10 m) than this are too small for a reliable value (see above).
MIN_RELIABLE_PIXELS = 20
#: Parcels whose bounding boxes, grown by half this (degrees), touch belong to one area.
AREA_GAP_DEG = 0.01

USABLE, CLOUD, SNOW, NODATA, TOO_SMALL, SUSPECT = "usable", "cloud", "snow", "nodata", "too_small", "suspect"
#: Every status, in the order of the rule.
STATUSES: tuple[str, ...] = (CLOUD, SNOW, NODATA, TOO_SMALL, SUSPECT, USABLE)
#: Statuses that are not the crop's condition because nothing (or not the ground) was seen.
UNOBSERVED: tuple[str, ...] = (CLOUD, SNOW, NODATA)
_REASON_STATUS = {"cloud": CLOUD, "clouds": CLOUD, "shadow": CLOUD, "cloud_shadow": CLOUD, "cirrus": CLOUD,
                  "snow": SNOW, "nodata": NODATA, "no_data": NODATA}


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
    """Why one acquisition is suspect in one area: its neighbours and the parcels' median changes."""

    date: str
    previous: str
    next: str
    n_parcels: int
    median_change_previous: float
    median_change_next: float
    area: str = "all parcels"

    @property
    def direction(self) -> str:
        """"drop" (the scene reads low) or "spike" (it reads high)."""
        return "drop" if self.median_change_previous < 0 else "spike"

    def to_dict(self) -> dict:
        return {**asdict(self), "direction": self.direction}


class Suspects(Mapping):
    """The suspect acquisitions of a record table, per area.

    A mapping date -> SuspectDate (the first area's, when a date is suspect in several) for callers
    that think in dates; `get_for(parcel_id, date)` is the exact, per-area answer.
    """

    def __init__(self, found: Mapping[tuple[str, str], SuspectDate], area_of: Mapping[str, str]) -> None:
        self._found = dict(found)
        self.area_of = dict(area_of)
        self._by_date: dict[str, SuspectDate] = {}
        for (_, date), s in sorted(self._found.items()):
            self._by_date.setdefault(date, s)

    def __getitem__(self, date: str) -> SuspectDate:
        return self._by_date[str(date)]

    def __iter__(self):
        return iter(sorted(self._by_date))

    def __len__(self) -> int:
        return len(self._by_date)

    def get_for(self, parcel_id: str, date: str) -> SuspectDate | None:
        """The SuspectDate of (parcel, date) when that date is suspect in the parcel's area."""
        area = self.area_of.get(str(parcel_id))
        return self._found.get((area, str(date))) if area is not None else None

    def items_by_area(self) -> list[SuspectDate]:
        """Every (area, date) found suspect, sorted by date then area."""
        return [self._found[k] for k in sorted(self._found, key=lambda k: (k[1], k[0]))]

    def mask(self, records: pd.DataFrame) -> np.ndarray:
        """Boolean per row of `records`: valid and on a date suspect in its parcel's area."""
        if not len(records) or not self._found:
            return np.zeros(len(records), dtype=bool)
        areas = records["parcel_id"].astype(str).map(self.area_of)
        keys = set(self._found)
        hit = [(a, str(d)) in keys for a, d in zip(areas, records["date"])]
        return np.asarray(hit, dtype=bool) & records["valid"].astype(bool).to_numpy()


def _day(text: object) -> dt.date:
    return dt.date.fromisoformat(str(text)[:10])


def parcel_areas(records: pd.DataFrame) -> dict[str, str]:
    """parcel_id -> area name (see the module docstring), from a table with ``parcel_id`` and a
    WGS84 ``geometry`` (records or parcels; the newest geometry of a parcel is used).

    One area is called "all parcels"; several are named after their first parcel ("around X").
    """
    if records is None or not len(records):
        return {}
    parcels = records.drop_duplicates("parcel_id", keep="last").sort_values("parcel_id")
    ids = parcels["parcel_id"].astype(str).tolist()
    if "geometry" not in parcels.columns:
        return dict.fromkeys(ids, "all parcels")
    geoms = parcels["geometry"].to_numpy()
    # Degrees, not metres: only "near each other" matters.
    grown = shapely.buffer(shapely.envelope(geoms), AREA_GAP_DEG / 2)
    union = shapely.union_all(grown)
    groups = list(getattr(union, "geoms", [union]))
    if len(groups) == 1:
        return dict.fromkeys(ids, "all parcels")
    points = shapely.point_on_surface(geoms)
    # A spatial index: a store of scattered parcels has as many areas as parcels.
    point_i, group_i = shapely.STRtree(groups).query(points, predicate="intersects")
    which = [0] * len(ids)
    for pi, gi in zip(point_i[::-1], group_i[::-1]):  # reversed: the first group found wins
        which[pi] = int(gi)
    names: dict[int, str] = {}
    for pid, group in zip(ids, which):  # ids sorted: each area named after its first parcel
        names.setdefault(group, f"around {pid}")
    return {pid: names[g] for pid, g in zip(ids, which)}


def _suspects_in(usable: pd.DataFrame, rule: SuspectRule, area: str) -> list[SuspectDate]:
    table = usable.pivot_table(index="date", columns="parcel_id", values=rule.column, aggfunc="first").sort_index()
    dates = [str(d) for d in table.index]
    values = table.to_numpy(dtype=float)
    out = []
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
            out.append(SuspectDate(dates[i], dates[i - 1], dates[i + 1], n, before, after, area))
    return out


def find_suspects(records: pd.DataFrame, rule: SuspectRule = DEFAULT_RULE,
                  areas: Mapping[str, str] | None = None) -> Suspects:
    """The suspect acquisitions of `records` (all parcels, all dates of the store or of a larger
    selection than the question's: the rule needs the neighbouring dates), per area.

    `records` needs `parcel_id`, `date`, `valid` and `rule.column` (and `geometry` unless `areas`
    is given); records not valid, too small, or without a value are left out of the medians.
    """
    if records is None or len(records) == 0 or rule.column not in records.columns:
        return Suspects({}, {})
    area_of = dict(areas) if areas is not None else parcel_areas(records)
    keep = records["valid"].astype(bool) & records[rule.column].notna()
    if "n_pixels" in records.columns:
        keep &= ~_too_small(records["n_pixels"])
    usable = records[keep]
    found: dict[tuple[str, str], SuspectDate] = {}
    if not usable.empty:
        per_area = usable["parcel_id"].astype(str).map(area_of).fillna("all parcels")
        for area, group in usable.groupby(per_area, sort=True):
            for s in _suspects_in(group, rule, str(area)):
                found[(str(area), s.date)] = s
    return Suspects(found, area_of)


def _too_small(n_pixels: pd.Series) -> pd.Series:
    n = pd.to_numeric(n_pixels, errors="coerce")
    return (n < MIN_RELIABLE_PIXELS) & n.notna()


@dataclass(frozen=True)
class ObservationStatus:
    """The status of one record (see the module docstring) and a short English reason.

    `reason` is for logs and plain front ends; front ends that word their own messages use
    `status` and the numbers (`valid_fraction`, `snow_fraction`, `n_pixels`, `suspect`).
    """

    status: str
    reason: str
    valid_fraction: float | None = None
    snow_fraction: float | None = None
    n_pixels: int | None = None
    suspect: SuspectDate | None = None

    @property
    def usable(self) -> bool:
        return self.status == USABLE

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "suspect"}
        out["usable"] = self.usable
        out["suspect"] = None if self.suspect is None else self.suspect.to_dict()
        return out


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.0f}%"


def observation_status(record: Mapping, suspects: Suspects | Collection[str] | None = None) -> ObservationStatus:
    """The status of one record (a Series or dict with the record columns).

    `suspects`: the store's `find_suspects` result (per area), or a plain collection of suspect
    dates when the caller has already scoped them. Missing quality columns (stores indexed before
    the current rule) are unknown, never guessed.
    """
    get = record.get
    frac = finite_or_none(get("valid_fraction"))
    snow = finite_or_none(get("snow_fraction"))
    n = finite_or_none(get("n_pixels"))
    n_pixels = None if n is None else int(n)
    common = dict(valid_fraction=frac, snow_fraction=snow, n_pixels=n_pixels)
    if not bool(get("valid", True)):
        raw = str(get("invalid_reason") or "").strip().lower()
        # Reasons other than cloud, snow and no data ("missing bands": the raster lacks what the
        # assessment needs) are "nodata": nothing of the ground was measured. The reason keeps them.
        status = _REASON_STATUS.get(raw, CLOUD if "cloud" in raw else NODATA)
        what = {CLOUD: "clouds or shadow", SNOW: "snow", NODATA: "no data"}[status]
        if raw and raw not in _REASON_STATUS and status == NODATA:
            what = raw
        return ObservationStatus(status, f"{what}: {_pct(frac)} of the parcel clear", **common)
    if n_pixels is not None and n_pixels < MIN_RELIABLE_PIXELS:
        return ObservationStatus(TOO_SMALL, f"parcel of {n_pixels} pixels, under the {MIN_RELIABLE_PIXELS} "
                                            "needed for a reliable value", **common)
    date, parcel = str(get("date", "")), str(get("parcel_id", ""))
    suspect = None
    if isinstance(suspects, Suspects):
        suspect = suspects.get_for(parcel, date)
    elif isinstance(suspects, Mapping):
        suspect = suspects.get(date)
    elif suspects is not None and date in suspects:
        return ObservationStatus(SUSPECT, "scene-wide jump the cloud mask missed", **common)
    if suspect is not None:
        return ObservationStatus(SUSPECT, f"scene-wide {suspect.direction} of {suspect.median_change_previous:+.2f} "
                                          f"against {suspect.previous} and {suspect.median_change_next:+.2f} "
                                          f"against {suspect.next} (median of {suspect.n_parcels} parcels)",
                                 suspect=suspect, **common)
    return ObservationStatus(USABLE, "usable", **common)


def observation_statuses(records: pd.DataFrame, suspects: Suspects | None = None) -> pd.DataFrame:
    """`status`, `status_reason` and `usable` for every row of `records` (same index).

    `suspects` defaults to `find_suspects(records)`: pass the store-wide result when `records` is
    a selection (one parcel's history, one date), since the rule needs the neighbouring dates and
    parcels.
    """
    if suspects is None:
        suspects = find_suspects(records)
    if not len(records):
        return pd.DataFrame({"status": pd.Series(dtype=object), "status_reason": pd.Series(dtype=object),
                             "usable": pd.Series(dtype=bool)}, index=records.index)
    # The status and its reason depend on a few values only: compute `observation_status` once per
    # distinct combination (a few hundred in a store of any size), not once per record.
    n = len(records)

    def column(name: str, default: object) -> pd.Series:
        return records[name] if name in records.columns else pd.Series([default] * n, index=records.index)

    frac = pd.to_numeric(column("valid_fraction", np.nan), errors="coerce")
    pixels = pd.to_numeric(column("n_pixels", np.nan), errors="coerce")
    suspect = suspects.mask(records)
    areas = records["parcel_id"].astype(str).map(suspects.area_of) if suspect.any() else None
    key = pd.DataFrame({
        "valid": column("valid", True).astype(bool).to_numpy(),
        "reason": column("invalid_reason", "").fillna("").astype(str).str.strip().str.lower().to_numpy(),
        "pct": np.where(frac.notna(), (100 * frac).round().fillna(-1), -1),
        "small": np.where(pixels < MIN_RELIABLE_PIXELS, pixels.fillna(-1), -1),
        "suspect": np.where(suspect, (areas.astype(str) + "|" + records["date"].astype(str)).to_numpy()
                            if areas is not None else "", ""),
    }, index=records.index)
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(key))
    first = pd.Series(np.arange(n)).groupby(codes).first().to_numpy()
    found = [observation_status(records.iloc[i], suspects) for i in first]
    return pd.DataFrame({"status": np.array([s.status for s in found], dtype=object)[codes],
                         "status_reason": np.array([s.reason for s in found], dtype=object)[codes],
                         "usable": np.array([s.usable for s in found], dtype=bool)[codes]}, index=records.index)


def with_status(records: pd.DataFrame, suspects: Suspects | None = None) -> pd.DataFrame:
    """`records` with the `observation_statuses` columns added (a copy)."""
    return pd.concat([records, observation_statuses(records, suspects)], axis=1)


def usable_mask(records: pd.DataFrame, suspects: Suspects | None = None) -> np.ndarray:
    """Boolean per row: the record is usable (vectorised `observation_status(...).usable`)."""
    if not len(records):
        return np.zeros(0, dtype=bool)
    if suspects is None:
        suspects = find_suspects(records)
    keep = records["valid"].astype(bool).to_numpy().copy()
    if "n_pixels" in records.columns:
        keep &= ~_too_small(records["n_pixels"]).to_numpy()
    return keep & ~suspects.mask(records)


def date_quality(records: pd.DataFrame, suspects: Suspects | None = None,
                 statuses: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per area and acquisition date: how many records, how many of each status, the usable share
    and a `verdict`: "clear" when at least half of the area's records that day are usable (the map's
    ☁ and the assistant's "cloudy dates" both read this), else the most common status among the
    others (ties in STATUSES order: cloud, snow, nodata, too_small, suspect).

    Index (area, date); columns `records`, one count per status, `usable_share`, `verdict`.
    `statuses` may be passed when already computed (`observation_statuses` of the same rows).
    """
    if suspects is None:
        suspects = find_suspects(records)
    if statuses is None:
        statuses = observation_statuses(records, suspects)
    area = records["parcel_id"].astype(str).map(suspects.area_of).fillna("all parcels")
    table = pd.crosstab([area.rename("area"), records["date"].astype(str).rename("date")],
                        statuses["status"]).reindex(columns=list(STATUSES), fill_value=0)
    out = table.assign(records=table.sum(axis=1))
    out["usable_share"] = out[USABLE] / out["records"]
    others = table.drop(columns=[USABLE])
    worst = others.columns[np.argmax(others.to_numpy(), axis=1)] if len(others) else []
    out["verdict"] = np.where(out["usable_share"] >= 0.5, "clear", worst)
    return out[["records", *STATUSES, "usable_share", "verdict"]]


def reindex_note(records: pd.DataFrame) -> str | None:
    """A sentence for front ends when some records were indexed before the current quality rule
    (None when all were indexed under it)."""
    if records is None or not len(records):
        return None
    if "quality_rule" in records.columns:
        rule = pd.to_numeric(records["quality_rule"], errors="coerce")
        old = int(((rule < QUALITY_RULE_VERSION) | rule.isna()).sum())
    else:
        old = len(records)
    if not old:
        return None
    return (f"{old} of {len(records)} records were indexed before the current observation-quality rule "
            "(Sen2Cor dark, unclassified and snow pixels now count as not clear; snow is its own reason; "
            "the share of vegetation and soil pixels is recorded). They read as before, without those "
            "values; re-index the imagery (xvision index ... --store) to apply the new rule.")
