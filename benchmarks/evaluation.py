"""`xvision eval` speed: the writer before class scoring, the per-record scoring, the batched one.

    python benchmarks/evaluation.py                  # demo-store (built from data/ if missing), 80 records
    python benchmarks/evaluation.py --store flanders-store --limit 80 --only before batched

Runs `xvision_model.evaluate.evaluate` (what `xvision eval` runs) on the same store, model and
records in one process, one configuration after the other:

- before: no class scoring (`scoring="none"`), torch's default threads: what the writer cost
  before each aspect's class was scored (it then only scored an aspect the model never reached,
  so this is a lower bound of that time);
- per-record: the class phrases scored one record at a time (the writer as it was, the
  reference), torch's default threads;
- batched, default threads: every record's requests of a batch in one forward pass;
- batched: the same with the default of `evaluate` (one torch thread for the tiny profile on the
  CPU, `evaluate.serving_threads`).

Prints the seconds of each with the machine's load, checks that every scored configuration
gives the same scores (the whole result dict), and ends with the line
``eval seconds: before B, per-record P, batched N (N/B = R)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

#: name -> (evaluate's scoring, threads)
CONFIGS = {
    "before": ("none", None),
    "per-record": ("per_record", None),
    "batched-default-threads": ("batched", None),
    "batched": ("batched", "auto"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="store to evaluate on (default: demo-store, built from data/ "
                                                   "when missing)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny-demo", help="model folder")
    parser.add_argument("--limit", type=int, default=80, help="records (the first by record_id; default 80)")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="run only these configurations")
    args = parser.parse_args(argv)
    names = args.only or list(CONFIGS)
    scratch = None
    if args.store is None:
        from cold_start import DEMO_STORE, build_demo_store

        args.store = DEMO_STORE
        if not (args.store / "manifest.json").is_file():
            scratch = Path(tempfile.mkdtemp(prefix="xvision-eval-"))
            print(f"building the demo store from data/ in {scratch} ...", file=sys.stderr, flush=True)
            args.store = build_demo_store(scratch / "demo-store")
    try:
        return _run(args, names)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, names: list[str]) -> int:
    import torch

    from xvision_model.evaluate import evaluate

    seconds, scores, loads = {}, {}, {}
    for name in names:
        scoring, threads = CONFIGS[name]
        before = os.getloadavg()[0]
        start = time.perf_counter()
        scores[name] = evaluate(args.model, args.store, limit=args.limit, scoring=scoring, threads=threads)
        seconds[name] = time.perf_counter() - start
        loads[name] = (before, os.getloadavg()[0])
        print(f"{name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)

    print(f"## xvision eval, {args.limit} records of {args.store}, model {args.model}")
    print(f"{os.cpu_count()} cores; torch default threads {torch.get_num_threads()}")
    print()
    print("| configuration | scoring | threads | seconds | load before, after | overall | all three |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        scoring, threads = CONFIGS[name]
        result = scores[name]
        print(f"| {name} | {scoring} | {threads or 'torch default'} | {seconds[name]:.1f} | "
              f"{loads[name][0]:.1f}, {loads[name][1]:.1f} | {result['overall']:.3f} | {result['all_three']:.3f} |")
    scored = [n for n in names if CONFIGS[n][0] != "none"]
    same = all(json.dumps(scores[n], sort_keys=True) == json.dumps(scores[scored[0]], sort_keys=True) for n in scored)
    print()
    print(f"scored configurations ({', '.join(scored)}) give identical results: {same}")
    if not same:
        for n in scored:
            print(f"  {n}: {json.dumps(scores[n], sort_keys=True)}")
    if {"before", "per-record", "batched"} <= set(names):
        b, p, n = seconds["before"], seconds["per-record"], seconds["batched"]
        print(f"eval seconds: before {b:.1f}, per-record {p:.1f}, batched {n:.1f} (batched/before = {n / b:.2f})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
