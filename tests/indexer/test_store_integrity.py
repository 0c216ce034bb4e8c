"""A store is never served wrong: a checksummed manifest, consistency checks on open, full
verification (`verify_store`, ``xvision verify``, on open for small stores) and block checksums
of the vectors a query reads."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from indexer.core.errors import InputError, StoreError
from indexer.query import similar
from indexer.store import (
    CHECKSUM, INTEGRITY, MANIFEST, Store, StoreConfig, read_manifest, seal_manifest, verify_store,
)
from synthetic_records import record_rows
from xvision.cli import main

DIM = 64
# Normalization values with exponents: the sweep below then meets 'e' -> 'E' flips, which change
# the bytes but not the content.
ENCODER = {"id": "test-enc", "dim": DIM, "weights_sha256": None, "normalization": {"mean": [1e-05, 0.25]},
           "bands": ["B04", "B08"]}
LARGE = StoreConfig(full_verify_below=0)  # opened as a store too large to hash in full


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _store(path, n: int, seed: int = 0, dates=("2021-06-01",)) -> tuple[Store, np.ndarray]:
    store = Store.open_or_create(path, ENCODER)
    keys = [(f"p{i:05d}", d) for i in range(n) for d in dates]
    vectors = _vectors(len(keys), seed)
    store.upsert(record_rows(keys), vectors)
    store.commit()
    return store, vectors


def _edit_manifest(path, change, seal: bool = True) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    if seal:
        manifest = seal_manifest(manifest)
    else:
        manifest.pop(CHECKSUM, None)
        manifest.pop(INTEGRITY, None)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))


# -- middle-of-file damage -----------------------------------------------------------------------
def test_negated_bytes_in_the_middle_of_vectors_are_refused_by_verify_and_when_served(tmp_path, capsys):
    """The issue's finding: 256 negated bytes in the middle of a 5.6 MB vectors.npy were served
    (similar's top score -0.179 instead of 1.000); opening checked only the first and last MiB."""
    path = tmp_path / "store"
    store, vectors = _store(path, 22_000)
    file = path / store.manifest["segments"][0]["name"] / "vectors.npy"
    size = file.stat().st_size
    assert size > 5_600_000
    data = bytearray(file.read_bytes())
    middle = size // 2
    data[middle:middle + 256] = bytes(b ^ 0xFF for b in data[middle:middle + 256])
    file.write_bytes(bytes(data))
    row = (middle - 128) // (DIM * 4) + 1  # a record whose whole vector lies in the damaged bytes
    rid = int(store.records()["record_id"].iloc[row])
    parcel = store.records()["parcel_id"].iloc[row]

    report = verify_store(path)
    assert not report.ok and len(report.problems) == 1
    assert "vectors.npy: content differs from its SHA-256" in report.problems[0]
    assert f"bytes {middle // (1 << 20) * (1 << 20)}-" in report.problems[0]
    assert main(["verify", "--store", str(path)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "vectors.npy" in out

    # Opened in full (the store is under full_verify_below): refused at open, before any answer.
    with pytest.raises(StoreError, match="vectors.npy: checksum differs"):
        Store.open(path)
    assert main(["similar", parcel, "--date", "2021-06-01", "--store", str(path)]) == 2
    assert "vectors.npy" in capsys.readouterr().err

    # Opened as a large store (sizes and edges only): the query reading the damaged block refuses.
    opened = Store.open(path, LARGE)
    with pytest.raises(StoreError, match=r"vectors.npy: bytes \d+-\d+ differ from their checksum"):
        similar(opened, parcel, "2021-06-01", 5)
    with pytest.raises(StoreError, match="vectors.npy: bytes"):
        opened.search(vectors[row], 5)
    with pytest.raises(StoreError, match="vectors.npy: bytes"):
        opened.vector(rid)
    # Blocks away from the damage still serve (the first record's vector is in the first MiB).
    hits = Store.open(path, LARGE).search(vectors[0], 1)
    assert hits[0].record_id == 0 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_block_checks_refuse_exactly_the_rows_that_touch_a_damaged_block(tmp_path, monkeypatch):
    import indexer.store as store_module

    monkeypatch.setattr(store_module, "BLOCK", 4096)  # 16 rows of 256 bytes per block, after a 128-byte header
    monkeypatch.setattr(store_module, "_EDGE", 4096)  # opening checks the first and last 4 KiB only
    path = tmp_path / "store"
    store, vectors = _store(path, 400)
    file = path / store.manifest["segments"][0]["name"] / "vectors.npy"
    assert len(store.manifest["segments"][0]["files"]["vectors.npy"]["crc32"]) == -(-file.stat().st_size // 4096)
    with file.open("r+b") as fh:
        fh.seek(5 * 4096 + 1000)  # inside block 5: rows 79..95 touch it (row 79 straddles blocks 4 and 5)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x80]))
    row_of = lambda offset: (offset - 128) // 256  # noqa: E731
    assert row_of(5 * 4096 - 1) == 79 and row_of(5 * 4096) == 79 and row_of(6 * 4096) == 95
    opened = Store.open(path, LARGE)
    np.testing.assert_array_equal(opened.vectors([0, 78, 96, 399]), vectors[[0, 78, 96, 399]])
    for row in (79, 85, 95):
        with pytest.raises(StoreError, match="vectors.npy: bytes 20480-24575 differ"):
            opened.vector(row)
    with pytest.raises(StoreError, match="vectors.npy: bytes 20480-24575 differ"):
        np.asarray(opened.segments[0].vectors)  # a whole read checks every block
    assert opened.segments[0].vectors[-1].shape == (DIM,)  # the last row, by a negative index


def test_damage_inside_the_index_file_is_refused_at_the_first_search(tmp_path):
    path = tmp_path / "store"
    store, vectors = _store(path, 12_000)
    file = path / store.manifest["segments"][0]["name"] / "index.faiss"
    size = file.stat().st_size
    assert size > 3 << 20
    with file.open("r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    opened = Store.open(path, LARGE)
    with pytest.raises(StoreError, match="index.faiss: bytes"):
        opened.search(vectors[0], 3)
    with pytest.raises(StoreError, match="index.faiss: checksum differs"):
        Store.open(path)


def test_small_stores_are_hashed_in_full_on_open_and_the_threshold_is_configurable(tmp_path):
    path = tmp_path / "store"
    store, vectors = _store(path, 10_000)
    file = path / store.manifest["segments"][0]["name"] / "vectors.npy"
    size = file.stat().st_size
    assert size > 2 << 20  # a middle that the edges (first and last MiB) do not cover
    with file.open("r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(StoreError, match="vectors.npy: checksum differs"):
        Store.open(path)  # 10k records: under the default full_verify_below
    opened = Store.open(path, LARGE)  # sizes and edges agree: opened, checked as blocks are read
    assert len(opened) == 10_000 and opened.search(vectors[0], 1)[0].record_id == 0
    with pytest.raises(InputError, match="full_verify_below"):
        StoreConfig(full_verify_below=-1)


# -- the manifest ------------------------------------------------------------------------------
def test_every_one_bit_flip_of_the_manifest_is_refused_or_harmless(tmp_path):
    """The issue's sweep: of 2,922 flips 1,252 were accepted and 122 raised a raw KeyError. Here
    every bit of the manifest is flipped once: each flip is refused with a StoreError or leaves
    the content unchanged (same JSON once parsed, e.g. 'e' -> 'E' in an exponent)."""
    path = tmp_path / "store"
    _store(path, 30, dates=("2021-06-01", "2021-07-01"))
    store = Store.open(path)
    store.delete([3])
    store.commit()
    raw = (path / MANIFEST).read_bytes()
    assert len(json.loads(raw)["segments"]) == 2
    original = json.loads(raw)
    refused = harmless = 0
    changed, raw_errors = [], []
    started = time.perf_counter()
    fd = os.open(path / MANIFEST, os.O_RDWR)  # one byte rewritten in place per flip: fast
    try:
        for offset in range(len(raw)):
            for bit in range(8):
                flipped = bytearray(raw)
                flipped[offset] ^= 1 << bit
                os.pwrite(fd, bytes(flipped[offset:offset + 1]), offset)
                try:
                    opened = Store.open(path)
                except StoreError:
                    refused += 1
                    continue
                except Exception as exc:  # noqa: BLE001 - any other exception is the finding
                    raw_errors.append((offset, bit, type(exc).__name__, str(exc)[:80]))
                    continue
                finally:
                    os.pwrite(fd, raw[offset:offset + 1], offset)
                if json.loads(bytes(flipped)) == original and len(opened) == 59:
                    harmless += 1
                else:
                    changed.append((offset, bit, chr(raw[offset]), chr(flipped[offset])))
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    assert (path / MANIFEST).read_bytes() == raw
    assert not raw_errors, raw_errors[:5]
    assert not changed, changed[:5]
    assert refused + harmless == 8 * len(raw) and refused > 0.99 * 8 * len(raw)
    print(f"{8 * len(raw)} flips of a {len(raw)}-byte manifest: {refused} refused, {harmless} harmless, "
          f"0 accepted with changed content, {elapsed:.1f} s")
    assert len(Store.open(path)) == 59


def test_lowered_next_id_is_refused_before_anything_is_overwritten(tmp_path):
    path = tmp_path / "store"
    store, _ = _store(path, 100)
    before = store.records()[["record_id", "parcel_id"]].copy()
    # Lowered behind the checksum's back: the checksum refuses it.
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["next_id"] = 0
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="checksum differs"):
        Store.open(path)
    # Resealed (a buggy writer) or from before checksums: the consistency check refuses it.
    for seal in (True, False):
        _edit_manifest(path, lambda m: m.update(next_id=0), seal=seal)
        with pytest.raises(StoreError, match="next_id 0 does not exceed the stored record id 99") as info:
            Store.open_or_create(path, ENCODER)
        assert info.value.field == "next_id" and info.value.path.endswith(MANIFEST)
    _edit_manifest(path, lambda m: m.update(next_id=100))
    after = Store.open(path).records()[["record_id", "parcel_id"]]
    assert after.equals(before)


def test_generation_behind_its_segments_is_refused_and_the_live_segment_kept(tmp_path):
    path = tmp_path / "store"
    store, _ = _store(path, 40)
    live = path / store.manifest["segments"][0]["name"]
    for seal in (True, False):
        _edit_manifest(path, lambda m: m.update(generation=0), seal=seal)
        with pytest.raises(StoreError, match="generation is older than its segment seg-000001"):
            Store.open_or_create(path, ENCODER)
    assert (live / "vectors.npy").is_file()
    # Segment names out of order, or a count that is not a number: refused naming the field.
    _edit_manifest(path, lambda m: m.update(generation=1, segments=m["segments"] * 2))
    with pytest.raises(StoreError, match="segments are not in increasing order"):
        Store.open(path)
    _edit_manifest(path, lambda m: m.update(segments=m["segments"][:1]))
    _edit_manifest(path, lambda m: m["segments"][0].update(count="40"))
    with pytest.raises(StoreError, match="seg-000001.count is not a whole number"):
        Store.open(path)
    _edit_manifest(path, lambda m: m["segments"][0].update(count=40))
    assert len(Store.open(path)) == 40


def test_a_manifest_without_checksum_opens_and_gets_one_at_the_next_commit(tmp_path):
    """Stores written before this change: no checksum, no block checksums."""
    path = tmp_path / "store"
    _store(path, 50)

    def strip(manifest):
        for entry in manifest["segments"]:
            for info in entry["files"].values():
                info.pop("crc32")

    _edit_manifest(path, strip, seal=False)
    raw, _ = read_manifest(path / MANIFEST, (path / MANIFEST).read_bytes())
    assert CHECKSUM not in raw
    store = Store.open(path, LARGE)
    assert not store.sealed and len(store) == 50
    report = verify_store(path)
    assert report.ok and any("no checksum" in n for n in report.notes)
    store.upsert(record_rows([("new", "2021-06-01")]), _vectors(1, 7))
    store.commit()
    sealed = json.loads((path / MANIFEST).read_text())
    assert sealed[CHECKSUM].startswith("sha256:") and store.sealed
    assert "crc32" not in sealed["segments"][0]["files"]["vectors.npy"]
    assert "crc32" in sealed["segments"][1]["files"]["vectors.npy"]
    reopened = Store.open(path, LARGE)
    assert len(reopened) == 51 and reopened.search(_vectors(1, 7)[0], 1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert verify_store(path).ok


def test_verify_reports_every_problem_and_leftovers(tmp_path, capsys):
    path = tmp_path / "store"
    store, _ = _store(path, 60)
    store.upsert(record_rows([("b", "2021-06-01")]), _vectors(1, 3))
    store.commit()
    assert main(["verify", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok, 61 records") and "seg-000002: 1 records" in out
    first, second = (path / e["name"] for e in store.manifest["segments"])
    (first / "ids.npy").unlink()
    with (second / "records.parquet").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    (path / "seg-000009.tmp").mkdir()
    report = verify_store(path)
    assert len(report.problems) == 2
    assert "seg-000001/ids.npy: missing" in report.problems[0]
    assert "seg-000002/records.parquet: content differs" in report.problems[1]
    assert any("seg-000009.tmp: not listed" in n for n in report.notes)
    assert main(["verify", "--store", str(path)]) == 1
    assert main(["verify", "--store", str(tmp_path / "nowhere")]) == 2
