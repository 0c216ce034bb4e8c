"""The store: immutable segments of records and embeddings, listed by one manifest.

Layout of a store directory::

    manifest.json             encoder id, weights hash, normalization, dimension, record schema
                              version, index type, next record id, live record count, and the
                              segments in order (oldest first), each with its files' sizes and hashes
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
state, whose files are untouched, and directories it does not list are removed at the next commit.
Compaction follows the same rules: its merged segment is published by the manifest, and the
segments it replaced are removed only afterwards.

Corruption check: each file's size and SHA-256 are recorded when it is written (read back once
after fsync), plus the SHA-256 of its first and last MiB ("edges"). Opening checks sizes and edges
of every file - constant work per segment, so opening stays fast at any size, and truncation,
torn appends, a damaged header or footer are caught there. A records file is hashed in full when
it is first read (every byte is read anyway); vectors and index files, which readers memory-map
and touch sparsely, are hashed in full by `verify()` and before `compact` merges them, so damage
inside them cannot spread into a merged segment.

Readers open a snapshot: every file of every listed segment is opened (vectors and index mapped,
records by file handle) when the store is opened, so a writer compacting away those segments meanwhile
does not disturb them. Stores of the single-generation layout (schema 1 and 2: ``index-N.faiss`` +
``records-N.parquet``) open as one segment (checked in full, as before); the first commit rewrites
them as segments (`layout_upgraded` says so).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

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
_LEGACY_FILE = re.compile(r"^(index|records)-(\d{6})\.(faiss|parquet)(\.tmp)?$")
#: Auto-compaction merges the newest run of this many segments of one size class (log4 of count).
MERGE_FACTOR = 4
_EDGE = 1 << 20
#: Encoder manifest fields that must match for two sets of embeddings to be comparable.
ENCODER_IDENTITY = ("id", "dim", "weights_sha256", "normalization", "bands")


# -- files ---------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


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
    size = path.stat().st_size
    with path.open("rb") as fh:
        edges = _edges(fh, size)
    return {"size": size, "sha256": _sha256(path), "edges": edges}


def _publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, rename it over `final`, fsync the directory."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@contextmanager
def write_lock(path: str | Path):
    """Hold the store's writer lock (one writer at a time; readers never block)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK).open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{path}: another process is writing this store", path=path) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Moved(Exception):
    """The manifest changed while a reader was opening the segments it listed."""


class Hit(NamedTuple):
    """One search result: the record id and its cosine similarity to the query."""

    record_id: int
    score: float


# -- segments ------------------------------------------------------------------------------------
class Segment:
    """One immutable set of records: sorted ids, their vectors and ANN index, the table (read lazily
    from an already opened file) and the ids it deletes from older segments."""

    def __init__(self, name: str, ids: np.ndarray, ann: AnnIndex, deleted: np.ndarray, *,
                 table: gpd.GeoDataFrame | None = None, records_file=None, entry: dict | None = None,
                 schema_version: int = SCHEMA_VERSION, directory: Path | None = None) -> None:
        self.name = name
        self.ids = ids
        self.ann = ann
        self.deleted = deleted
        self.entry = entry
        self.schema_version = schema_version
        self.directory = directory
        self._table = table
        self._records_file = records_file
        self.dead = np.empty(0, np.int64)  # ids superseded by newer segments (set by the store)

    @classmethod
    def open(cls, store: Path, entry: dict) -> Segment:
        directory = store / entry["name"]
        handles = {}
        for name in SEGMENT_FILES:
            path = directory / name
            expected = entry["files"][name]
            try:
                fh = path.open("rb")
            except OSError:
                raise StoreError(f"{path}: missing, the store does not match its {MANIFEST}", path=path) from None
            size = os.fstat(fh.fileno()).st_size
            if size != expected["size"] or _edges(fh, size) != expected["edges"]:
                fh.close()
                raise StoreError(f"{path}: size or checksum differs from {MANIFEST}; the store is corrupt", path=path)
            fh.seek(0)
            handles[name] = fh
        with handles.pop("ids.npy") as fh:
            ids = np.load(fh, allow_pickle=False)
        with handles.pop("deleted.npy") as fh:
            deleted = np.load(fh, allow_pickle=False)
        vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        handles.pop("vectors.npy").close()
        handles.pop("index.faiss").close()
        ann = AnnIndex.load(directory / "index.faiss", ids, vectors)
        return cls(entry["name"], ids, ann, deleted, records_file=handles["records.parquet"], entry=entry,
                   schema_version=entry.get("schema_version", SCHEMA_VERSION), directory=directory)

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
        index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        flat = faiss.downcast_index(index.index)
        # The flat index's own (mapped) codes are the vectors: no copy.
        vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        ann = AnnIndex(index, ids, vectors, AnnConfig())
        ann._keep_alive = flat  # noqa: SLF001 - the array above points into it
        records = records_path.open("rb")
        return cls("legacy", np.sort(ids), ann, np.empty(0, np.int64), records_file=records,
                   schema_version=manifest.get("schema_version"))

    @property
    def vectors(self) -> np.ndarray:
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
        self._records_file.seek(0)
        data = self._records_file.read()
        want = self.entry["files"]["records.parquet"]["sha256"] if self.entry else None
        if want is not None and hashlib.sha256(data).hexdigest() != want:
            raise StoreError(f"{self.directory}/records.parquet: checksum differs from {MANIFEST}; the store is corrupt",
                             path=self.directory)
        return data

    def verify(self) -> None:
        """Hash every file in full against the manifest (StoreError naming the first that differs)."""
        if self.entry is None:
            return
        for name in SEGMENT_FILES:
            path = self.directory / name
            if _sha256(path) != self.entry["files"][name]["sha256"]:
                raise StoreError(f"{path}: checksum differs from {MANIFEST}; the store is corrupt", path=path)

    def live_ids(self) -> np.ndarray:
        if not len(self.dead):
            return self.ids
        return self.ids[~_member(self.ids, self.dead)]


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
                 layout_upgraded: bool = False) -> None:
        self.path = path
        self.manifest = manifest
        self._segments = segments
        #: The record schema version the store was written with, when older and upgraded on open.
        self.migrated_from = migrated_from
        #: True when the store has the single-generation layout; the next commit rewrites it as segments.
        self.layout_upgraded = layout_upgraded
        self._staged: Segment | None = None
        self._staged_deleted = np.empty(0, np.int64)
        self._keys: dict[tuple[str, str], int] | None = None
        self._cache: gpd.GeoDataFrame | None = None
        self._count = _resolve(self._segments)
        self._dirty = migrated_from is not None or layout_upgraded

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open an existing store and verify it against its manifest (sizes and edge hashes).

        A store of an older schema version or layout is read as it is (`migrated_from`,
        `layout_upgraded` say so); the next commit writes it in the current ones.
        """
        path = Path(path)
        for attempt in range(3):
            try:
                return cls._open(path)
            except _Moved:
                continue  # a writer replaced segments between our reading the manifest and their files
        return cls._open(path, retry=False)

    @classmethod
    def _open(cls, path: Path, retry: bool = True) -> Store:
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{path}: not an XVision store (no {MANIFEST}); index imagery into it first",
                             path=path, field="store")
        before = manifest_path.read_bytes()
        try:
            manifest = json.loads(before)
        except ValueError as exc:
            raise StoreError(f"{manifest_path}: unreadable manifest ({exc})", path=manifest_path) from None
        version = manifest.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise StoreError(f"{manifest_path}: schema version {version} is not one this version reads "
                             f"({', '.join(map(str, READABLE_VERSIONS))})", path=manifest_path, value=version)
        legacy = manifest.get("layout", 1) == 1
        if legacy:
            segments = [Segment.legacy(path, manifest)] if manifest.get("files") else []
        else:
            try:
                segments = [Segment.open(path, entry) for entry in manifest["segments"]]
            except StoreError:
                if retry and manifest_path.read_bytes() != before:
                    raise _Moved() from None
                raise
        store = cls(path, manifest, segments, migrated_from=version if version != SCHEMA_VERSION else None,
                    layout_upgraded=legacy)
        if len(store) != manifest["count"]:
            raise StoreError(f"{path}: manifest says {manifest['count']} records, the segments hold {len(store)}",
                             path=path)
        if legacy:
            store.manifest = {**manifest, "schema_version": SCHEMA_VERSION}
        return store

    @classmethod
    def open_or_create(cls, path: str | Path, encoder: dict, index_type: str = "auto") -> Store:
        """Open the store for writing with `encoder` (its manifest entry), creating it if absent.

        `index_type` ("auto" or one of `indexer.ann.INDEX_KINDS`) applies to a new store; an
        existing one keeps its own (convert it with `compact(index_type=...)`).
        """
        path = Path(path)
        if (path / MANIFEST).is_file():
            store = cls.open(path)
            store.check_encoder(encoder)
            return store
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: exists and is not a directory", path=path, field="store")
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
        return cls(path, manifest, [])

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
        """Hash every file of every segment in full (opening checks sizes and edges only)."""
        for seg in self._segments:
            seg.verify()

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

        Writers that may race hold `write_lock` around open, upsert and commit.
        """
        if not self._dirty:
            return
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
            self._segments.append(Segment.open(self.path, entry))
            self._staged, self._staged_deleted = None, np.empty(0, np.int64)
            self._changed()
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
        """
        if index_type is not None:
            AnnConfig(kind=index_type)
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
        self._segments = (self._segments[:start] if not self.layout_upgraded else []) + [Segment.open(self.path, entry)]
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
        tmp = self.path / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        _publish(tmp, self.path / MANIFEST)
        self.manifest = manifest

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
        table = self._live_table().set_index("record_id")
        unknown = [i for i in ids if i not in table.index]
        if unknown:
            raise NotFoundError(f"{self.path}: no record with id {unknown[0]}", path=self.path,
                                field="record_id", value=unknown[0])
        return gpd.GeoDataFrame(table.loc[ids].reset_index(), geometry="geometry", crs="EPSG:4326")

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


def _upgrade(table: gpd.GeoDataFrame, version: int) -> gpd.GeoDataFrame:
    """A record table of schema `version` in the current schema (nothing is dropped: version 1's
    JSON ``attributes`` become ``attr_*`` columns)."""
    if version == 1 and LEGACY_ATTRIBUTES in table.columns:
        attrs = attributes_from_json(table[LEGACY_ATTRIBUTES])
        table = table.drop(columns=[LEGACY_ATTRIBUTES])
        table = gpd.GeoDataFrame(pd.concat([table, attrs], axis=1), geometry="geometry", crs=table.crs)
    return table
