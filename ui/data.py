"""What the pages show, read from the store through the library, and how it is presented.

The app renders; every fact it shows comes from `indexer` and `assistant`: the records and their
values from the store, which observations are usable or suspect, the past-season comparison and
the similar parcels from the same functions the assistant answers with (the "facts" section below:
one function per fact, each a single library call). What this module adds is presentation only:
the opened store cached per committed generation, the parcels grouped into areas the map frames,
the date marks of the slider, the map's status colourings (differences against a stated
reference) and the thumbnails.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st

from indexer.core.errors import NotFoundError, StoreError
from indexer.core.schema import INDEX_NAMES, crop_column, stat_column
from indexer.seasons import DOY_TOLERANCE_DAYS
from indexer.store import Store

__all__ = ["INDICES", "NotFoundError", "StoreError", "AppView", "open_view", "store_token"]

#: The indices the pages offer: the record schema's own list (indexer.core), in its order.
INDICES: tuple[str, ...] = INDEX_NAMES
#: A past season's observation counts as "this time of year" within this many days (the library's).
SEASON_TOLERANCE_DAYS = DOY_TOLERANCE_DAYS
#: The map opens on the newest date on which at least this share of the area's parcels is usable.
MOSTLY_USABLE = 0.5


def store_token(path: Path) -> str:
    """Changes whenever a commit replaces the manifest (the store's only commit point)."""
    try:
        info = (Path(path) / "manifest.json").stat()
    except FileNotFoundError:
        raise StoreError(f"{path}: not an XVision store (no manifest.json)", path=path) from None
    return f"{info.st_mtime_ns}-{info.st_size}"


@st.cache_resource(max_entries=4, show_spinner="Opening the store…")
def _open(path: str, token: str) -> AppView:
    return AppView(Store.open(path))


def open_view(path: Path) -> AppView:
    """The store at `path`, opened once per committed generation and shared by all sessions."""
    return _open(str(path), store_token(path))


# -- facts: one library call each ------------------------------------------------------------------

def observation_status(records: pd.DataFrame) -> pd.DataFrame:
    """Per record: `status` (usable, cloud, snow, nodata, too_small, suspect), `status_reason`,
    `usable` and `suspect`: `indexer.observations`' one rule, with the suspect acquisitions found
    over the whole store per area, exactly as the assistant reads them."""
    from indexer.observations import SUSPECT, find_suspects, observation_statuses

    statuses = observation_statuses(records, find_suspects(records))
    return statuses.assign(suspect=statuses["status"] == SUSPECT)


def parcel_areas(parcels: pd.DataFrame) -> dict[str, str]:
    """parcel_id -> area (`indexer.observations.parcel_areas`: the suspect rule's own areas)."""
    from indexer.observations import parcel_areas as areas

    return areas(parcels)


def past_season_pairs(history: pd.DataFrame, date: str, column: str,
                      tolerance: int = SEASON_TOLERANCE_DAYS) -> pd.DataFrame:
    """The parcel's observation on `date` against each other season at the same time of year:
    `indexer.seasons.compare_past_seasons` (closest day of year, within `tolerance` days).

    Columns: season, date, gap_days, value, delta (now minus then), change ("stable" within the
    measured noise, "higher", "lower"); newest other season first. Empty when `date` is not a
    usable observation or no other season has one at that time of year.
    """
    from indexer.core.errors import InputError
    from indexer.seasons import compare_past_seasons

    columns = ["season", "date", "gap_days", "value", "delta", "change"]
    try:
        comparison = compare_past_seasons(history, date, column, tolerance_days=tolerance)
    except InputError:  # `date` is not usable: nothing to compare
        return pd.DataFrame(columns=columns)
    return pd.DataFrame([{"season": p.past_season, "date": p.past_date, "gap_days": p.gap_days,
                          "value": p.past_value, "delta": p.delta, "change": p.change}
                         for p in comparison.pairs], columns=columns)


def status_text(record: pd.Series) -> str:
    """A record's observation status in words (the rule's own reason for an unusable one)."""
    if record["usable"]:
        return f"usable: {record['valid_fraction']:.0%} of the parcel clear"
    if record["status"] == "suspect":
        return f"suspect: {record['status_reason']}"
    return str(record["status_reason"])


def similar_records(store: Store, parcel_id: str, date: str, k: int) -> pd.DataFrame:
    """The `k` other parcels whose usable records look most like (parcel, date) by embedding, each
    by its best record: `indexer.query.similar` (score, distance, summary columns, status)."""
    from indexer.query import similar

    return similar(store, parcel_id, date, k, per_parcel=True)


# -- text shown -------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|<>~:$=&\"'")


def html_text(value: object) -> str:
    """A store value (parcel id, attribute, file name) as HTML text: escaped, never markup."""
    import html

    return html.escape("" if value is None else str(value), quote=True)


def md_text(value: object, *, flatten: bool = True) -> str:
    """A store value as Streamlit markdown text: every markdown, directive (`:red[...]`, `:icon:`)
    and LaTeX (`$`) character backslash-escaped, so it shows as typed. `flatten` (for labels and
    captions) turns line breaks into spaces; without it (an answer's text) whitespace is kept."""
    text = "" if value is None else str(value)
    if flatten:
        text = " ".join(text.split())
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in text)


# -- the app's view of one store generation ----------------------------------------------------------

@dataclass(frozen=True)
class Colouring:
    """One way of colouring the map: per parcel a value (NaN: grey), how it is read, the reference."""

    key: str
    title: str
    values: pd.Series  # by parcel_id
    reference: pd.Series  # by parcel_id: what each value is measured against (text)
    diverging: bool
    legend: str


class AppView:
    """The store's records with their observation status, and the tables the pages draw from."""

    def __init__(self, store: Store) -> None:
        self.store = store
        records = store.records()
        self.records = pd.concat([records, observation_status(records)], axis=1) if len(records) else records

    @property
    def path(self) -> Path:
        return Path(self.store.path)

    @cached_property
    def dates(self) -> list[str]:
        return sorted(self.records["date"].unique()) if len(self.records) else []

    @cached_property
    def parcels(self) -> gpd.GeoDataFrame:
        """One row per parcel: id, polygon (WGS84), crop label (the crop column's value), area."""
        parcels = self.store.parcels() if len(self.records) else gpd.GeoDataFrame(
            {"parcel_id": pd.Series(dtype=str)}, geometry=[], crs="EPSG:4326")
        column = crop_column(parcels)  # the library's rule: the parcels file's crop-name attribute
        parcels["label"] = parcels[column].fillna("").astype(str) if column else ""
        parcels["area"] = parcels["parcel_id"].map(parcel_areas(parcels)) if len(parcels) else []
        return parcels

    @cached_property
    def crop_column(self) -> str | None:
        """The `attr_*` column the crop labels come from (None: the parcels file has none)."""
        return crop_column(self.parcels)

    @cached_property
    def _by_parcel(self) -> pd.DataFrame:
        return self.parcels.set_index("parcel_id")

    def label(self, parcel_id: str) -> str:
        return str(self._by_parcel["label"].get(parcel_id, ""))

    def area_of(self, parcel_id: str) -> str:
        return str(self._by_parcel["area"][parcel_id])

    def areas(self) -> list[str]:
        return sorted(self.parcels["area"].unique())

    def has_parcel(self, parcel_id: str | None) -> bool:
        return parcel_id is not None and parcel_id in self._by_parcel.index

    # -- dates -------------------------------------------------------------------------------
    @cached_property
    def date_quality(self) -> pd.DataFrame:
        """Per area and date: records, share not usable (clouds, snow, no data or suspect), share the
        indexer found unusable (clouds, snow, no data), whether any record is suspect."""
        groups = self.records.assign(area=self.records["parcel_id"].map(self._by_parcel["area"]),
                                     valid=self.records["valid"].astype(bool)).groupby(["area", "date"])
        return pd.DataFrame({"records": groups.size(), "unusable_share": 1 - groups["usable"].mean(),
                             "invalid_share": 1 - groups["valid"].mean(),
                             "suspect": groups["suspect"].any()})

    def area_dates(self, area: str) -> list[str]:
        """The acquisition dates of one area, sorted."""
        return sorted(self.date_quality.loc[area].index)

    def opening_date(self, area: str) -> str | None:
        """The newest date on which most of the area's parcels are usable (else its newest date)."""
        q = self.date_quality.loc[area]
        usable = q.index[(1 - q["unusable_share"]) >= MOSTLY_USABLE]
        return str(max(usable)) if len(usable) else (str(max(q.index)) if len(q) else None)

    def quality(self, area: str, date: str) -> pd.Series:
        return self.date_quality.loc[(area, date)]

    def date_label(self, area: str, date: str) -> str:
        """The date as the slider shows it: ☁ when most records are clouded or without data, ⚠ when
        some are suspect."""
        q = self.quality(area, date)
        marks = ("☁" if q["invalid_share"] > 1 - MOSTLY_USABLE else "") + ("⚠" if q["suspect"] else "")
        return f"{date} {marks}".strip()

    # -- records -----------------------------------------------------------------------------
    def history(self, parcel_id: str) -> pd.DataFrame:
        """All records of a parcel with their status, oldest first (NotFoundError when unknown)."""
        rows = self.records[self.records["parcel_id"] == parcel_id]
        if rows.empty:
            self.store.history(parcel_id)  # the store's own NotFoundError, naming the store and the parcel
        return rows.sort_values("date").reset_index(drop=True)

    def record(self, parcel_id: str, date: str) -> pd.Series:
        """The record of (parcel, date) with its status (NotFoundError naming the dates that exist)."""
        rid = self.store.record(parcel_id, date)["record_id"]
        return self.records[self.records["record_id"] == rid].iloc[0]

    def on_date(self, date: str) -> pd.DataFrame:
        """Every record of one date, by parcel id."""
        return self.records[self.records["date"] == date].set_index("parcel_id")

    def usable_neighbours(self, parcel_id: str, date: str) -> tuple[str | None, str | None]:
        """The parcel's last usable date before `date` and first one after (None where none)."""
        rows = self.history(parcel_id)
        dates = rows.loc[rows["usable"], "date"]
        before, after = dates[dates < date], dates[dates > date]
        return (str(before.iloc[-1]) if len(before) else None, str(after.iloc[0]) if len(after) else None)

    def seasons(self, parcel_id: str) -> pd.DataFrame:
        """The parcel's records on a shared seasonal axis: `season` (year) and `doy` (day of year)."""
        rows = self.history(parcel_id)
        when = pd.to_datetime(rows["date"])
        return rows.assign(season=when.dt.year.astype(str), doy=when.dt.dayofyear)

    def past_seasons(self, parcel_id: str, date: str, index: str,
                     tolerance: int = SEASON_TOLERANCE_DAYS) -> pd.DataFrame:
        """`past_season_pairs` of one parcel on `date` for one index."""
        return past_season_pairs(self.history(parcel_id), date, stat_column(index), tolerance)

    def similar(self, parcel_id: str, date: str, k: int = 6) -> pd.DataFrame:
        return similar_records(self.store, parcel_id, date, k)

    # -- questions ---------------------------------------------------------------------------
    @cached_property
    def _parse_context(self):
        from assistant.plan import StoreContext

        return StoreContext.from_store(self.store)

    def parse(self, question: str):
        """The assistant's reading of `question` (`assistant.plan.QueryPlan`): what it names."""
        from assistant.chain import default_parse

        return default_parse(question, self._parse_context)

    # -- status colourings -------------------------------------------------------------------
    def colouring(self, kind: str, date: str, index: str, area: str) -> Colouring:
        """The map's colouring of `area`'s parcels on `date`.

        kind "value": the index mean. "seasons": minus the parcel's own usable observation
        closest in day of year in another season (within SEASON_TOLERANCE_DAYS; the newest such
        season). "crop": minus the median of the other parcels of the same crop usable on `date`.
        Computed once per store generation (this view is shared by every session).
        """
        key = (kind, date, index, area)
        if key not in self._colourings:
            self._colourings[key] = self._colouring(kind, date, index, area)
        return self._colourings[key]

    @cached_property
    def _colourings(self) -> dict:
        return {}

    def _colouring(self, kind: str, date: str, index: str, area: str) -> Colouring:
        column = stat_column(index)
        ids = list(self.parcels.loc[self.parcels["area"] == area, "parcel_id"])
        today = self.on_date(date).reindex(ids)
        usable = today["usable"].fillna(False).astype(bool)
        value = today[column].where(usable)
        name = index.upper()
        if kind == "value":
            return Colouring(kind, f"{name} mean", value, pd.Series("", index=ids), False,
                             f"{name} mean on {date}; grey: not usable on this date.")
        if kind == "seasons":
            deltas, refs = {}, {}
            for pid in ids:
                pairs = past_season_pairs(self.history(pid), date, column) if usable[pid] else pd.DataFrame()
                if len(pairs):
                    ref = pairs.iloc[0]  # the newest other season with an observation at this time of year
                    deltas[pid], refs[pid] = ref["delta"], f"{pid} on {ref['date']} ({ref['value']:.3f})"
            return Colouring(kind, f"Δ{name} vs own past seasons", pd.Series(deltas, dtype=float).reindex(ids),
                             pd.Series(refs, dtype=object).reindex(ids).fillna(""), True,
                             f"{name} on {date} minus the same parcel's usable {name} closest in day of year "
                             f"(±{SEASON_TOLERANCE_DAYS} days) in another season; grey: no usable pair.")
        if kind == "crop":
            crops = self._by_parcel["label"].reindex(ids)
            everyone = self.on_date(date)
            everyone = everyone[everyone["usable"].astype(bool)]
            peers_crop = self._by_parcel["label"].reindex(everyone.index)
            deltas, refs = {}, {}
            for pid in ids:
                if not usable[pid] or not crops[pid]:
                    continue
                peers = everyone.loc[(peers_crop == crops[pid]) & (everyone.index != pid), column].dropna()
                if len(peers):
                    deltas[pid] = value[pid] - float(peers.median())
                    refs[pid] = f"median of {len(peers)} other {crops[pid]} parcel(s) ({peers.median():.3f})"
            return Colouring(kind, f"Δ{name} vs same crop", pd.Series(deltas, dtype=float).reindex(ids),
                             pd.Series(refs, dtype=object).reindex(ids).fillna(""), True,
                             f"{name} on {date} minus the median {name} of the other parcels of the same crop "
                             f"usable on this date; grey: not usable, or no other parcel of its crop.")
        raise ValueError(f"unknown colouring {kind!r}: value, seasons or crop")

    # -- imagery -----------------------------------------------------------------------------
    @cached_property
    def _sources(self) -> dict[str, Path]:
        """Each record source on this machine: its recorded path, else found by name (indexer.sources)
        under $XVISION_IMAGERY or the app's uploads folder."""
        from indexer.core.errors import XVisionError
        from indexer.sources import locate_sources

        lookup = locate_sources(list(self.records["source"].unique()))
        found = dict(lookup.found)
        roots = [r for r in _search_roots(self.path) if r.exists()]
        if lookup.missing and roots:
            try:
                found.update(locate_sources(lookup.missing, roots).found)
            except XVisionError:  # a folder there that holds no readable imagery
                pass
        return found

    def source_path(self, source: str) -> Path | None:
        """The raster a record was read from, when it is on this machine."""
        return self._sources.get(str(source))

    def thumbnails(self, record: pd.Series, size: int = 112) -> tuple[bytes, bytes] | None:
        """True-colour and false-colour PNGs of a record's parcel, re-read from its source raster."""
        path = self.source_path(str(record["source"]))
        if path is None:
            return None
        return _thumbnails(str(path), record.geometry.wkb, size)

    def overlay(self, date: str, area: str) -> list[tuple[bytes, tuple[float, float, float, float]]]:
        """True-colour images (PNG, WGS84 bounds) of the scenes of `date` covering `area`'s parcels."""
        ids = set(self.parcels.loc[self.parcels["area"] == area, "parcel_id"])
        rows = self.records[(self.records["date"] == date) & self.records["parcel_id"].isin(ids)]
        out = []
        for source in rows["source"].unique():
            path = self.source_path(str(source))
            if path is not None:
                out.append(_scene_image(str(path)))
        return out


def _search_roots(store: Path) -> list[Path]:
    roots = [Path(p) for p in os.environ.get("XVISION_IMAGERY", "").split(os.pathsep) if p]
    return [*roots, store.with_name(store.name + "-uploads")]


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@st.cache_data(max_entries=2048, show_spinner=False)
def _thumbnails(path: str, geometry_wkb: bytes, size: int) -> tuple[bytes, bytes]:
    from shapely import wkb

    from indexer.thumbnails import parcel_thumbnails

    thumbs = parcel_thumbnails(path, wkb.loads(geometry_wkb), size)
    return thumbs.true_colour, thumbs.false_colour


@st.cache_data(max_entries=256, show_spinner=False)
def _scene_image(path: str, max_side: int = 512) -> tuple[bytes, tuple[float, float, float, float]]:
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    from indexer.reader import open_scene
    from indexer.thumbnails import TRUE_COLOUR, render_rgb

    scene = open_scene(path)
    with scene:
        obs = scene.read(Window(0, 0, scene.width, scene.height))
    rgb = render_rgb(obs, *TRUE_COLOUR)
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / max_side)))
    west, south, east, north = transform_bounds(scene.crs, "EPSG:4326", *scene.bounds)
    return _png(rgb[::step, ::step]), (south, west, north, east)
