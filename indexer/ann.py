"""Nearest-neighbour indexes for the store: exact Flat for small stores, HNSW or IVF for large ones.

One `AnnIndex` covers one immutable set of vectors (a store segment): its record ids, its float32
vectors (the stored originals, usually a memory-mapped ``.npy``) and a FAISS index built over
them. Every kind answers the same question with the same guarantees:

* Scores are exact cosine similarities (inner products of the stored L2-normalised vectors). The
  approximate kinds only *propose* candidates (``rerank`` x k of them); each candidate is scored
  again on its stored vector, so results of several segments merge exactly and compressed codes
  (SQ8, 4-bit PQ) never leak into the scores the user sees.
* ``search(q, k, allowed=..., exclude=...)`` returns exactly ``min(k, #eligible)`` hits, where
  eligible = in ``allowed`` (all when None) and not in ``exclude``. Filters reach FAISS as an
  ``IDSelector`` in the search parameters, so the index itself skips ineligible vectors, and the
  search looks wider the fewer vectors pass (see `_effort`). When a
  search still comes back short (a selective filter, HNSW's graph walk, IVF's probed lists), the
  effort grows 4x per round (nprobe / efSearch and the candidate count) and, as the last resort,
  the eligible vectors are scored exhaustively. Filters matching few vectors (``exact_below_floats``)
  are scored exhaustively from the start: that is both exact and faster than a filtered walk.
* Ids are the caller's int64 record ids for every kind (IDMap2 for Flat and HNSW, native ids for
  IVF). Nothing is ever removed from a built index: HNSW cannot remove, and the store's segments
  are immutable anyway. A replaced or deleted record is excluded through ``exclude`` (the
  segment's tombstones) and disappears from the index when segments are compacted.

Kinds (``INDEX_KINDS``):

========  =====================================================  ===================================
kind      FAISS index                                            in memory per vector (d = dim)
========  =====================================================  ===================================
flat      IndexIDMap2(IndexFlatIP) - exact                       4d bytes (memory-mapped on read)
hnsw      IndexIDMap2(IndexHNSWSQ, 8-bit SQ) + re-ranking        d + 8*M bytes (graph mapped too)
ivf-sq8   IndexIVFScalarQuantizer (8-bit) + re-ranking           d + 8 bytes (lists memory-mapped)
ivf-pq    IndexIVFPQFastScan (4-bit PQ, SIMD scan) + re-ranking  d/16 (d >= 256) or d/4 bytes + 8
========  =====================================================  ===================================

``choose_kind`` picks Flat while an exhaustive scan stays cheap (n x d <= 2^24 floats, e.g.
262k vectors at 64-d or 16k at 1024-d) and ``ivf-pq`` above: it builds in minutes on two cores
where HNSW at 1024-d would take hours, and it met the latency and recall targets of
benchmarks/search.py. Reading uses ``IO_FLAG_MMAP_IFC`` (Flat, HNSW) or ``IO_FLAG_MMAP``
(IVF-SQ8 lists) so that several readers of a store share the pages of one file; FAISS 1.15 cannot
map fast-scan's blocked lists, so ``ivf-pq`` is read into memory (small: 72 bytes per vector at
1024-d).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from indexer.core.errors import InputError, StoreError

INDEX_KINDS = ("flat", "hnsw", "ivf-sq8", "ivf-pq")
#: Flat while an exhaustive scan touches at most this many floats (64 MiB of vectors).
FLAT_MAX_FLOATS = 1 << 24
#: Fewer vectors than this are always indexed Flat (k-means needs 39 per list, 16 lists at least).
MIN_APPROXIMATE = 39 * 16
#: Rounds of growing effort before an exhaustive scan settles a short result.
_GROWTH_ROUNDS = 3


@dataclass(frozen=True)
class AnnConfig:
    """How to build and search an index. Build fields are baked into the FAISS file; search
    fields (nprobe, efSearch, rerank, exact_below_floats) apply to whichever index is opened."""

    kind: str = "auto"  # "auto" (choose_kind by size) or one of INDEX_KINDS
    hnsw_m: int = 32
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 64
    ivf_nlist: int | None = None  # None: about 2 sqrt(n), a power of two
    ivf_nprobe: int | None = None  # None: max(8, nlist / 128)
    ivf_train_per_list: int = 64  # training sample = this x nlist vectors (k-means needs >= 39)
    rerank: int = 10  # candidates proposed per result, re-scored on the stored vectors
    # Filters matching at most this many floats (vectors x dim: 16k vectors at 64-d, 1k at 1024-d,
    # about a millisecond of reading) are scored exhaustively instead of walking the index.
    exact_below_floats: int = 1 << 20

    def __post_init__(self) -> None:
        if self.kind != "auto" and self.kind not in INDEX_KINDS:
            raise InputError(f"unknown index type {self.kind!r}; choose auto or one of {', '.join(INDEX_KINDS)}",
                             field="index_type", value=self.kind)
        for name in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_train_per_list", "rerank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}", field=name, value=value)


def choose_kind(n: int, dim: int) -> str:
    """The index kind for `n` vectors of `dim` dimensions: exact Flat while cheap, else ivf-pq."""
    return "flat" if n * dim <= FLAT_MAX_FLOATS else "ivf-pq"


def resolve_kind(config: AnnConfig, n: int, dim: int) -> str:
    kind = choose_kind(n, dim) if config.kind == "auto" else config.kind
    # IVF needs enough vectors to train its coarse quantizer (and SQ its ranges); below that an
    # exhaustive scan is cheap anyway, so small segments of any store are Flat.
    if n < MIN_APPROXIMATE:
        return "flat"
    return kind


def _nlist(config: AnnConfig, n: int) -> int:
    if config.ivf_nlist is not None:
        nlist = config.ivf_nlist
    else:
        nlist = 2 ** round(math.log2(max(2.0 * math.sqrt(n), 16)))
    return int(max(1, min(nlist, n // 39)))


def _pq_m(dim: int) -> int:
    """Sub-quantizers of 4-bit PQ: 8 dims each at high dimension, 2 each below 256-d."""
    per = 8 if dim >= 256 else 2
    m = max(1, dim // per)
    while dim % m:
        m -= 1
    return m


def _kind_of(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexIVFPQFastScan):
        return "ivf-pq"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivf-sq8"
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlat):
            return "flat"
    raise StoreError(f"unsupported FAISS index {type(index).__name__}")


#: Read flags by the file's FAISS fourcc: IDMap2 (Flat, HNSW) and IVF-SQ lists are memory-mapped;
#: fast-scan's blocked lists ("IwPf") cannot be mapped by FAISS 1.15 and are read into memory.
_READ_FLAGS = {
    b"IxM2": faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY,
    b"IwSq": faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY,
}


class AnnIndex:
    """A FAISS index over one immutable set of (id, vector) pairs; see the module docstring."""

    def __init__(self, index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, config: AnnConfig) -> None:
        if len(ids) != len(vectors) or index.ntotal != len(ids):
            raise StoreError(f"index holds {index.ntotal} vectors for {len(ids)} ids and {len(vectors)} stored vectors")
        self.index = index
        self.kind = _kind_of(index)
        self.config = config
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vectors = vectors
        # Ids are looked up by binary search; segments store them sorted, others get a sorter.
        self._sorter = None if np.all(self.ids[1:] > self.ids[:-1]) else np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids if self._sorter is None else self.ids[self._sorter]

    # -- building and files -----------------------------------------------------------------
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, config: AnnConfig = AnnConfig()) -> AnnIndex:
        """Build an index over `vectors` (n x d float32, L2-normalised) with record ids `ids`."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(np.unique(ids)) != len(ids):
            raise InputError("record ids of one index must be unique", field="record_id")
        n, dim = vectors.shape
        kind = resolve_kind(config, n, dim)
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, config.hnsw_m, ip)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
            inner.train(_sample(data, 100_000))
            index = faiss.IndexIDMap2(inner)
        else:
            nlist = _nlist(config, n)
            quantizer = faiss.IndexFlatIP(dim)
            if kind == "ivf-sq8":
                index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
            else:
                index = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, _pq_m(dim), 4, ip)
            index.cp.niter = 10  # the default 25 k-means rounds cost minutes at 1024-d for no recall
            index.train(_sample(data, config.ivf_train_per_list * nlist))
            index.own_fields = True
            quantizer.this.disown()
        # Added in chunks: FAISS copies and converts each call's input, which is 4 GB at 1M x 1024.
        for start in range(0, n, 65_536):
            index.add_with_ids(data[start:start + 65_536], ids[start:start + 65_536])
        return cls(index, ids, vectors, config)

    def save(self, path: str | Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, ids: np.ndarray, vectors: np.ndarray, config: AnnConfig = AnnConfig(), *,
             handle: BinaryIO | None = None) -> AnnIndex:
        """Open an index file read-only (memory-mapped where FAISS allows) beside its ids and vectors.

        `handle`: the file, already opened (and checked) by the caller. It is then read through
        that handle, never by `path` again: on Linux FAISS opens ``/proc/self/fd/N``, which names
        the opened file even after a compaction removed its path; elsewhere its bytes are read
        through the handle (not mapped). `path` names the file in errors.
        """
        path = Path(path)
        try:
            if handle is None:
                with path.open("rb") as fh:
                    fourcc = fh.read(4)
                index = faiss.read_index(str(path), _READ_FLAGS.get(fourcc, faiss.IO_FLAG_READ_ONLY))
            else:
                fourcc = os.pread(handle.fileno(), 4, 0)
                opened = f"/proc/self/fd/{handle.fileno()}"
                if os.path.exists(opened):
                    index = faiss.read_index(opened, _READ_FLAGS.get(fourcc, faiss.IO_FLAG_READ_ONLY))
                else:
                    size = os.fstat(handle.fileno()).st_size
                    data = np.frombuffer(os.pread(handle.fileno(), size, 0), dtype=np.uint8)
                    index = faiss.deserialize_index(data)
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0][:200]})", path=path) from None
        return cls(index, ids, vectors, config)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.index.d

    def index_bytes(self) -> int:
        """Bytes of the serialized FAISS index (codes, lists, graph, ids), not of the stored vectors."""
        return int(faiss.serialize_index(self.index).size)

    # -- searching ----------------------------------------------------------------------------
    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Rows of `ids` in `vectors` (-1 where an id is not in this index)."""
        ids = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(self._sorted_ids, ids)
        at = np.minimum(at, len(self._sorted_ids) - 1)
        found = self._sorted_ids[at] == ids if len(self._sorted_ids) else np.zeros(len(ids), bool)
        rows = at if self._sorter is None else self._sorter[at]
        return np.where(found, rows, -1)

    def search(self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, exact scores) of the best `min(k, #eligible)` vectors, best first.

        `allowed`: ids that may be returned (None: all); `exclude`: ids that may not (tombstones).
        Runs on one OpenMP thread (of the calling thread; others are unaffected): one query is
        too little work to split, and split it waits for descheduled threads on a busy machine
        (a 100k x 64 Flat query: 2.4 ms on one thread, 35 ms on two, measured here).
        """
        with _one_thread():
            return self._search(query, k, allowed, exclude)

    def _search(self, query, k, allowed, exclude) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(-1))
        if q.shape[0] != self.dim:
            raise InputError(f"query has {q.shape[0]} dimensions, the index {self.dim}", field="vector", value=q.shape[0])
        empty = (np.empty(0, np.int64), np.empty(0, np.float32))
        if k <= 0 or len(self) == 0:
            return empty
        exclude = _sorted_unique(exclude if exclude is not None else [])
        if allowed is not None:
            allowed = _sorted_unique(allowed)
            if len(allowed) * self.dim <= self.config.exact_below_floats:
                return self._exhaustive(q, k, self._eligible_rows(allowed, exclude))
        selector, keep = self._selector(allowed, exclude)
        fetch, effort = self._fetch(k, allowed), self._effort(allowed)
        for _ in range(_GROWTH_ROUNDS):
            found = self._ann(q, fetch, effort, selector)
            if len(found) >= k:
                return self._rerank(q, k, found)
            if self._exhaustive_round(effort):
                break  # that search saw every eligible vector: fewer than k exist
            fetch, effort = fetch * 4, effort * 4
        del keep
        eligible = self._eligible_rows(allowed, exclude)
        if self.kind == "flat" or len(found) >= len(eligible):
            return self._rerank(q, k, found)
        return self._exhaustive(q, k, eligible)

    def _share(self, allowed: np.ndarray | None) -> float:
        return 1.0 if allowed is None else min(1.0, max(len(allowed) / len(self), 1e-6))

    def _effort(self, allowed: np.ndarray | None) -> int:
        base = self._nprobe() if self.kind.startswith("ivf") else self.config.hnsw_ef_search
        if self.kind == "flat":
            return base
        # A filter keeping a share s of the vectors leaves ~s of each probed list / visited node,
        # and its records cluster (a season, a region): look 1/s wider, at most 32x. Measured at
        # 300k x 1024 with a 10% date filter: recall@10 0.967 with 1/sqrt(s) and 10 candidates
        # per hit, 0.995 with 1/s and 20, for 0.3 ms more.
        return int(base * min(32.0, 1.0 / self._share(allowed)))

    def _fetch(self, k: int, allowed: np.ndarray | None) -> int:
        if self.kind == "flat":
            return k
        return k * self.config.rerank * (2 if self._share(allowed) < 0.5 else 1)

    def _nprobe(self) -> int:
        if self.config.ivf_nprobe is not None:
            return self.config.ivf_nprobe
        return max(8, self.index.nlist // 128)

    def _exhaustive_round(self, effort: int) -> bool:
        return self.kind == "flat" or (self.kind.startswith("ivf") and effort >= self.index.nlist)

    def _selector(self, allowed: np.ndarray | None, exclude: np.ndarray) -> tuple[faiss.IDSelector | None, list]:
        """The FAISS selector of eligible ids, and the objects it points into (kept alive by the caller)."""
        if allowed is None and not len(exclude):
            return None, []
        if allowed is None:
            batch = faiss.IDSelectorBatch(len(exclude), faiss.swig_ptr(exclude))
            return faiss.IDSelectorNot(batch), [batch, exclude]
        top = int(max(allowed[-1], 0)) + 1
        mask = np.zeros(top, dtype=bool)
        mask[allowed[allowed >= 0]] = True
        mask[exclude[(exclude >= 0) & (exclude < top)]] = False
        bitmap = np.packbits(mask, bitorder="little")
        return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), [bitmap]

    def _ann(self, q: np.ndarray, fetch: int, effort: int, selector) -> np.ndarray:
        if self.kind == "flat":
            params = faiss.SearchParameters()
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(effort, fetch)
        else:
            params = faiss.SearchParametersIVF()
            params.nprobe = min(effort, self.index.nlist)
        if selector is not None:
            params.sel = selector
        fetch = min(fetch, len(self))
        _, found = self.index.search(q.reshape(1, -1), fetch, params=params)
        found = found[0]
        return found[found >= 0]

    def _eligible_rows(self, allowed: np.ndarray | None, exclude: np.ndarray) -> np.ndarray:
        if allowed is None:
            rows = np.arange(len(self))
            if len(exclude):
                rows = rows[~np.isin(self.ids, exclude)]
            return rows
        rows = self.positions(allowed)
        keep = rows >= 0
        if len(exclude):
            keep &= ~np.isin(allowed, exclude)
        return rows[keep]

    def _score(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        order = np.argsort(rows)  # sequential reads of a memory-mapped file
        scores = np.empty(len(rows), dtype=np.float32)
        # einsum, not `@`: OpenBLAS spreads a gemv over every core, and on a shared machine its
        # threads wait for each other (11k x 64: 21 ms with `@`, 0.6 ms with einsum, measured).
        scores[order] = np.einsum("ij,j->i", np.asarray(self.vectors[rows[order]], dtype=np.float32), q)
        return scores

    def _top(self, k: int, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(rows) > k:
            part = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[part], scores[part]
        order = np.lexsort((self.ids[rows], -scores))  # ties broken by id: deterministic
        return self.ids[rows[order]], scores[order]

    def _rerank(self, q: np.ndarray, k: int, found_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.positions(np.unique(found_ids))
        rows = rows[rows >= 0]
        return self._top(k, rows, self._score(q, rows))

    def _exhaustive(self, q: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(rows):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), 262_144):  # bounded temporaries for huge eligible sets
            part = rows[start:start + 262_144]
            scores[start:start + len(part)] = self._score(q, part)
        return self._top(k, rows, scores)


@contextmanager
def _one_thread():
    # omp_set_num_threads sets the calling thread's own setting, so concurrent callers do not clash.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _sorted_unique(ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    return ids if np.all(ids[1:] > ids[:-1]) else np.unique(ids)  # stores pass them sorted already


def _sample(data: np.ndarray, count: int) -> np.ndarray:
    if len(data) <= count:
        return data
    rows = np.sort(np.random.default_rng(0).choice(len(data), size=count, replace=False))
    return np.ascontiguousarray(data[rows])
