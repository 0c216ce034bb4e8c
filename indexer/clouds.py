"""Which pixels of an observation are cloud, shadow, cirrus or saturated.

Three methods, chosen per observation and recorded on every record (`cloud_method`):

1. `scl` — the product's Sen2Cor Scene Classification: classes 1 (saturated/defective),
   3 (cloud shadow), 8/9 (cloud medium/high probability) and 10 (thin cirrus) are masked.
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
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from indexer.core.bands import S2CLOUDLESS_BANDS, SCL_INVALID
from indexer.reader import Observation

CLOUD_PROBABILITY_THRESHOLD = 0.4
BRIGHT_VISIBLE = 0.20
BRIGHT_BLUE = 0.18
MAX_VISIBLE_SPREAD = 0.35
MAX_NDSI = 0.40
#: Bands the spectral fallback test reads; without them and without SCL or s2cloudless's bands no
#: cloud can be found, and the record is flagged "missing bands" (`indexer.chips`), never "cloud".
SPECTRAL_TEST_BANDS: tuple[str, ...] = ("B02", "B03", "B04")
#: `cloud_method` when no method could run.
NO_METHOD = "none"


def cloud_mask(obs: Observation) -> tuple[np.ndarray, str]:
    """Boolean mask (True = cloud/shadow/cirrus/saturated) and the method that produced it."""
    if obs.scl is not None:
        return np.isin(obs.scl, sorted(SCL_INVALID - {0})), "scl"
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
