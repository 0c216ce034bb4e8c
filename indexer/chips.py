"""Per parcel, per date: the masked chip for the encoder and the index statistics.

Statistics are computed at the native 10 m resolution over the pixels that are inside the
parcel polygon, observed (not nodata) and not masked as cloud/shadow; the chip is a square
window around the parcel, padded, resampled to the encoder's input size, with every pixel that
is outside the parcel or invalid filled with the parcel's own mean spectrum (so the encoder
describes the field, not its neighbours or a black border) and flagged in `chip_valid`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from indexer.core.bands import nearest_band
from indexer.clouds import NO_METHOD, SPECTRAL_TEST_BANDS, pixel_quality
from indexer.core.indices import index_statistics_many
from indexer.reader import Observation, Scene

#: Below this share of valid parcel pixels a record is kept but flagged not valid.
MIN_VALID_FRACTION = 0.3
PAD_FRACTION = 0.1
MIN_PAD_PIXELS = 2
#: Bands without which an observation cannot be assessed: NDVI's (vigor, the first class every
#: analysis states). A raster without them is "missing bands", whatever its pixels look like.
REQUIRED_BANDS: tuple[str, ...] = ("B04", "B08")
#: The invalid reason of an observation that lacks `REQUIRED_BANDS` or any band a cloud test needs.
MISSING_BANDS = "missing bands"


@dataclass
class ParcelChip:
    """One parcel on one date, ready for the encoder and the store."""

    parcel_id: str
    n_pixels: int  # pixels inside the polygon
    valid_fraction: float  # observed, cloud-free share of those pixels
    cloud_fraction: float  # cloud/shadow share of the observed pixels
    nodata_fraction: float
    cloud_method: str
    stats: dict[str, float]
    chip: np.ndarray  # float32 [bands, size, size] reflectance in encoder band order
    chip_valid: np.ndarray  # bool [size, size]
    imputed: dict[str, str] = field(default_factory=dict)  # missing band -> band copied into it
    #: Bands the assessment needs that the raster lacks (`REQUIRED_BANDS`, and the cloud test's
    #: when no cloud method could run): such a record is never valid, and never "cloud".
    missing_bands: tuple[str, ...] = ()
    snow_fraction: float = math.nan  # snow share of the observed pixels (masked, not counted in cloud_fraction)
    vegsoil_fraction: float = math.nan  # vegetation or soil share of the parcel's pixels (SCL 4, 5); NaN without SCL

    def is_valid(self, min_valid_fraction: float = MIN_VALID_FRACTION) -> bool:
        if self.missing_bands:
            return False
        return self.valid_fraction >= min_valid_fraction and self.valid_fraction > 0

    def invalid_reason(self) -> str:
        """Why a record is not valid: bands are missing, clouds dominate, or the pixels were simply
        not observed."""
        if self.missing_bands:
            return MISSING_BANDS
        # The largest of the three shares of the parcel wins; ties go to cloud, then snow.
        seen = 1 - self.nodata_fraction
        snow = 0.0 if math.isnan(self.snow_fraction) else self.snow_fraction
        shares = {"cloud": self.cloud_fraction * seen, "snow": snow * seen, "nodata": self.nodata_fraction}
        return max(shares, key=lambda k: (shares[k], -list(shares).index(k)))


# geometry_mask is always given the window's own transform, yet when extraction runs in the
# indexing thread rasterio's rasterize (features.py) now and then reports its scratch in-memory
# raster as "not georeferenced" (seen on multi-date runs, never single-threaded; the masks are
# right: tests compare them with the known parcel geometry). The warning says nothing about the
# user's data, so only that warning, only from rasterio.features, is silenced, once, at import:
# `warnings.catch_warnings` would not be thread-safe here.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.features")


#: Pixel coordinates this close to a pixel edge are on it (a millionth of a pixel: 10 µm at 10 m).
SNAP_PIXELS = 1e-6


def _snap(value: float) -> float:
    """`value` rounded to the pixel edge it lies on up to `SNAP_PIXELS`.

    Parcels drawn on the pixel grid (LPIS polygons often are) come back from a stored record's
    WGS84 geometry a billionth of a metre off; without snapping, floor/ceil would then move the
    window by a pixel and a re-read chip would differ from the indexed one.
    """
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < SNAP_PIXELS else value


def parcel_window(scene: Scene, geometry: BaseGeometry) -> Window:
    """A square pixel window around the parcel with a margin (may extend past the raster)."""
    inv = ~scene.transform
    minx, miny, maxx, maxy = geometry.bounds
    cols, rows = zip(*(inv @ (x, y) for x, y in ((minx, maxy), (maxx, miny))))
    cols, rows = [_snap(c) for c in cols], [_snap(r) for r in rows]
    c0, c1 = math.floor(min(cols)), math.ceil(max(cols))
    r0, r1 = math.floor(min(rows)), math.ceil(max(rows))
    side = max(c1 - c0, r1 - r0, 1)
    pad = max(MIN_PAD_PIXELS, math.ceil(side * PAD_FRACTION))
    side += 2 * pad
    cc, rc = (c0 + c1) / 2, (r0 + r1) / 2
    return Window(math.floor(cc - side / 2), math.floor(rc - side / 2), side, side)


def inside_mask(obs: Observation, geometry: BaseGeometry) -> np.ndarray:
    """Pixels whose centre is inside the polygon; small parcels fall back to touched pixels."""
    shape = obs.reflectance.shape[1:]
    inside = geometry_mask([geometry], out_shape=shape, transform=obs.transform, invert=True)
    if not inside.any():
        inside = geometry_mask([geometry], out_shape=shape, transform=obs.transform, invert=True, all_touched=True)
    return inside


def extract(
    obs: Observation,
    geometry: BaseGeometry,
    parcel_id: str,
    bands: tuple[str, ...],
    size: int,
) -> ParcelChip:
    """Statistics and encoder chip for one parcel from a window read around it."""
    return extract_many([(obs, geometry, parcel_id)], bands, size)[0]


def extract_parcels(scene: Scene, geometries: list[BaseGeometry], parcel_ids: list[str], bands: tuple[str, ...],
                    size: int) -> list[ParcelChip]:
    """Read each parcel's window from `scene` (geometries in the scene CRS) and extract its chip.

    The one window-and-extract step: indexing and every re-read of a stored record's chip
    (`indexer.sources`) go through it, so a re-read chip is the chip that was indexed.
    """
    reads = [(scene.read(parcel_window(scene, g)), g, str(p)) for g, p in zip(geometries, parcel_ids)]
    return extract_many(reads, bands, size)


def extract_many(
    items: list[tuple[Observation, BaseGeometry, str]], bands: tuple[str, ...], size: int
) -> list[ParcelChip]:
    """`extract` for several parcels of one scene; index statistics computed in one pass."""
    chips, pixels = [], []
    for obs, geometry, parcel_id in items:
        inside = inside_mask(obs, geometry)
        observed = np.isfinite(obs.reflectance).all(axis=0)
        quality = pixel_quality(obs)
        cloud, snow, method = quality.masked & ~quality.snow, quality.snow, quality.method
        valid = inside & observed & ~quality.masked
        n_inside = int(inside.sum())
        n_observed = int((inside & observed).sum())
        pixels.append({b: obs.band(b)[valid] for b in obs.bands})
        chip, chip_valid, imputed = _encoder_chip(obs, valid, bands, size)
        needed = REQUIRED_BANDS + (SPECTRAL_TEST_BANDS if method == NO_METHOD else ())
        missing = tuple(dict.fromkeys(b for b in needed if b not in obs.bands))
        chips.append(
            ParcelChip(
                parcel_id=parcel_id,
                n_pixels=n_inside,
                valid_fraction=int(valid.sum()) / n_inside if n_inside else 0.0,
                cloud_fraction=int((inside & observed & cloud).sum()) / n_observed if n_observed else 0.0,
                nodata_fraction=1 - n_observed / n_inside if n_inside else 1.0,
                cloud_method=method,
                stats={},
                chip=chip,
                chip_valid=chip_valid,
                imputed=imputed,
                missing_bands=missing,
                snow_fraction=int((inside & observed & snow).sum()) / n_observed if n_observed else 0.0,
                vegsoil_fraction=(math.nan if quality.vegetation_soil is None else
                                  int((inside & observed & quality.vegetation_soil).sum()) / n_inside if n_inside else 0.0),
            )
        )
    for chip, stats in zip(chips, index_statistics_many(pixels)):
        chip.stats = stats
    return chips


def impute_plan(available: tuple[str, ...], wanted: tuple[str, ...]) -> dict[str, str]:
    """Missing band -> the available band nearest in wavelength (the encoders' documented policy)."""
    return {b: nearest_band(b, available) for b in wanted if b not in available}


def _encoder_chip(
    obs: Observation, valid: np.ndarray, bands: tuple[str, ...], size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    imputed = impute_plan(obs.bands, bands)
    stack = np.stack([obs.band(imputed.get(b, b)) for b in bands]).astype(np.float32)
    if valid.any():
        fill = stack[:, valid].mean(axis=1)
    else:
        fill = np.zeros(len(bands), dtype=np.float32)
    stack = np.where(valid[None], stack, fill[:, None, None])
    tensor = torch.from_numpy(stack)[None]
    downsampling = stack.shape[-1] > size
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=downsampling)
    mask = F.interpolate(torch.from_numpy(valid)[None, None].float(), size=(size, size), mode="nearest")
    return resized[0].numpy(), mask[0, 0].numpy() > 0.5, imputed
