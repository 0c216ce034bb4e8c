"""Indexing on a Dask LocalCluster (2 worker processes on loopback) writes the same store as the
single-process pipeline, also when a worker is killed midway."""

from __future__ import annotations

import functools
import os
import signal

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from indexer.cluster import ClusterConfig, index_on_cluster, worker_pids
from indexer.core.errors import InputError
from indexer.pipeline import IndexConfig, index
from indexer.store import Store
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder


def _config(store, files) -> IndexConfig:
    return IndexConfig(store=store, inputs=tuple(map(str, files)), grid=20, progress=False, commit_every=20)


@pytest.fixture(scope="module")
def files(hesbaye_dir):
    return sorted(hesbaye_dir.glob("S2_L2A_hesbaye_*.tif"))[:2]


@pytest.fixture(scope="module")
def single(files, tmp_path_factory) -> Store:
    path = tmp_path_factory.mktemp("single") / "store"
    index(_config(path, files), build_encoder(DEFAULT_ENCODER))
    return Store.open(path)


def _assert_same(store: Store, reference: Store) -> None:
    a = store.records().drop(columns=["indexed_at"])
    b = reference.records().drop(columns=["indexed_at"])
    pd.testing.assert_frame_equal(a, b)  # record ids included: results are written in plan order
    np.testing.assert_allclose(store.vectors(a["record_id"]), reference.vectors(b["record_id"]), atol=1e-6)


def test_local_cluster_writes_the_same_records(files, single, tmp_path):
    announced = []
    summary = index_on_cluster(_config(tmp_path / "store", files), functools.partial(build_encoder, DEFAULT_ENCODER),
                               ClusterConfig(workers=2, parcels_per_task=8), announce=announced.append)
    assert summary.added == len(single) == 50 and summary.store_records == 50
    assert announced and "dask dashboard: http://127.0.0.1:" in announced[0] and "2 workers" in announced[0]
    _assert_same(Store.open(tmp_path / "store"), single)


def test_killed_worker_is_replaced_and_nothing_is_written_twice(files, single, tmp_path):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        killed = []

        def kill_one(done: int, total: int) -> None:
            if not killed:
                address, pid = next(iter(worker_pids(client).items()))
                os.kill(pid, signal.SIGKILL)
                killed.append(address)

        summary = index_on_cluster(_config(tmp_path / "store", files), functools.partial(build_encoder, DEFAULT_ENCODER),
                                   ClusterConfig(scheduler=cluster.scheduler_address, parcels_per_task=4),
                                   progress=kill_one)
    assert killed and summary.added == 50 and summary.replaced == 0
    store = Store.open(tmp_path / "store")
    assert not store.records().duplicated(["parcel_id", "date"]).any()
    _assert_same(store, single)


def test_cluster_settings_are_checked():
    with pytest.raises(InputError, match="either a scheduler address or a number of local workers"):
        ClusterConfig()
    with pytest.raises(InputError, match="tcp://HOST:PORT") as info:
        ClusterConfig(scheduler="localhost")
    assert info.value.field == "scheduler"
    with pytest.raises(InputError, match="positive integer"):
        ClusterConfig(workers=0)
