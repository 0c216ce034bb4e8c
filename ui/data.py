"""Every read of the store the app does, in one place.

The app renders; what it shows comes from `indexer` (the store, `indexer.query`, the reader). This
module adapts the store's interface to the pages (so a change of the store API is a change here
only) and caches what is expensive: the opened store per committed generation, thumbnails per
record. Nothing here decides anything agronomic: values, validity flags and analyses are the
records' own.
"""

from __future__ import annotations

import io
import json
import os
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st

from indexer.core.errors import NotFoundError, StoreError
from indexer.store import Store

#: The indices the pages offer, in the order the analysis text states them.
INDICES = ("ndvi", "ndmi", "ndwi", "savi", "evi", "ndre")
#: Parcels closer than this (degrees, ~1 km) are framed together on the map.
AREA_GAP_DEG = 0.01


def store_token(path: Path) -> str:
    """Changes whenever a commit replaces the manifest (the store's only commit point)."""
    try:
        info = (Path(path) / "manifest.json").stat()
    except FileNotFoundError:
        raise StoreError(f"{path}: not an XVision store (no manifest.json)", path=path) from None
    return f"{info.st_mtime_ns}-{info.st_size}"


@st.cache_resource(max_entries=4, show_spinner="Opening the store…")
def _open(path: str, token: str) -> StoreView:
    return StoreView(Store.open(path))


def open_view(path: Path) -> StoreView:
    """The store at `path`, opened once per committed generation and shared by all sessions."""
    return _open(str(path), store_token(path))


def _frame(store: Store) -> gpd.GeoDataFrame:
    records = store.records
    return records() if callable(records) else records  # a method in the store's new query API


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """The parcel file's own columns: `attr_*` columns, or the older JSON `attributes` column."""
    attr = [c for c in frame.columns if c.startswith("attr_")]
    if attr:
        return frame[attr].rename(columns=lambda c: c[len("attr_"):])
    if "attributes" in frame.columns:
        return pd.DataFrame([json.loads(a) if isinstance(a, str) and a else {} for a in frame["attributes"]],
                            index=frame.index)
    return pd.DataFrame(index=frame.index)


class StoreView:
    """Read-only views of one store generation, shaped for the pages."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = _frame(store).copy()
        self.records["suspect"] = self._suspect()
        self.records["usable"] = self.records["valid"].astype(bool) & ~self.records["suspect"]

    def _suspect(self) -> pd.Series:
        """Valid records on acquisitions the assistant's rule finds suspect (a scene-wide jump that
        comes back), area by area: nearby parcels share their scenes, far ones do not."""
        from assistant.suspect import find_suspects

        records = self.records
        area = records["parcel_id"].map(self.parcels.set_index("parcel_id")["area"])
        suspect = pd.Series(False, index=records.index)
        for name, group in records.groupby(area):
            dates = find_suspects(group)
            suspect |= (area == name) & records["date"].isin(list(dates)) & records["valid"].astype(bool)
        return suspect

    @property
    def path(self) -> Path:
        return Path(self.store.path)

    @cached_property
    def dates(self) -> list[str]:
        return sorted(self.records["date"].unique())

    @cached_property
    def parcels(self) -> gpd.GeoDataFrame:
        """One row per parcel: id, polygon (WGS84), the parcel file's attributes, a crop label, an area."""
        first = self.records.sort_values("date").drop_duplicates("parcel_id", keep="last")
        attrs = _attributes(first)
        # The crop label: the parcel file's first text column whose name says crop (e.g. crop_name).
        label_col = next((c for c in attrs.columns
                          if "crop" in c.lower() and not pd.api.types.is_numeric_dtype(attrs[c])), None)
        parcels = gpd.GeoDataFrame(
            {"parcel_id": first["parcel_id"].to_numpy(),
             "label": (attrs[label_col].fillna("").astype(str).to_numpy() if label_col else ""),
             "geometry": first.geometry.to_numpy()},
            crs="EPSG:4326",
        ).sort_values("parcel_id").reset_index(drop=True)
        parcels["area"] = _areas(parcels)
        return parcels

    @cached_property
    def _area_of(self) -> pd.Series:
        return self.parcels.set_index("parcel_id")["area"]

    @cached_property
    def date_quality(self) -> pd.DataFrame:
        """Per area and date: records, share not usable (clouds, no data), whether any is suspect."""
        groups = self.records.assign(area=self.records["parcel_id"].map(self._area_of)).groupby(["area", "date"])
        return pd.DataFrame({
            "records": groups.size(),
            "unusable_share": 1 - groups["valid"].mean(),
            "suspect": groups["suspect"].any(),
        })

    def area_dates(self, area: str) -> list[str]:
        """The acquisition dates of one area, sorted."""
        return sorted(self.date_quality.loc[area].index)

    def clear_dates(self, area: str) -> list[str]:
        """Dates on which most of the area's records are usable."""
        q = self.date_quality.loc[area]
        return [d for d in q.index if q.loc[d, "unusable_share"] < 0.5 and not q.loc[d, "suspect"]]

    def quality(self, area: str, date: str) -> pd.Series:
        return self.date_quality.loc[(area, date)]

    def date_label(self, area: str, date: str) -> str:
        """The date as the slider shows it: ☁ when most records are unusable, ⚠ when some are suspect."""
        q = self.quality(area, date)
        marks = ("☁" if q["unusable_share"] >= 0.5 else "") + ("⚠" if q["suspect"] else "")
        return f"{date} {marks}".strip()

    def area_of(self, parcel_id: str) -> str:
        return str(self._area_of[parcel_id])

    def on_date(self, date: str) -> pd.DataFrame:
        """Every record of one date, by parcel id."""
        return self.records[self.records["date"] == date].set_index("parcel_id")

    def areas(self) -> list[str]:
        return sorted(self.parcels["area"].unique())

    def has_parcel(self, parcel_id: str | None) -> bool:
        return parcel_id is not None and parcel_id in set(self.parcels["parcel_id"])

    def history(self, parcel_id: str) -> pd.DataFrame:
        """All records of a parcel, oldest first (NotFoundError for an unknown parcel)."""
        rows = self.records[self.records["parcel_id"] == parcel_id].sort_values("date")
        if rows.empty:
            raise NotFoundError(f"no parcel {parcel_id!r} in the store", field="parcel", value=parcel_id)
        return rows.reset_index(drop=True)

    def record(self, parcel_id: str, date: str) -> pd.Series:
        rows = self.history(parcel_id)
        rows = rows[rows["date"] == date]
        if rows.empty:
            raise NotFoundError(f"parcel {parcel_id!r} has no record on {date}", field="date", value=date)
        return rows.iloc[0]

    def nearest_date(self, parcel_id: str, date: str, usable: bool = True) -> str | None:
        """The parcel's (usable) date closest to `date`."""
        rows = self.history(parcel_id)
        if usable:
            rows = rows[rows["usable"]]
        if rows.empty:
            return None
        gap = (pd.to_datetime(rows["date"]) - pd.Timestamp(date)).abs()
        return str(rows.loc[gap.idxmin(), "date"])

    def similar(self, parcel_id: str, date: str, k: int = 6) -> pd.DataFrame:
        """Other parcels' records nearest by embedding (indexer.query.similar), with cosine distance."""
        from indexer.query import similar

        rows = similar(self.store, parcel_id, date, k)
        rows["distance"] = 1 - rows["score"]
        return rows

    def seasons(self, parcel_id: str) -> pd.DataFrame:
        """The parcel's records on a shared seasonal axis: `season` (year) and `doy` (day of year)."""
        rows = self.history(parcel_id)
        when = pd.to_datetime(rows["date"])
        return rows.assign(season=when.dt.year.astype(str), doy=when.dt.dayofyear)

    def same_window(self, parcel_id: str, date: str, days: int = 15) -> pd.DataFrame:
        """The parcel's usable records of other seasons within ±`days` days of the year of `date`."""
        rows = self.seasons(parcel_id)
        target = pd.Timestamp(date)
        gap = (rows["doy"] - target.dayofyear).abs()
        gap = np.minimum(gap, 365 - gap)  # a window around New Year wraps
        return rows[(rows["season"] != str(target.year)) & (gap <= days) & rows["usable"]]

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


def _areas(parcels: gpd.GeoDataFrame) -> list[str]:
    """Name groups of nearby parcels so the map frames one place at a time."""
    import shapely

    # Degrees, not metres: only "near each other" matters here.
    union = shapely.union_all(shapely.buffer(shapely.envelope(parcels.geometry.to_numpy()), AREA_GAP_DEG / 2))
    groups = list(getattr(union, "geoms", [union]))
    if len(groups) == 1:
        return ["all parcels"] * len(parcels)
    which = [next(i for i, g in enumerate(groups) if g.contains(c)) for c in parcels.geometry.representative_point()]
    # Name each area after its first parcel, so the name means something to the user.
    names = {i: f"around {parcels['parcel_id'].iloc[which.index(i)]}" for i in set(which)}
    return [names[i] for i in which]


def _search_roots(store: Path) -> list[Path]:
    roots = [Path(p) for p in os.environ.get("XVISION_IMAGERY", "").split(os.pathsep) if p]
    return [*roots, store.with_name(store.name + "-uploads")]


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _render(obs, bands: tuple[str, str, str], gain: float) -> np.ndarray:
    """Reflectance to 8-bit display colour (a fixed gain and gamma; no data drawn black)."""
    from indexer.chips import impute_plan

    imputed = impute_plan(obs.bands, bands)
    stack = np.stack([obs.band(imputed.get(b, b)) for b in bands])
    rgb = np.clip(np.nan_to_num(stack, nan=0.0) * gain, 0, 1) ** (1 / 1.3)
    return (np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


TRUE_COLOUR = (("B04", "B03", "B02"), 3.5)
FALSE_COLOUR = (("B08", "B04", "B03"), 2.5)  # near infrared as red: vegetation shows bright red


@st.cache_data(max_entries=2048, show_spinner=False)
def _thumbnails(path: str, geometry_wkb: bytes, size: int) -> tuple[bytes, bytes]:
    from PIL import Image, ImageDraw
    from shapely import wkb

    from indexer.chips import parcel_window
    from indexer.reader import open_scene

    scene = open_scene(path)
    geometry = gpd.GeoSeries([wkb.loads(geometry_wkb)], crs="EPSG:4326").to_crs(scene.crs).iloc[0]
    with scene:
        obs = scene.read(parcel_window(scene, geometry))
    inverse = ~obs.transform
    out = []
    for bands, gain in (TRUE_COLOUR, FALSE_COLOUR):
        rgb = _render(obs, bands, gain)
        scale = size / max(rgb.shape[:2])
        image = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for polygon in getattr(geometry, "geoms", [geometry]):
            ring = [tuple(np.multiply(inverse * xy, scale)) for xy in polygon.exterior.coords]
            draw.line(ring, fill=(255, 230, 0), width=1)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        out.append(buffer.getvalue())
    return out[0], out[1]


@st.cache_data(max_entries=256, show_spinner=False)
def _scene_image(path: str, max_side: int = 512) -> tuple[bytes, tuple[float, float, float, float]]:
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    from indexer.reader import open_scene

    scene = open_scene(path)
    with scene:
        obs = scene.read(Window(0, 0, scene.width, scene.height))
    rgb = _render(obs, *TRUE_COLOUR)
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / max_side)))
    west, south, east, north = transform_bounds(scene.crs, "EPSG:4326", *scene.bounds)
    return _png(rgb[::step, ::step]), (south, west, north, east)
