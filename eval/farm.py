"""A generated multi-season farm with known ground truth, for the assistant's evaluation and tests.

Script and module::

    python eval/farm.py OUTDIR [--seasons 2021 2022 2023]

writes one 11-band L2A GeoTIFF per acquisition (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 SCL,
band descriptions, ``ACQUISITION_DATE`` and ``PROCESSING_BASELINE`` tags, baseline 04.00 with its
+1000 DN offset from 2022 on) and ``parcels.geojson`` (six rectangular fields with a ``crop``
column). Every raster sits on EPSG:32631, upper-left corner (610000, 5610000), 10 m pixels.

Ground truth, by construction (`EVENTS`):

* each crop follows a seasonal NDVI curve (green-up, plateau, senescence; `CROPS`);
* **drought** in `DROUGHT_SEASON`: from June to August every parcel's canopy is thinner (NDVI
  x 0.6) and drier (SWIR reflectance x 1.35, so NDMI falls);
* **late sowing** of `LATE_PARCEL` in `LATE_SEASON`: its green-up comes 45 days later;
* **haze** on `HAZY_DATE`: every pixel is mixed with a bright grey haze layer (NDVI collapses scene
  wide) while the SCL band says "clear" — the cloud mask passes it;
* **cloud** on `CLOUDY_DATE`: SCL class 9 over the northern half (parcels 01-03 unusable).

Pixel values mix a vegetation and a bare-soil spectrum with the cover that gives the curve's
NDVI, plus seeded noise, so the rasters — not this module — are the truth the evaluation reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32631"
ORIGIN_X, ORIGIN_Y, PIXEL = 610000.0, 5610000.0, 10.0
SIZE = 48
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
SEED = 7
VEG = {"B02": 0.03, "B03": 0.06, "B04": 0.035, "B05": 0.10, "B06": 0.30, "B07": 0.37, "B08": 0.42,
       "B8A": 0.43, "B11": 0.19, "B12": 0.09}
SOIL = {"B02": 0.09, "B03": 0.12, "B04": 0.16, "B05": 0.19, "B06": 0.21, "B07": 0.22, "B08": 0.24,
        "B8A": 0.25, "B11": 0.31, "B12": 0.27}
HAZE = {b: 0.30 for b in BANDS}
HAZE_SHARE = 0.65

#: parcel id -> (row0, row1, col0, col1) pixel ranges (half-open), crop.
PARCELS: dict[str, tuple[tuple[int, int, int, int], str]] = {
    "farm-01": ((2, 22, 2, 15), "winter wheat"),
    "farm-02": ((2, 22, 17, 30), "maize"),
    "farm-03": ((2, 22, 32, 46), "sugar beet"),
    "farm-04": ((26, 46, 2, 15), "winter wheat"),
    "farm-05": ((26, 46, 17, 30), "maize"),
    "farm-06": ((26, 46, 32, 46), "grassland"),
}
#: crop -> (green-up day of year, senescence day of year, peak NDVI, base NDVI).
CROPS = {
    "winter wheat": (70, 190, 0.85, 0.30),
    "maize": (150, 260, 0.82, 0.15),
    "sugar beet": (140, 280, 0.80, 0.15),
    "grassland": (60, 300, 0.75, 0.55),
}
SEASONS = (2021, 2022, 2023)
#: month-day of the acquisitions of each season.
MONTH_DAYS = ("03-15", "04-10", "05-05", "05-30", "06-24", "07-19", "08-13", "09-07", "10-02")
DROUGHT_SEASON = 2022
DROUGHT_MONTHS = (6, 7, 8)
LATE_PARCEL, LATE_SEASON, LATE_DAYS = "farm-02", 2023, 45
HAZY_DATE = "2023-07-19"
CLOUDY_DATE = "2021-06-24"
EVENTS = {"drought": {"season": DROUGHT_SEASON, "months": DROUGHT_MONTHS},
          "late_sowing": {"parcel": LATE_PARCEL, "season": LATE_SEASON, "days": LATE_DAYS},
          "haze": {"date": HAZY_DATE}, "cloud": {"date": CLOUDY_DATE, "parcels": ["farm-01", "farm-02", "farm-03"]}}


def dates(seasons=SEASONS) -> list[str]:
    return [f"{y}-{md}" for y in seasons for md in MONTH_DAYS]


def curve_ndvi(parcel: str, day: dt.date) -> float:
    """The NDVI the parcel's canopy is built to have on `day` (before noise and haze)."""
    crop = PARCELS[parcel][1]
    up, down, peak, base = CROPS[crop]
    if parcel == LATE_PARCEL and day.year == LATE_SEASON:
        up += LATE_DAYS
    doy = day.timetuple().tm_yday
    rise = 1 / (1 + math.exp(-(doy - up) / 8))
    fall = 1 / (1 + math.exp((doy - down) / 10))
    ndvi = base + (peak - base) * rise * fall
    if day.year == DROUGHT_SEASON and day.month in DROUGHT_MONTHS:
        ndvi *= 0.6
    return ndvi


def _ndvi_of(cover: np.ndarray) -> np.ndarray:
    red = cover * VEG["B04"] + (1 - cover) * SOIL["B04"]
    nir = cover * VEG["B08"] + (1 - cover) * SOIL["B08"]
    return (nir - red) / (nir + red)


_COVERS = np.linspace(0.0, 1.0, 2001)
_NDVIS = _ndvi_of(_COVERS)


def cover_for(ndvi: float) -> float:
    """Vegetation cover whose vegetation/soil mix has this NDVI (clipped to what the mix can reach)."""
    return float(np.interp(ndvi, _NDVIS, _COVERS))


def scene(date: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance [bands, SIZE, SIZE], SCL [SIZE, SIZE]) of one acquisition."""
    day = dt.date.fromisoformat(date)
    cover = np.full((SIZE, SIZE), 0.05)
    for pid, ((r0, r1, c0, c1), _) in PARCELS.items():
        cover[r0:r1, c0:c1] = cover_for(curve_ndvi(pid, day))
    cover = np.clip(cover + rng.normal(0.0, 0.03, cover.shape), 0.0, 1.0)
    refl = np.stack([cover * VEG[b] + (1 - cover) * SOIL[b] for b in BANDS])
    if day.year == DROUGHT_SEASON and day.month in DROUGHT_MONTHS:
        for b in ("B11", "B12"):
            refl[BANDS.index(b)] *= 1.35
    if date == HAZY_DATE:
        refl = (1 - HAZE_SHARE) * refl + HAZE_SHARE * np.stack([np.full((SIZE, SIZE), HAZE[b]) for b in BANDS])
    scl = np.full((SIZE, SIZE), 4, dtype=np.uint16)
    if date == CLOUDY_DATE:
        scl[: SIZE // 2] = 9
        refl[:, : SIZE // 2] = 0.5
    return refl, scl


def offset_of(date: str) -> int:
    """DN offset of the product: +1000 from processing baseline 04.00 (2022-01-25) on."""
    return 1000 if dt.date.fromisoformat(date) >= dt.date(2022, 1, 25) else 0


def write_scene(outdir: Path, date: str, rng: np.random.Generator) -> Path:
    refl, scl = scene(date, rng)
    offset = offset_of(date)
    dn = np.clip(np.round(refl * 10000) + offset, 1, 65535).astype(np.uint16)
    data = np.concatenate([dn, scl[None]])
    path = outdir / f"S2_L2A_farm_{date}.tif"
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=len(BANDS) + 1, dtype="uint16", crs=CRS,
                   transform=from_origin(ORIGIN_X, ORIGIN_Y, PIXEL, PIXEL), nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate([*BANDS, "SCL"], start=1):
            dst.set_band_description(i, name)
        dst.update_tags(ACQUISITION_DATE=date, PROCESSING_LEVEL="L2A",
                        PROCESSING_BASELINE="05.09" if offset else "02.14",
                        BOA_ADD_OFFSET=str(-offset))
    return path


def write_parcels(outdir: Path) -> Path:
    features = []
    for pid, ((r0, r1, c0, c1), crop) in PARCELS.items():
        x0, x1 = ORIGIN_X + c0 * PIXEL, ORIGIN_X + c1 * PIXEL
        y0, y1 = ORIGIN_Y - r0 * PIXEL, ORIGIN_Y - r1 * PIXEL
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        features.append({"type": "Feature", "properties": {"parcel_id": pid, "crop": crop},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    path = outdir / "parcels.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features,
                                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}}}))
    return path


def write_farm(outdir: str | Path, seasons=SEASONS) -> dict[str, Path | list[Path]]:
    """Write the farm into `outdir`: {"rasters": [paths], "parcels": path}."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    rasters = [write_scene(outdir, d, rng) for d in dates(seasons)]
    (outdir / "events.json").write_text(json.dumps(EVENTS, indent=2))
    return {"rasters": rasters, "parcels": write_parcels(outdir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the generated multi-season farm (rasters + parcels).")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seasons", type=int, nargs="+", default=list(SEASONS))
    args = parser.parse_args(argv)
    out = write_farm(args.outdir, tuple(args.seasons))
    print(f"wrote {len(out['rasters'])} acquisitions and {out['parcels']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
