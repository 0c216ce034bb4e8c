"""Vector search at scale: build time, bytes per vector, single-query latency and recall@10 vs Flat.

    python benchmarks/search.py                          # 1M vectors at 64-d and 1024-d (~15 min)
    python benchmarks/search.py --n 100000               # quicker, same report
    python benchmarks/search.py --n 100000 --dims 1024 --kinds flat hnsw ivf-sq8 ivf-pq

Data: a Gaussian mixture on the unit sphere, shaped like parcel embeddings: 50 families of crops
(super-clusters), 1,000 clusters inside them with Dirichlet(0.5) sizes, each spread along its
own 16-dimensional subspace plus isotropic noise (same-cluster cosine about 0.5, unrelated about
0). Every vector gets a date and a position that depend on its cluster (a crop has its season and
its region), so the filters below keep neighbours unevenly, as real ones do:

* date filter: 7 consecutive acquisition dates of 70 (about 10% of the records);
* area filter: a box covering about 1% of the records.

Queries are fresh draws from the same mixture. Ground truth is exhaustive search
(faiss.knn on the stored vectors, restricted to the eligible rows for filtered queries). Latency
is one query at a time (k=10) through `indexer.ann.AnnIndex.search`, including the filter's
selector and the exact re-ranking on the stored vectors, which are memory-mapped from a .npy
file exactly as the store keeps them. "bytes/vec" is the index file over n (the stored float32
vectors, 4d bytes each, live on disk beside it for every kind). FAISS builds with 2 threads; a
single query runs on one (see `AnnIndex.search`).

The last line is `search NxD p50 P ms recall@10 Q` for the default large-store index
(`indexer.ann.choose_kind`) at the largest dimension, unfiltered.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.ann import INDEX_KINDS, AnnConfig, AnnIndex, choose_kind  # noqa: E402

DATES = 70
CLUSTERS = 1000
RANK = 16


def mixture(path: Path, n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write n mixture vectors to a .npy at `path`; return (memory-mapped vectors, dates, xy)."""
    rng = np.random.default_rng(seed)
    families = _unit(rng.standard_normal((CLUSTERS // 20, dim), dtype=np.float32))
    centers = _unit(families[rng.integers(0, len(families), CLUSTERS)]
                    + rng.standard_normal((CLUSTERS, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim)))
    bases = rng.standard_normal((CLUSTERS, RANK, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
    scales = (0.6 * np.geomspace(1.0, 0.1, RANK)).astype(np.float32)
    weights = rng.dirichlet(np.full(CLUSTERS, 0.5))
    season = rng.integers(0, DATES, CLUSTERS)  # the cluster's typical acquisition date
    home = rng.random((CLUSTERS, 2))  # the cluster's region in a unit square
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    labels = rng.choice(CLUSTERS, size=n, p=weights)
    for start in tqdm(range(0, n, 65_536), desc=f"mixture {n}x{dim}", unit="chunk", leave=False):
        chunk = labels[start:start + 65_536]
        block = np.empty((len(chunk), dim), dtype=np.float32)
        for c in np.unique(chunk):
            rows = np.flatnonzero(chunk == c)
            z = rng.standard_normal((len(rows), RANK), dtype=np.float32) * scales
            block[rows] = centers[c] + z @ bases[c]
        block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(0.5 / np.sqrt(dim))
        out[start:start + len(chunk)] = _unit(block)
    out.flush()
    dates = (season[labels] + np.rint(rng.normal(0, 8, n)).astype(int)) % DATES
    xy = (home[labels] + rng.normal(0, 0.15, (n, 2))) % 1.0
    return np.load(path, mmap_mode="r"), dates, xy


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _filters(dates: np.ndarray, xy: np.ndarray) -> dict[str, np.ndarray | None]:
    in_box = (xy[:, 0] >= 0.45) & (xy[:, 0] < 0.55) & (xy[:, 1] >= 0.45) & (xy[:, 1] < 0.55)
    return {
        "none": None,
        "date": np.flatnonzero((dates >= 30) & (dates < 37)),
        "area": np.flatnonzero(in_box),
    }


def _truth(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Exact top-10 ids (= rows) by brute force, over the allowed rows only."""
    if allowed is None:
        best = np.empty((len(queries), 10), dtype=np.int64)
        for start in range(0, len(vectors), 1 << 18):  # chunked: the vectors may be 4 GB
            part = np.ascontiguousarray(vectors[start:start + (1 << 18)])
            scores, ids = faiss.knn(queries, part, 10, metric=faiss.METRIC_INNER_PRODUCT)
            ids += start
            if start == 0:
                best_scores, best = scores, ids
            else:
                both_s, both_i = np.hstack([best_scores, scores]), np.hstack([best, ids])
                order = np.argsort(-both_s, axis=1)[:, :10]
                best_scores, best = np.take_along_axis(both_s, order, 1), np.take_along_axis(both_i, order, 1)
        return best
    _, rows = faiss.knn(queries, np.ascontiguousarray(vectors[allowed]), 10, metric=faiss.METRIC_INNER_PRODUCT)
    return allowed[rows]


def _time_queries(index: AnnIndex, queries: np.ndarray, allowed: np.ndarray | None) -> tuple[list[float], np.ndarray]:
    latencies, found = [], np.full((len(queries), 10), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        start = time.perf_counter()
        ids, _ = index.search(q, 10, allowed=allowed)
        latencies.append(time.perf_counter() - start)
        found[i, :len(ids)] = ids
    return latencies, found


def run_dimension(n: int, dim: int, kinds: list[str], n_queries: int, workdir: Path,
                  threads: int = 2) -> list[dict]:
    vectors, dates, xy = mixture(workdir / f"vectors-{dim}.npy", n + n_queries, dim)
    queries = np.ascontiguousarray(vectors[n:])
    vectors = vectors[:n]
    ids = np.arange(n, dtype=np.int64)
    filters = _filters(dates[:n], xy[:n])
    faiss.omp_set_num_threads(threads)
    truth = {name: _truth(vectors, queries, allowed) for name, allowed in filters.items()}
    rows = []
    flat_bytes = None
    for kind in kinds:
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        built = AnnIndex.build(ids, vectors, AnnConfig(kind=kind))
        build_s = time.perf_counter() - start
        path = workdir / f"index-{dim}-{kind}.faiss"
        built.save(path)
        del built
        index = AnnIndex.load(path, ids, vectors)  # as readers open it: memory-mapped where possible
        bytes_per_vector = path.stat().st_size / n
        flat_bytes = bytes_per_vector if kind == "flat" else flat_bytes
        for name, allowed in filters.items():
            # Flat scans everything per query: a few queries give its latency; its recall is 1 by construction.
            sample = queries[:20] if kind == "flat" else queries
            _time_queries(index, sample[:5], allowed)  # warm the mapped pages and FAISS' scratch buffers
            latencies, found = _time_queries(index, sample, allowed)
            hits = [len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth[name][:len(sample)])]
            rows.append(dict(
                n=n, dim=dim, kind=kind, filter=name, eligible=n if allowed is None else len(allowed),
                build_s=build_s, bytes_per_vector=bytes_per_vector,
                memory_vs_flat=None if flat_bytes is None else bytes_per_vector / flat_bytes,
                p50_ms=1e3 * float(np.percentile(latencies, 50)), p99_ms=1e3 * float(np.percentile(latencies, 99)),
                recall=float(np.mean(hits)) / 10,
            ))
            print(_format(rows[-1]), flush=True)
        del index
        path.unlink()
    return rows


HEADER = "| n | dim | index | filter | eligible | build s | bytes/vec | vs Flat | p50 ms | p99 ms | recall@10 |"


def _format(row: dict) -> str:
    ratio = "" if row["memory_vs_flat"] is None else f"{row['memory_vs_flat']:.3f}"
    return (f"| {row['n']} | {row['dim']} | {row['kind']} | {row['filter']} | {row['eligible']} | {row['build_s']:.1f} "
            f"| {row['bytes_per_vector']:.0f} | {ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['recall']:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors per dimension (default 1,000,000)")
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 1024],
                        help="dimensions: 64 = default encoder spectral-v2, 1024 = CROMA-Large")
    parser.add_argument("--kinds", nargs="+", default=None, choices=INDEX_KINDS,
                        help="index kinds (default: flat and the large-store default, "
                             "indexer.ann.choose_kind; hnsw builds for hours at 1M x 1024 on 2 cores)")
    parser.add_argument("--queries", type=int, default=500, help="single queries timed per index and filter")
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building (default 2: this machine's cores)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the vectors are written (default: a temp dir)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for dim in args.dims:
            kinds = args.kinds or list(dict.fromkeys(["flat", choose_kind(args.n, dim)]))
            print(f"## {args.n} x {dim}: {', '.join(kinds)}", flush=True)
            print(HEADER)
            print("|---" * (HEADER.count("|") - 1) + "|")
            rows += run_dimension(args.n, dim, kinds, args.queries, Path(tmp), args.threads)
    dim = max(args.dims)
    default = choose_kind(args.n, dim)
    final = [r for r in rows if r["dim"] == dim and r["kind"] == default and r["filter"] == "none"]
    if final:
        r = final[0]
        print(f"search {args.n}x{dim} p50 {r['p50_ms']:.2f} ms recall@10 {r['recall']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
