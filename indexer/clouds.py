"""Which pixels of an observation are cloud, shadow, cirrus or saturated.

Three methods, chosen per observation and recorded on every record (`cloud_method`):

1. `scl` — the product's Sen2Cor Scene Classification. Only vegetation (4), not vegetated /
   bare soil (5) and water (6) are a clear view of the ground (SCL_CLEAR); every other class is
   masked (quality rule 2, `indexer.core.schema.QUALITY_RULE_VERSION`): saturated/defective (1),
   dark area (2: topographic or cloud shadow, burnt ground), cloud shadow (3), unclassified (7:
   mostly cloud edges and haze), cloud medium/high probability (8/9), thin cirrus (10) and snow
   (11). Until rule 2, classes 2, 7 and 11 counted as clear: a snowed-in parcel (Flanders,
   2018-11-12, 96 % SCL snow) was stored valid with NDVI 0.00 and read as open water.
   Water stays clear: a flooded field is a fact about the field that the analysis states (its
   NDWI "open water" class), not an unseen one; the record's vegetation+soil share
   (`vegsoil_fraction`) tells such an observation apart from one of the crop itself.
2. `s2cloudless` — Sentinel Hub's pretrained LightGBM pixel classifier, shipped inside the
   s2cloudless wheel (runs offline). It needs B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12
   (top-of-atmosphere; on L2A input it is an approximation). Probability > 0.4, dilated by one
   pixel (the package defaults).
3. `spectral-test` — when neither is possible (L2A composites without SCL, such as the Hesbaye
   sample, lack B10): a pixel is cloud when it is bright and white in the visible and not snow:

       mean(B02, B03, B04) > 0.20  and  B02 > 0.18
       and (max - min)(B02, B03, B04) / mean(B02, B03, B04) < 0.35     ("white")
       and NDSI = (B03 - B11) / (B03 + B11) < 0.40 when B11 is present ("not snow")

   Vegetation and soils have blue reflectance well under 0.15 and are not white; snow is white
   but dark in SWIR. The test misses thin haze and cloud shadows: records carry the method so
   users can weigh them.

Snow is masked too, and told apart from cloud (`pixel_quality`), so a record can say "snow" rather
than "cloud" and no analysis reads it as bare ground or water: SCL class 11, or without SCL, when
B11 is there, the normalised difference snow index test of Dozier (1989) as MODIS and Sen2Cor use
it: NDSI = (B03 - B11) / (B03 + B11) > 0.40 and B08 > 0.11 (water also has a high NDSI but little
near-infrared) and B03 > 0.10. The share of vegetation and soil pixels (SCL 4, 5) is recorded too;
without SCL it is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from indexer.core.bands import S2CLOUDLESS_BANDS
from indexer.reader import Observation

CLOUD_PROBABILITY_THRESHOLD = 0.4
BRIGHT_VISIBLE = 0.20
BRIGHT_BLUE = 0.18
MAX_VISIBLE_SPREAD = 0.35
MAX_NDSI = 0.40
#: SCL classes that are a clear view of the ground: vegetation, not vegetated (soil), water.
SCL_CLEAR: frozenset[int] = frozenset({4, 5, 6})
SCL_SNOW = 11
SCL_VEGETATION_SOIL: frozenset[int] = frozenset({4, 5})
#: SCL classes masked as not clear (no data, 0, is told apart by the reader's nodata instead).
SCL_MASKED: frozenset[int] = frozenset(range(1, 12)) - SCL_CLEAR
#: The snow test without SCL (see the module docstring).
MIN_SNOW_NDSI = 0.40
MIN_SNOW_NIR = 0.11
MIN_SNOW_GREEN = 0.10
#: Bands the spectral fallback test reads; without them and without SCL or s2cloudless's bands no
#: cloud can be found, and the record is flagged "missing bands" (`indexer.chips`), never "cloud".
SPECTRAL_TEST_BANDS: tuple[str, ...] = ("B02", "B03", "B04")
#: `cloud_method` when no method could run.
NO_METHOD = "none"


@dataclass(frozen=True)
class PixelQuality:
    """Per pixel of an observation: what is masked, what of it is snow, what is vegetation or soil."""

    masked: np.ndarray  # bool: not a clear view of the ground (cloud, shadow, cirrus, dark, unclassified, snow...)
    snow: np.ndarray  # bool, a subset of `masked`
    vegetation_soil: np.ndarray | None  # bool (SCL 4, 5); None when the method cannot tell
    method: str


def pixel_quality(obs: Observation) -> PixelQuality:
    """Masked, snow and vegetation+soil pixels, and the method that found them (module docstring)."""
    if obs.scl is not None:
        snow = obs.scl == SCL_SNOW
        return PixelQuality(np.isin(obs.scl, sorted(SCL_MASKED)), snow,
                            np.isin(obs.scl, sorted(SCL_VEGETATION_SOIL)), "scl")
    mask, method = cloud_mask(obs)
    snow = snow_test(obs)
    return PixelQuality(mask | snow, snow & ~mask, None, method)


def snow_test(obs: Observation) -> np.ndarray:
    """Snow pixels by the NDSI test (all False without B03, B08 and B11)."""
    shape = obs.reflectance.shape[1:]
    if not all(b in obs.bands for b in ("B03", "B08", "B11")):
        return np.zeros(shape, dtype=bool)
    green, nir, swir = obs.band("B03"), obs.band("B08"), obs.band("B11")
    with np.errstate(invalid="ignore", divide="ignore"):
        ndsi = (green - swir) / (green + swir)
        return (ndsi > MIN_SNOW_NDSI) & (nir > MIN_SNOW_NIR) & (green > MIN_SNOW_GREEN)


def cloud_mask(obs: Observation) -> tuple[np.ndarray, str]:
    """Boolean mask (True = not clear: with SCL every class but vegetation, soil and water; else
    cloud) and the method that produced it. `pixel_quality` also tells snow apart."""
    if obs.scl is not None:
        return np.isin(obs.scl, sorted(SCL_MASKED)), "scl"
    if all(b in obs.bands for b in S2CLOUDLESS_BANDS):
        return _s2cloudless(obs), "s2cloudless"
    if any(b not in obs.bands for b in SPECTRAL_TEST_BANDS):
        return np.zeros(obs.reflectance.shape[1:], dtype=bool), NO_METHOD
    return spectral_cloud_test(obs), "spectral-test"


@lru_cache(maxsize=1)
def _detector():
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(threshold=CLOUD_PROBABILITY_THRESHOLD, average_over=1, dilation_size=1, all_bands=False)


def _s2cloudless(obs: Observation) -> np.ndarray:
    stack = np.stack([obs.band(b) for b in S2CLOUDLESS_BANDS], axis=-1)
    nodata = ~np.isfinite(stack).all(axis=-1)
    data = np.nan_to_num(stack, nan=0.0)[np.newaxis]
    mask = _detector().get_cloud_masks(data)[0].astype(bool)
    return mask & ~nodata


def spectral_cloud_test(obs: Observation) -> np.ndarray:
    """The documented fallback test (see module docstring)."""
    blue, green, red = obs.band("B02"), obs.band("B03"), obs.band("B04")
    with np.errstate(invalid="ignore", divide="ignore"):
        visible = np.stack([blue, green, red])
        mean = visible.mean(axis=0)
        spread = (visible.max(axis=0) - visible.min(axis=0)) / mean
        cloud = (mean > BRIGHT_VISIBLE) & (blue > BRIGHT_BLUE) & (spread < MAX_VISIBLE_SPREAD)
        if "B11" in obs.bands:
            swir = obs.band("B11")
            ndsi = (green - swir) / (green + swir)
            cloud &= ndsi < MAX_NDSI
    return cloud & np.isfinite(mean)
