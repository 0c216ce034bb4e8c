"""The store: immutable segments of records and embeddings, listed by one manifest.

Layout of a store directory::

    manifest.json             encoder id, weights hash, normalization, dimension, record schema
                              version, index type, generation, next record id, live record count,
                              the segments in order (oldest first), each with its files' sizes and
                              hashes, and the SHA-256 of all of it (``checksum``)
    seg-000001/               one commit (or one compaction) - never modified once written:
        records.parquet       its records, sorted by record_id, geometry in WGS84 (GeoParquet)
        ids.npy               their record ids (int64, sorted)
        vectors.npy           their embeddings (float32, same order; memory-mapped by readers)
        index.faiss           an `indexer.ann` index over them (Flat, HNSW or IVF by size / type)
        deleted.npy           record ids this commit deleted from older segments
    seg-000002/ ...

Why GeoParquet and not SQLite: records are written in batches and read as whole tables
(similarity filters, history, export, training sets), which a columnar file does well; it keeps
the geometry in a standard any GIS opens, and one segment is a few immutable files.

Commits append. A commit writes only its own segment (cost proportional to what it adds, not to
the store) and republishes the manifest. Replacement of a (parcel, date) keeps its record_id and
writes the new version into the new segment; a newer segment's ids and its ``deleted.npy`` are the
tombstones of older segments, resolved when the store is opened (a sorted-array intersection per
segment). `compact` merges segments into one, dropping dead versions; it runs by itself when four
segments no larger than each other's size class (powers of 4) pile up at the end, so each record
is rewritten O(log n) times, and explicitly (`compact()`, ``xvision reindex``) to change the
index type.

Crash safety: a segment is written under a temporary directory name, every file fsynced, the
directory renamed into place and the parent fsynced; then ``manifest.json`` is replaced the same
way. The manifest is the only commit point: a crash before its replacement leaves the previous
state, whose files are untouched; directories it does not list (``seg-*.tmp`` included) are
removed by the next writer, when it opens the store and after each commit. Compaction follows the
same rules: its merged segment is published by the manifest, and the segments it replaced are
removed only afterwards.

Never served wrong. The manifest carries the SHA-256 of its own canonical JSON (``checksum``);
opening refuses a manifest whose checksum differs, and checks what a checksum cannot vouch for
(a manifest written by a buggy or hand-edited writer, or before checksums existed): every field's
type, segment names in increasing order and none newer than ``generation``, ``next_id`` above
every stored id, each segment's record count. Each file's size, SHA-256, the SHA-256 of its first
and last MiB ("edges") and a CRC-32 per MiB block are recorded when it is written (read back once
after fsync). Opening checks sizes and edges of every file and hashes the small ``ids.npy`` and
``deleted.npy`` in full (they are read whole anyway); a store whose files total at most
`StoreConfig.full_verify_below` bytes is hashed in full. Above that, each block of ``vectors.npy``
is checked against its CRC-32 the first time a query reads a row in it, the index file in full at
a segment's first search, a records file when it is first read, and everything by `verify()`
(``xvision verify``) and before `compact` merges them, so damage cannot spread into a merged
segment. Damage is a `StoreError` naming the file, never a result.

Readers and writers. Readers open a snapshot: every file of every listed segment is opened once
and then only read through that handle (vectors mapped from it, the FAISS index read through
``/proc/self/fd``), so a writer compacting those segments away meanwhile disturbs neither opening
nor reading nor `verify()`. One writer at a time: `commit` and `compact` take the writer lock
(`write_lock`, reentrant for the thread that holds it, waiting up to `StoreConfig.lock_timeout`)
and, when another writer committed since this store was opened, replay their staged changes onto
the newer state instead of overwriting it. Stores of the single-generation layout (schema 1 and 2:
``index-N.faiss`` + ``records-N.parquet``) open as one segment (checked in full, as before); the
first commit rewrites them as segments (`layout_upgraded` says so).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import io
import json
import math
import mmap
import os
import re
import shutil
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import faiss
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from indexer.ann import INDEX_KINDS, AnnConfig, AnnIndex, resolve_kind
from indexer.core.errors import EncoderMismatchError, InputError, NotFoundError, StoreError
from indexer.core.schema import (
    LEGACY_ATTRIBUTES, READABLE_VERSIONS, SCHEMA_VERSION, attribute_columns, attributes_from_json,
    validate,
)
from indexer.filters import RecordFilter

MANIFEST = "manifest.json"
LOCK = ".lock"
#: Store layout: 1 = one generation (index-N.faiss + records-N.parquet), 2 = segments.
LAYOUT = 2
SEGMENT_FILES = ("records.parquet", "ids.npy", "vectors.npy", "index.faiss", "deleted.npy")
_SEGMENT_DIR = re.compile(r"^seg-(\d{6})(\.tmp)?$")
_SEGMENT_NAME = re.compile(r"^seg-(\d{6})$")
_LEGACY_FILE = re.compile(r"^(index|records)-(\d{6})\.(faiss|parquet)(\.tmp)?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Auto-compaction merges the newest run of this many segments of one size class (log4 of count).
MERGE_FACTOR = 4
_EDGE = 1 << 20
#: Bytes per CRC-32 block of a segment file: a query reading one vector checks at most 1 MiB more.
BLOCK = 1 << 20
#: Manifest keys of its own integrity: the scheme's version and the SHA-256 of the canonical JSON
#: of everything else. Either key present makes the checksum required, so that no single damaged
#: byte can turn a checksummed manifest into one that looks written before checksums existed.
INTEGRITY, CHECKSUM = "integrity", "checksum"
INTEGRITY_VERSION = 1
#: Encoder manifest fields that must match for two sets of embeddings to be comparable.
ENCODER_IDENTITY = ("id", "dim", "weights_sha256", "normalization", "bands")


@dataclass(frozen=True)
class StoreConfig:
    """How a store is checked when opened and read, and how long a writer waits for another.

    `full_verify_below`: stores whose segment files total at most this many bytes are hashed in
    full when opened (0: never; larger ones are checked block by block as they are read);
    `check_blocks`: check vectors blocks and index files against their recorded CRC-32 when a query
    first reads them (the cost is measured by benchmarks/store.py); `lock_timeout`: seconds a
    commit waits for another writer's lock before giving up with a StoreError.
    """

    full_verify_below: int = 32 << 20
    check_blocks: bool = True
    lock_timeout: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.full_verify_below, bool) or not isinstance(self.full_verify_below, int) \
                or self.full_verify_below < 0:
            raise InputError(f"full_verify_below must be a number of bytes >= 0, got {self.full_verify_below!r}",
                             field="full_verify_below", value=self.full_verify_below)
        if not isinstance(self.check_blocks, bool):
            raise InputError(f"check_blocks must be true or false, got {self.check_blocks!r}",
                             field="check_blocks", value=self.check_blocks)
        if isinstance(self.lock_timeout, bool) or not isinstance(self.lock_timeout, (int, float)) \
                or not self.lock_timeout >= 0:
            raise InputError(f"lock_timeout must be a number of seconds >= 0, got {self.lock_timeout!r}",
                             field="lock_timeout", value=self.lock_timeout)


# -- files ---------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_fd(fd: int, size: int) -> tuple[str, list[int]]:
    """SHA-256 and per-`BLOCK` CRC-32s of the first `size` bytes of an open file (by pread: the
    handle's position, which other readers of the same handle use, is left alone)."""
    digest, crcs = hashlib.sha256(), []
    for offset in range(0, size, BLOCK):
        block = os.pread(fd, min(BLOCK, size - offset), offset)
        digest.update(block)
        crcs.append(zlib.crc32(block))
    return digest.hexdigest(), crcs


def _sha256(path: Path) -> str:
    """SHA-256 of a whole file."""
    with path.open("rb") as fh:
        return _hash_fd(fh.fileno(), os.fstat(fh.fileno()).st_size)[0]


def _crc_fd(fd: int, size: int) -> list[int]:
    """Per-`BLOCK` CRC-32s of the first `size` bytes of an open file (by pread)."""
    return [zlib.crc32(os.pread(fd, min(BLOCK, size - offset), offset)) for offset in range(0, size, BLOCK)]


def _edges(fh, size: int) -> str:
    """SHA-256 of a file's first and last MiB (the whole file when it is smaller than 2 MiB)."""
    digest = hashlib.sha256()
    fh.seek(0)
    digest.update(fh.read(min(size, _EDGE)))
    if size > _EDGE:
        fh.seek(max(_EDGE, size - _EDGE))
        digest.update(fh.read())
    return digest.hexdigest()


def _describe(path: Path) -> dict:
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        edges = _edges(fh, size)
        sha256, crcs = _hash_fd(fh.fileno(), size)
    return {"size": size, "sha256": sha256, "edges": edges, "crc32": crcs}


def _publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, rename it over `final`, fsync the directory."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


# -- the manifest --------------------------------------------------------------------------------
def _canonical(body: dict) -> bytes:
    """The bytes a manifest's checksum covers: its JSON without the checksum, keys sorted, no spaces."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal_manifest(manifest: dict) -> dict:
    """`manifest` with its integrity version and the SHA-256 of everything else (``checksum``)."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM}
    body[INTEGRITY] = INTEGRITY_VERSION
    return {**body, CHECKSUM: "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()}


def read_manifest(path: Path, raw: bytes) -> tuple[dict, bool]:
    """Parse and check a store's manifest (`raw`, read from `path`): (manifest, checksummed).

    StoreError naming the file and the field for unreadable JSON, a checksum that differs, a
    field of the wrong type, segments out of order or newer than the generation. A manifest
    without checksum (written before checksums existed) is accepted after the same checks.
    """
    try:
        manifest = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError included
        raise StoreError(f"{path}: unreadable manifest ({str(exc)[:120]}); the store is corrupt", path=path) from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path}: the manifest is not a JSON object; the store is corrupt", path=path)
    sealed = CHECKSUM in manifest or INTEGRITY in manifest
    if sealed:
        body = {k: v for k, v in manifest.items() if k != CHECKSUM}
        want = manifest.get(CHECKSUM)
        if body.get(INTEGRITY) != INTEGRITY_VERSION or not isinstance(want, str) \
                or want != "sha256:" + hashlib.sha256(_canonical(body)).hexdigest():
            raise StoreError(f"{path}: the manifest's checksum differs from its content; the store is corrupt "
                             "(run xvision verify for a report)", path=path, field=CHECKSUM)
    _check_manifest(manifest, path)
    return manifest, sealed


def _is_int(value: object, low: int = 0) -> bool:
    return type(value) is int and value >= low


def _check_manifest(manifest: dict, path: Path) -> None:
    """Types and consistency of the manifest's fields (what a checksum cannot vouch for)."""

    def bad(field_name: str, value: object, why: str) -> StoreError:
        return StoreError(f"{path}: {field_name} {why} (found {str(value)[:80]!r}); the store is corrupt",
                          path=path, field=field_name, value=value)

    version = manifest.get("schema_version")
    if version not in READABLE_VERSIONS or type(version) is not int:
        raise StoreError(f"{path}: schema version {version} is not one this version reads "
                         f"({', '.join(map(str, READABLE_VERSIONS))})", path=path, value=version)
    layout = manifest.get("layout", 1)
    if layout not in (1, LAYOUT) or type(layout) is not int:
        raise bad("layout", layout, f"is not a layout this version reads (1 or {LAYOUT})")
    encoder = manifest.get("encoder")
    if not isinstance(encoder, dict) or not isinstance(encoder.get("id"), str) or not _is_int(encoder.get("dim"), 1):
        raise bad("encoder", encoder, "is not an encoder entry with an id and a dimension")
    if layout == 1:
        files = manifest.get("files")
        if files is not None and not (isinstance(files, dict) and all(
                isinstance(files.get(k), str) for k in ("index", "records", "index_sha256", "records_sha256"))):
            raise bad("files", files, "does not name the index and records files with their hashes")
        return
    if manifest.get("dimension") != encoder["dim"]:
        raise bad("dimension", manifest.get("dimension"), f"differs from the encoder's dimension {encoder['dim']}")
    for name in ("generation", "next_id", "count"):
        if not _is_int(manifest.get(name)):
            raise bad(name, manifest.get(name), "is not a whole number >= 0")
    if not isinstance(manifest.get("index_type"), str):
        raise bad("index_type", manifest.get("index_type"), "is not an index type")
    segments = manifest.get("segments")
    if not isinstance(segments, list):
        raise bad("segments", segments, "is not a list of segments")
    previous = 0
    for entry in segments:
        name = entry.get("name") if isinstance(entry, dict) else None
        match = _SEGMENT_NAME.match(name) if isinstance(name, str) else None
        if match is None:
            raise bad("segments", entry, "holds an entry without a segment name seg-NNNNNN")
        number = int(match.group(1))
        if number <= previous:
            raise bad("segments", name, "are not in increasing order")
        if number > manifest["generation"]:
            raise bad("generation", manifest["generation"], f"is older than its segment {name}")
        previous = number
        for key in ("count", "deleted"):
            if not _is_int(entry.get(key)):
                raise bad(f"{name}.{key}", entry.get(key), "is not a whole number >= 0")
        if entry.get("kind") not in INDEX_KINDS:
            raise bad(f"{name}.kind", entry.get("kind"), "is not an index kind")
        if entry.get("schema_version", SCHEMA_VERSION) not in READABLE_VERSIONS:
            raise bad(f"{name}.schema_version", entry.get("schema_version"), "is not a schema version this version reads")
        files = entry.get("files")
        if not isinstance(files, dict):
            raise bad(f"{name}.files", files, "is not a table of files")
        for file in SEGMENT_FILES:
            info = files.get(file)
            where = f"{name}/{file}"
            if not isinstance(info, dict) or not _is_int(info.get("size")):
                raise bad(where, info, "has no size")
            for key in ("sha256", "edges"):
                if not isinstance(info.get(key), str) or not _HEX64.match(info[key]):
                    raise bad(f"{where}.{key}", info.get(key), "is not a SHA-256")
            crcs = info.get("crc32")
            if crcs is not None and (not isinstance(crcs, list) or len(crcs) != -(-info["size"] // BLOCK)
                                     or not all(_is_int(c) and c < 1 << 32 for c in crcs)):
                raise bad(f"{where}.crc32", crcs, "is not one CRC-32 per MiB block")
    if sum(entry["count"] for entry in segments) < manifest["count"]:
        raise bad("count", manifest["count"], "exceeds the records its segments hold")


# -- the writer lock -----------------------------------------------------------------------------
# Locks this process holds: real path -> (pid, thread, depth). flock conflicts between two open
# file descriptions even within one process, so threads exclude each other through the file
# lock; this table only lets the holding thread take it again (a CLI holds it around a run whose
# commits take it too).
_HELD: dict[str, tuple[int, int, int]] = {}
_HELD_GUARD = threading.Lock()


@contextmanager
def write_lock(path: str | Path, timeout: float = 0.0):
    """Hold the store's writer lock (one writer at a time; readers never block).

    Reentrant for the thread holding it. Waits up to `timeout` seconds for another writer
    (process or thread) to finish, then raises StoreError.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(path)
    me = (os.getpid(), threading.get_ident())
    with _HELD_GUARD:
        held = _HELD.get(key)
        mine = held is not None and held[:2] == me
        if mine:
            _HELD[key] = (*me, held[2] + 1)
    if mine:
        try:
            yield
        finally:
            with _HELD_GUARD:
                pid, thread, depth = _HELD[key]
                _HELD[key] = (pid, thread, depth - 1)
        return
    fh = (path / LOCK).open("a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                waited = f" (waited {timeout:g} s)" if timeout else ""
                raise StoreError(f"{path}: another process is writing this store{waited}", path=path) from None
            time.sleep(0.02)
    with _HELD_GUARD:
        _HELD[key] = (*me, 1)
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD.pop(key, None)
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _remove_first_commit_leftovers(path: Path) -> None:
    """A store's first commit killed before its manifest existed leaves ``seg-*.tmp`` (or
    ``manifest.json.tmp``): removed, under the writer lock when it is free, so that the folder
    counts as empty again. A published ``seg-NNNNNN`` without manifest stays (and is refused):
    it may be a store whose manifest was lost."""
    leftovers = [p for p in path.iterdir() if p.name == f"{MANIFEST}.tmp"
                 or (p.name.endswith(".tmp") and _SEGMENT_DIR.match(p.name))]
    if not leftovers:
        return
    try:
        with write_lock(path):
            if not (path / MANIFEST).exists():
                for leftover in leftovers:
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)
    except StoreError:
        pass  # another writer is creating the store right now


class _Moved(Exception):
    """The manifest changed while a reader was opening the segments it listed."""


class Hit(NamedTuple):
    """One search result: the record id and its cosine similarity to the query."""

    record_id: int
    score: float


# -- segments ------------------------------------------------------------------------------------
class CheckedVectors:
    """A segment's vectors, mapped from the reader's own handle of ``vectors.npy``.

    Rows are read by indexing (``vectors[rows]``); each `BLOCK` of the file is checked against its
    recorded CRC-32 the first time a row in it is read, so damage inside the file is a StoreError
    naming it, never a score. ``np.asarray(vectors)`` checks every block.
    """

    def __init__(self, array: np.ndarray, buffer: mmap.mmap, offset: int, crcs: list[int] | None, path: Path,
                 check: bool = True) -> None:
        self._array = array
        self._buffer = memoryview(buffer)
        self._offset = offset
        self._crcs = np.asarray(crcs, dtype=np.uint32) if crcs is not None else None
        self._ok = np.zeros(0 if crcs is None else len(crcs), dtype=bool)
        self._check = check and crcs is not None
        self.path = path
        self.shape = array.shape
        self.dtype = array.dtype

    @classmethod
    def open(cls, fh: BinaryIO, path: Path, count: int, dim: int, info: dict, check: bool) -> CheckedVectors:
        """Map an opened ``.npy`` of `count` float32 rows of `dim` (StoreError naming `path` otherwise)."""
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran, dtype = read_header(fh)
        except (ValueError, KeyError, SyntaxError) as exc:
            raise StoreError(f"{path}: not a readable .npy file ({str(exc)[:80]}); the store is corrupt",
                             path=path) from None
        offset = fh.tell()
        if dtype != np.dtype("<f4") or fortran or shape != (count, dim) or offset + count * dim * 4 != info["size"]:
            raise StoreError(f"{path}: holds {shape} {dtype} values, the manifest {count} x {dim} float32; "
                             "the store is corrupt", path=path)
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        array = np.frombuffer(buffer, dtype=np.float32, count=count * dim, offset=offset).reshape(count, dim)
        return cls(array, buffer, offset, info.get("crc32"), path, check)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if self._check:
            self._check_rows(rows)
        return self._array[rows]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self._check:
            self._check_rows(slice(None))
        return np.asarray(self._array, dtype=dtype)

    def mark_verified(self) -> None:
        """Every block was checked (the whole file hashed): skip the per-block checks."""
        self._ok[:] = True

    def _check_rows(self, rows) -> None:
        if self._ok.all():
            return
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        rows = np.asarray(rows).reshape(-1)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if not len(rows):
            return
        rows = np.where(rows < 0, rows + len(self), rows).astype(np.int64)
        width = self.shape[1] * self.dtype.itemsize
        first = (self._offset + rows * width) // BLOCK
        last = (self._offset + (rows + 1) * width - 1) // BLOCK
        if width <= BLOCK:  # a row spans at most two blocks
            blocks = np.unique(np.concatenate([first, last]))
        else:
            blocks = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last)]))
        for block in blocks[~self._ok[blocks]]:
            self._check_block(int(block))

    def _check_block(self, block: int) -> None:
        start = block * BLOCK
        data = self._buffer[start:start + BLOCK]
        if zlib.crc32(data) != int(self._crcs[block]):
            raise StoreError(f"{self.path}: bytes {start}-{start + len(data) - 1} differ from their checksum in "
                             f"{MANIFEST}; the store is corrupt", path=self.path)
        self._ok[block] = True


class Segment:
    """One immutable set of records: sorted ids, their vectors and ANN index, the table (read lazily
    from an already opened file) and the ids it deletes from older segments."""

    def __init__(self, name: str, ids: np.ndarray, ann: AnnIndex, deleted: np.ndarray, *,
                 table: gpd.GeoDataFrame | None = None, records_file=None, entry: dict | None = None,
                 schema_version: int = SCHEMA_VERSION, directory: Path | None = None,
                 handles: dict[str, BinaryIO] | None = None, check_blocks: bool = False) -> None:
        self.name = name
        self.ids = ids
        self.ann = ann
        self.deleted = deleted
        self.entry = entry
        self.schema_version = schema_version
        self.directory = directory
        self._table = table
        self._records_file = records_file
        # The files this reader opened, kept for its life: verify() and block checks read these,
        # never the paths, which a compaction may have removed by then.
        self._handles = handles or {}
        self._index_checked = not check_blocks
        self.dead = np.empty(0, np.int64)  # ids superseded by newer segments (set by the store)

    @classmethod
    def open(cls, store: Path, entry: dict, dimension: int, config: StoreConfig) -> Segment:
        """Open every file of a listed segment, check sizes and edges, map vectors and index
        through the opened handles (StoreError naming the file at fault)."""
        directory = store / entry["name"]
        handles: dict[str, BinaryIO] = {}
        try:
            for name in SEGMENT_FILES:
                path = directory / name
                expected = entry["files"][name]
                try:
                    fh = path.open("rb")
                except OSError:
                    raise StoreError(f"{path}: missing, the store does not match its {MANIFEST}", path=path) from None
                handles[name] = fh
                size = os.fstat(fh.fileno()).st_size
                if size != expected["size"] or _edges(fh, size) != expected["edges"]:
                    raise StoreError(f"{path}: size or checksum differs from {MANIFEST}; the store is corrupt",
                                     path=path)
            ids = _small_array(handles.pop("ids.npy"), directory / "ids.npy", entry["files"]["ids.npy"])
            deleted = _small_array(handles.pop("deleted.npy"), directory / "deleted.npy", entry["files"]["deleted.npy"])
            if len(ids) != entry["count"] or (len(ids) > 1 and not np.all(ids[1:] > ids[:-1])):
                raise StoreError(f"{directory / 'ids.npy'}: {len(ids)} ids (sorted: {bool(np.all(np.diff(ids) > 0))}), "
                                 f"the manifest says {entry['count']} sorted ids; the store is corrupt",
                                 path=directory / "ids.npy")
            vectors = CheckedVectors.open(handles["vectors.npy"], directory / "vectors.npy", len(ids), dimension,
                                          entry["files"]["vectors.npy"], config.check_blocks)
            ann = AnnIndex.load(directory / "index.faiss", ids, vectors, handle=handles["index.faiss"])
            if ann.kind != entry["kind"]:
                raise StoreError(f"{directory / 'index.faiss'}: a {ann.kind} index, the manifest says {entry['kind']}; "
                                 "the store is corrupt", path=directory / "index.faiss")
        except BaseException:
            for fh in handles.values():
                fh.close()
            raise
        check = config.check_blocks and entry["files"]["index.faiss"].get("crc32") is not None
        return cls(entry["name"], ids, ann, deleted, records_file=handles["records.parquet"], entry=entry,
                   schema_version=entry.get("schema_version", SCHEMA_VERSION), directory=directory,
                   handles=handles, check_blocks=check)

    @classmethod
    def legacy(cls, store: Path, manifest: dict) -> Segment:
        """A single-generation store (layout 1) as one segment, its files checked in full as before."""
        files = manifest["files"]
        index_path, records_path = store / files["index"], store / files["records"]
        for file, key in ((index_path, "index_sha256"), (records_path, "records_sha256")):
            if not file.is_file():
                raise StoreError(f"{file}: missing, the store does not match its {MANIFEST}", path=file)
            if _sha256(file) != files[key]:
                raise StoreError(f"{file}: checksum differs from {MANIFEST}; the store is corrupt", path=file)
        try:
            index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            flat = faiss.downcast_index(index.index)
            # The flat index's own (mapped) codes are the vectors: no copy.
            vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        except (RuntimeError, AttributeError) as exc:
            raise StoreError(f"{index_path}: unreadable FAISS index ({str(exc).splitlines()[0][:120]})",
                             path=index_path) from None
        ann = AnnIndex(index, ids, vectors, AnnConfig())
        ann._keep_alive = flat  # noqa: SLF001 - the array above points into it
        records = records_path.open("rb")
        return cls("legacy", np.sort(ids), ann, np.empty(0, np.int64), records_file=records,
                   schema_version=manifest.get("schema_version"))

    @property
    def vectors(self) -> np.ndarray | CheckedVectors:
        return self.ann.vectors

    def table(self) -> gpd.GeoDataFrame:
        """Every record of the segment (dead ones included), read and checked in full once."""
        if self._table is None:
            table = gpd.read_parquet(io.BytesIO(self._read_records()))
            if self.schema_version != SCHEMA_VERSION:
                table = _upgrade(table, self.schema_version)
            self._table = table
        return self._table

    def keys(self) -> pd.DataFrame:
        """record_id, parcel_id and date of every record (dead ones included): what a writer needs
        to keep ids stable, without decoding geometries and statistics."""
        if self._table is not None:
            return self._table[["record_id", "parcel_id", "date"]]
        data = self._read_records()
        return pq.read_table(pa.BufferReader(data), columns=["record_id", "parcel_id", "date"]).to_pandas()

    def _read_records(self) -> bytes:
        fd = self._records_file.fileno()
        data = os.pread(fd, os.fstat(fd).st_size, 0)  # pread: no shared file position between threads
        want = self.entry["files"]["records.parquet"]["sha256"] if self.entry else None
        if want is not None and hashlib.sha256(data).hexdigest() != want:
            raise StoreError(f"{self.directory}/records.parquet: checksum differs from {MANIFEST}; the store is corrupt",
                             path=self.directory / "records.parquet")
        return data

    def check_index(self) -> None:
        """Before the segment's first search: the index file against its recorded CRC-32s (FAISS
        reads it where we cannot look; its candidates are re-scored on checked vectors, but a
        damaged index could still hide the right ones)."""
        if self._index_checked:
            return
        info = self.entry["files"]["index.faiss"]
        crcs = _crc_fd(self._handles["index.faiss"].fileno(), info["size"])
        if crcs != info["crc32"]:
            block = next(i for i, (a, b) in enumerate(zip(crcs, info["crc32"])) if a != b)
            path = self.directory / "index.faiss"
            raise StoreError(f"{path}: bytes {block * BLOCK}-{min((block + 1) * BLOCK, info['size']) - 1} differ from "
                             f"their checksum in {MANIFEST}; the store is corrupt", path=path)
        self._index_checked = True

    def verify(self) -> None:
        """Hash every file in full against the manifest, through the handles this reader opened
        (StoreError naming the first that differs)."""
        if self.entry is None:
            return
        for name in ("records.parquet", "vectors.npy", "index.faiss"):
            fh = self._handles[name]
            expected = self.entry["files"][name]
            if _hash_fd(fh.fileno(), expected["size"])[0] != expected["sha256"]:
                path = self.directory / name
                raise StoreError(f"{path}: checksum differs from {MANIFEST}; the store is corrupt", path=path)
        # ids.npy and deleted.npy were hashed in full when the segment was opened.
        if isinstance(self.vectors, CheckedVectors):
            self.vectors.mark_verified()
        self._index_checked = True

    def live_ids(self) -> np.ndarray:
        if not len(self.dead):
            return self.ids
        return self.ids[~_member(self.ids, self.dead)]


def _small_array(fh: BinaryIO, path: Path, info: dict) -> np.ndarray:
    """A small int64 .npy read whole through its handle and hashed in full (then closed)."""
    with fh:
        data = os.pread(fh.fileno(), info["size"], 0)
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise StoreError(f"{path}: checksum differs from {MANIFEST}; the store is corrupt", path=path)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise StoreError(f"{path}: not a readable .npy file ({str(exc)[:80]})", path=path) from None
    if array.dtype != np.int64 or array.ndim != 1:
        raise StoreError(f"{path}: holds {array.dtype} of shape {array.shape}, not int64 ids; the store is corrupt",
                         path=path)
    return array


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values in sorted_set, by binary search (values need not be sorted)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _resolve(segments: list[Segment]) -> int:
    """Mark each segment's ids superseded by newer segments (their ids and deletions); return the
    number of live records. Cost: binary searches of the newer (small) ids into the older ones."""
    newer = np.empty(0, np.int64)
    live = 0
    for i in range(len(segments) - 1, -1, -1):
        seg = segments[i]
        if len(newer):
            at = np.minimum(np.searchsorted(seg.ids, newer), max(len(seg.ids) - 1, 0))
            seg.dead = newer[seg.ids[at] == newer] if len(seg.ids) else np.empty(0, np.int64)
        else:
            seg.dead = np.empty(0, np.int64)
        live += len(seg.ids) - len(seg.dead)
        if i:
            newer = np.union1d(newer, np.union1d(seg.ids, seg.deleted))
    return live


def _empty_records() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"record_id": pd.Series(dtype="int64"), "parcel_id": pd.Series(dtype="string"),
                             "date": pd.Series(dtype="string")}, geometry=[], crs="EPSG:4326")


def _key_strings(parcels: pd.Series, dates: pd.Series) -> list[str]:
    return (parcels.astype(str) + "\x00" + dates.astype(str)).tolist()


def _size_class(count: int) -> int:
    return int(math.log(max(count, 1), MERGE_FACTOR))


# -- the store -----------------------------------------------------------------------------------
class Store:
    """An opened store. Mutations are staged in memory until `commit()`.

    Read it through the query API: `records(filter)`, `search(vector, k, filter)`,
    `vectors(ids)`, `by_ids(ids)`, `history(parcel_id)`, `record(parcel_id, date)`,
    `parcels()`, `dates()`. Opening never writes; a store opened only to read is a snapshot.
    """

    def __init__(self, path: Path, manifest: dict, segments: list[Segment], migrated_from: int | None = None,
                 layout_upgraded: bool = False, *, config: StoreConfig | None = None,
                 manifest_bytes: bytes | None = None, sealed: bool = True) -> None:
        self.path = path
        self.manifest = manifest
        self.config = config or StoreConfig()
        self._segments = segments
        #: The record schema version the store was written with, when older and upgraded on open.
        self.migrated_from = migrated_from
        #: True when the store has the single-generation layout; the next commit rewrites it as segments.
        self.layout_upgraded = layout_upgraded
        #: False for a manifest written before manifests had a checksum (the next commit adds it).
        self.sealed = sealed
        # The manifest as this store last read or wrote it: a commit that finds another on disk
        # knows another writer committed meanwhile (`_catch_up`).
        self._manifest_bytes = manifest_bytes
        self._staged: Segment | None = None
        self._staged_deleted = np.empty(0, np.int64)
        self._keys: dict[tuple[str, str], int] | None = None
        self._cache: gpd.GeoDataFrame | None = None
        self._count = _resolve(self._segments)
        self._dirty = migrated_from is not None or layout_upgraded

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, config: StoreConfig | None = None) -> Store:
        """Open an existing store and check it against its manifest (`StoreConfig`: sizes and edge
        hashes of every file, the manifest's checksum and consistency; small stores in full).

        A store of an older schema version or layout is read as it is (`migrated_from`,
        `layout_upgraded` say so); the next commit writes it in the current ones.
        """
        path = Path(path)
        config = config or StoreConfig()
        for _ in range(3):
            try:
                return cls._open(path, config)
            except _Moved:
                continue  # a writer replaced segments between our reading the manifest and their files
        return cls._open(path, config, retry=False)

    @classmethod
    def _open(cls, path: Path, config: StoreConfig, retry: bool = True) -> Store:
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{path}: not an XVision store (no {MANIFEST}); index imagery into it first",
                             path=path, field="store")
        before = manifest_path.read_bytes()
        manifest, sealed = read_manifest(manifest_path, before)
        version = manifest["schema_version"]
        legacy = manifest.get("layout", 1) == 1
        segments: list[Segment] = []
        try:
            if legacy:
                segments = [Segment.legacy(path, manifest)] if manifest.get("files") else []
            else:
                for entry in manifest["segments"]:
                    segments.append(Segment.open(path, entry, int(manifest["dimension"]), config))
        except StoreError:
            if retry and _read_or_none(manifest_path) != before:
                raise _Moved() from None
            raise
        store = cls(path, manifest, segments, migrated_from=version if version != SCHEMA_VERSION else None,
                    layout_upgraded=legacy, config=config, manifest_bytes=before, sealed=sealed)
        if not legacy:
            store._check_ids(manifest_path)
        if len(store) != manifest.get("count", len(store)):
            raise StoreError(f"{path}: manifest says {manifest['count']} records, the segments hold {len(store)}",
                             path=path)
        if legacy:
            store.manifest = {**manifest, "schema_version": SCHEMA_VERSION}
        elif sum(f["size"] for e in manifest["segments"] for f in e["files"].values()) <= config.full_verify_below:
            store.verify()
        return store

    def _check_ids(self, manifest_path: Path) -> None:
        """``next_id`` above every id a segment holds or deletes: a lower one would hand stored
        ids to new records (whose commit would silently replace them)."""
        top = max([int(seg.ids[-1]) for seg in self._segments if len(seg.ids)]
                  + [int(seg.deleted.max()) for seg in self._segments if len(seg.deleted)], default=-1)
        next_id = self.manifest["next_id"]
        if next_id <= top:
            raise StoreError(f"{manifest_path}: next_id {next_id} does not exceed the stored record id {top}; "
                             "the store is corrupt", path=manifest_path, field="next_id", value=next_id)

    @classmethod
    def open_or_create(cls, path: str | Path, encoder: dict, index_type: str = "auto",
                       config: StoreConfig | None = None) -> Store:
        """Open the store for writing with `encoder` (its manifest entry), creating it if absent.

        `index_type` ("auto" or one of `indexer.ann.INDEX_KINDS`) applies to a new store; an
        existing one keeps its own (convert it with `compact(index_type=...)`). Leftovers of a
        writer that crashed (``seg-*.tmp`` folders, unlisted segments) are removed here when no
        other writer holds the lock.
        """
        path = Path(path)
        if (path / MANIFEST).is_file():
            store = cls.open(path, config)
            store.check_encoder(encoder)
            store._remove_leftovers()
            return store
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: exists and is not a directory", path=path, field="store")
        if path.is_dir():
            _remove_first_commit_leftovers(path)
        if path.is_dir() and any(p for p in path.iterdir() if not p.name.startswith(".")):
            raise StoreError(f"{path}: directory is not empty and has no {MANIFEST}; refusing to write a store into it",
                             path=path, field="store")
        AnnConfig(kind=index_type)  # validates
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "layout": LAYOUT,
            "encoder": encoder,
            "dimension": encoder["dim"],
            "metric": "inner_product (vectors L2-normalized: cosine similarity)",
            "index_type": index_type,
            "generation": 0,
            "count": 0,
            "next_id": 0,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "segments": [],
        }
        return cls(path, manifest, [], config=config)

    def check_encoder(self, encoder: dict) -> None:
        """Raise EncoderMismatchError when `encoder` would write vectors incomparable with ours."""
        ours = self.manifest["encoder"]
        for key in ENCODER_IDENTITY:
            if ours.get(key) != encoder.get(key):
                raise EncoderMismatchError(
                    f"{self.path}: store was written by encoder {ours.get('id')!r} "
                    f"(weights {str(ours.get('weights_sha256'))[:12]}), not {encoder.get('id')!r} "
                    f"(weights {str(encoder.get('weights_sha256'))[:12]}): {key} differs. "
                    f"Index with encoder {ours.get('id')!r}, or into another store.",
                    path=self.path, field="encoder", value=encoder.get("id"), hint=str(ours.get("id")),
                )

    @property
    def encoder_id(self) -> str:
        return self.manifest["encoder"]["id"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    @property
    def index_type(self) -> str:
        """The index type new segments get: "auto" (by size, `indexer.ann.choose_kind`) or a kind."""
        kind = self.manifest.get("index_type")
        return kind if kind in INDEX_KINDS else "auto"  # single-generation stores said "IDMap2,Flat"

    @property
    def segments(self) -> list[Segment]:
        """The committed segments, oldest first (plus the staged one, if any, last)."""
        return self._segments + ([self._staged] if self._staged is not None else [])

    def __len__(self) -> int:
        return self._count

    def verify(self) -> None:
        """Hash every file of every segment in full, through the files this store opened
        (StoreError naming the first that differs; `verify_store` reports them all)."""
        for seg in self._segments:
            seg.verify()

    def _remove_leftovers(self) -> None:
        """What a crashed writer left (``seg-*.tmp``, unlisted segments, ``manifest.json.tmp``),
        removed under the writer lock when it is free; when it is not, its holder cleans up."""
        try:
            with write_lock(self.path):
                if _read_or_none(self.path / MANIFEST) == self._manifest_bytes:
                    self._remove_stale()
        except StoreError:
            pass

    # -- writing ---------------------------------------------------------------------------
    def _load_keys(self) -> None:
        """The writer's (parcel, date) -> record_id lookup: a hash index over the stored keys, built
        once per writer (the only step proportional to the store), plus this session's changes."""
        if self._keys is not None:
            return
        parts = []
        for seg in self._segments:
            keys = seg.keys()
            if len(seg.dead):
                keys = keys[~_member(keys["record_id"].to_numpy(np.int64), seg.dead)]
            parts.append(keys)
        keys = pd.concat(parts, ignore_index=True) if parts else _empty_records()
        self._key_base = pd.Index(_key_strings(keys["parcel_id"], keys["date"]))
        self._key_base_ids = keys["record_id"].to_numpy(np.int64)
        self._keys = {}  # keys given an id in this session
        self._key_gone: set[int] = set()  # ids deleted in this session

    def _lookup(self, keys: list[str]) -> np.ndarray:
        self._load_keys()
        at = self._key_base.get_indexer(keys) if len(self._key_base) else np.full(len(keys), -1)
        ids = np.where(at >= 0, self._key_base_ids[np.maximum(at, 0)] if len(self._key_base_ids) else -1, -1)
        for i, key in enumerate(keys):
            if key in self._keys:
                ids[i] = self._keys[key]
            elif ids[i] in self._key_gone:
                ids[i] = -1
        return ids

    def upsert(self, rows: gpd.GeoDataFrame, vectors: np.ndarray) -> tuple[int, int]:
        """Add records, or replace those whose (parcel_id, date) is already stored (same record_id).

        `rows` carries every record column of the schema except `record_id` (checked: a missing
        or mistyped column is an InputError naming it), plus any ``attr_*`` parcel attributes;
        returns (added, replaced).
        """
        if len(rows) != len(vectors):
            raise ValueError("one vector per row")
        validate(rows)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise InputError(f"{self.path}: vectors of shape {vectors.shape} do not fit the store's "
                             f"{self.dimension}-d embeddings", path=self.path, field="vectors")
        rows = rows.reset_index(drop=True)
        rows = rows.drop_duplicates(["parcel_id", "date"], keep="last")
        vectors = np.ascontiguousarray(vectors[rows.index.to_numpy()], dtype=np.float32)
        rows = rows.reset_index(drop=True)
        keys = _key_strings(rows["parcel_id"], rows["date"])
        ids = self._lookup(keys)
        replaced = int((ids >= 0).sum())
        next_id = int(self.manifest["next_id"])
        for i in np.flatnonzero(ids < 0):
            ids[i] = self._keys[keys[i]] = next_id
            next_id += 1
        rows = rows.assign(record_id=ids)
        staged_rows, staged_vectors = [rows], [vectors]
        if self._staged is not None:
            old = self._staged
            keep = ~_member(old.ids, np.sort(ids))
            staged_rows.insert(0, old.table()[keep])
            staged_vectors.insert(0, np.asarray(old.vectors)[keep])
        table = gpd.GeoDataFrame(pd.concat(staged_rows, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        self._stage(table, np.concatenate(staged_vectors))
        self.manifest["next_id"] = next_id
        return len(rows) - replaced, replaced

    def delete(self, record_ids: Iterable[int]) -> int:
        """Remove records by id (ids of the others do not change); returns how many were stored."""
        ids = np.unique(np.asarray([int(i) for i in record_ids], dtype=np.int64))
        live = np.zeros(len(ids), dtype=bool)
        for seg in self.segments:
            live |= _member(ids, seg.ids) & ~_member(ids, seg.dead)
        ids = ids[live]
        if not len(ids):
            return 0
        self._staged_deleted = np.union1d(self._staged_deleted, ids)
        self._load_keys()
        self._key_gone.update(ids.tolist())
        self._keys = {k: v for k, v in self._keys.items() if v not in self._key_gone}
        if self._staged is not None:
            keep = ~_member(self._staged.ids, ids)
            table, vectors = self._staged.table()[keep], np.asarray(self._staged.vectors)[keep]
        else:
            table = _empty_records()
            vectors = np.zeros((0, self.dimension), np.float32)
        self._stage(table, vectors)
        return len(ids)

    def _stage(self, table: gpd.GeoDataFrame, vectors: np.ndarray) -> None:
        order = np.argsort(table["record_id"].to_numpy(np.int64), kind="stable")
        table = table.iloc[order].reset_index(drop=True)
        vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
        ids = table["record_id"].to_numpy(np.int64)
        ann = AnnIndex.build(ids, vectors, AnnConfig(kind="flat"))
        self._staged = Segment("staged", ids, ann, self._staged_deleted, table=table)
        self._changed()

    def _changed(self) -> None:
        self._count = _resolve(self.segments)
        self._cache = None
        self._dirty = True

    def commit(self) -> None:
        """Atomically publish the staged records as a new segment (no-op when nothing changed),
        then merge segments if the size classes call for it (`compact`).

        Takes the writer lock (waiting up to `StoreConfig.lock_timeout` for another writer). When
        another writer committed since this store was opened, this session's staged changes are
        replayed onto that newer state first (`_catch_up`): both writers' records are kept, the
        later version of a (parcel, date) wins, and ids of records added here may change.
        """
        if not self._dirty:
            return
        with write_lock(self.path, timeout=self.config.lock_timeout):
            self._catch_up()
            if self._dirty:
                self._commit_locked()

    def _catch_up(self) -> None:
        """Under the writer lock: rebase this session's staged changes (deletions, then upserts,
        by (parcel, date)) onto what another writer committed since this store read its manifest."""
        on_disk = _read_or_none(self.path / MANIFEST)
        if on_disk == self._manifest_bytes:
            return
        if on_disk is None:
            raise StoreError(f"{self.path / MANIFEST}: removed while this store was open", path=self.path / MANIFEST)
        newer = Store._open(self.path, self.config)  # stable: we hold the lock
        newer.check_encoder(self.manifest["encoder"])
        if len(self._staged_deleted):
            newer.delete(self._staged_deleted)
        staged = self._staged
        if staged is not None and len(staged.ids):
            newer.upsert(staged.table().drop(columns=["record_id"]), np.asarray(staged.vectors))
        vars(self).update(vars(newer))  # the rebased store replaces this one's state wholesale

    def _commit_locked(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)  # a new store's first commit, even an empty one
        if self.layout_upgraded:
            # One-time rewrite of a single-generation store as segments.
            self.compact()
            self.layout_upgraded = False
            self.migrated_from = None
            return
        if self._staged is not None:
            staged = self._staged
            entry = self._write_segment(staged.table(), np.asarray(staged.vectors), self._staged_deleted)
            self._publish_manifest(self._segments_entries() + [entry])
            self._segments.append(Segment.open(self.path, entry, self.dimension, self.config))
            self._staged, self._staged_deleted = None, np.empty(0, np.int64)
            self._changed()
        elif not (self.path / MANIFEST).is_file():
            self._publish_manifest(self._segments_entries())  # a new store committed empty still is one
        self._dirty = False
        self.migrated_from = None
        self._remove_stale()
        self._auto_compact()

    def _auto_compact(self) -> None:
        # The newest segments back to the first one of a larger size class form the run; four or
        # more of them are merged. Like a base-4 counter, each record is rewritten O(log n) times
        # and the store keeps a few segments per size class.
        while True:
            run, largest = 0, -1
            for seg in reversed(self._segments):
                size = _size_class(len(seg.ids))
                if run and size > largest:
                    break
                largest = max(largest, size)
                run += 1
            if run < MERGE_FACTOR:
                return
            self.compact(start=len(self._segments) - run)

    def compact(self, index_type: str | None = None, *, start: int = 0, progress: bool = False) -> None:
        """Merge the committed segments from `start` on into one, without their dead versions.

        Without arguments: the whole store into one segment. `index_type` ("auto" or a kind of
        `indexer.ann.INDEX_KINDS`) also becomes the store's index type for later segments
        (this is how ``xvision reindex`` converts a store). Staged changes are committed first.
        Takes the writer lock, as `commit` does.
        """
        if index_type is not None:
            AnnConfig(kind=index_type)
        with write_lock(self.path, timeout=self.config.lock_timeout):
            self._catch_up()
            self._compact_locked(index_type, start, progress)

    def _compact_locked(self, index_type: str | None, start: int, progress: bool) -> None:
        if self._staged is not None and not self.layout_upgraded:
            self.commit()
        run = self.segments[start:]  # a legacy store's staged changes are merged here as well
        if index_type is not None:
            self.manifest["index_type"] = index_type
            if not run:
                self._publish_manifest([])
                return
        elif not run or (len(run) == 1 and not self.layout_upgraded and not len(run[0].dead)):
            return
        tables, vectors, deleted = [], [], []
        for seg in tqdm(run, desc="compacting", unit="segment", disable=not progress):
            seg.verify()  # never spread damage into the merged segment
            live = seg.live_ids()  # sorted
            table = seg.table()
            table = table[_member(table["record_id"].to_numpy(np.int64), live)].sort_values("record_id")
            tables.append(table)
            vectors.append(np.asarray(seg.vectors[seg.ann.positions(live)]))
            deleted.append(seg.deleted)
        table = gpd.GeoDataFrame(pd.concat(tables, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        merged_ids = table["record_id"].to_numpy(np.int64)
        # Deletions of the run still hide versions in segments older than the run.
        carried = np.setdiff1d(np.concatenate(deleted), merged_ids) if start else np.empty(0, np.int64)
        entry = self._write_segment(table, np.concatenate(vectors), carried, progress=progress)
        kept = self._segments_entries()[:start] if not self.layout_upgraded else []
        self._publish_manifest(kept + [entry])
        self._segments = (self._segments[:start] if not self.layout_upgraded else []) + [Segment.open(self.path, entry, self.dimension, self.config)]
        self._staged, self._staged_deleted = None, np.empty(0, np.int64)
        self._changed()
        self._dirty = False
        self._remove_stale()

    def _segments_entries(self) -> list[dict]:
        return [seg.entry for seg in self._segments]

    def _write_segment(self, table: gpd.GeoDataFrame, vectors: np.ndarray, deleted: np.ndarray,
                       progress: bool = False) -> dict:
        generation = int(self.manifest["generation"]) + 1
        self.manifest["generation"] = generation
        name = f"seg-{generation:06d}"
        tmp = self.path / f"{name}.tmp"
        self.path.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        order = np.argsort(table["record_id"].to_numpy(np.int64), kind="stable")
        table = table.iloc[order].reset_index(drop=True)
        vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
        ids = table["record_id"].to_numpy(np.int64)
        kind = resolve_kind(AnnConfig(kind=self.index_type), len(ids), self.dimension)
        if progress and kind != "flat":
            print(f"building a {kind} index over {len(ids)} vectors", flush=True)
        table.to_parquet(tmp / "records.parquet", index=False)
        np.save(tmp / "ids.npy", ids)
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "deleted.npy", np.asarray(deleted, dtype=np.int64))
        AnnIndex.build(ids, vectors, AnnConfig(kind=kind)).save(tmp / "index.faiss")
        for file in SEGMENT_FILES:
            with (tmp / file).open("rb+") as fh:
                os.fsync(fh.fileno())
        files = {file: _describe(tmp / file) for file in SEGMENT_FILES}
        _fsync_dir(tmp)
        final = self.path / name
        if name in {e["name"] for e in self.manifest.get("segments", [])}:
            # Only a manifest whose generation lags its segments gets here (refused at open).
            raise StoreError(f"{self.path / MANIFEST}: generation {generation - 1} would overwrite the live segment "
                             f"{name}; the store is corrupt", path=self.path / MANIFEST, field="generation")
        if final.exists():
            # Left by a writer that crashed before publishing it: no manifest lists it, no reader opened it.
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(self.path)
        return {"name": name, "count": len(ids), "kind": kind, "deleted": int(len(deleted)),
                "schema_version": SCHEMA_VERSION, "files": files}

    def _publish_manifest(self, entries: list[dict]) -> None:
        manifest = {k: v for k, v in self.manifest.items() if k != "files"}
        manifest.update(
            layout=LAYOUT,
            schema_version=SCHEMA_VERSION,
            index_type=self.index_type,
            segments=entries,
            count=len(self),  # the resolved live count: a commit and a compaction both keep it
            updated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        manifest = seal_manifest(manifest)
        data = json.dumps(manifest, indent=2).encode()
        tmp = self.path / f"{MANIFEST}.tmp"
        tmp.write_bytes(data)
        _publish(tmp, self.path / MANIFEST)
        self.manifest = manifest
        self._manifest_bytes = data
        self.sealed = True

    def _remove_stale(self) -> None:
        listed = {entry["name"] for entry in self.manifest.get("segments", [])}
        for file in self.path.iterdir():
            segment = _SEGMENT_DIR.match(file.name)
            if segment and file.name not in listed:
                shutil.rmtree(file, ignore_errors=True)
            elif _LEGACY_FILE.match(file.name) or file.name == f"{MANIFEST}.tmp":
                file.unlink(missing_ok=True)

    # -- reading: the query API --------------------------------------------------------------
    def _live_table(self) -> gpd.GeoDataFrame:
        if self._cache is None:
            parts = []
            for seg in self.segments:
                table = seg.table()
                if len(seg.dead):
                    table = table[~_member(table["record_id"].to_numpy(np.int64), seg.dead)]
                if len(table):
                    parts.append(table)
            if not parts:
                self._cache = _empty_records()
            elif len(parts) == 1:
                self._cache = parts[0].sort_values("record_id").reset_index(drop=True)
            else:
                merged = pd.concat(parts, ignore_index=True).sort_values("record_id", kind="stable")
                self._cache = gpd.GeoDataFrame(merged.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")
        return self._cache

    def records(self, filter: RecordFilter | None = None) -> gpd.GeoDataFrame:
        """The records passing `filter` (all of them without one), in record_id order."""
        table = self._live_table()
        if filter is None:
            return table
        return table[filter.mask(table)]

    def by_ids(self, record_ids: Sequence[int]) -> gpd.GeoDataFrame:
        """The records with these ids, in the order given (NotFoundError naming an unknown id)."""
        ids = [int(i) for i in record_ids]
        table = self._live_table()
        # Positions in the id column (the live table is sorted by record_id), then a take of those
        # rows only: re-indexing the whole table by id costs more than the rows asked for (one per
        # generated answer). An id past the last one lands on the last row and does not match it.
        stored = table["record_id"].to_numpy(np.int64)
        wanted = np.asarray(ids, dtype=np.int64)
        positions = np.minimum(np.searchsorted(stored, wanted), max(len(stored) - 1, 0))
        found = stored[positions] == wanted if len(stored) else np.zeros(len(wanted), dtype=bool)
        if not found.all():
            unknown = int(wanted[~found][0])
            raise NotFoundError(f"{self.path}: no record with id {unknown}", path=self.path,
                                field="record_id", value=unknown)
        return table.iloc[positions].reset_index(drop=True)

    def vectors(self, record_ids: Sequence[int]) -> np.ndarray:
        """The stored embeddings of these records, float32 [n, dim], in the order given."""
        ids = np.asarray([int(i) for i in record_ids], dtype=np.int64)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for seg in reversed(self.segments):  # the newest live version wins
            if found.all():
                break
            rows = seg.ann.positions(ids)
            take = (rows >= 0) & ~found & ~_member(ids, seg.dead)
            out[take] = seg.vectors[rows[take]]
            found |= take
        if not found.all():
            unknown = int(ids[~found][0])
            raise NotFoundError(f"{self.path}: no embedding for record id {unknown}", path=self.path,
                                field="record_id", value=unknown)
        return out

    def vector(self, record_id: int) -> np.ndarray:
        """The stored embedding of one record, float32 [dim]."""
        return self.vectors([record_id])[0]

    def search(self, vector: np.ndarray, k: int, filter: RecordFilter | None = None) -> list[Hit]:
        """The `k` records nearest to `vector` by cosine similarity, best first, among those
        passing `filter`: exactly ``min(k, number of matching records)`` hits.

        Each segment answers with exact scores and its own ``min(k, eligible)`` best
        (`indexer.ann.AnnIndex.search`: FAISS ID selectors, growing effort, exhaustive fallback);
        live ids are unique across segments, so the merged top k has k hits whenever k match.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"the number of results must be a positive integer, got {k!r}", field="k", value=k)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise InputError(f"query vector has {query.shape[0]} dimensions, the store's embeddings {self.dimension}",
                             field="vector", value=query.shape[0])
        allowed = None
        if filter is not None:
            table = self._live_table()
            allowed = np.sort(table["record_id"].to_numpy(np.int64)[filter.mask(table)])
        ids, scores = [], []
        for seg in self.segments:
            seg.check_index()
            got, got_scores = seg.ann.search(query, int(k), allowed=allowed, exclude=seg.dead)
            ids.append(got)
            scores.append(got_scores)
        if not ids:
            return []
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        order = np.lexsort((ids, -scores))[: int(k)]
        return [Hit(int(ids[i]), float(scores[i])) for i in order]

    def find(self, parcel_id: str, date: str | None = None) -> gpd.GeoDataFrame:
        """Records of a parcel (all dates, or one), sorted by date; empty when there are none."""
        dates = None if date is None else [date]
        return self.records(RecordFilter(parcel_ids=[str(parcel_id)], dates=dates)).sort_values("date")

    def history(self, parcel_id: str, date_from: str | dt.date | None = None,
                date_to: str | dt.date | None = None) -> gpd.GeoDataFrame:
        """Every record of one parcel in the window (inclusive), oldest first.

        NotFoundError when the store has no such parcel; an empty table when it has, but no
        record in the window.
        """
        rows = self.find(parcel_id)
        if rows.empty:
            raise NotFoundError(f"{self.path}: no parcel {parcel_id!r} in the store", path=self.path,
                                field="parcel_id", value=parcel_id)
        window = RecordFilter(date_from=date_from, date_to=date_to)
        return rows[window.mask(rows)]

    def record(self, parcel_id: str, date: str) -> pd.Series:
        """The record of (parcel, date), or NotFoundError naming the dates that exist."""
        rows = self.find(parcel_id, date)
        if rows.empty:
            dates = self.find(parcel_id)["date"].tolist()
            if not dates:
                raise NotFoundError(f"{self.path}: no parcel {parcel_id!r} in the store", path=self.path,
                                    field="parcel_id", value=parcel_id)
            raise NotFoundError(f"{self.path}: parcel {parcel_id!r} has no record on {date} (dates: {', '.join(dates)})",
                                path=self.path, field="date", value=date)
        return rows.iloc[0]

    def parcels(self) -> gpd.GeoDataFrame:
        """One row per parcel: ``parcel_id``, its newest geometry and its ``attr_*`` attributes."""
        table = self._live_table()
        table = table.sort_values("date") if len(table) else table
        columns = ["parcel_id", *attribute_columns(table), "geometry"]
        latest = table.drop_duplicates("parcel_id", keep="last")[columns]
        return gpd.GeoDataFrame(latest.sort_values("parcel_id").reset_index(drop=True), geometry="geometry",
                                crs="EPSG:4326")

    def dates(self) -> list[str]:
        """The acquisition dates in the store, oldest first."""
        table = self._live_table()
        return sorted(table["date"].astype(str).unique().tolist()) if len(table) else []


@dataclass
class VerifyReport:
    """What `verify_store` found: a line per segment checked, every problem (each naming its file)
    and notes that are not damage (a manifest from before checksums, leftovers of a crash)."""

    path: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report for a person: the verdict first, then the problems, the checks, the notes."""
        if self.ok:
            head = f"{self.path}: ok, {self.records} records; every file matches its SHA-256 in {MANIFEST}"
        else:
            head = f"{self.path}: DAMAGED, {len(self.problems)} problem(s); do not serve it, restore it or index anew"
        return [head, *(f"  problem: {p}" for p in self.problems), *(f"  checked: {c}" for c in self.checked),
                *(f"  note: {n}" for n in self.notes)]


def verify_store(path: str | Path) -> VerifyReport:
    """Check a store completely: the manifest (checksum, fields, consistency), every byte of every
    segment file against its SHA-256 (damaged 1 MiB blocks located by their CRC-32), then the
    store as a reader opens it (ids, next_id, counts). Collects every problem instead of stopping
    at the first; never writes. StoreError only when `path` is not a store at all.

    Reads a snapshot like any reader: when a writer's compaction removes files meanwhile, the
    check starts again on the newer manifest.
    """
    path = Path(path)
    for _ in range(3):
        report = _verify_once(path, retry=True)
        if report is not None:
            return report
    return _verify_once(path, retry=False)


def _verify_once(path: Path, retry: bool) -> VerifyReport | None:
    report = VerifyReport(path)
    manifest_path = path / MANIFEST
    raw = _read_or_none(manifest_path)
    if raw is None:
        raise StoreError(f"{path}: not an XVision store (no {MANIFEST})", path=path, field="store")
    try:
        manifest, sealed = read_manifest(manifest_path, raw)
    except StoreError as exc:
        report.problems.append(str(exc))
        return report
    if sealed:
        report.checked.append(f"{MANIFEST}: checksum and fields ok")
    else:
        report.notes.append(f"{MANIFEST} has no checksum (written before manifests had one); the next commit adds it")
    if manifest.get("layout", 1) == LAYOUT:
        for entry in manifest["segments"]:
            total, ok = 0, True
            for name in SEGMENT_FILES:
                file, info = path / entry["name"] / name, entry["files"][name]
                try:
                    fh = file.open("rb")
                except OSError:
                    if retry and _read_or_none(manifest_path) != raw:
                        return None  # compacted away meanwhile: check the newer state
                    report.problems.append(f"{file}: missing, the store does not match its {MANIFEST}")
                    ok = False
                    continue
                with fh:
                    size = os.fstat(fh.fileno()).st_size
                    digest, crcs = _hash_fd(fh.fileno(), size)
                total += size
                if size != info["size"]:
                    report.problems.append(f"{file}: {size} bytes, {MANIFEST} says {info['size']}")
                    ok = False
                elif digest != info["sha256"]:
                    blocks = [i for i, (a, b) in enumerate(zip(crcs, info.get("crc32") or [])) if a != b]
                    where = ", ".join(f"bytes {i * BLOCK}-{min((i + 1) * BLOCK, size) - 1}" for i in blocks[:5])
                    report.problems.append(f"{file}: content differs from its SHA-256 in {MANIFEST}"
                                           + (f" ({where})" if where else ""))
                    ok = False
            if ok:
                report.checked.append(f"{entry['name']}: {entry['count']} records, {total} bytes in "
                                      f"{len(SEGMENT_FILES)} files, SHA-256 ok")
            if entry["files"]["vectors.npy"].get("crc32") is None:
                report.notes.append(f"{entry['name']}: no block checksums (written before them): damage inside "
                                    "it is found by full hashing only (this check, or at open for small stores)")
    if report.ok:
        try:  # what bytes cannot show: ids against next_id, counts, index kinds
            store = Store.open(path, StoreConfig(full_verify_below=0, check_blocks=False))
            store.verify()
            report.records = len(store)
        except StoreError as exc:
            report.problems.append(str(exc))
    listed = {entry["name"] for entry in manifest.get("segments", [])}
    for child in sorted(path.iterdir()):
        if _SEGMENT_DIR.match(child.name) and child.name not in listed:
            report.notes.append(f"{child}: not listed in {MANIFEST} (left by an interrupted writer or a compaction "
                                "still being read); the next writer removes it")
    return report


def _upgrade(table: gpd.GeoDataFrame, version: int) -> gpd.GeoDataFrame:
    """A record table of schema `version` in the current schema (nothing is dropped: version 1's
    JSON ``attributes`` become ``attr_*`` columns)."""
    if version == 1 and LEGACY_ATTRIBUTES in table.columns:
        attrs = attributes_from_json(table[LEGACY_ATTRIBUTES])
        table = table.drop(columns=[LEGACY_ATTRIBUTES])
        table = gpd.GeoDataFrame(pd.concat([table, attrs], axis=1), geometry="geometry", crs=table.crs)
    return table
