"""Digital numbers to reflectance.

Sentinel-2 L1C and L2A products store reflectance x 10000 as uint16. From processing baseline
04.00 (products from 25 January 2022 on) ESA adds 1000 to every DN so that dark pixels keep
their noise distribution instead of clipping at zero; the metadata then carries
`BOA_ADD_OFFSET` (L2A) / `RADIO_ADD_OFFSET` (L1C) = -1000:

    reflectance = (DN + offset) / 10000

DN 0 is "no data" in every baseline (and files may declare another nodata, 65535 in the
Hesbaye composites). Nodata is masked on the raw DN *before* the offset, so a dark pixel whose
reflectance comes out slightly negative stays a valid observation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from indexer.core.bands import BOA_ADD_OFFSET, BOA_OFFSET_BASELINE, QUANTIFICATION_VALUE

#: First day of products processed with baseline 04.00 (used only when no baseline is known).
BASELINE_0400_START = dt.date(2022, 1, 25)

_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass(frozen=True)
class Radiometry:
    """How to turn this product's DNs into reflectance, and where that choice came from."""

    offset: float  # added to DN before scaling (0 or -1000)
    scale: float  # divide by this (10000 for DN products, 1 for float reflectance)
    source: str  # "override", "baseline 04.00", "date", "float reflectance", ...

    def to_reflectance(self, dn: np.ndarray, nodata: tuple[float, ...]) -> np.ndarray:
        """Float32 reflectance with NaN where the raw DN is nodata (masked before the offset)."""
        raw = dn.astype(np.float32, copy=False)
        invalid = ~np.isfinite(raw)
        for value in nodata:
            invalid |= raw == value
        out = (raw + np.float32(self.offset)) / np.float32(self.scale)
        out[invalid] = np.nan
        return out


def parse_baseline(value: str | float | None) -> float | None:
    """A processing baseline as a number (`"04.00"`, `"N0400"`, `4.0`, `"05.09"` -> 5.09)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().upper().lstrip("N")
    if re.fullmatch(r"\d{4}", text):
        return int(text[:2]) + int(text[2:]) / 100
    try:
        return float(text)
    except ValueError:
        return None


def baseline_from_name(name: str) -> float | None:
    """The baseline encoded in a product name (`..._N0400_R...` -> 4.0), if any."""
    match = _BASELINE_IN_NAME.search(name)
    return int(match.group(1)) + int(match.group(2)) / 100 if match else None


def choose_radiometry(
    *,
    is_float: bool,
    baseline: float | None,
    explicit_offset: float | None,
    date: dt.date | None,
    override: float | None = None,
) -> Radiometry:
    """Pick offset and scale for one product.

    Precedence: the offset the user forces (`ReadOptions.boa_offset`), an offset written in the product's own metadata, its
    processing baseline, and only then the acquisition date (baseline 04.00 started on
    2022-01-25; reprocessed archives may differ, which is why metadata wins).
    """
    if is_float:
        return Radiometry(0.0, 1.0, "float reflectance")
    if override is not None:
        return Radiometry(float(override), QUANTIFICATION_VALUE, "override")
    if explicit_offset is not None:
        return Radiometry(float(explicit_offset), QUANTIFICATION_VALUE, "metadata offset")
    if baseline is not None:
        offset = BOA_ADD_OFFSET if baseline >= parse_baseline(BOA_OFFSET_BASELINE) else 0.0
        return Radiometry(offset, QUANTIFICATION_VALUE, f"baseline {baseline:05.2f}")
    if date is not None and date >= BASELINE_0400_START:
        return Radiometry(BOA_ADD_OFFSET, QUANTIFICATION_VALUE, "date (no baseline in metadata)")
    return Radiometry(0.0, QUANTIFICATION_VALUE, "date (no baseline in metadata)")
