"""Chip pairs with radiometric augmentation: training examples from the imagery, not only the store.

Why: a store built from one region holds one region's spectra. On the Hesbaye composites (all
cropland) NDVI, NDMI and SAVI move together, so a generator trained on their embeddings alone
learns "low NDVI -> dry, bare" and calls a snowfield (NDVI 0.15, NDMI 0.8) "moderately vigorous"
(measured: 0.77 per-aspect faithfulness on BigEarthNet patches). Re-reading each training parcel's
chip from its raster and perturbing its reflectance breaks those regional correlations while
keeping every text true: the augmented chip is re-encoded by the store's encoder, its index
statistics are recomputed by the indexer's own code (`indexer.core.indices`) on the chip's valid
pixels, and its analysis is written from them by `write_analysis`. Nothing is invented about the
label: it is the rule table applied to the augmented pixels.

Per chip, on reflectance (all bands of a pixel change together, so the parcel's texture stays):

    x' = (1 - a) * (k * g_b * x + o_b) + a * s_b,    o_b = o * (lambda_b / 560 nm) ** -alpha

`k` a brightness factor (illumination, soil moisture darkening), `g_b` a per-band gain (other
surface types and atmospheres shift the bands independently), `o_b` an additive haze (path
reflectance) falling with wavelength as aerosol (alpha ~ 1) or Rayleigh (alpha ~ 4) scattering
does: what separates top-of-atmosphere (L1C) from surface (L2A) reflectance, so that a model
trained on L2A chips meets L1C-like spectra in training (the blue bands raised most, NDVI
lowered), and
`s_b` a random spectrum mixed in with weight `a` (a sub-pixel share of snow, water, rock, dry
grass ... whose spectra no region of the training store has). Values are clipped to [0, 1].

Chips are re-read from each record's recorded source with the indexer's own re-read
(`indexer.sources`: same reader, window, resampling and masks); `imagery` names folders to look in
when the rasters were moved. Every re-read chip is checked against its stored embedding before it
is used.

Chips stream through in blocks of `BLOCK` records: re-read, checked, perturbed, encoded and
measured, then dropped, so memory holds one block's chips whatever the store's size (holding
every chip at once peaked at 8.1 GB on the README's training store). Each copy's perturbations
are drawn for all records before the first block, in the order one pass over all chips drew
them, and the blocks are whole encoder batches: the examples are the same, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from indexer.core.bands import BAND_BY_NAME
from indexer.core.indices import chip_statistics
from indexer.sources import locate_sources, reread_chips
from indexer.store import Store
from indexer.core.errors import InputError
from xvision_model.encoders import Encoder, build_encoder
from xvision_model.finetune.dataset import CLASS_STAT_COLUMNS, Pair, PairSet, written
from xvision_model.finetune.profiles import AugmentSettings
from xvision_model.finetune.seeds import derive_seed, numpy_rng

#: A re-read chip whose embedding has a lower cosine to the stored one is not the indexed chip.
MIN_COSINE = 0.995
#: Chips per encoder call (and per spyndex call, which copies every pixel to float64).
BATCH_SIZE = 64
#: Records whose chips are in memory at once (about 0.7 MB per 12-band 120 x 120 chip, and the
#: perturbation works in float64 temporaries of several times that); a whole number of encoder
#: batches, so that blocks batch the encoder exactly as one pass over every chip did. Measured on
#: a store of the Flanders and Hesbaye samples (2,368 records, 1,795 examples added): peak RSS
#: 8.5 GB in one pass, 2.4 GB with blocks of 256, 1.5 GB with blocks of 64, the same examples.
BLOCK = BATCH_SIZE
#: Wavelength (nm) at which the haze offset is drawn (`AugmentSettings.haze`): Sentinel-2's green band.
HAZE_REFERENCE_NM = 560.0


@dataclass(frozen=True)
class Perturbation:
    """The random draws of `augment_chips` for N chips: brightness `k`, band gains, haze offset,
    mixed-in share and spectrum (arrays of N rows, broadcast over the pixels)."""

    k: np.ndarray
    gains: np.ndarray
    haze: np.ndarray
    share: np.ndarray
    spectrum: np.ndarray

    @classmethod
    def draw(cls, n: int, bands: int | Sequence[str], settings: AugmentSettings,
             rng: np.random.Generator) -> Perturbation:
        """Draws for `n` chips of `bands` (band names, for the haze's wavelength dependence; a
        count alone gives a flat haze)."""
        count = bands if isinstance(bands, int) else len(bands)
        lo, hi = np.log(settings.brightness[0]), np.log(settings.brightness[1])
        k = np.exp(rng.uniform(lo, hi, (n, 1, 1, 1)))
        gains = np.exp(rng.normal(0.0, settings.band_gain_sigma, (n, count, 1, 1)))
        haze = rng.uniform(*settings.haze, (n, 1, 1, 1))
        share = rng.uniform(0.0, settings.mix_max, (n, 1, 1, 1))
        spectrum = rng.uniform(0.0, 0.8, (n, count, 1, 1))
        alpha = rng.uniform(*settings.haze_exponent, (n, 1, 1, 1))
        if not isinstance(bands, int):
            relative = np.array([BAND_BY_NAME[b].wavelength_nm for b in bands]) / HAZE_REFERENCE_NM
            haze = haze * relative[None, :, None, None] ** -alpha
        return cls(k, gains, haze, share, spectrum)

    def apply(self, chips: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """`chips` (the chips of `rows` of the draw) perturbed: float32 reflectance in [0, 1]."""
        # The per-chip factors are combined first and the pixels touched in float32, in place: four
        # passes over the chips instead of seven float64 temporaries (the pixels' work was a third
        # of re-reading and encoding every training chip; the result differs only in rounding).
        share = self.share[rows]
        scale = ((1 - share) * self.k[rows] * self.gains[rows]).astype(np.float32)
        offset = ((1 - share) * self.haze[rows] + share * self.spectrum[rows]).astype(np.float32)
        out = np.multiply(chips, scale, dtype=np.float32)
        out += offset
        return np.clip(out, 0.0, 1.0, out=out)


def augment_chips(chips: np.ndarray, settings: AugmentSettings, rng: np.random.Generator,
                  bands: Sequence[str] | None = None) -> np.ndarray:
    """[N, C, H, W] reflectance -> perturbed copy (see the module docstring), float32 in [0, 1];
    `bands` names the C bands (without them the haze is the same in every band)."""
    return Perturbation.draw(chips.shape[0], bands or chips.shape[1], settings, rng).apply(chips)


def read_chips(store: Store, records: Sequence[dict], imagery: Sequence[str | Path] = (),
               progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-extract the chips of `records` (store rows) from their sources, with the indexer's
    own re-read (`indexer.sources.reread_chips`): at each record's recorded source path, else
    by file name under `imagery`.

    Returns float32 reflectance [N, C, size, size] and the valid masks [N, size, size], in the
    order of `records`; InputError listing the sources found nowhere.
    """
    spec = store.manifest["encoder"]
    return reread_chips(records, tuple(spec["bands"]), int(spec["input_size"]), imagery, progress=progress)


def require_sources(store: Store, pairs: PairSet, imagery: Sequence[str | Path] = ()) -> int:
    """How many distinct sources the valid pairs' chips will be re-read from; InputError naming
    every source found neither at its recorded path nor under `imagery` (checked before any work)."""
    sources = sorted({str(pairs.records[p.row].get("source")) for p in pairs.pairs if p.valid and p.record_id >= 0})
    lookup = locate_sources(sources, imagery)
    if lookup.missing:
        shown = ", ".join(lookup.missing[:5]) + (f" and {len(lookup.missing) - 5} more" if len(lookup.missing) > 5 else "")
        where = f" nor under {', '.join(map(str, imagery))}" if imagery else ""
        raise InputError(
            f"{store.path}: {len(lookup.missing)} of the {len(sources)} rasters its records were indexed from are not "
            f"at their recorded path{where}: {shown}; training re-reads their chips for its spectral augmentation",
            path=lookup.missing[0], field="imagery", value=list(lookup.missing),
            hint="name the folder the rasters were moved to, or train on the stored embeddings only "
                 "(weaker on imagery unlike the store's)",
        )
    return len(sources)


def _encode(encoder: Encoder, chips: np.ndarray, valid: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(chips), batch_size):
            part = slice(start, start + batch_size)
            out.append(encoder(torch.from_numpy(chips[part]), torch.from_numpy(valid[part])).gap.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.spec.dim), np.float32)


def _statistics(chips: np.ndarray, valid: np.ndarray, bands: Sequence[str], batch_size: int) -> list[dict[str, float]]:
    # In batches: spyndex works on float64 copies of every pixel, ~1 GB per 800 chips at once.
    out: list[dict[str, float]] = []
    for start in range(0, len(chips), batch_size):
        part = slice(start, start + batch_size)
        out += chip_statistics(chips[part], valid[part], bands)
    return out


def augmented_pairs(pairs: PairSet, store: Store, imagery: Sequence[str | Path], settings: AugmentSettings,
                    seed: int = 0, encoder: Encoder | None = None, progress: bool = False) -> PairSet:
    """`pairs` plus augmented examples of each valid pair (same parcel, same date, same language
    and prompt; features, statistics and text from the augmented chip): `settings.copies` each,
    or fewer on a store too large for `settings.max_examples` (`AugmentSettings.copies_for`).

    `encoder` defaults to the store's own (built from the registry with default options; CROMA
    looks up its weights as usual). Unusable records and synthetic pairs are not augmented.
    """
    from tqdm import tqdm

    rows = sorted({p.row for p in pairs.pairs if p.valid and p.record_id >= 0})
    copies = settings.copies_for(len(rows))
    if not rows or pairs.records is None or copies == 0:
        return pairs
    table = store.records().set_index("record_id")
    records = [{**pairs.records[r], "geometry": table.loc[pairs.records[r]["record_id"], "geometry"]} for r in rows]
    encoder = encoder or build_encoder(store.encoder_id)
    bands = tuple(store.manifest["encoder"]["bands"])
    n = len(rows)
    # Every copy's draws first, in the order one pass over all chips made them (see the docstring).
    rng = numpy_rng(seed, "augment")
    draws = [Perturbation.draw(n, bands, settings, rng) for _ in range(copies)]
    features = np.zeros((copies, n, encoder.spec.dim), np.float32)
    measured: list[list[dict[str, float] | None]] = [[None] * n for _ in range(copies)]
    with tqdm(total=n * (1 + copies), desc="augment", unit="chip", disable=not progress) as bar:
        for start in range(0, n, BLOCK):
            block = slice(start, min(start + BLOCK, n))
            chips, valid = read_chips(store, records[block], imagery, progress=bar.update)
            _check_reread(_encode(encoder, chips, valid, BATCH_SIZE), pairs.features[rows[block]], records[block])
            for copy, draw in enumerate(draws):
                changed = draw.apply(chips, block)
                features[copy, block] = _encode(encoder, changed, valid, BATCH_SIZE)
                measured[copy][block] = _statistics(changed, valid, bands, BATCH_SIZE)
                bar.update(block.stop - block.start)
            del chips, valid, changed
    stats, extra_records = [], []
    for copy in range(copies):  # copy-major, as `_append` numbers the new rows
        for record, values in zip(records, measured[copy]):
            stats.append([values[c] for c in CLASS_STAT_COLUMNS])
            extra_records.append({**{k: v for k, v in record.items() if k != "geometry"}, **values})
    return _append(pairs, rows, features.reshape(copies * n, -1), np.asarray(stats, np.float32), extra_records)


def _check_reread(reread: np.ndarray, stored: np.ndarray, records: Sequence[dict]) -> None:
    """InputError when a re-read chip's embedding is not its record's stored one (another file,
    or other read options): the worst of the block is named."""
    cosine = np.sum(reread * stored, axis=1)
    worst = int(np.argmin(cosine))
    if cosine[worst] < MIN_COSINE:
        rec = records[worst]
        raise InputError(
            f"{rec['source']}: the chip of {rec['parcel_id']} {rec['date']} re-read from this file does not "
            f"match its stored embedding (cosine {cosine[worst]:.3f}); is it the file that was indexed, "
            "with the same read options?", path=rec["source"], field="imagery",
        )


def _append(pairs: PairSet, rows: list[int], features: np.ndarray, stats: np.ndarray,
            records: list[dict]) -> PairSet:
    """New feature rows (copy-major: copy 0 of every source row, then copy 1 ...) and their pairs."""
    from indexer.analysis import analysis_seed

    start = len(pairs.features)
    position = {row: i for i, row in enumerate(rows)}
    added = []
    for copy in range(len(features) // len(rows)):
        for pair in pairs.pairs:
            if pair.row not in position:
                continue
            new_row = start + copy * len(rows) + position[pair.row]
            record = records[new_row - start]
            phrasing = derive_seed(analysis_seed(pair.parcel_id, pair.date), "augment", copy)
            text = written(record, True, pair.lang, phrasing, slots=pairs.slots, small=False)
            added.append(Pair(row=new_row, record_id=pair.record_id, parcel_id=pair.parcel_id, date=pair.date,
                              lang=pair.lang, prompt=pair.prompt, text=text, valid=True))
    return pairs.extended(features, stats, records, added)
