"""Readers and writers at the same time: a reader opening or verifying during a compaction never
fails, two library writers (threads or processes) never lose committed records, commit takes
the writer lock, and a crashed writer's leftovers go when the next writer opens the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import indexer.store as store_module
from indexer.core.errors import StoreError
from indexer.store import Store, StoreConfig, verify_store, write_lock
from synthetic_records import record_rows

DIM = 8
ENCODER = {"id": "test-enc", "dim": DIM, "weights_sha256": None, "normalization": {}, "bands": ["B04"]}
ROOT = Path(__file__).resolve().parents[2]


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _keys(start: int, n: int, date: str = "2021-06-01") -> list[tuple[str, str]]:
    return [(f"p{i:05d}", date) for i in range(start, start + n)]


def _commit(store: Store, keys, seed: int) -> np.ndarray:
    vectors = _vectors(len(keys), seed)
    store.upsert(record_rows(keys), vectors)
    store.commit()
    return vectors


def _two_segments(path: Path) -> np.ndarray:
    writer = Store.open_or_create(path, ENCODER)
    first = _commit(writer, _keys(0, 200), 0)
    _commit(writer, _keys(200, 50), 1)
    return first


# -- readers during compaction -----------------------------------------------------------------
def test_an_open_interrupted_by_a_whole_compaction_reads_its_snapshot(tmp_path, monkeypatch):
    """The worst moment: the reader has opened and checked every file of the store, then a writer
    compacts it (removing those files) before the reader maps vectors and index. It used to
    reopen vectors.npy and index.faiss by path: a raw FileNotFoundError."""
    path = tmp_path / "s"
    first = _two_segments(path)
    edges = store_module._edges
    fired = []

    def edges_then_compact(fh, size):
        digest = edges(fh, size)
        if not fired and fh.name.endswith("seg-000002/deleted.npy"):  # the last file checked
            fired.append(True)
            writer = Store.open_or_create(path, ENCODER)
            _commit(writer, _keys(0, 10), 5)  # replaces p00000..p00009
            writer.compact()
            assert not (path / "seg-000001").exists() and not (path / "seg-000002").exists()
        return digest

    monkeypatch.setattr(store_module, "_edges", edges_then_compact)
    reader = Store.open(path, StoreConfig(full_verify_below=0))
    monkeypatch.undo()
    assert fired
    # The snapshot it opened: the old vectors of p00003, every file read through its own handle.
    assert len(reader) == 250 and [seg.name for seg in reader.segments] == ["seg-000001", "seg-000002"]
    hits = reader.search(first[3], 1)
    assert hits[0].record_id == 3 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(reader.vector(3), first[3])
    reader.verify()
    assert len(reader.records()) == 250
    fresh = Store.open(path)
    assert len(fresh) == 250 and not np.allclose(fresh.vector(3), first[3])


def test_verify_of_a_snapshot_whose_files_were_compacted_away(tmp_path):
    """53 of 92 verify() calls during compactions raised FileNotFoundError: verify hashed by path."""
    path = tmp_path / "s"
    _two_segments(path)
    reader = Store.open(path)
    writer = Store.open_or_create(path, ENCODER)
    writer.compact()
    assert all(not (path / seg.name).exists() for seg in reader.segments)
    reader.verify()
    assert len(reader.records()) == 250 and reader.vectors([0, 249]).shape == (2, DIM)


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path[:0] = [{root!r}, {tests!r}]
    from indexer.store import Store
    from synthetic_records import record_rows
    encoder = {encoder!r}
    rng = np.random.default_rng(1)
    end = time.monotonic() + {seconds}
    rounds = 0
    while time.monotonic() < end:
        store = Store.open_or_create({path!r}, encoder)
        keys = [(f"p{{i:05d}}", "2021-06-01") for i in rng.integers(0, 400, 40)]
        v = rng.normal(size=(len(keys), {dim})).astype(np.float32)
        store.upsert(record_rows(keys), v / np.linalg.norm(v, axis=1, keepdims=True))
        store.commit()
        store.compact()  # every round removes every segment a reader may be opening
        rounds += 1
    print(rounds)
""")


def test_a_reader_opening_in_a_loop_during_compactions_never_fails(tmp_path):
    path = tmp_path / "s"
    writer = Store.open_or_create(path, ENCODER)
    _commit(writer, _keys(0, 400), 0)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), encoder=ENCODER,
                                               seconds=8, path=str(path), dim=DIM)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures, opens, query = [], 0, _vectors(1, 9)[0]
    try:
        while proc.poll() is None:
            try:
                store = Store.open(path)
                assert len(store) == 400
                assert len(store.search(query, 5)) == 5
                store.verify()
                assert verify_store(path).ok
                opens += 1
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    rounds = int(out.split()[-1])
    assert rounds >= 3 and opens >= 10, (rounds, opens)
    assert not failures, failures[:3]


# -- writers -----------------------------------------------------------------------------------
def test_two_writers_opened_on_the_same_state_keep_both_commits(tmp_path):
    """Two library writers open the store, the first commits, then the second: the second's
    manifest used to replace the first's (120 committed records lost, or a segment clobbered)."""
    path = tmp_path / "s"
    base = Store.open_or_create(path, ENCODER)
    _commit(base, _keys(0, 100), 0)
    a = Store.open_or_create(path, ENCODER)
    b = Store.open_or_create(path, ENCODER)
    va = _commit(a, _keys(100, 120), 1)
    b_vectors = _vectors(60, 2)
    b.upsert(record_rows(_keys(200, 50) + _keys(0, 10)), b_vectors)  # 20 overlap a's, 10 replace base's
    assert b.delete([50]) == 1
    b.commit()
    store = Store.open(path)
    table = store.records()
    assert len(store) == 100 + 120 + 30 - 1
    assert not table.duplicated(["parcel_id", "date"]).any() and table["record_id"].is_unique
    assert set(table["parcel_id"]) == {f"p{i:05d}" for i in range(250)} - {"p00050"}
    ids = dict(zip(table["parcel_id"], table["record_id"]))
    # The later writer's version of a key wins; a's other records keep their vectors and ids.
    np.testing.assert_allclose(store.vector(ids["p00200"]), b_vectors[0], rtol=1e-6)
    np.testing.assert_allclose(store.vector(ids["p00150"]), va[50], rtol=1e-6)
    assert ids["p00003"] == 3 and store.manifest["next_id"] > max(ids.values())
    assert verify_store(path).ok


def test_writer_threads_never_lose_committed_records(tmp_path):
    path = tmp_path / "s"
    _commit(Store.open_or_create(path, ENCODER), _keys(0, 1), 0)
    errors = []

    def writer(worker: int) -> None:
        try:
            for round_ in range(6):
                store = Store.open_or_create(path, ENCODER)
                time.sleep(0.01 * ((worker + round_) % 3))  # let the other writer commit in between
                _commit(store, _keys(1000 * (worker + 1) + 20 * round_, 20), 10 * worker + round_)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    store = Store.open(path)
    assert len(store) == 1 + 3 * 6 * 20
    assert store.records()["record_id"].is_unique
    assert verify_store(path).ok


PROCESS_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path[:0] = [{root!r}, {tests!r}]
    from indexer.store import Store
    from synthetic_records import record_rows
    worker = {worker}
    for round_ in range(5):
        store = Store.open_or_create({path!r}, {encoder!r})
        keys = [(f"w{{worker}}-{{round_}}-{{i}}", "2021-06-01") for i in range(30)]
        v = np.random.default_rng(round_).normal(size=(30, {dim})).astype(np.float32)
        store.upsert(record_rows(keys), v / np.linalg.norm(v, axis=1, keepdims=True))
        store.commit()
""")


def test_writer_processes_never_lose_committed_records(tmp_path):
    path = tmp_path / "s"
    _commit(Store.open_or_create(path, ENCODER), _keys(0, 1), 0)
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS_WRITER.format(
        root=str(ROOT), tests=str(ROOT / "tests"), worker=w, path=str(path), encoder=ENCODER, dim=DIM)],
        stderr=subprocess.PIPE, text=True) for w in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    store = Store.open(path)
    assert len(store) == 1 + 2 * 5 * 30
    assert store.records()["record_id"].is_unique
    assert verify_store(path).ok


def test_commit_takes_the_writer_lock(tmp_path):
    path = tmp_path / "s"
    _commit(Store.open_or_create(path, ENCODER), _keys(0, 5), 0)
    before = (path / "manifest.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from indexer.store import write_lock
        with write_lock({str(path)!r}):
            print("held", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        store = Store.open_or_create(path, ENCODER, config=StoreConfig(lock_timeout=0.3))
        store.upsert(record_rows(_keys(5, 3)), _vectors(3, 1))
        started = time.monotonic()
        with pytest.raises(StoreError, match="another process is writing this store .waited 0.3 s."):
            store.commit()
        assert time.monotonic() - started >= 0.3
        assert (path / "manifest.json").read_bytes() == before
        assert not [p for p in path.iterdir() if p.name.startswith("seg-") and p.name != "seg-000001"]
    finally:
        holder.kill()
        holder.wait()
    store.commit()  # the lock is free again: the same staged records go in
    assert len(Store.open(path)) == 8
    # A writer holding the lock around its run (as `xvision index` does) commits inside it.
    with write_lock(path):
        _commit(Store.open_or_create(path, ENCODER), _keys(8, 2), 2)
    assert len(Store.open(path)) == 10


def test_a_crashed_writers_leftovers_go_when_the_next_writer_opens(tmp_path):
    path = tmp_path / "s"
    _commit(Store.open_or_create(path, ENCODER), _keys(0, 5), 0)
    tmp = path / "seg-000002.tmp"
    tmp.mkdir()
    (tmp / "vectors.npy").write_bytes(os.urandom(1 << 16))
    (path / "seg-000007").mkdir()
    Store.open(path)  # a reader never writes
    assert tmp.exists()
    with write_lock(path):
        # Another writer holds the lock (here: this thread, seen from a second thread): its
        # segment may be in the making, so the opening writer leaves it alone.
        seen = []
        thread = threading.Thread(target=lambda: seen.append(Store.open_or_create(path, ENCODER)))
        thread.start()
        thread.join()
        assert seen and tmp.exists()
    Store.open_or_create(path, ENCODER)
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("seg-")) == ["seg-000001"]


def test_a_first_commit_killed_before_its_manifest_leaves_a_folder_the_next_writer_reuses(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    (path / "seg-000001.tmp").mkdir()
    (path / "seg-000001.tmp" / "vectors.npy").write_bytes(b"partial")
    store = Store.open_or_create(path, ENCODER)
    _commit(store, _keys(0, 3), 0)
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == ["manifest.json", "seg-000001"]
    # A published segment without a manifest may be a store that lost its manifest: refused, kept.
    (path / "manifest.json").unlink()
    with pytest.raises(StoreError, match="not empty and has no manifest.json"):
        Store.open_or_create(path, ENCODER)
    assert (path / "seg-000001" / "vectors.npy").is_file()
