"""Crop-calendar events from a parcel's own usable NDVI series: emergence or green-up, peak,
senescence, harvest or bare soil.

One rule, used by the assistant, the command line and the app alike. Only usable observations
count (`indexer.observations`: not clouded, snowy, suspect or too small), so a cloud or a hazy
scene never reads as a harvest. An event is either dated (the peak: an observation) or a window
between two consecutive usable observations (the change happened in between; the series cannot
say when exactly). The rule, on the usable series v(t) of NDVI means:

* **peak** — an observation with NDVI >= CANOPY_NDVI (0.5, the analysis' "high vigor" break)
  standing out by at least MIN_PROMINENCE (0.2) from the lowest values between it and any higher
  observation (`prominent_peaks`: scipy.signal.find_peaks' prominence). A peak on the first or last observation is
  kept but `censored`: the true peak may lie outside the series.
* **emergence** — before a peak (since the previous one), the last step from bare soil
  (NDVI < BARE_NDVI = 0.3; the analysis' "bare soil" SAVI 0.2 is about NDVI 0.3) to above it:
  the crop (or a cover crop) leaving bare soil.
* **green-up** — before a peak, the last step that crosses upward the half-amplitude level
  base + 0.5 (peak - base), base being the lowest value since the previous peak (the start of
  season of TIMESAT and most phenology tools): a winter cereal's spring growth, or a grass's
  regrowth. When it is the same step as the emergence (maize from bare soil to canopy between two
  passes), only the emergence is reported.
* **harvest / bare soil** — after a peak, in a cycle whose lowest value before the next peak
  (low) is bare soil or stubble (< STUBBLE_NDVI = 0.4: stubble and volunteer weeds keep some green;
  in the Flanders sample cereal stubble reads 0.15-0.34 and silage-maize stubble 0.35) at least
  MIN_HARVEST_DROP = 0.3 below the peak: the step between two consecutive usable observations,
  from the peak to the low, with the largest fall of NDVI. The largest fall rather than a level
  crossing, because the decline is rarely smooth: a half-cloudy record or a lodged patch makes one
  dip on the way down that a level would take for the harvest (Flanders maize parcel 013 in 2019:
  0.84, 0.60, 0.75, then 0.42 after the harvest). A cycle whose NDVI never falls that low (grass
  cut and regrowing, 0.45-0.6 in the sample) has no harvest.
* **senescence** — in a cycle that ends in a harvest, the first observation after the peak below
  peak - 0.25 (peak - low): the window before it. Reported only when that window ends before the
  harvest window starts (the decline was seen on its own); when the canopy went from green to
  harvested between two observations, the harvest window holds the senescence too and only the
  harvest is reported.

* **cut** — with the parcel's crop given as grassland or a forage crop (`MOWN`: grass, meadow,
  pasture, alfalfa, clover ...), a fall of at least MIN_PROMINENCE from a peak to the low before
  the next peak is a cut (mowing or grazing): the step with the largest fall, as for a harvest.
  Grass regrows after a cut without falling to stubble (0.45-0.6 in the Flanders sample), so the
  regrowth (a next peak) is what tells a cut from the season's end; on the last peak of the series
  only a fall to stubble (the harvest rule) is a cut. Only falls ending in the mowing months
  (`MOWING_MONTHS`, April to October north of the equator) are cuts. Mown crops have no harvest or
  senescence event: their falls are cuts. A cut seen on one pass only, regrown by the next within
  DIP_MAX_GAP_DAYS, is indistinguishable from cloud residue (a one-date dip, below) and is not
  reported. Flanders permanent-grass parcel 005 in 2019: cut between 2019-05-11 and 2019-05-16
  (NDVI 0.85 to 0.63) and between 2019-08-24 and 2019-09-18 (0.70 to 0.53), regrowing after each.
* **cleared for sowing** — with the parcel's crop given (`crop=`), a harvest of a spring-sown crop
  (`SPRING_SOWING`) that ends in the months before its sowing or during it is not that crop's
  harvest: it is the field cleared for sowing (a winter cover or catch crop destroyed, grass or
  volunteers ploughed in). In the Flanders sample the four maize parcels go from a green winter
  cover to bare soil between mid-April and late May 2019, months before their maize harvest.

Before any of this, one-date dips are left out: an observation at least MIN_PROMINENCE below both
its usable neighbours, each at most DIP_MAX_GAP_DAYS = 30 days away. No crop loses and regains
that much canopy between two passes; such a dip is residual cloud or shadow in a partly clouded
record (Flanders parcel 009 on 2019-06-10: 30 % clear, NDVI 0.27 between 0.85 and 0.84).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from indexer.analysis import finite_or_none
from indexer.core.errors import InputError
from indexer.observations import Suspects, usable_mask

CANOPY_NDVI = 0.5
BARE_NDVI = 0.3
MIN_PROMINENCE = 0.2
GREENUP_FRACTION = 0.5
SENESCENCE_FRACTION = 0.25
STUBBLE_NDVI = 0.4
MIN_HARVEST_DROP = 0.3
DIP_MAX_GAP_DAYS = 30

PEAK, EMERGENCE, GREEN_UP, SENESCENCE, HARVEST = "peak", "emergence", "green-up", "senescence", "harvest"
CLEARED, CUT = "cleared", "cut"
#: Crops cut several times a season (grassland and forage), by words of their names (English,
#: French, Dutch as LPIS files write them).
MOWN: tuple[str, ...] = ("grass", "prairie", "meadow", "pasture", "grasland", "weide", "pature", "pâture",
                         "herbe", "alfalfa", "lucerne", "luzerne", "clover", "trefle", "trèfle", "klaver")
#: Months grass is cut in, northern hemisphere: April to October. A winter fall (frost, a wet or
#: snowy scene, low sun; Flanders grass parcel 011 in December 2018: 0.89, 0.60, 0.74 in ten days)
#: is not read as a cut.
MOWING_MONTHS = (4, 10)
#: Spring-sown crops, by words of their names (English, French, Dutch as LPIS files write them),
#: and the months they are sown in, northern hemisphere (six months later in the southern).
SPRING_SOWING: tuple[tuple[tuple[str, ...], tuple[int, int]], ...] = (
    (("maize", "corn", "mais", "maïs", "sorghum", "sorgho"), (4, 5)),
    (("sugar beet", "beet", "betterave", "biet"), (3, 4)),
    (("potato", "pomme de terre", "pommes de terre", "aardappel"), (4, 5)),
    (("soy", "soja", "sunflower", "tournesol", "zonnebloem"), (4, 5)),
    (("spring", "printemps", "zomer"), (3, 4)),
)
#: A fall to bare soil this many months before the sowing window, or in it, clears the field.
CLEARING_LEAD_MONTHS = 2


@dataclass(frozen=True)
class CropEvent:
    """One crop-calendar event: dated (`start == end`, the peak) or a window between two usable
    observations (`start` < `end`), with the values there and their records."""

    kind: str
    start: str
    end: str
    value_start: float
    value_end: float
    column: str = "ndvi_mean"
    record_ids: tuple[int, ...] = ()
    censored: bool = False  # a peak on the first or last usable observation

    @property
    def dated(self) -> bool:
        return self.start == self.end

    def overlaps(self, date_from: str | None, date_to: str | None) -> bool:
        """Whether the event's date or window meets [date_from, date_to] (inclusive; None: open)."""
        return (date_to is None or self.start <= str(date_to)) and (date_from is None or self.end >= str(date_from))

    def to_dict(self) -> dict:
        return {**asdict(self), "dated": self.dated}


def _rid(row: pd.Series) -> tuple[int, ...]:
    value = finite_or_none(row.get("record_id"))
    return () if value is None else (int(value),)


def one_date_dips(rows: pd.DataFrame, column: str) -> np.ndarray:
    """Which rows (one parcel's usable observations, `date` and `column`, oldest first) are one-date
    dips: residual cloud or shadow, not the crop (see the module docstring)."""
    v = rows[column].to_numpy(float)
    days = np.array([dt.date.fromisoformat(str(d)[:10]).toordinal() for d in rows["date"]])
    dip = np.zeros(len(v), dtype=bool)
    for i in range(1, len(v) - 1):
        close = days[i] - days[i - 1] <= DIP_MAX_GAP_DAYS and days[i + 1] - days[i] <= DIP_MAX_GAP_DAYS
        dip[i] = close and v[i - 1] - v[i] >= MIN_PROMINENCE and v[i + 1] - v[i] >= MIN_PROMINENCE
    return dip


def prominent_peaks(x: np.ndarray, height: float, prominence: float) -> list[int]:
    """Indices of the local maxima of `x` at least `height` high and `prominence` prominent.

    The definitions of `scipy.signal.find_peaks(x, height=, prominence=)` (a plateau's peak is its
    middle sample; a peak's prominence is its height above the higher of the lowest values between
    it and a higher sample on each side, or the series' end), written out because importing
    scipy.signal costs about a second, paid by every cold `xvision ask` that reads a calendar;
    tests check the two agree.
    """
    x = np.asarray(x, dtype=float)
    peaks, i, n = [], 1, len(x)
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
                continue
        i += 1
    out = []
    for p in peaks:
        if x[p] < height:
            continue
        left = p
        while left > 0 and x[left - 1] <= x[p]:
            left -= 1
        right = p
        while right < n - 1 and x[right + 1] <= x[p]:
            right += 1
        if x[p] - max(x[left:p + 1].min(), x[p:right + 1].min()) >= prominence:
            out.append(p)
    return out


def sowing_months(crop: str | None, southern: bool = False) -> tuple[int, int] | None:
    """(first, last) month a spring-sown `crop` is sown in (`SPRING_SOWING`), else None
    (winter crops, grass, unknown names)."""
    name = str(crop or "").lower()
    if not name or "winter" in name or "hiver" in name:
        return None
    for words, (first, last) in SPRING_SOWING:
        if any(w in name for w in words):
            return ((first + 5) % 12 + 1, (last + 5) % 12 + 1) if southern else (first, last)
    return None


def in_mowing_season(date: str, southern: bool = False) -> bool:
    """Whether `date` (ISO) falls in the months grass is cut (`MOWING_MONTHS`, six months later
    south of the equator)."""
    first, last = MOWING_MONTHS
    month = int(date[5:7])
    if southern:
        month = (month + 5) % 12 + 1
    return first <= month <= last


def is_mown(crop: str | None) -> bool:
    """Whether `crop` (a parcel's crop label) is grassland or a forage crop, cut several times a
    season (`MOWN`): its falls are cuts, not harvests."""
    name = str(crop or "").lower()
    return any(w in name for w in MOWN)


def cleared_for_sowing(event: CropEvent, crop: str | None, southern: bool = False) -> bool:
    """Whether a harvest `event` is the field cleared for sowing `crop` (see the module docstring)."""
    months = sowing_months(crop, southern)
    if event.kind != HARVEST or months is None:
        return False
    month = int(event.end[5:7])
    lead = (months[0] - month) % 12  # months from the end of the fall to the first sowing month
    return lead <= CLEARING_LEAD_MONTHS or (month - months[0]) % 12 <= (months[1] - months[0]) % 12


def crop_calendar(history: pd.DataFrame, column: str = "ndvi_mean", *, suspects: Suspects | None = None,
                  date_from: str | dt.date | None = None, date_to: str | dt.date | None = None,
                  crop: str | None = None, southern: bool = False) -> list[CropEvent]:
    """The crop-calendar events of one parcel (see the module docstring), oldest first.

    `history`: every record of the parcel (a `usable` column, else `suspects` from the store's
    `find_suspects`, decides which count). Events are found on the whole series, then those
    meeting [date_from, date_to] are returned: a harvest window that starts before the window
    asked and ends in it is kept. `crop` (the parcel's crop label) and `southern` (the parcel
    lies south of the equator) turn a spring-sown crop's fall to bare soil before its sowing into
    `CLEARED` rather than `HARVEST`, and a mown crop's falls (`is_mown`) into `CUT`.
    """
    if column not in history.columns:
        raise InputError(f"records have no column {column!r}", field="column", value=column)
    if history.empty:
        return []
    usable = history["usable"].to_numpy(bool) if "usable" in history.columns else usable_mask(history, suspects)
    rows = history[usable & history[column].notna().to_numpy()].sort_values("date").reset_index(drop=True)
    rows = rows[~one_date_dips(rows, column)].reset_index(drop=True)
    if len(rows) < 2:
        return []
    v = rows[column].to_numpy(float)
    dates = rows["date"].astype(str).str[:10].tolist()
    # Padding with a value below any NDVI lets a peak on the first or last observation be found.
    padded = np.concatenate([[-1.0], v, [-1.0]])
    peaks = [p - 1 for p in prominent_peaks(padded, height=CANOPY_NDVI, prominence=MIN_PROMINENCE)]
    events: list[CropEvent] = []
    mown = is_mown(crop)

    def window(kind: str, a: int, b: int) -> CropEvent:
        return CropEvent(kind, dates[a], dates[b], float(v[a]), float(v[b]), column,
                         _rid(rows.iloc[a]) + _rid(rows.iloc[b]))

    for n, p in enumerate(peaks):
        left_end = peaks[n - 1] if n else 0
        right_end = peaks[n + 1] if n + 1 < len(peaks) else len(v) - 1
        censored = p in (0, len(v) - 1)
        events.append(CropEvent(PEAK, dates[p], dates[p], float(v[p]), float(v[p]), column, _rid(rows.iloc[p]),
                                censored))
        if p > left_end:
            base_i = left_end + int(np.argmin(v[left_end:p]))
            base = v[base_i]
            level = base + GREENUP_FRACTION * (v[p] - base)
            bare = [j for j in range(left_end, p) if v[j] < BARE_NDVI]
            if bare:
                events.append(window(EMERGENCE, bare[-1], bare[-1] + 1))
            below = [j for j in range(base_i, p) if v[j] < level]
            if below and not (bare and below[-1] == bare[-1]):
                events.append(window(GREEN_UP, below[-1], below[-1] + 1))
        if right_end <= p:
            continue
        low = float(v[p + 1:right_end + 1].min())
        low_i = p + 1 + int(np.argmin(v[p + 1:right_end + 1]))
        falls = v[p:low_i] - v[p + 1:low_i + 1]  # fall of each step from the peak to the low
        harvest = p + 1 + int(np.argmax(falls))
        if mown:
            regrew = n + 1 < len(peaks) and v[p] - low >= MIN_PROMINENCE
            if (regrew or (low < STUBBLE_NDVI and v[p] - low >= MIN_HARVEST_DROP)) \
                    and in_mowing_season(dates[harvest], southern):
                events.append(window(CUT, harvest - 1, harvest))
            continue
        if low >= STUBBLE_NDVI or v[p] - low < MIN_HARVEST_DROP:
            continue
        level = v[p] - SENESCENCE_FRACTION * (v[p] - low)
        onset = next(k for k in range(p + 1, low_i + 1) if v[k] < level)
        if onset < harvest:
            events.append(window(SENESCENCE, onset - 1, onset))
        fall = window(HARVEST, harvest - 1, harvest)
        events.append(replace(fall, kind=CLEARED) if cleared_for_sowing(fall, crop, southern) else fall)
    lo = None if date_from is None else str(date_from)[:10]
    hi = None if date_to is None else str(date_to)[:10]
    order = {EMERGENCE: 0, GREEN_UP: 0, PEAK: 1, SENESCENCE: 2, HARVEST: 3, CLEARED: 3, CUT: 3}
    return sorted((e for e in events if e.overlaps(lo, hi)), key=lambda e: (e.start, e.end, order[e.kind]))
