"""The typed query plan a question becomes, and the store facts the parser resolves it against.

`QueryPlan` is what `assistant.parsing.parse` returns and what the retrievers consume; its
`to_dict()` is JSON-ready (dates as ISO strings, tuples as lists) and is printed by `ask --json`.
`StoreContext` is the small, store-independent summary of what the store holds (parcel ids,
attribute values, acquisition dates, parcel locations): built from a store by `from_store`, or
directly in tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Intent = Literal["describe", "history", "compare", "similar", "rank", "unknown"]
Lang = Literal["en", "fr"]
Op = Literal["<", "<=", ">", ">="]
ATTRIBUTE_PREFIX = "attr_"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class DateWindow:
    """An inclusive date interval [start, end] with the words it was read from ("June 2021")."""

    start: dt.date
    end: dt.date
    label: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date window {self.label!r}: end {self.end} is before start {self.start}")

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True)
class Places:
    """Where the question is about.

    `parcel_ids` are store ids (resolved from ids, prefix-less ids, or a point). `attributes`
    maps a store column ("attr_crop_name") to the stored values that matched. `point` (lon, lat,
    WGS84) with `radius_m` is an area "within r of"; `bbox` is (minx, miny, maxx, maxy) WGS84.
    `unresolved` lists mentioned places that matched nothing in the store; `nearest` is the parcel
    nearest to a point that lies farther than the snapping distance from every parcel, with its
    distance in metres.
    """

    parcel_ids: tuple[str, ...] = ()
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    point: tuple[float, float] | None = None
    radius_m: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    all_parcels: bool = False
    unresolved: tuple[str, ...] = ()
    nearest: tuple[str, float] | None = None

    @property
    def empty(self) -> bool:
        """True when the question named no place at all (not even an unresolved one)."""
        return not (self.parcel_ids or self.attributes or self.point or self.bbox
                    or self.all_parcels or self.unresolved)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True)
class Condition:
    """A numeric filter on an index's per-record mean: `index op value` (e.g. ndvi < 0.3)."""

    index: str
    op: Op
    value: float

    def holds(self, x: float) -> bool:
        return {"<": x < self.value, "<=": x <= self.value,
                ">": x > self.value, ">=": x >= self.value}[self.op]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True)
class ClassCondition:
    """A filter on a record's class: `indexer.analysis.classify(stats)[aspect] == label`."""

    aspect: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True)
class QueryPlan:
    """Everything the parser understood of one question (and what it did not, in `notes`).

    `window` is the main date window (None: no date asked, the retrievers use the latest
    acquisitions); `compare_windows` the same calendar window in earlier years (or another window
    the question compares with). For "similar", `places.parcel_ids` is the reference parcel and
    `attributes` / area / `window` restrict the candidates; `k` is how many results are wanted
    (for "rank" without a number, every parcel). `date_rule` is the convention applied, worded
    for the answer; `reference_date` the "today" it is relative to.
    """

    question: str
    lang: Lang
    intent: Intent
    places: Places
    window: DateWindow | None
    compare_windows: tuple[DateWindow, ...]
    index: str | None
    condition: Condition | None
    class_condition: ClassCondition | None
    k: int
    reference_date: dt.date
    date_rule: str
    notes: tuple[str, ...] = ()
    #: For "rank": "desc" (highest first) or "asc" (lowest first); None when not asked.
    order: Literal["asc", "desc"] | None = None
    #: Words of the question no part of the parser used (beside places it could not find).
    unresolved: tuple[str, ...] = ()
    #: Misspellings read by the edit-distance rule: (as written, as read), e.g. ("jully", "July").
    corrections: tuple[tuple[str, str], ...] = ()
    #: The kind of answer chosen (`assistant.answers.registry`); set by the chain.
    kind: str = ""
    #: The day asked, when no image was taken that day and `window` was moved to the nearest
    #: acquisition (`snap_to_acquisition`); None otherwise.
    asked_window: DateWindow | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class StoreContext:
    """What the parser needs to know about a store, nothing more.

    `attributes`: for each `attr_*` column, its distinct non-empty values as stored (strings).
    `points`: each parcel's representative point (lon, lat) WGS84; `geometries` (optional,
    shapely, WGS84) lets a coordinate resolve to the parcel that contains it.
    """

    parcel_ids: tuple[str, ...] = ()
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dates: tuple[dt.date, ...] = ()
    points: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    geometries: Mapping[str, Any] = field(default_factory=dict)
    #: parcel -> {attr column -> value}; lets a hemisphere or an area follow the matching parcels.
    parcel_attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Lookup tables the parser derives from the fields above, built at their first use and kept
    #: with the context (the same store answers many questions); not part of its value.
    derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def newest_date(self) -> dt.date | None:
        return max(self.dates) if self.dates else None

    def latitude(self, parcel_ids: Iterable[str] = ()) -> float | None:
        """Mean latitude of the given parcels, else of all parcels; None when nothing is located."""
        ids = [p for p in parcel_ids if p in self.points] or list(self.points)
        if not ids:
            return None
        return sum(self.points[p][1] for p in ids) / len(ids)

    def acquisitions(self, window: DateWindow) -> tuple[dt.date, ...]:
        """The store's acquisition dates inside `window`, sorted."""
        return tuple(sorted(d for d in self.dates if window.contains(d)))

    def nearest_acquisition(self, day: dt.date, max_days: int) -> dt.date | None:
        """The acquisition date closest to `day` within `max_days` (ties: the earlier), else None."""
        near = self.nearest_dates(day, 1)
        return near[0] if near and abs((near[0] - day).days) <= max_days else None

    def nearest_dates(self, day: dt.date, n: int = 3) -> tuple[dt.date, ...]:
        """Up to `n` acquisition dates closest to `day` (for 'no acquisition then; nearest are ...')."""
        return tuple(sorted(sorted(self.dates, key=lambda d: (abs((d - day).days), d))[:n]))

    @classmethod
    def from_parcels(cls, parcels: Any, dates: Iterable[Any] = ()) -> StoreContext:
        """Build from a (Geo)DataFrame with `parcel_id`, optional `geometry` and `attr_*` columns.

        Geometries in another CRS are reprojected to WGS84; a frame with one row per record
        (several per parcel) is fine: the first row of each parcel is used.
        """
        frame = parcels
        if "parcel_id" not in getattr(frame, "columns", ()):
            raise ValueError("store context: the parcel table has no 'parcel_id' column")
        frame = frame.drop_duplicates("parcel_id", keep="first")
        geoms: dict[str, Any] = {}
        points: dict[str, tuple[float, float]] = {}
        if "geometry" in frame.columns:
            import geopandas as gpd

            gdf = frame if isinstance(frame, gpd.GeoDataFrame) else gpd.GeoDataFrame(frame, geometry="geometry")
            if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
                gdf = gdf.to_crs("EPSG:4326")
            for pid, geom in zip(gdf["parcel_id"].astype(str), gdf.geometry):
                if geom is None or geom.is_empty:
                    continue
                geoms[pid] = geom
                pt = geom.representative_point()
                points[pid] = (float(pt.x), float(pt.y))
        attr_cols = [c for c in frame.columns if str(c).startswith(ATTRIBUTE_PREFIX)]
        attributes: dict[str, tuple[str, ...]] = {}
        per_parcel: dict[str, dict[str, str]] = {str(p): {} for p in frame["parcel_id"]}
        for col in attr_cols:
            values: list[str] = []
            for pid, v in zip(frame["parcel_id"].astype(str), frame[col]):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                s = str(v).strip()
                if not s:
                    continue
                per_parcel[pid][col] = s
                if s not in values:
                    values.append(s)
            attributes[col] = tuple(sorted(values))
        return cls(
            parcel_ids=tuple(sorted(per_parcel)),
            attributes=attributes,
            dates=tuple(sorted({_as_date(d) for d in dates})),
            points=points,
            geometries=geoms,
            parcel_attributes=per_parcel,
        )

    @classmethod
    def from_store(cls, store: Any) -> StoreContext:
        """Adapter over the store API (`store.parcels()`, `store.dates()`), falling back to
        `store.records` (method or attribute) for stores that predate them."""
        parcels = None
        if callable(getattr(store, "parcels", None)):
            parcels = store.parcels()
        records = getattr(store, "records", None)
        if callable(records):
            records = records()
        if parcels is None:
            parcels = records
        if callable(getattr(store, "dates", None)):
            dates = store.dates()
        elif records is not None and "date" in records.columns:
            dates = records["date"].dropna().unique().tolist()
        else:
            dates = []
        if parcels is None or len(parcels) == 0:
            return cls(dates=tuple(sorted({_as_date(d) for d in dates})))
        return cls.from_parcels(parcels, dates)


#: How far a single day asked may move to the nearest acquisition: one Sentinel-2 revisit (5 days
#: with both satellites). Further away, the answer says there was no image and lists the nearest.
SNAP_DAYS = 5


def snap_to_acquisition(plan: QueryPlan, context: StoreContext, max_days: int = SNAP_DAYS) -> QueryPlan:
    """`plan` about the nearest acquisition when it asks about a single day no image was taken on.

    Someone asking "how was parcel 7 on 17 May" means the image of that week: the window moves
    to the acquisition nearest the day (within `max_days`) and `asked_window` keeps the day asked,
    so that the answer says which image it is about. Windows longer than a day, days that have an
    acquisition, and days with none near enough are returned unchanged.
    """
    window = plan.window
    if window is None or window.start != window.end or window.start in context.dates:
        return plan
    near = context.nearest_acquisition(window.start, max_days)
    if near is None:
        return plan
    return dataclasses.replace(plan, window=DateWindow(near, near, near.isoformat()), asked_window=window)
