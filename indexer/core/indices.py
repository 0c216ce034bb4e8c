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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from indexer.core.bands import SPYNDEX_SYMBOL


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


def _compatible_groups(indices: tuple[SpectralIndex, ...]) -> list[list[SpectralIndex]]:
    """Indices that can share one spyndex call: their constants do not disagree (SAVI's L=0.5
    and EVI's L=1.0 must not)."""
    groups: list[list[SpectralIndex]] = []
    for index in indices:
        for group in groups:
            merged = {k: v for g in group for k, v in g.constants.items()}
            if all(merged.get(k, v) == v for k, v in index.constants.items()):
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


def compute_indices(reflectance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Index name -> values for every index computable from `reflectance` (band -> array)."""
    import spyndex

    out: dict[str, np.ndarray] = {}
    # spyndex re-reads its JSON catalogue on every computeIndex call: one call per group of
    # compatible indices instead of one per index.
    for group in _compatible_groups(available_indices(tuple(reflectance))):
        params: dict[str, object] = {}
        for index in group:
            params.update({SPYNDEX_SYMBOL[b]: reflectance[b] for b in index.bands()})
            params.update(index.constants)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            values = spyndex.computeIndex([i.spyndex_name for i in group], params=params, online=False)
        values = np.asarray(values, dtype=np.float64).reshape(len(group), -1)
        for index, row in zip(group, values):
            out[index.name] = row
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
    return index_statistics_many([reflectance])[0]


def index_statistics_many(groups: list[dict[str, np.ndarray]]) -> list[dict[str, float]]:
    """`index_statistics` for many parcels at once (one spyndex pass over all their pixels).

    Every group must hold the same bands (the parcels of one scene).
    """
    if not groups:
        return []
    sizes = [len(next(iter(g.values()))) if g else 0 for g in groups]
    bands = groups[0].keys()
    pooled = {b: np.concatenate([np.ravel(g[b]) for g in groups]) for b in bands}
    split_at = np.cumsum(sizes)[:-1]
    indices = compute_indices(pooled)
    names = list(indices)
    per_parcel = np.split(np.stack([indices[n] for n in names]), split_at, axis=1) if names else [None] * len(groups)
    results = []
    for values in per_parcel:
        stats = dict.fromkeys(STAT_COLUMNS, float("nan"))
        if values is not None:
            for name, summary in zip(names, _summarize_rows(values)):
                for stat, value in summary.items():
                    stats[f"{name}_{stat}"] = value
        results.append(stats)
    return results


def _summarize_rows(values: np.ndarray) -> list[dict[str, float]]:
    """`summarize` of each row of [indices, pixels]: the rows with every value finite (most
    parcels' indices) in one vectorized pass, the others one by one. Same numbers as `summarize`
    row by row; about 40 000 separate percentile calls made a third of a training run's
    augmentation and of indexing the Flanders sample."""
    if values.shape[1] == 0:
        return [summarize(row) for row in values]
    finite = np.isfinite(values).all(axis=1)
    out: list[dict[str, float] | None] = [None if ok else summarize(row) for ok, row in zip(finite, values)]
    if finite.any():
        rows = np.ascontiguousarray(values[finite])
        p10, median, p90 = np.percentile(rows, [10, 50, 90], axis=1)
        mean, std = rows.mean(axis=1), rows.std(axis=1)
        summaries = iter(zip(mean, median, p10, p90, std))
        for r, ok in enumerate(finite):
            if ok:
                m, q50, q10, q90, sd = next(summaries)
                out[r] = {"mean": float(m), "median": float(q50), "p10": float(q10), "p90": float(q90), "std": float(sd)}
    return out


def chip_statistics(chips: np.ndarray, valid: np.ndarray, bands: Sequence[str]) -> list[dict[str, float]]:
    """`index_statistics_many` over the valid pixels of each chip.

    `chips`: reflectance [N, len(bands), H, W]; `valid`: bool [N, H, W]. Used where a chip,
    not a parcel read, is what is measured (the spectral-v2 encoder, augmented training chips).
    """
    return index_statistics_many(
        [{band: chips[i, c][valid[i]] for c, band in enumerate(bands)} for i in range(len(chips))]
    )
