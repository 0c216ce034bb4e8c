"""Sentinel-2 MSI facts, stated once and declaratively.

Band names, central wavelengths and native resolutions follow ESA's Sentinel-2 User Handbook
(MSI instrument, S2A values). The Scene Classification Layer (SCL) classes are Sen2Cor's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """One MSI band: its name, central wavelength (nm) and native ground resolution (m)."""

    name: str
    wavelength_nm: float
    resolution_m: int


#: All 13 MSI bands in product order.
BANDS: tuple[Band, ...] = (
    Band("B01", 442.7, 60),
    Band("B02", 492.4, 10),
    Band("B03", 559.8, 10),
    Band("B04", 664.6, 10),
    Band("B05", 704.1, 20),
    Band("B06", 740.5, 20),
    Band("B07", 782.8, 20),
    Band("B08", 832.8, 10),
    Band("B8A", 864.7, 20),
    Band("B09", 945.1, 60),
    Band("B10", 1373.5, 60),
    Band("B11", 1613.7, 20),
    Band("B12", 2202.4, 20),
)
BAND_BY_NAME: dict[str, Band] = {b.name: b for b in BANDS}
BAND_NAMES: tuple[str, ...] = tuple(b.name for b in BANDS)

#: The 12 optical bands CROMA (and most L2A products) use: all but B10 (cirrus), which L2A drops.
CROMA_BANDS: tuple[str, ...] = tuple(n for n in BAND_NAMES if n != "B10")

#: Bands s2cloudless' pixel classifier reads (its `all_bands=False` layout), L1C TOA reflectance.
S2CLOUDLESS_BANDS: tuple[str, ...] = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")

#: spyndex's standard band symbols for the Sentinel-2 bands it knows.
SPYNDEX_SYMBOL: dict[str, str] = {
    "B01": "A",
    "B02": "B",
    "B03": "G",
    "B04": "R",
    "B05": "RE1",
    "B06": "RE2",
    "B07": "RE3",
    "B08": "N",
    "B8A": "N2",
    "B11": "S1",
    "B12": "S2",
}

#: Sen2Cor scene classification values.
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
# Which SCL classes are a clear view of the ground is the cloud mask's rule: indexer.clouds.SCL_CLEAR.

#: L2A from processing baseline 04.00 (25 January 2022) adds 1000 to every DN.
BOA_OFFSET_BASELINE = "04.00"
BOA_ADD_OFFSET = -1000.0
QUANTIFICATION_VALUE = 10000.0

#: A band file: `..._B04.tif`, `T31UFS_20210601T104021_B8A_10m.jp2`, `..._SCL_20m.jp2` and the like.
BAND_FILE_RE = re.compile(
    r"(?:^|[_\-.])(?P<band>B(?:0[1-9]|1[0-2]|8A)|SCL)(?:_(?P<res>10|20|60)m)?\.(?:tif|tiff|jp2)$",
    re.IGNORECASE,
)
#: A Sentinel-2 tile id inside a name, e.g. `T31UFS`.
TILE_RE = re.compile(r"(?:^|_)T(?P<tile>\d{2}[A-Z]{3})(?:_|$)")


def normalize_band_name(name: str) -> str | None:
    """Map a band label as found in files or STAC (`B4`, `b04`, `B8a`, `red`...) to `B04` style.

    Returns None when the label names no Sentinel-2 band.
    """
    label = name.strip().upper()
    aliases = {
        "COASTAL": "B01", "BLUE": "B02", "GREEN": "B03", "RED": "B04",
        "REDEDGE1": "B05", "REDEDGE2": "B06", "REDEDGE3": "B07", "NIR": "B08",
        "NIR08": "B8A", "NIR09": "B09", "NIRNARROW": "B8A", "CIRRUS": "B10",
        "SWIR16": "B11", "SWIR22": "B12", "SWIR1": "B11", "SWIR2": "B12", "SCL": "SCL",
    }
    if label in aliases:
        return aliases[label]
    match = re.fullmatch(r"B0?(\d{1,2})(A?)", label)
    if not match:
        return None
    num, suffix = int(match.group(1)), match.group(2)
    candidate = "B8A" if (num == 8 and suffix) else f"B{num:02d}"
    return candidate if candidate in BAND_BY_NAME else None


def nearest_band(name: str, available: tuple[str, ...] | list[str]) -> str:
    """The available band closest in central wavelength to `name` (for missing-band imputation)."""
    target = BAND_BY_NAME[name].wavelength_nm
    return min(available, key=lambda b: abs(BAND_BY_NAME[b].wavelength_nm - target))
