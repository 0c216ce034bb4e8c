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
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from contextlib import contextmanager
from pathlib import Path

import faiss
import geopandas as gpd
import numpy as np
import pandas as pd

from indexer.core.errors import EncoderMismatchError, InputError, NotFoundError, StoreError
from indexer.core.schema import (
    LEGACY_ATTRIBUTES, READABLE_VERSIONS, SCHEMA_VERSION, attribute_columns, attributes_from_json,
    validate,
)
from indexer.filters import RecordFilter
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


class Hit(NamedTuple):
    """One search result: the record id and its cosine similarity to the query."""

    record_id: int
    score: float


class Store:
    """An opened store. Mutations are staged in memory until `commit()`.

    Read it through the query API: `records(filter)`, `search(vector, k, filter)`,
    `vectors(ids)`, `by_ids(ids)`, `history(parcel_id)`, `record(parcel_id, date)`,
    `parcels()`, `dates()`.
    """

    def __init__(self, path: Path, manifest: dict, index: faiss.Index, table: gpd.GeoDataFrame,
                 migrated_from: int | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.index = index
        self._table = table
        #: The schema version the store was written with, when it was older and upgraded on open.
        self.migrated_from = migrated_from
        self._dirty = migrated_from is not None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open an existing store and verify it against its manifest.

        A store of an older schema version is upgraded in memory (`migrated_from` says from
        which); the next commit writes it in the current version.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{path}: not an XVision store (no {MANIFEST}); index imagery into it first",
                             path=path, field="store")
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as exc:
            raise StoreError(f"{manifest_path}: unreadable manifest ({exc})", path=manifest_path) from None
        version = manifest.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise StoreError(f"{manifest_path}: schema version {version} is not one this version reads "
                             f"({', '.join(map(str, READABLE_VERSIONS))})", path=manifest_path, value=version)
        files = manifest["files"]
        index_path, records_path = path / files["index"], path / files["records"]
        for file, key in ((index_path, "index_sha256"), (records_path, "records_sha256")):
            if not file.is_file():
                raise StoreError(f"{file}: missing, the store does not match its manifest", path=file)
            if _sha256(file) != files[key]:
                raise StoreError(f"{file}: checksum differs from {MANIFEST}; the store is corrupt", path=file)
        index = faiss.read_index(str(index_path))
        table = gpd.read_parquet(records_path)
        count = manifest["count"]
        if index.ntotal != count or len(table) != count:
            raise StoreError(f"{path}: manifest says {count} records, index has {index.ntotal}, table has {len(table)}",
                             path=path)
        migrated_from = None
        if version != SCHEMA_VERSION:
            table = _upgrade(table, version)
            manifest = {**manifest, "schema_version": SCHEMA_VERSION}
            migrated_from = version
        return cls(path, manifest, index, table, migrated_from)

    @classmethod
    def open_or_create(cls, path: str | Path, encoder: dict) -> Store:
        """Open the store for writing with `encoder` (its manifest entry), creating it if absent."""
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
        empty = gpd.GeoDataFrame({"record_id": pd.Series(dtype="int64")}, geometry=[], crs="EPSG:4326")
        return cls(path, manifest, index, empty)

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

    def __len__(self) -> int:
        return len(self._table)

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, rows: gpd.GeoDataFrame, vectors: np.ndarray) -> tuple[int, int]:
        """Add records, or replace those whose (parcel_id, date) is already stored.

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
        vectors = vectors[rows.index.to_numpy()]
        rows = rows.reset_index(drop=True)
        table = self._table
        key = table.set_index(["parcel_id", "date"])["record_id"] if len(table) else pd.Series(dtype="int64")
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
            table = table[~table["record_id"].isin(replaced_ids)]
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        rows = rows.assign(record_id=ids)
        frames = [f for f in (table, rows) if len(f)]
        self._table = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        self.manifest["next_id"] = next_id
        self._dirty = True
        return len(rows) - len(replaced_ids), len(replaced_ids)

    def delete(self, record_ids: Iterable[int]) -> int:
        """Remove records by id (ids of the others do not change)."""
        ids = np.asarray(sorted(set(int(i) for i in record_ids)), dtype=np.int64)
        removed = int(self.index.remove_ids(ids))
        self._table = self._table[~self._table["record_id"].isin(ids)].reset_index(drop=True)
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
        table = self._table.sort_values("record_id").reset_index(drop=True)
        table.to_parquet(records_tmp, index=False)
        _publish(records_tmp, self.path / records_name)
        manifest = dict(self.manifest)
        manifest.update(
            generation=gen,
            count=len(table),
            schema_version=SCHEMA_VERSION,
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
        self._table = table
        self._dirty = False
        self.migrated_from = None
        self._remove_stale(keep={index_name, records_name})

    def _remove_stale(self, keep: set[str]) -> None:
        for file in self.path.iterdir():
            if _GEN_FILE.match(file.name) and file.name not in keep:
                file.unlink(missing_ok=True)

    # -- reading: the query API --------------------------------------------------------------
    def records(self, filter: RecordFilter | None = None) -> gpd.GeoDataFrame:
        """The records passing `filter` (all of them without one), in record_id order."""
        if filter is None:
            return self._table
        return self._table[filter.mask(self._table)]

    def by_ids(self, record_ids: Sequence[int]) -> gpd.GeoDataFrame:
        """The records with these ids, in the order given (NotFoundError naming an unknown id)."""
        ids = [int(i) for i in record_ids]
        table = self._table.set_index("record_id")
        unknown = [i for i in ids if i not in table.index]
        if unknown:
            raise NotFoundError(f"{self.path}: no record with id {unknown[0]}", path=self.path,
                                field="record_id", value=unknown[0])
        return gpd.GeoDataFrame(table.loc[ids].reset_index(), geometry="geometry", crs=self._table.crs)

    def vectors(self, record_ids: Sequence[int]) -> np.ndarray:
        """The stored embeddings of these records, float32 [n, dim], in the order given."""
        ids = np.asarray([int(i) for i in record_ids], dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            return np.asarray(self.index.reconstruct_batch(ids), dtype=np.float32).reshape(len(ids), -1)
        except RuntimeError:
            unknown = next(int(i) for i in ids if i not in set(self._table["record_id"].tolist()))
            raise NotFoundError(f"{self.path}: no embedding for record id {unknown}", path=self.path,
                                field="record_id", value=unknown) from None

    def vector(self, record_id: int) -> np.ndarray:
        """The stored embedding of one record, float32 [dim]."""
        return self.vectors([record_id])[0]

    def search(self, vector: np.ndarray, k: int, filter: RecordFilter | None = None) -> list[Hit]:
        """The `k` records nearest to `vector` by cosine similarity, best first, among those
        passing `filter`: exactly ``min(k, number of matching records)`` hits."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"the number of results must be a positive integer, got {k!r}", field="k", value=k)
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise InputError(f"query vector has {query.shape[1]} dimensions, the store's embeddings {self.dimension}",
                             field="vector", value=query.shape[1])
        if filter is None:
            k = min(int(k), self.index.ntotal)
            params = None
        else:
            allowed = self._table["record_id"].to_numpy(np.int64)[filter.mask(self._table)]
            k = min(int(k), len(allowed))
            # An ID selector restricts the search itself, so a filter that few records pass still
            # returns k hits (no over-fetch and retry); the flat index makes it exact.
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        if k == 0:
            return []
        scores, ids = self.index.search(query, k, params=params)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

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
        table = self._table.sort_values("date")
        columns = ["parcel_id", *attribute_columns(table), "geometry"]
        latest = table.drop_duplicates("parcel_id", keep="last")[columns]
        return gpd.GeoDataFrame(latest.sort_values("parcel_id").reset_index(drop=True), geometry="geometry",
                                crs=self._table.crs)

    def dates(self) -> list[str]:
        """The acquisition dates in the store, oldest first."""
        return sorted(self._table["date"].astype(str).unique().tolist()) if len(self._table) else []


def _upgrade(table: gpd.GeoDataFrame, version: int) -> gpd.GeoDataFrame:
    """A record table of schema `version` in the current schema (nothing is dropped: version 1's
    JSON ``attributes`` become ``attr_*`` columns)."""
    if version == 1 and LEGACY_ATTRIBUTES in table.columns:
        attrs = attributes_from_json(table[LEGACY_ATTRIBUTES])
        table = table.drop(columns=[LEGACY_ATTRIBUTES])
        table = gpd.GeoDataFrame(pd.concat([table, attrs], axis=1), geometry="geometry", crs=table.crs)
    return table
