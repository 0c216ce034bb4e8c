"""The store: a FAISS index of embeddings plus a GeoParquet table of records, tied by a manifest.

Layout of a store directory::

    manifest.json             encoder id, weights hash, normalization, dimension, schema version,
                              the current generation's file names, row count and SHA-256s
    index-000007.faiss        IndexIDMap2 over IndexFlatIP (ids = record_id, int64)
    records-000007.parquet    one row per (parcel, date), geometry in WGS84 (GeoParquet)

Why GeoParquet and not SQLite: records are written in batches and read as whole tables
(similarity filters, history, export, training sets), which a columnar file does well; it keeps
the geometry in a standard (GeoParquet/WKB) any GIS opens, and it lets one generation's metadata
be a single immutable file that is published atomically together with its index.

Crash safety: every commit writes a new generation of both files (temporary name, fsync, rename,
fsync of the directory), then atomically replaces `manifest.json` (same dance). The manifest is
the only commit point: a crash before its replacement leaves the previous generation, whose files
are untouched, and the stray new files are removed at the next commit. `open` checks row counts
and checksums, so a store that does not match its manifest is reported, never silently used.

Ids: a (parcel, date) keeps its record_id when re-indexed: the vector is removed and re-added
under the same id (IndexIDMap2 supports remove_ids and reconstruct; HNSW would not).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import faiss
import geopandas as gpd
import numpy as np
import pandas as pd

from indexer.core.errors import EncoderMismatchError, StoreError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
_GEN_FILE = re.compile(r"^(index|records)-(\d{6})\.(faiss|parquet)(\.tmp)?$")
#: Encoder manifest fields that must match for two sets of embeddings to be comparable.
ENCODER_IDENTITY = ("id", "dim", "weights_sha256", "normalization", "bands")


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
            raise StoreError(f"{path}: another process is writing this store") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Store:
    """An opened store. Mutations are staged in memory until `commit()`."""

    def __init__(self, path: Path, manifest: dict, index: faiss.Index, records: gpd.GeoDataFrame) -> None:
        self.path = path
        self.manifest = manifest
        self.index = index
        self.records = records
        self._dirty = False

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open an existing store and verify it against its manifest."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{path}: not an XVision store (no {MANIFEST}); create one with `xvision index ... --store {path}`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as exc:
            raise StoreError(f"{manifest_path}: unreadable manifest ({exc})") from None
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(f"{manifest_path}: schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
        files = manifest["files"]
        index_path, records_path = path / files["index"], path / files["records"]
        for file, key in ((index_path, "index_sha256"), (records_path, "records_sha256")):
            if not file.is_file():
                raise StoreError(f"{file}: missing, the store does not match its manifest")
            if _sha256(file) != files[key]:
                raise StoreError(f"{file}: checksum differs from {MANIFEST}; the store is corrupt")
        index = faiss.read_index(str(index_path))
        records = gpd.read_parquet(records_path)
        count = manifest["count"]
        if index.ntotal != count or len(records) != count:
            raise StoreError(f"{path}: manifest says {count} records, index has {index.ntotal}, table has {len(records)}")
        return cls(path, manifest, index, records)

    @classmethod
    def open_or_create(cls, path: str | Path, encoder: dict) -> Store:
        """Open the store for writing with `encoder` (its manifest entry), creating it if absent."""
        path = Path(path)
        if (path / MANIFEST).is_file():
            store = cls.open(path)
            store.check_encoder(encoder)
            return store
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: exists and is not a directory")
        if path.is_dir() and any(p for p in path.iterdir() if not p.name.startswith(".")):
            raise StoreError(f"{path}: directory is not empty and has no {MANIFEST}; refusing to write a store into it")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "encoder": encoder,
            "dimension": encoder["dim"],
            "metric": "inner_product (vectors L2-normalized: cosine similarity)",
            "index_type": "IDMap2,Flat",
            "generation": 0,
            "count": 0,
            "next_id": 0,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": None,
        }
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(encoder["dim"]))
        return cls(path, manifest, index, gpd.GeoDataFrame({"record_id": pd.Series(dtype="int64")}, geometry=[], crs="EPSG:4326"))

    def check_encoder(self, encoder: dict) -> None:
        """Raise EncoderMismatchError when `encoder` would write vectors incomparable with ours."""
        ours = self.manifest["encoder"]
        for key in ENCODER_IDENTITY:
            if ours.get(key) != encoder.get(key):
                raise EncoderMismatchError(
                    f"{self.path}: store was written by encoder {ours.get('id')!r} "
                    f"(weights {str(ours.get('weights_sha256'))[:12]}), not {encoder.get('id')!r} "
                    f"(weights {str(encoder.get('weights_sha256'))[:12]}): {key} differs. "
                    f"Use --encoder {ours.get('id')} or another --store."
                )

    @property
    def encoder_id(self) -> str:
        return self.manifest["encoder"]["id"]

    def __len__(self) -> int:
        return len(self.records)

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, rows: gpd.GeoDataFrame, vectors: np.ndarray) -> tuple[int, int]:
        """Add records, or replace those whose (parcel_id, date) is already stored.

        `rows` carries every record column except `record_id`; returns (added, replaced).
        """
        if len(rows) != len(vectors):
            raise ValueError("one vector per row")
        rows = rows.drop_duplicates(["parcel_id", "date"], keep="last")
        vectors = vectors[rows.index.to_numpy()] if len(rows) != len(vectors) else vectors
        rows = rows.reset_index(drop=True)
        key = self.records.set_index(["parcel_id", "date"])["record_id"] if len(self.records) else pd.Series(dtype="int64")
        existing = [key.get((p, d)) for p, d in zip(rows["parcel_id"], rows["date"])]
        ids = np.empty(len(rows), dtype=np.int64)
        next_id = int(self.manifest["next_id"])
        replaced_ids = []
        for i, rid in enumerate(existing):
            if rid is None or pd.isna(rid):
                ids[i] = next_id
                next_id += 1
            else:
                ids[i] = int(rid)
                replaced_ids.append(int(rid))
        if replaced_ids:
            self.index.remove_ids(np.asarray(replaced_ids, dtype=np.int64))
            self.records = self.records[~self.records["record_id"].isin(replaced_ids)]
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        rows = rows.assign(record_id=ids)
        frames = [f for f in (self.records, rows) if len(f)]
        self.records = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        self.manifest["next_id"] = next_id
        self._dirty = True
        return len(rows) - len(replaced_ids), len(replaced_ids)

    def delete(self, record_ids: Iterable[int]) -> int:
        """Remove records by id (ids of the others do not change)."""
        ids = np.asarray(sorted(set(int(i) for i in record_ids)), dtype=np.int64)
        removed = int(self.index.remove_ids(ids))
        self.records = self.records[~self.records["record_id"].isin(ids)].reset_index(drop=True)
        self._dirty = True
        return removed

    def commit(self) -> None:
        """Atomically publish the staged state as a new generation (no-op when nothing changed).

        Writers that may race hold `write_lock` around open, upsert and commit.
        """
        if not self._dirty:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        gen = int(self.manifest["generation"]) + 1
        index_name, records_name = f"index-{gen:06d}.faiss", f"records-{gen:06d}.parquet"
        index_tmp, records_tmp = self.path / f"{index_name}.tmp", self.path / f"{records_name}.tmp"
        faiss.write_index(self.index, str(index_tmp))
        _publish(index_tmp, self.path / index_name)
        table = self.records.sort_values("record_id").reset_index(drop=True)
        table.to_parquet(records_tmp, index=False)
        _publish(records_tmp, self.path / records_name)
        manifest = dict(self.manifest)
        manifest.update(
            generation=gen,
            count=len(table),
            updated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            files={
                "index": index_name,
                "records": records_name,
                "index_sha256": _sha256(self.path / index_name),
                "records_sha256": _sha256(self.path / records_name),
            },
        )
        tmp = self.path / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        _publish(tmp, self.path / MANIFEST)
        self.manifest = manifest
        self.records = table
        self._dirty = False
        self._remove_stale(keep={index_name, records_name})

    def _remove_stale(self, keep: set[str]) -> None:
        for file in self.path.iterdir():
            if _GEN_FILE.match(file.name) and file.name not in keep:
                file.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------
    def find(self, parcel_id: str, date: str | None = None) -> pd.DataFrame:
        """Records of a parcel (all dates, or one), sorted by date."""
        rows = self.records[self.records["parcel_id"] == str(parcel_id)]
        if date is not None:
            rows = rows[rows["date"] == date]
        return rows.sort_values("date")

    def record(self, parcel_id: str, date: str) -> pd.Series:
        """The record of (parcel, date), or StoreError naming what exists."""
        rows = self.find(parcel_id, date)
        if rows.empty:
            dates = self.find(parcel_id)["date"].tolist()
            if not dates:
                raise StoreError(f"{self.path}: no parcel {parcel_id!r} in the store")
            raise StoreError(f"{self.path}: parcel {parcel_id!r} has no record on {date} (dates: {', '.join(dates)})")
        return rows.iloc[0]

    def vector(self, record_id: int) -> np.ndarray:
        return self.index.reconstruct(int(record_id))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest record ids by cosine similarity."""
        k = min(k, self.index.ntotal)
        if k == 0:
            return []
        scores, ids = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def by_ids(self, record_ids: list[int]) -> pd.DataFrame:
        table = self.records.set_index("record_id")
        return table.loc[record_ids].reset_index()
