"""Indexing on a Dask cluster: the embedding runs on workers, the one store writer stays here.

The plan (which parcels of which raster) is made here exactly as `indexer.pipeline.index` makes
it. Each task is (raster, chunk of parcels): a worker opens the raster itself (so it must see the
same paths: a shared file system or object store), extracts the chips, computes the indices and
the analysis, embeds them and sends back the record rows and vectors. The encoder is built once
per worker process by `EncoderPlugin` (and again in a worker the nanny restarts); the caller
hands a picklable factory, e.g. ``functools.partial(build_encoder, "spectral-v2")``, so this
module does not import the model package.

Results stream back as tasks finish and are written in plan order by this process, the store's
only writer (the write lock is held for the run): record ids come out as in a single-process run,
and a task that runs twice (its worker died and the scheduler ran it elsewhere, or a retry after
an error) is written once, because each task's result is taken only the first time it arrives.
Commits happen every `commit_every` records as in the single-process pipeline, so a run killed
midway keeps what it committed.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from tqdm import tqdm

from indexer.chips import extract_parcels
from indexer.core.errors import InputError
from indexer.pipeline import (
    EXTRACT_CHUNK, ChipEncoder, IndexConfig, IndexSummary, RecordWriter, _batches, _embed, _Work, prepare,
)
from indexer.reader import ReadOptions, open_scene
from indexer.store import Store, write_lock

#: Worker address -> its encoder (one per worker process; set up by EncoderPlugin).
_ENCODERS: dict[str, ChipEncoder] = {}


@dataclass(frozen=True)
class ClusterConfig:
    """Where to run: an existing scheduler (``tcp://host:port``) or `workers` local processes."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    parcels_per_task: int = 64
    retries: int = 2  # re-runs of a task that raised (a dead worker's tasks are rescheduled anyway)

    def __post_init__(self) -> None:
        if (self.scheduler is None) == (self.workers is None):
            raise InputError("give either a scheduler address or a number of local workers", field="scheduler")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise InputError(f"the number of workers must be a positive integer, got {self.workers!r}",
                             field="workers", value=self.workers)
        if self.scheduler is not None and "://" not in self.scheduler:
            raise InputError(f"scheduler address {self.scheduler!r} is not of the form tcp://HOST:PORT",
                             field="scheduler", value=self.scheduler)
        if self.parcels_per_task < 1:
            raise InputError("parcels per task must be at least 1", field="parcels_per_task", value=self.parcels_per_task)


class EncoderPlugin(WorkerPlugin):
    """Builds the encoder once in every worker process, with torch limited to the worker's threads."""

    name = "xvision-encoder"

    def __init__(self, factory: Callable[[], ChipEncoder]) -> None:
        self.factory = factory

    def setup(self, worker) -> None:
        # Several worker processes on one machine would otherwise each start a thread per core.
        torch.set_num_threads(max(1, int(worker.state.nthreads)))
        _ENCODERS[worker.address] = self.factory()

    def teardown(self, worker) -> None:
        _ENCODERS.pop(worker.address, None)


def _encoder() -> ChipEncoder:
    worker = get_worker()
    try:
        return _ENCODERS[worker.address]
    except KeyError:
        raise RuntimeError(f"worker {worker.address} has no encoder: EncoderPlugin was not registered") from None


def _encoder_manifest() -> dict:
    return _encoder().manifest()


def embed_task(source: str, read: ReadOptions, parcels: gpd.GeoDataFrame,
               config: IndexConfig) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """On a worker: the record rows and vectors of `parcels` (in the raster's CRS) on one raster."""
    encoder = _encoder()
    scene = open_scene(source, read)
    frames, vectors = [], []
    with scene:
        items = [parcel for _, parcel in parcels.iterrows()]
        work = []
        for start in range(0, len(items), EXTRACT_CHUNK):
            chunk = items[start:start + EXTRACT_CHUNK]
            chips = extract_parcels(scene, [p.geometry for p in chunk], [p["parcel_id"] for p in chunk],
                                    encoder.spec.bands, encoder.spec.input_size)
            work += [_Work(scene, parcel, parcel["source_crs"], chip) for parcel, chip in zip(chunk, chips)]
        for batch in _batches(iter(work), config.batch_size):
            rows, batch_vectors = _embed(batch, encoder, config)
            frames.append(rows)
            vectors.append(batch_vectors)
    rows = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    return rows, np.concatenate(vectors)


def _client(cluster: ClusterConfig) -> tuple[Client, LocalCluster | None]:
    if cluster.scheduler is not None:
        return Client(cluster.scheduler), None
    local = LocalCluster(n_workers=cluster.workers, threads_per_worker=cluster.threads_per_worker,
                         processes=True, host="127.0.0.1", dashboard_address=":0")
    return Client(local), local


def index_on_cluster(config: IndexConfig, encoder_factory: Callable[[], ChipEncoder], cluster: ClusterConfig,
                     progress: Callable[[int, int], None] | None = None,
                     announce: Callable[[str], None] | None = None) -> IndexSummary:
    """`indexer.pipeline.index` with the embedding on a Dask cluster; same records, same summary.

    `announce(text)` receives the dashboard address when the cluster is up; `progress(done, total)`
    is called as task results arrive (besides the tqdm bar when `config.progress`).
    """
    summary, sources, plan = prepare(config)  # every input checked here, before the cluster starts
    tasks = [(str(source), gdf.iloc[start:start + cluster.parcels_per_task])
             for source, (_, gdf) in zip(sources, plan) for start in range(0, len(gdf), cluster.parcels_per_task)]
    total = sum(len(chunk) for _, chunk in tasks)
    client, local = _client(cluster)
    try:
        client.register_plugin(EncoderPlugin(encoder_factory))
        if announce:
            bokeh = importlib.util.find_spec("bokeh") is not None
            announce(f"dask dashboard: {client.dashboard_link}" + ("" if bokeh else " (install bokeh to see it)")
                     + f"; {len(client.scheduler_info()['workers'])} workers, {len(tasks)} tasks")
        manifest = client.submit(_encoder_manifest, pure=False).result()
        run = uuid.uuid4().hex[:8]
        with write_lock(config.store):
            store = Store.open_or_create(config.store, manifest)
            if store.migrated_from is not None:
                summary.notes.append(f"store upgraded from record schema version {store.migrated_from}")
            if store.layout_upgraded:
                summary.notes.append("store rewritten once as append-only segments (it had the single-generation layout)")
            futures = [client.submit(embed_task, source, config.read, chunk, config, retries=cluster.retries,
                                     key=f"xvision-embed-{run}-{i}") for i, (source, chunk) in enumerate(tasks)]
            order = {future.key: i for i, future in enumerate(futures)}
            _write_in_order(store, futures, order, config, summary, total, progress)
            summary.store_records = len(store)
    finally:
        client.close()
        if local is not None:
            local.close()
    return summary


def _write_in_order(store: Store, futures, order: dict, config: IndexConfig, summary: IndexSummary, total: int,
                    progress: Callable[[int, int], None] | None) -> None:
    arrived: dict[int, tuple[gpd.GeoDataFrame, np.ndarray]] = {}
    written = 0  # tasks [0, written) are upserted
    bar = tqdm(total=total, desc="indexing (dask)", unit="record", disable=not config.progress)
    writer = RecordWriter(store, summary, config.commit_every)

    try:
        for future, (rows, vectors) in as_completed(futures, with_results=True):
            i = order[future.key]
            future.release()
            if i < written or i in arrived:
                continue  # a second run of a task already received: written once
            arrived[i] = (rows, vectors)
            bar.update(len(rows))
            if progress:
                progress(bar.n, total)
            while written in arrived:
                writer.add(*arrived.pop(written))
                written += 1
        writer.flush()
    finally:
        bar.close()


def worker_pids(client: Client) -> dict[str, int]:
    """Worker address -> process id (for operators, and for tests that kill one)."""
    return client.run(os.getpid)
