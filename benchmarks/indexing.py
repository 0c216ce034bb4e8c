"""Indexing throughput: end to end vs the encoder's bare forward on the same chips, same run.

    python benchmarks/indexing.py                                  # offline default encoder
    python benchmarks/indexing.py --encoder croma-large --precision bfloat16 --records 48
    python benchmarks/indexing.py --memory                         # peak RSS: 2 vs 10 rasters
    python benchmarks/indexing.py --dask                           # also 1 and 2 local Dask workers

CROMA without local weights is benchmarked with random initialisation (same compute; the printed
encoder id says `-random-init`). Numbers are ratios measured side by side in one process, because
absolute timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.chips import extract, parcel_window  # noqa: E402
from indexer.parcels import grid_parcels  # noqa: E402
from indexer.pipeline import IndexConfig, index  # noqa: E402
from indexer.reader import open_scene  # noqa: E402
from indexer.core.errors import WeightsError  # noqa: E402
from xvision_model.encoders import build_encoder  # noqa: E402

HESBAYE = ROOT.parent / "shared" / "data" / "worldcereal-hesbaye"
GRID = 20  # 25 cells per Hesbaye raster


def _encoder(name: str, precision: str):
    if name.startswith("spectral"):
        return build_encoder(name)
    try:
        return build_encoder(name, precision=precision)
    except WeightsError as exc:
        print(f"note: {exc}\n      -> benchmarking {name} with random initialisation (same compute)")
        from xvision_model.encoders.croma import CromaEncoder

        return CromaEncoder(name, precision=precision, random_init=True)


def _files(records: int) -> list[Path]:
    files = sorted(HESBAYE.glob("S2_L2A_hesbaye_*.tif"))
    per_file = (100 // GRID) ** 2
    return files[: max(1, min(len(files), math.ceil(records / per_file)))]


def _chips(files: list[Path], encoder) -> tuple[torch.Tensor, torch.Tensor]:
    chips, masks = [], []
    for file in files:
        scene = open_scene(file)
        cells = grid_parcels(scene.crs, scene.transform, scene.width, scene.height, GRID)
        with scene:
            for _, cell in cells.iterrows():
                chip = extract(scene.read(parcel_window(scene, cell.geometry)), cell.geometry, cell.parcel_id,
                               encoder.spec.bands, encoder.spec.input_size)
                chips.append(chip.chip)
                masks.append(chip.chip_valid)
    return torch.from_numpy(np.stack(chips)), torch.from_numpy(np.stack(masks))


def bare_forward(encoder, chips: torch.Tensor, masks: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    """Chips/s of the encoder alone (warm-up batch excluded) and its embeddings."""
    with torch.inference_mode():
        encoder(chips[:batch], masks[:batch])
        start = time.perf_counter()
        out = []
        for i in range(0, len(chips), batch):
            out.append(encoder(chips[i : i + batch], masks[i : i + batch]).gap)
            print(f"\r  bare forward: {min(i + batch, len(chips))}/{len(chips)} chips", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        elapsed = time.perf_counter() - start
    return len(chips) / elapsed, torch.cat(out)


def end_to_end(encoder, files: list[Path], batch: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = IndexConfig(store=Path(tmp) / "store", inputs=tuple(map(str, files)), grid=GRID,
                             batch_size=batch, progress=True)
        start = time.perf_counter()
        summary = index(config, encoder=encoder)
        elapsed = time.perf_counter() - start
    return summary.added / elapsed, summary.added


def dask_end_to_end(name: str, precision: str, files: list[Path], batch: int, workers: int) -> float:
    """Records/s of `index_on_cluster` on a LocalCluster that is already up (its start excluded)."""
    import functools

    from distributed import Client, LocalCluster

    from indexer.cluster import ClusterConfig, index_on_cluster

    factory = functools.partial(build_encoder, name) if name.startswith("spectral") else \
        functools.partial(build_encoder, name, precision=precision)
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as tmp:
        client.run(lambda: None)  # workers up
        config = IndexConfig(store=Path(tmp) / "store", inputs=tuple(map(str, files)), grid=GRID,
                             batch_size=batch, progress=False)
        start = time.perf_counter()
        summary = index_on_cluster(config, factory, ClusterConfig(scheduler=cluster.scheduler_address,
                                                                  parcels_per_task=16))
        return summary.added / (time.perf_counter() - start)


def peak_rss_mb(n_files: int) -> float:
    """Peak RSS of a fresh `xvision index` process over `n_files` rasters."""
    files = sorted(HESBAYE.glob("S2_L2A_hesbaye_*.tif"))[:n_files]
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import resource, sys; from xvision.cli import main; "
            f"main(['index', *{[str(f) for f in files]!r}, '--grid', '10', '--store', {str(Path(tmp) / 's')!r}, '--quiet']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="spectral-v2", help="spectral-v2 (default), spectral-v1, croma-large or croma-base")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--records", type=int, default=250, help="about how many records to index")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory", action="store_true", help="also compare peak RSS for 2 vs 10 rasters")
    parser.add_argument("--agreement", action="store_true", help="CROMA: cosine of bfloat16 vs float32 embeddings")
    parser.add_argument("--dask", action="store_true",
                        help="also index on a Dask LocalCluster of 1 and 2 worker processes (cluster start-up excluded)")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    encoder = _encoder(args.encoder, args.precision)
    files = _files(args.records)
    chips, masks = _chips(files, encoder)
    bare, reference = bare_forward(encoder, chips, masks, args.batch_size)
    e2e, n = end_to_end(encoder, files, args.batch_size)
    print(f"encoder {encoder.spec.id} ({encoder.precision}), {n} records from {len(files)} rasters, batch {args.batch_size}")
    print(f"  bare encoder forward : {bare:8.2f} chips/s")
    print(f"  end to end (index)   : {e2e:8.2f} records/s")
    print(f"  ratio end-to-end / bare: {e2e / bare:.3f}")
    if args.agreement and args.encoder.startswith("croma"):
        first = encoder.precision
        other = "bfloat16" if first == "float32" else "float32"
        encoder.precision = other
        _, alt = bare_forward(encoder, chips, masks, args.batch_size)
        cos = torch.nn.functional.cosine_similarity(reference, alt, dim=1)
        print(f"  {first} vs {other} embeddings: cosine mean {cos.mean():.5f}, min {cos.min():.5f}")
    if args.dask:
        for workers in (1, 2):
            rate = dask_end_to_end(args.encoder, args.precision, files, args.batch_size, workers)
            print(f"  dask, {workers} worker(s)  : {rate:8.2f} records/s  ({rate / e2e:.2f} x single process)")
    if args.memory:
        small, large = peak_rss_mb(2), peak_rss_mb(10)
        print(f"  peak RSS, 2 rasters: {small:.0f} MB; 10 rasters: {large:.0f} MB; ratio {large / small:.3f}")


if __name__ == "__main__":
    main()
