"""Facts about the Flanders sample, computed from the rasters with rasterio and numpy only.

Nothing here imports the project: the parcels are rasterised with `rasterio.features.rasterize`
(pixel centres inside the polygon, rasterio's default), and each acquisition's bands are read as
stored (reflectance x 10000; the sample predates processing baseline 04.00, so no -1000 offset;
the file's `BOA_ADD_OFFSET` tag is applied when present).

Which pixels are clear. Sen2Cor's scene classification (SCL) says what each pixel shows; only
4 (vegetation) and 5 (bare soil) are *clear*: they are the field itself, seen without cloud. Every
other class is not: 0 no data, 1 saturated, 2 dark area, 3 cloud shadow, 7 unclassified, 8/9
cloud, 10 cirrus, 11 snow. 6 (water) is not clear either: a crop parcel that reads as water is
flooded or misclassified, and either way its NDVI is not the crop's. (Class 6 never occurs inside
the Flanders parcels, so this choice changes no fact of the bank; it is stated for other data.)
A pixel whose reflectance bands hold the no-data value 0 is not clear whatever its SCL.

Per (parcel, date) the module keeps the share of clear pixels, the shares of cloud (3, 8, 9, 10),
snow (11) and other non-clear classes, and the mean NDVI of the clear pixels. An observation is
*clear* when at least `CLEAR_MIN` of the parcel's pixels are clear and *unusable* when fewer than
`UNUSABLE_MAX` are; in between it is *partial*. A product may reasonably draw its own line anywhere
in that band, so the bank never asks a question whose expected facts depend on a partial
observation (see `Facts.window_is_clean`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize

#: SCL classes that show the field itself: 4 vegetation, 5 bare soil.
SCL_CLEAR = (4, 5)
#: SCL classes counted as cloud: 3 cloud shadow, 8 cloud (medium), 9 cloud (high), 10 cirrus.
SCL_CLOUD = (3, 8, 9, 10)
#: SCL snow or ice.
SCL_SNOW = (11,)
#: An observation is clear at or above this share of clear pixels ...
CLEAR_MIN = 0.8
#: ... and unusable below this share; in between it is partial (ambiguous, never asked about).
UNUSABLE_MAX = 0.3
#: Parcels with fewer pixels than this are slivers: a product may leave them out of rankings and
#: aggregates (the issue asks it to flag them), so the bank accepts answers with or without them.
SLIVER_PIXELS = 50


@dataclass(frozen=True)
class Observation:
    """One parcel on one date, as the rasters show it."""

    parcel: str
    date: str
    pixels: int
    clear: float  # share of SCL 4/5 pixels with data
    cloud: float  # share of SCL 3/8/9/10
    snow: float  # share of SCL 11
    ndvi: float | None  # mean NDVI of the clear pixels; None when no pixel is clear

    @property
    def state(self) -> str:
        """'clear', 'partial' or 'unusable' (see the module docstring)."""
        if self.clear >= CLEAR_MIN:
            return "clear"
        return "unusable" if self.clear < UNUSABLE_MAX else "partial"


@dataclass
class Facts:
    """Every observation of the sample, with the parcels' crops and the scene-wide shares per date."""

    obs: dict[tuple[str, str], Observation]
    parcels: list[str]
    dates: list[str]
    crops: dict[str, str]  # parcel -> crop name as the parcels file writes it
    pixels: dict[str, int]
    area: dict[str, dict[str, float]] = field(default_factory=dict)  # date -> {"clear", "cloud", "snow"} over all parcels
    band_means: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # clear-pixel reflectance per band

    # -- single observations ----------------------------------------------------------------------
    def get(self, parcel: str, date: str) -> Observation:
        return self.obs[(parcel, date)]

    def ndvi(self, parcel: str, date: str) -> float:
        value = self.obs[(parcel, date)].ndvi
        if value is None:
            raise ValueError(f"{parcel} has no clear pixel on {date}")
        return value

    def state(self, parcel: str, date: str) -> str:
        return self.obs[(parcel, date)].state

    def dates_in(self, start: str, end: str) -> list[str]:
        return [d for d in self.dates if start <= d <= end]

    def clear_dates(self, parcel: str, start: str = "0000", end: str = "9999") -> list[str]:
        return [d for d in self.dates_in(start, end) if self.state(parcel, d) == "clear"]

    def window_is_clean(self, parcels: list[str] | str, start: str, end: str) -> bool:
        """True when no observation of these parcels in [start, end] is partial, so that every
        reasonable usability line gives the same set of usable dates."""
        parcels = [parcels] if isinstance(parcels, str) else parcels
        return all(self.state(p, d) != "partial" for p in parcels for d in self.dates_in(start, end))

    def is_sliver(self, parcel: str) -> bool:
        return self.pixels[parcel] < SLIVER_PIXELS

    # -- windows ----------------------------------------------------------------------------------
    def window(self, parcel: str, start: str, end: str) -> dict | None:
        """Mean, peak and low of the parcel's clear observations in [start, end] (None when none)."""
        dates = self.clear_dates(parcel, start, end)
        if not dates:
            return None
        values = [self.ndvi(parcel, d) for d in dates]
        hi, lo = int(np.argmax(values)), int(np.argmin(values))
        return {"dates": dates, "values": values, "mean": float(np.mean(values)),
                "peak": (dates[hi], values[hi]), "low": (dates[lo], values[lo])}

    def crop_members(self, crop: str) -> list[str]:
        return [p for p in self.parcels if self.crops[p].lower() == crop.lower()]

    # -- observation quality over a group ---------------------------------------------------------
    def group_share(self, parcels: list[str], date: str, what: str = "clear") -> float:
        """Pixel-weighted share of `what` ('clear', 'cloud', 'snow') over several parcels on a date."""
        total = sum(self.pixels[p] for p in parcels)
        return sum(getattr(self.get(p, date), what) * self.pixels[p] for p in parcels) / total


def doy(date: str) -> int:
    return dt.date.fromisoformat(date).timetuple().tm_yday


def doy_distance(a: str, b: str) -> int:
    x = abs(doy(a) - doy(b))
    return min(x, 365 - x)


def _date_of(path: Path, tags: dict) -> str:
    for key in ("ACQUISITION_DATE", "ACQUISITION_DATETIME"):
        if key in tags:
            return tags[key][:10]
    found = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
    if not found:
        raise ValueError(f"{path}: no acquisition date in its tags or its name")
    return found.group(1)


def ndvi_pixels(band: dict[str, np.ndarray]) -> np.ndarray:
    """NDVI per pixel, (B08 - B04) / (B08 + B04) on reflectance (nan where both are 0)."""
    red, nir = band["B04"], band["B08"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (nir - red) / (nir + red)


def read_facts(folder: Path, parcels_file: Path | None = None, id_column: str = "parcel_id",
               crop_column: str = "crop_name") -> Facts:
    """Facts of every parcel on every acquisition in `folder` (its ``*.tif`` and parcels file)."""
    parcels_file = parcels_file or next(iter(sorted(folder.glob("parcels_*.gpkg"))))
    table = gpd.read_file(parcels_file)
    rasters = sorted(folder.glob("*.tif"))
    if not rasters:
        raise FileNotFoundError(f"no GeoTIFF in {folder}")
    ids = [str(x) for x in table[id_column]]
    obs: dict[tuple[str, str], Observation] = {}
    band_means: dict[tuple[str, str], np.ndarray] = {}
    area: dict[str, dict[str, float]] = {}
    labels = None
    dates = []
    for path in rasters:
        with rasterio.open(path) as src:
            tags = src.tags()
            date = _date_of(path, tags)
            names = [str(n) for n in src.descriptions]
            offset = float(tags.get("BOA_ADD_OFFSET", 0) or 0)
            data = src.read().astype(np.float64)
            if labels is None:
                shapes = [(geom, i + 1) for i, geom in enumerate(table.to_crs(src.crs).geometry)]
                labels = rasterize(shapes, out_shape=(src.height, src.width), transform=src.transform, fill=0,
                                   dtype="int32")
        dates.append(date)
        if "SCL" not in names:
            raise ValueError(f"{path}: no SCL band (bands: {names}); the bank needs the scene classification")
        scl = data[names.index("SCL")]
        reflect = [i for i, n in enumerate(names) if n != "SCL"]
        has_data = np.all(data[reflect] != 0, axis=0)
        band = {n: (data[i] + offset) / 10000 for i, n in enumerate(names) if n != "SCL"}
        pixel_ndvi = ndvi_pixels(band)
        clear = np.isin(scl, SCL_CLEAR) & has_data
        cloud, snow = np.isin(scl, SCL_CLOUD), np.isin(scl, SCL_SNOW)
        inside_any = labels > 0
        area[date] = {"clear": float(clear[inside_any].mean()), "cloud": float(cloud[inside_any].mean()),
                      "snow": float(snow[inside_any].mean())}
        for i, pid in enumerate(ids):
            inside = labels == i + 1
            n = int(inside.sum())
            ok = inside & clear
            obs[(pid, date)] = Observation(
                pid, date, n, float(ok.sum() / n), float((inside & cloud).sum() / n), float((inside & snow).sum() / n),
                float(np.nanmean(pixel_ndvi[ok])) if ok.any() else None)
            if ok.any():
                band_means[(pid, date)] = np.array([band[b][ok].mean() for b in sorted(band)])
    pixels = {pid: int((labels == i + 1).sum()) for i, pid in enumerate(ids)}
    crops = {str(p): str(c) for p, c in zip(table[id_column], table[crop_column])}
    return Facts(obs, sorted(ids), sorted(dates), crops, pixels, area, band_means)
