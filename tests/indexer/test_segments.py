"""Append-only segments: commits write only their own files, tombstones hide replaced and deleted
versions, compaction (automatic and explicit) keeps ids and answers, readers keep their snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.filters import RecordFilter
from indexer.store import MERGE_FACTOR, Store
from synthetic_records import record_rows

DIM = 8
ENCODER = {"id": "test-enc", "dim": DIM, "weights_sha256": None, "normalization": {}, "bands": ["B04"]}


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _commit(store: Store, keys, seed: int, **values) -> np.ndarray:
    vectors = _vectors(len(keys), seed)
    store.upsert(record_rows(keys, **values), vectors)
    store.commit()
    return vectors


def _keys(parcels, date="2021-06-01"):
    return [(f"p{i:04d}", date) for i in parcels]


def _state(store: Store):
    table = store.records()
    ids = table["record_id"].tolist()
    return (list(zip(table["parcel_id"], table["date"], ids, table["ndvi_mean"])),
            store.vectors(ids), store.dates())


def test_commits_append_and_leave_older_segments_untouched(tmp_path):
    store = Store.open_or_create(tmp_path / "s", ENCODER)
    _commit(store, _keys(range(100)), 0)
    first = store.manifest["segments"][0]["name"]
    files = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "s" / first).iterdir()}
    _commit(store, _keys(range(100, 120)), 1)
    assert [s["count"] for s in store.manifest["segments"]] == [100, 20]
    assert files == {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "s" / first).iterdir()}
    assert len(Store.open(tmp_path / "s")) == 120


def test_replacement_and_deletion_through_tombstones(tmp_path):
    store = Store.open_or_create(tmp_path / "s", ENCODER)
    old = _commit(store, _keys(range(50)), 0, ndvi_mean=0.1)
    ids = dict(zip(store.records()["parcel_id"], store.records()["record_id"]))
    new = _commit(store, _keys(range(10)), 1, ndvi_mean=0.9)  # replaces p0000..p0009
    assert store.delete([ids["p0020"], ids["p0005"]]) == 2
    store.commit()
    store = Store.open(tmp_path / "s")
    table = store.records().set_index("parcel_id")
    assert len(store) == 48 and not store.records().duplicated(["parcel_id", "date"]).any()
    assert "p0020" not in table.index and "p0005" not in table.index
    assert table.loc["p0003", "record_id"] == ids["p0003"] and table.loc["p0003", "ndvi_mean"] == 0.9
    np.testing.assert_allclose(store.vector(ids["p0003"]), new[3])
    np.testing.assert_allclose(store.vector(ids["p0030"]), old[30])
    # The old version of p0003 is never found, even by its own vector; the deleted ones neither.
    hits = store.search(old[3], 48)
    assert len(hits) == 48 and len({h.record_id for h in hits}) == 48
    assert ids["p0020"] not in {h.record_id for h in hits}
    top = store.search(new[3], 1)[0]
    assert top.record_id == ids["p0003"] and top.score == pytest.approx(1.0, abs=1e-5)
    assert store.search(old[3], 1)[0].score < 0.999 or store.search(old[3], 1)[0].record_id != ids["p0003"]
    # A deleted key indexed again gets a fresh id.
    _commit(store, _keys([20]), 2)
    assert store.record("p0020", "2021-06-01")["record_id"] == store.manifest["next_id"] - 1


@pytest.mark.parametrize("index_type", ["auto", "hnsw", "ivf-pq"])
def test_filtered_search_over_segments_matches_brute_force(tmp_path, index_type):
    store = Store.open_or_create(tmp_path / "s", ENCODER, index_type=index_type)
    _commit(store, _keys(range(1500)), 0)
    _commit(store, _keys(range(1000, 1600), "2021-07-01"), 1)
    _commit(store, _keys(range(0, 1500, 3)), 2)  # replacements in the first segment
    store.delete(store.records(RecordFilter(parcel_ids=[f"p{i:04d}" for i in range(5, 400, 7)]))["record_id"])
    store.commit()
    store = Store.open(tmp_path / "s")
    kinds = {s["kind"] for s in store.manifest["segments"]}
    assert kinds == {"flat"} if index_type == "auto" else index_type in kinds
    queries = _vectors(8, 9)
    for where in (None, RecordFilter(dates=["2021-07-01"]), RecordFilter(parcel_ids=[f"p{i:04d}" for i in range(0, 60)]),
                  RecordFilter(parcel_ids=["p0005", "p0006"])):
        table = store.records(where)
        ids = table["record_id"].to_numpy()
        vectors = store.vectors(ids)
        recall = []
        for q in queries:
            hits = store.search(q, 10, filter=where)
            assert len(hits) == min(10, len(ids)) and set(h.record_id for h in hits) <= set(ids)
            best = ids[np.argsort(-(vectors @ q))[:10]]
            recall.append(len(set(best) & {h.record_id for h in hits}) / len(best))
            np.testing.assert_allclose([h.score for h in hits], store.vectors([h.record_id for h in hits]) @ q, rtol=1e-5)
        assert np.mean(recall) >= (1.0 if index_type == "auto" else 0.85)


def test_auto_compaction_merges_a_run_of_similar_segments_and_keeps_deletions(tmp_path):
    store = Store.open_or_create(tmp_path / "s", ENCODER)
    _commit(store, _keys(range(2000)), 0)
    base_id = store.record("p0007", "2021-06-01")["record_id"]
    for i in range(MERGE_FACTOR - 1):
        _commit(store, _keys(range(3000 + 10 * i, 3010 + 10 * i)), 1 + i)
        if i == 1:
            store.delete([base_id])  # a tombstone for the big segment, carried by the merge
            _commit(store, _keys([7], "2021-08-01"), 20)
    before = _state(Store.open(tmp_path / "s"))
    # The run of small segments was merged; the big one was not rewritten.
    counts = [s["count"] for s in store.manifest["segments"]]
    assert counts == [2000, 31]
    reopened = Store.open(tmp_path / "s")
    after = _state(reopened)
    assert before[0] == after[0] and before[2] == after[2]
    np.testing.assert_array_equal(before[1], after[1])
    assert base_id not in reopened.records()["record_id"].tolist()


def test_compact_converts_the_index_type_and_keeps_ids(tmp_path):
    store = Store.open_or_create(tmp_path / "s", ENCODER)
    _commit(store, _keys(range(1200)), 0)
    _commit(store, _keys(range(600, 700)), 1)
    before = _state(store)
    query = _vectors(1, 5)[0]
    exact = [h.record_id for h in store.search(query, 5)]
    store.compact(index_type="hnsw")
    reopened = Store.open(tmp_path / "s")
    assert reopened.index_type == "hnsw" and [s["kind"] for s in reopened.manifest["segments"]] == ["hnsw"]
    after = _state(reopened)
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert len(set(exact) & {h.record_id for h in reopened.search(query, 5)}) >= 4
    # New commits to the store get the recorded type.
    _commit(reopened, _keys(range(5000, 5700)), 2)
    assert reopened.manifest["segments"][-1]["kind"] == "hnsw"


def test_reader_keeps_its_snapshot_while_a_writer_compacts(tmp_path):
    writer = Store.open_or_create(tmp_path / "s", ENCODER)
    _commit(writer, _keys(range(300)), 0)
    _commit(writer, _keys(range(100, 200)), 1)
    reader = Store.open(tmp_path / "s")
    query = _vectors(1, 3)[0]
    hits_before = reader.search(query, 5)
    writer.upsert(record_rows(_keys(range(50))), _vectors(50, 4))
    writer.commit()
    writer.compact()  # removes every segment the reader opened
    assert len(writer.manifest["segments"]) == 1
    assert all(not (tmp_path / "s" / s.name).exists() for s in reader.segments)
    assert reader.search(query, 5) == hits_before
    table = reader.records()
    assert len(table) == 300 and (table["record_id"] == np.arange(300)).all()
    assert reader.vectors(table["record_id"]).shape == (300, DIM)
    fresh = Store.open(tmp_path / "s")
    np.testing.assert_allclose(fresh.vector(0), _vectors(50, 4)[0])
