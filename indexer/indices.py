"""Spectral indices through spyndex, and their per-parcel statistics.

spyndex (Awesome Spectral Indices) holds the formulas; we pass reflectance (never DN) and every
constant explicitly, because spyndex fills in none: its catalogue default `L=1.0` is EVI's, while
SAVI is defined with L=0.5 (Huete 1988).

Names: `ndwi` is McFeeters' (1996) open-water index (Green - NIR) / (Green + NIR). `ndmi` is the
NIR/SWIR1 moisture index (Gao 1996's "NDWI", which the seed project also called NDWI).
`ndre` is spyndex's NDREI, (NIR - RE1) / (NIR + RE1) (Gitelson & Merzlyak 1994).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from indexer.bands import SPYNDEX_SYMBOL


@dataclass(frozen=True)
class SpectralIndex:
    """One index: our column prefix, spyndex's name, and the constants it needs."""

    name: str
    spyndex_name: str
    constants: dict[str, float] = field(default_factory=dict)

    def bands(self) -> tuple[str, ...]:
        """Sentinel-2 bands this index reads."""
        import spyndex

        symbols = set(spyndex.indices[self.spyndex_name].bands) - set(self.constants)
        return tuple(b for b, s in SPYNDEX_SYMBOL.items() if s in symbols)


INDICES: tuple[SpectralIndex, ...] = (
    SpectralIndex("ndvi", "NDVI"),
    SpectralIndex("ndwi", "NDWI"),
    SpectralIndex("ndmi", "NDMI"),
    SpectralIndex("savi", "SAVI", {"L": 0.5}),
    SpectralIndex("evi", "EVI", {"g": 2.5, "C1": 6.0, "C2": 7.5, "L": 1.0}),
    SpectralIndex("ndre", "NDREI"),
)
STATISTICS: tuple[str, ...] = ("mean", "median", "p10", "p90", "std")
STAT_COLUMNS: tuple[str, ...] = tuple(f"{i.name}_{s}" for i in INDICES for s in STATISTICS)


def available_indices(bands: tuple[str, ...] | list[str]) -> tuple[SpectralIndex, ...]:
    """The indices whose bands are all present."""
    return tuple(i for i in INDICES if set(i.bands()) <= set(bands))


def compute_indices(reflectance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Index name -> values for every index computable from `reflectance` (band -> array)."""
    import spyndex

    todo = available_indices(tuple(reflectance))
    out: dict[str, np.ndarray] = {}
    for index in todo:
        params: dict[str, object] = {SPYNDEX_SYMBOL[b]: reflectance[b] for b in index.bands()}
        params.update(index.constants)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            values = spyndex.computeIndex(index.spyndex_name, params=params, online=False)
        out[index.name] = np.asarray(values, dtype=np.float64)
    return out


def summarize(values: np.ndarray) -> dict[str, float]:
    """mean, median, p10, p90 and std over the finite values (all NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return dict.fromkeys(STATISTICS, float("nan"))
    p10, median, p90 = np.percentile(finite, [10, 50, 90])
    return {
        "mean": float(finite.mean()),
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "std": float(finite.std()),
    }


def index_statistics(reflectance: dict[str, np.ndarray]) -> dict[str, float]:
    """`{index}_{stat}` for every index and statistic; NaN where the index cannot be computed."""
    stats = dict.fromkeys(STAT_COLUMNS, float("nan"))
    for name, values in compute_indices(reflectance).items():
        for stat, value in summarize(values).items():
            stats[f"{name}_{stat}"] = value
    return stats
