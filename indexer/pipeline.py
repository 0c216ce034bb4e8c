"""Index acquisitions into a store: read -> chips + indices + analysis -> embed -> upsert -> commit.

Reading, masking and index statistics run in a producer thread and feed a bounded queue; the
encoder runs in the calling thread on batches. The two overlap (rasterio, numpy and torch release
the GIL), and the bounded queue keeps memory flat however many rasters are given. Records are
committed every `commit_every` records and at the end; a failure discards only what was not yet
committed.

The encoder is handed to `index` by its caller (the command line builds it from the model's
registry): the pipeline composes reader, encoder and store without importing the model package.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from indexer.analysis import analysis_seed, write_analysis
from indexer.chips import MIN_VALID_FRACTION, ParcelChip, extract_parcels
from indexer.core.errors import InputError
from indexer.core.limits import over_limit
from indexer.core.schema import ATTRIBUTE_PREFIX, QUALITY_RULE_VERSION, attributes_from_json
from indexer.observations import MIN_RELIABLE_PIXELS
from indexer.parcels import Parcels, attributes_json, grid_parcels, in_footprint, read_parcels
from indexer.reader import ReadOptions, Scene, discover_inputs, open_scene
from indexer.store import Store, write_lock


class ChipEncoder(Protocol):
    """What indexing needs of an encoder (`xvision_model.encoders.Encoder` is one)."""

    spec: object  # .id, .bands, .input_size, .dim

    def manifest(self) -> dict: ...

    def __call__(self, chips: torch.Tensor, valid: torch.Tensor): ...  # -> output with .gap [N, dim]


#: Parcels extracted together (index statistics are computed in one spyndex pass per chunk).
EXTRACT_CHUNK = 16


@dataclass(frozen=True)
class IndexConfig:
    """Options of one `xvision index` run."""

    store: Path
    inputs: tuple[str, ...]
    parcels: Path | None = None
    id_column: str | None = None
    grid: int | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    batch_size: int = 8
    commit_every: int = 2048
    min_valid_fraction: float = MIN_VALID_FRACTION
    queue_size: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.parcels is None) == (self.grid is None):
            raise InputError("give either a parcels file or a grid size (N x N pixel cells as pseudo-parcels)",
                             field="parcels")
        if self.grid is not None and self.grid <= 0:
            raise InputError(f"the grid size must be a positive number of pixels, got {self.grid}", field="grid",
                             value=self.grid)
        if not 0 <= self.min_valid_fraction <= 1:
            raise InputError(f"the minimum valid fraction must be between 0 and 1, got {self.min_valid_fraction}",
                             field="min_valid_fraction", value=self.min_valid_fraction)


@dataclass
class IndexSummary:
    """What a run did: counts, and why anything was skipped or flagged."""

    scenes: int = 0
    added: int = 0
    replaced: int = 0
    flagged: Counter = field(default_factory=Counter)  # reason -> records kept but not valid
    skipped: Counter = field(default_factory=Counter)  # reason -> parcel-dates not indexed
    store_records: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [*self.notes, f"scenes read: {self.scenes}", f"records added: {self.added}",
               f"records replaced: {self.replaced}"]
        for reason, n in sorted(self.flagged.items()):
            out.append(f"records kept but flagged not valid ({reason}): {n}")
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped ({reason}): {n}")
        out.append(f"records in store: {self.store_records}")
        return out


@dataclass
class _Work:
    """One parcel on one scene, extracted by the producer."""

    scene: Scene
    parcel: pd.Series
    source_crs: str
    chip: ParcelChip


def index(config: IndexConfig, encoder: ChipEncoder, progress: Callable[[int, int], None] | None = None) -> IndexSummary:
    """Run the indexing described by `config` with `encoder` and return its summary.

    `progress(done, total)` is called after every batch (besides the tqdm bar when
    `config.progress`), for front ends that draw their own progress.
    """
    summary, _, plan = prepare(config)
    total = sum(len(p) for _, p in plan)
    with write_lock(config.store):
        store = Store.open_or_create(config.store, encoder.manifest())
        if store.migrated_from is not None:
            summary.notes.append(f"store upgraded from record schema version {store.migrated_from} to "
                                 f"{store.manifest['schema_version']} (parcel attributes became attr_* columns)")
        if store.layout_upgraded:
            summary.notes.append("store rewritten once as append-only segments (it had the single-generation layout)")
        bar = tqdm(total=total, desc="indexing", unit="record", disable=not config.progress)
        writer = RecordWriter(store, summary, config.commit_every)
        try:
            for batch in _batches(_produce(plan, encoder, config), config.batch_size):
                writer.add(*_embed(batch, encoder, config))
                bar.update(len(batch))
                if progress:
                    progress(bar.n, total)
            writer.flush()
        finally:
            bar.close()
        summary.store_records = len(store)
    return summary


def prepare(config: IndexConfig) -> tuple[IndexSummary, list[Path], list[tuple[Scene, gpd.GeoDataFrame]]]:
    """Open and check every input before anything is written: the run's summary so far, the
    acquisition paths and, per scene, the parcels to extract (`_plan`).

    InputError when no parcel (or grid cell) falls on any raster, or when an input is over
    `config.read.limits` (checked from headers before anything is read or cut).
    """
    summary = IndexSummary()
    limits = config.read.limits
    sources = discover_inputs(config.inputs, allow_virtual=config.read.allow_virtual)
    scenes = [open_scene(p, config.read) for p in sources]  # validate all first
    summary.scenes = len(scenes)
    if config.grid is not None:
        for scene in scenes:  # each cell becomes a record: counted before one polygon is built
            cells = (scene.width // config.grid) * (scene.height // config.grid)
            if cells > limits.max_grid_cells:
                raise over_limit(scene.origin or scene.name, f"number of {config.grid} x {config.grid} pixel grid cells",
                                 cells, limits.max_grid_cells, "max_grid_cells")
    parcels = (read_parcels(config.parcels, config.id_column, limits=limits, allow_virtual=config.read.allow_virtual)
               if config.parcels else None)
    if parcels is not None:
        for _, reason in parcels.dropped:
            summary.skipped[f"invalid geometry: {reason}"] += 1
    plan = _plan(scenes, parcels, config.grid, summary)
    if not any(len(p) for _, p in plan):
        raise InputError(
            f"{config.parcels}: no parcel overlaps any of the {len(scenes)} raster(s)"
            if parcels is not None
            else "no grid cell fits in the rasters",
            path=config.parcels, field="parcels",
        )
    return summary, sources, plan


class RecordWriter:
    """Embedded records into the store: counted into the summary, upserted and committed every
    `commit_every` records (one upsert per commit: concatenating the table per batch would be
    quadratic). The single writer of a run, in-process or fed by a cluster (`indexer.cluster`)."""

    def __init__(self, store: Store, summary: IndexSummary, commit_every: int) -> None:
        self.store, self.summary, self.commit_every = store, summary, commit_every
        self._pending: list[tuple[gpd.GeoDataFrame, np.ndarray]] = []
        self._n_pending = 0

    def add(self, rows: gpd.GeoDataFrame, vectors: np.ndarray) -> None:
        for valid, reason in zip(rows["valid"], rows["invalid_reason"]):
            if not valid:
                self.summary.flagged[reason] += 1
        self._pending.append((rows, vectors))
        self._n_pending += len(rows)
        if self._n_pending >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Upsert what is pending and commit (a commit is a no-op when nothing changed)."""
        if self._pending:
            rows = gpd.GeoDataFrame(pd.concat([r for r, _ in self._pending], ignore_index=True), crs="EPSG:4326")
            added, replaced = self.store.upsert(rows, np.concatenate([v for _, v in self._pending]))
            self.summary.added += added
            self.summary.replaced += replaced
            self._pending.clear()
            self._n_pending = 0
        self.store.commit()


def _plan(
    scenes: list[Scene], parcels: Parcels | None, grid: int | None, summary: IndexSummary
) -> list[tuple[Scene, gpd.GeoDataFrame]]:
    """Per scene, the parcels (in the scene CRS) to extract, with a `source_crs` column."""
    plan = []
    for scene in scenes:
        if parcels is None:
            cells = grid_parcels(scene.crs, scene.transform, scene.width, scene.height, grid)
            cells["source_crs"] = cells.crs.to_string()
            plan.append((scene, cells))
            continue
        # The parcels file's own columns become typed attr_* columns, through the same JSON-safe
        # conversion (dates, bytes, NaN) that schema-1 stores used.
        attrs = attributes_from_json(pd.Series(attributes_json(parcels.gdf), index=parcels.gdf.index))
        gdf = gpd.GeoDataFrame(pd.concat([parcels.gdf[["parcel_id"]], attrs], axis=1),
                               geometry=parcels.gdf.geometry, crs=parcels.gdf.crs)
        gdf["source_crs"] = parcels.gdf.crs.to_string()
        kept, outside = in_footprint(gdf, scene.crs, scene.bounds)
        summary.skipped["outside raster footprint"] += outside
        plan.append((scene, kept))
    return plan


def _produce(plan, encoder: ChipEncoder, config: IndexConfig) -> Iterator[_Work]:
    """Run extraction in a thread; yield its results in order (errors re-raised here)."""
    out: queue.Queue = queue.Queue(maxsize=config.queue_size)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for scene, gdf in plan:
                with scene:
                    rows = [parcel for _, parcel in gdf.iterrows()]
                    for start in range(0, len(rows), EXTRACT_CHUNK):
                        if stop.is_set():
                            return
                        chunk = rows[start : start + EXTRACT_CHUNK]
                        chips = extract_parcels(scene, [p.geometry for p in chunk], [p["parcel_id"] for p in chunk],
                                                encoder.spec.bands, encoder.spec.input_size)
                        for parcel, chip in zip(chunk, chips):
                            out.put(_Work(scene, parcel, parcel["source_crs"], chip))
            out.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            out.put(exc)

    thread = threading.Thread(target=work, name="xvision-extract", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _batches(items: Iterator[_Work], size: int) -> Iterator[list[_Work]]:
    batch: list[_Work] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _embed(batch: list[_Work], encoder: ChipEncoder, config: IndexConfig) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    chips = torch.from_numpy(np.stack([w.chip.chip for w in batch]))
    valid = torch.from_numpy(np.stack([w.chip.chip_valid for w in batch]))
    with torch.inference_mode():
        vectors = encoder(chips, valid).gap.float().numpy()
    rows = [_record(w, encoder, config) for w in batch]
    # An unusable observation (too few clear pixels) is stored as the zero vector, whatever the
    # encoder: its few pixels say little about the parcel, it then scores 0 against every other
    # record in similarity search, and the generator learns "zero -> unusable" (the analysis says
    # the same: no class is stated for it).
    vectors[[not row["valid"] for row in rows]] = 0.0
    # Scenes in one batch may differ in CRS: reproject each group from its own scene CRS.
    wgs84 = np.empty(len(batch), dtype=object)
    for crs in {str(w.scene.crs) for w in batch}:
        idx = [i for i, w in enumerate(batch) if str(w.scene.crs) == crs]
        group = gpd.GeoSeries([batch[i].parcel.geometry for i in idx], crs=batch[idx[0]].scene.crs)
        wgs84[idx] = group.to_crs("EPSG:4326").to_numpy()
    return gpd.GeoDataFrame(rows, geometry=wgs84, crs="EPSG:4326"), vectors


def _record(work: _Work, encoder: ChipEncoder, config: IndexConfig) -> dict:
    chip, scene = work.chip, work.scene
    date = scene.date.isoformat()
    valid = chip.is_valid(config.min_valid_fraction)
    reason = "" if valid else chip.invalid_reason()
    seed = analysis_seed(chip.parcel_id, date)
    stats = {**chip.stats, "valid_fraction": chip.valid_fraction, "n_pixels": chip.n_pixels}
    small = chip.n_pixels < MIN_RELIABLE_PIXELS  # the observation-quality rule's "too small"
    return {
        "parcel_id": chip.parcel_id,
        "date": date,
        "source": str(scene.origin or scene.name),
        "tile": scene.tile or "",
        "level": scene.level,
        "source_crs": work.source_crs,
        "valid": valid,
        "invalid_reason": reason,
        "valid_fraction": chip.valid_fraction,
        "cloud_fraction": chip.cloud_fraction,
        "nodata_fraction": chip.nodata_fraction,
        "n_pixels": chip.n_pixels,
        "snow_fraction": chip.snow_fraction,
        "vegsoil_fraction": chip.vegsoil_fraction,
        "quality_rule": QUALITY_RULE_VERSION,
        "cloud_method": chip.cloud_method,
        **chip.stats,
        "analysis": write_analysis(stats, valid=valid, reason=reason or None, lang="en", seed=seed, too_small=small),
        "analysis_fr": write_analysis(stats, valid=valid, reason=reason or None, lang="fr", seed=seed,
                                      too_small=small),
        "imputed_bands": ",".join(f"{m}<-{s}" for m, s in chip.imputed.items()),
        "radiometry": f"offset {scene.radiometry.offset:g}, scale {scene.radiometry.scale:g} ({scene.radiometry.source})",
        "encoder": encoder.spec.id,
        "indexed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in work.parcel.items() if isinstance(k, str) and k.startswith(ATTRIBUTE_PREFIX)},
    }
