"""Store commits at scale: committing 1,000 records into stores of 10k, 100k and 1M records.

    python benchmarks/store.py                       # 10k, 100k, 1M records (~5 min, ~3 GB)
    python benchmarks/store.py --sizes 10000 100000  # quicker

Records are synthetic but have the real schema (`indexer.core.schema`: every column, a parcel
polygon, an ``attr_crop`` attribute, analyses of a realistic length) and 64-d vectors (the
default encoder's dimension). Each store is first written in one commit, then, in one process:

* open: `Store.open` of the store (manifest, sizes and edge hashes of every segment file);
* first commit: upsert + commit of 1,000 new records right after opening; includes the writer's
  one-time load of the (parcel, date) -> id keys, which is proportional to the store;
* commit: the median of 3 further upsert + commit of 1,000 records (half of them replacements of
  stored records, so tombstones are written too): the steady cost of a running `xvision index`;
* reader peak RSS: a separate process opens the largest store, searches it, with and without a
  filter, and loads its record table (`store.records()`): its peak resident memory.

* integrity: on the largest store, what the checks against damage cost (`indexer.store`'s
  module docstring): opening with sizes and edges only (`StoreConfig.full_verify_below=0`)
  against hashing every file; the first search and the steady search (median of 200 queries,
  unfiltered and filtered) and `vectors()` of 100 random records, with the per-block CRC-32
  checks on and off (`StoreConfig.check_blocks`), side by side with their ratio; and a full
  `verify_store` (``xvision verify``).

The line `commit ratio 1M/10k: R` is the steady commit time at the largest size over the
smallest (the store used to rewrite itself on every commit: 2.05 s at 200k records against
0.16 s at 2k).

    python benchmarks/store.py --sizes 10000 100000 --integrity-only   # integrity costs alone
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.core.schema import COLUMNS, INPUT_COLUMNS, STAT_COLUMNS  # noqa: E402
from indexer.filters import RecordFilter  # noqa: E402
from indexer.store import Store, StoreConfig, verify_store  # noqa: E402

DIM = 64
ENCODER = {"id": "spectral-v2", "dim": DIM, "weights_sha256": None, "normalization": {}, "bands": ["B04", "B08"]}
DATES = [f"2021-{m:02d}-{d:02d}" for m in range(3, 11) for d in (1, 11, 21)][:70]
CROPS = ["maize", "winter wheat", "sugar beet", "potatoes", "grassland", "barley"]
ANALYSIS = ("Vegetation is dense and vigorous (NDVI 0.78, above the parcel's seasonal median); moisture "
            "is adequate (NDMI 0.31). No cloud over the parcel.")


def records(start: int, n: int, seed: int) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """n schema-complete records numbered from `start` (parcel = number // len(DATES))."""
    rng = np.random.default_rng(seed)
    number = np.arange(start, start + n)
    parcel, date = number // len(DATES), number % len(DATES)
    x, y = 4.5 + (parcel % 1000) * 0.002, 50.0 + (parcel // 1000) * 0.002
    data: dict[str, object] = {}
    for column in COLUMNS:
        if column.name not in INPUT_COLUMNS or column.dtype == "geometry":
            continue
        data[column.name] = {"int64": 0, "float64": 0.0, "bool": True, "string": ""}[column.dtype]
    data.update({name: rng.uniform(-0.2, 0.9, n) for name in STAT_COLUMNS})
    data.update(parcel_id=[f"BE-{p:07d}" for p in parcel], date=[DATES[d] for d in date],
                source="/data/S2/S2B_MSIL2A_T31UFS.SAFE", tile="31UFS", level="L2A", source_crs="EPSG:31370",
                valid_fraction=rng.uniform(0.5, 1, n), n_pixels=rng.integers(50, 5000, n), cloud_method="scl",
                analysis=ANALYSIS, analysis_fr=ANALYSIS, encoder=ENCODER["id"], indexed_at="2026-12-01T20:00:00")
    frame = pd.DataFrame({k: (v if np.ndim(v) else [v] * n) for k, v in data.items()})
    frame["attr_crop"] = pd.array([CROPS[p % len(CROPS)] for p in parcel], dtype="string")
    geometry = shapely.box(x, y, x + 0.0015, y + 0.0015)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326"), vectors


def build(path: Path, size: int) -> None:
    store = Store.open_or_create(path, ENCODER)
    for start in range(0, size, 250_000):  # bounded memory; each part a segment, then one merge
        rows, vectors = records(start, min(250_000, size - start), seed=start)
        store.upsert(rows, vectors)
        store.commit()
    store.compact()


def measure(path: Path, size: int) -> dict:
    start = time.perf_counter()
    store = Store.open(path)
    open_s = time.perf_counter() - start
    timings = []
    for i in range(4):
        # 500 new records and 500 replacements of stored ones (same keys, new values).
        new_rows, new_vectors = records(size + 500 * i, 500, seed=1000 + i)
        old_rows, old_vectors = records(size // 2 + 500 * i, 500, seed=2000 + i)
        start = time.perf_counter()
        store.upsert(pd.concat([new_rows, old_rows], ignore_index=True), np.concatenate([new_vectors, old_vectors]))
        store.commit()
        timings.append(time.perf_counter() - start)
    return {"size": size, "open_s": open_s, "first_s": timings[0], "commit_s": statistics.median(timings[1:]),
            "segments": len(store.manifest["segments"])}


READER = textwrap.dedent("""
    def hwm():  # peak RSS of this process image (ru_maxrss would include the parent's, kept over exec)
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from indexer.store import Store
    from indexer.filters import RecordFilter
    imported = hwm()
    store = Store.open({path!r})
    opened = hwm()
    q = np.random.default_rng(0).standard_normal({dim}).astype(np.float32)
    store.search(q / np.linalg.norm(q), 10)
    searched = hwm()
    store.search(q, 10, filter=RecordFilter(date_from="2021-06-01", date_to="2021-06-21"))
    store.records()
    print(imported, opened, searched, hwm())
""")


def reader_memory(path: Path) -> tuple[float, float, float, float]:
    out = subprocess.run([sys.executable, "-c", READER.format(root=str(ROOT), path=str(path), dim=DIM)],
                         check=True, capture_output=True, text=True).stdout.split()
    return tuple(int(v) / 1024 for v in out)  # VmHWM is in KiB


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def integrity(path: Path, rounds: int = 7) -> list[tuple[str, float, float]]:
    """(what, seconds with the checks, seconds without) for the checks against damage.

    With and without are measured in alternating rounds (the median of the rounds' medians), so
    that the load of a shared machine falls on both alike.
    """
    rng = np.random.default_rng(7)
    queries = rng.standard_normal((200, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    window = RecordFilter(date_from="2021-06-01", date_to="2021-06-21")
    ids = Store.open(path).records()["record_id"].to_numpy()
    picks = [rng.choice(ids, 100, replace=False) for _ in range(50)]
    it = iter(range(10**9))

    def config(check: bool) -> StoreConfig:
        return StoreConfig(full_verify_below=0, check_blocks=check)

    def first_search(check: bool) -> float:  # a fresh reader: index file and touched blocks checked
        store = Store.open(path, config(check))
        start = time.perf_counter()
        store.search(queries[next(it) % 200], 10)
        return time.perf_counter() - start

    def first_vectors(check: bool) -> float:  # a fresh reader: the blocks of 100 records checked
        store = Store.open(path, config(check))
        start = time.perf_counter()
        store.vectors(picks[next(it) % 50])
        return time.perf_counter() - start

    opened = {check: Store.open(path, config(check)) for check in (True, False)}
    for store in opened.values():
        store.search(queries[0], 10)
        store.vectors(ids)  # every block checked once: the steady state of a long-lived reader
    cases = [
        ("open: every file hashed, against sizes and edges only",
         lambda check: _median_s(lambda: Store.open(path, StoreConfig(full_verify_below=(1 << 62) if check else 0)), 3)),
        ("first search of a fresh reader", lambda check: statistics.median(first_search(check) for _ in range(5))),
        ("first vectors() of 100 records, fresh reader",
         lambda check: statistics.median(first_vectors(check) for _ in range(5))),
        ("search k=10, steady", lambda check: _median_s(lambda: opened[check].search(queries[next(it) % 200], 10), 100)),
        ("filtered search k=10, steady",
         lambda check: _median_s(lambda: opened[check].search(queries[next(it) % 200], 10, filter=window), 20)),
        ("vectors() of 100 records, steady", lambda check: _median_s(lambda: opened[check].vectors(picks[next(it) % 50]), 100)),
    ]
    rows = []
    for what, measure in cases:
        on, off = [], []
        for _ in range(rounds):
            on.append(measure(True))
            off.append(measure(False))
        rows.append((what, statistics.median(on), statistics.median(off)))
    start = time.perf_counter()
    assert verify_store(path).ok
    rows.append(("verify_store (every byte hashed)", time.perf_counter() - start, float("nan")))
    return rows


def print_integrity(size: int, rows: list[tuple[str, float, float]]) -> None:
    print(f"\nintegrity checks on the {size}-record store: with / without, ratio")
    print("| what | with checks ms | without ms | ratio |")
    print("|---|---|---|---|")
    for what, on, off in rows:
        ratio = "" if off != off else f"{on / off:.2f}"  # nan: nothing to compare with
        off_text = "" if off != off else f"{off * 1e3:.2f}"
        print(f"| {what} | {on * 1e3:.2f} | {off_text} | {ratio} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="store sizes in records (default 10k 100k 1M)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are written (default: a temp dir)")
    parser.add_argument("--integrity-only", action="store_true",
                        help="build the largest store only and measure the integrity checks")
    args = parser.parse_args(argv)
    rows = []
    if args.integrity_only:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            size = max(args.sizes)
            build(Path(tmp) / "store", size)
            print_integrity(size, integrity(Path(tmp) / "store"))
        return 0
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"store-{size}"
            start = time.perf_counter()
            build(path, size)
            print(f"built a {size}-record store in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            rows.append(measure(path, size))
        imported, opened, searched, peak = reader_memory(Path(tmp) / f"store-{max(args.sizes)}")
        checks = integrity(Path(tmp) / f"store-{max(args.sizes)}")
    print("| records | open s | first commit s | commit s (median) | segments after |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['open_s']:.3f} | {r['first_s']:.3f} | {r['commit_s']:.3f} | {r['segments']} |")
    print(f"reader of the {max(args.sizes)}-record store: peak RSS {imported:.0f} MB after imports, {opened:.0f} MB after open, "
          f"{searched:.0f} MB after a search, {peak:.0f} MB after a filtered search and loading every record")
    small, large = rows[0], rows[-1]
    print(f"first-commit ratio {_label(large['size'])}/{_label(small['size'])}: {large['first_s'] / small['first_s']:.2f}")
    print(f"commit ratio {_label(large['size'])}/{_label(small['size'])}: {large['commit_s'] / small['commit_s']:.2f}")
    print_integrity(max(args.sizes), checks)
    return 0


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


if __name__ == "__main__":
    sys.exit(main())
