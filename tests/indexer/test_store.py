"""The store: ids stable under replace/delete, encoder identity, integrity checks at open."""

from __future__ import annotations

import json
import threading

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from indexer.store import MANIFEST, Store, StoreConfig, seal_manifest, write_lock
from synthetic_records import record_rows
from indexer.core.errors import EncoderMismatchError, StoreError

ENCODER = {"id": "test-enc", "dim": 4, "weights_sha256": None, "normalization": {"mean": [0.1]}, "bands": ["B04"]}


def _rows(keys: list[tuple[str, str]], ndvi: float = 0.5) -> gpd.GeoDataFrame:
    return record_rows(keys, ndvi_mean=ndvi)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _new(tmp_path) -> Store:
    return Store.open_or_create(tmp_path / "store", ENCODER)


def test_upsert_appends_and_replaces_keeping_ids(tmp_path):
    store = _new(tmp_path)
    keys = [("a", "2021-06-01"), ("b", "2021-06-01"), ("a", "2021-07-01")]
    assert store.upsert(_rows(keys), _vectors(3)) == (3, 0)
    store.commit()
    ids_before = dict(zip(zip(store.records().parcel_id, store.records().date), store.records().record_id))

    reopened = Store.open(tmp_path / "store")
    new_vectors = _vectors(2, seed=1)
    added, replaced = reopened.upsert(_rows([("a", "2021-06-01"), ("c", "2021-06-01")], ndvi=0.9), new_vectors)
    assert (added, replaced) == (1, 1)
    reopened.commit()

    store = Store.open(tmp_path / "store")
    assert len(store) == 4 and store.manifest["count"] == 4
    assert store.records().duplicated(["parcel_id", "date"]).sum() == 0
    rid = ids_before[("a", "2021-06-01")]
    row = store.record("a", "2021-06-01")
    assert row["record_id"] == rid and row["ndvi_mean"] == 0.9
    np.testing.assert_allclose(store.vector(rid), new_vectors[0], rtol=1e-6)
    # Other ids untouched, the new record got a fresh id.
    assert store.record("b", "2021-06-01")["record_id"] == ids_before[("b", "2021-06-01")]
    assert store.record("c", "2021-06-01")["record_id"] == max(ids_before.values()) + 1


def test_delete_keeps_other_ids_and_search_agrees(tmp_path):
    store = _new(tmp_path)
    vecs = _vectors(5)
    store.upsert(_rows([(f"p{i}", "2021-06-01") for i in range(5)]), vecs)
    store.commit()
    assert store.delete([2]) == 1
    store.commit()
    store = Store.open(tmp_path / "store")
    assert sorted(store.records().record_id) == [0, 1, 3, 4]
    for rid in (0, 1, 3, 4):
        hits = store.search(vecs[rid], 1)
        assert hits[0][0] == rid and hits[0][1] == pytest.approx(1.0, abs=1e-5)


def test_other_encoder_is_refused(tmp_path):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    other = {**ENCODER, "id": "croma-large", "weights_sha256": "abc"}
    with pytest.raises(EncoderMismatchError, match="test-enc"):
        Store.open_or_create(tmp_path / "store", other)


def _segment_file(store: Store, name: str, segment: int = -1):
    return store.path / store.manifest["segments"][segment]["name"] / name


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["index.faiss", "vectors.npy", "ids.npy", "records.parquet", "deleted.npy"])
def test_damage_at_a_file_edge_is_detected_at_open(tmp_path, name):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    _flip(_segment_file(store, name), -1)
    with pytest.raises(StoreError, match=f"{name}: size or checksum differs"):
        Store.open(tmp_path / "store")


def test_damage_inside_large_files_is_detected_when_read_or_verified(tmp_path, monkeypatch):
    """Above `full_verify_below`, opening hashes only the first and last MiB of each file; the
    records file is hashed in full when it is read, vectors blocks when a query reads them, every
    file by verify() (and before compaction). Below it, opening hashes everything."""
    import indexer.store

    monkeypatch.setattr(indexer.store, "_EDGE", 4096)  # "edges" of 4 KiB: small files have a middle
    store = _new(tmp_path)
    n = 3000
    keys = [(f"p{i}", "2021-06-01") for i in range(n)]
    vecs = _vectors(n)
    store.upsert(_rows(keys), vecs)
    store.commit()
    vectors = _segment_file(store, "vectors.npy")
    records = _segment_file(store, "records.parquet")
    size = records.stat().st_size
    assert size > 3 * 4096 and vectors.stat().st_size > 3 * 4096
    large = StoreConfig(full_verify_below=0)
    _flip(records, size // 2)
    opened = Store.open(tmp_path / "store", large)  # sizes and edges still match
    with pytest.raises(StoreError, match="records.parquet: checksum differs"):
        opened.records()
    with pytest.raises(StoreError, match="records.parquet: checksum differs"):
        Store.open(tmp_path / "store")  # small: hashed in full at open
    _flip(records, size // 2)
    _flip(vectors, vectors.stat().st_size // 2)
    with pytest.raises(StoreError, match="vectors.npy: checksum differs"):
        Store.open(tmp_path / "store", large).verify()
    with pytest.raises(StoreError, match="vectors.npy: bytes 0-"):
        Store.open(tmp_path / "store", large).search(vecs[0], 3)
    with pytest.raises(StoreError, match="vectors.npy: checksum differs"):
        Store.open(tmp_path / "store", large).compact(index_type="flat")


def test_missing_segment_is_reported(tmp_path):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    _segment_file(store, "vectors.npy").unlink()
    with pytest.raises(StoreError, match="vectors.npy: missing"):
        Store.open(tmp_path / "store")


def test_manifest_count_mismatch_is_detected(tmp_path):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    manifest_path = tmp_path / "store" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["count"] = 7
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="manifest.json: the manifest's checksum differs"):
        Store.open(tmp_path / "store")
    # Resealed (a buggy writer's manifest): the consistency checks still refuse it.
    manifest_path.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(StoreError, match="count exceeds the records its segments hold .found '7'"):
        Store.open(tmp_path / "store")


def test_uncommitted_segment_is_ignored_then_cleaned(tmp_path):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    first = store.manifest["segments"][0]["name"]
    # What a crash between writing the next segment and publishing the manifest leaves.
    (tmp_path / "store" / "seg-000002.tmp").mkdir()
    (tmp_path / "store" / "seg-000002.tmp" / "records.parquet").write_bytes(b"partial")
    (tmp_path / "store" / "seg-000009").mkdir()
    reopened = Store.open(tmp_path / "store")
    assert len(reopened) == 1
    reopened.upsert(_rows([("b", "2021-06-01")]), _vectors(1))
    reopened.commit()
    names = sorted(p.name for p in (tmp_path / "store").iterdir() if not p.name.startswith("."))
    assert names == [MANIFEST, first, reopened.manifest["segments"][1]["name"]]
    assert len(Store.open(tmp_path / "store")) == 2


def test_refuses_foreign_directory_and_second_writer(tmp_path):
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "thesis.docx").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        Store.open_or_create(tmp_path / "notastore", ENCODER)
    with write_lock(tmp_path / "store"):
        with write_lock(tmp_path / "store"):  # reentrant for the holder: a run's commits take it too
            pass
        refused = []

        def second_writer():
            try:
                with write_lock(tmp_path / "store"):
                    pass
            except StoreError as exc:
                refused.append(str(exc))

        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join()
        assert refused and "another process is writing this store" in refused[0]


def test_geometry_is_kept_in_wgs84(tmp_path):
    store = _new(tmp_path)
    store.upsert(_rows([("a", "2021-06-01")]), _vectors(1))
    store.commit()
    store = Store.open(tmp_path / "store")
    assert store.records().crs.to_epsg() == 4326
    assert store.records().geometry.iloc[0].equals(box(5.0, 50.0, 5.001, 50.001))
