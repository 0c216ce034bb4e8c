"""Run the benchmarks and write their results as markdown (benchmarks/RESULTS.md), with the machine.

    python benchmarks/report.py                      # every benchmark with its defaults (~45 min)
    python benchmarks/report.py --quick              # smaller sizes (~5 min)
    python benchmarks/report.py --only search store
    python benchmarks/report.py --use search=out.txt # take a benchmark's output from an earlier run

Each benchmark prints its own markdown table and summary lines (ratios measured side by side in
one run); this collects them under one heading each, with the exact command, and puts their
headline lines (the last line of each) in a summary table at the top.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = "python"

#: name -> (default arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "search": (["benchmarks/search.py"], ["benchmarks/search.py", "--n", "100000"]),
    "store": (["benchmarks/store.py"], ["benchmarks/store.py", "--sizes", "10000", "100000"]),
    "indexing": (["benchmarks/indexing.py", "--dask"], ["benchmarks/indexing.py", "--records", "100", "--dask"]),
    "generation": (["benchmarks/generation.py", "--shape", "tiny"], ["benchmarks/generation.py", "--shape", "tiny", "--quick"]),
    # On demo-store (built from data/ when missing): cold `xvision ask` over cold `xvision history`.
    "cold_start": (["benchmarks/cold_start.py"], ["benchmarks/cold_start.py", "--runs", "3"]),
    # xvision eval before class scoring, scoring per record and batched, identical scores (demo-store).
    # The README's training command (store built from data/): wall time and peak memory (~12 min).
    "training": (["benchmarks/training.py"], ["benchmarks/training.py", "--epochs", "1"]),
    "evaluation": (["benchmarks/evaluation.py", "--limit", "80"],
                   ["benchmarks/evaluation.py", "--limit", "32", "--only", "before", "batched"]),
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        memory = float("nan")
    import faiss
    import numpy

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, numpy {numpy.__version__}, faiss {faiss.__version__}; "
            f"commit {commit or 'unknown'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (the headline lines then say so)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--use", action="append", default=[], metavar="NAME=FILE",
                        help="take NAME's output from FILE (an earlier run of the same command) instead of running it")
    parser.add_argument("--also", action="append", default=[], metavar="TITLE=FILE",
                        help="append another run's output (e.g. a targeted re-run) as its own section")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="markdown file to write")
    args = parser.parse_args(argv)
    reuse = dict(item.split("=", 1) for item in args.use)
    sections, headlines = [], []
    for name in args.only or list(BENCHMARKS):
        command = BENCHMARKS[name][1 if args.quick else 0]
        shown = " ".join([PY, *command])
        if name in reuse:
            output = Path(reuse[name]).read_text()
            shown += f"  (output of an earlier run: {Path(reuse[name]).name})"
        else:
            print(f"running {shown}", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
            output = done.stdout + (f"\n(exit status {done.returncode}: {done.stderr.strip().splitlines()[-1:]})"
                                    if done.returncode else "")
        lines = [line for line in output.splitlines() if line.strip()]
        headlines.append((name, lines[-1] if lines else "(no output)"))
        sections.append(f"## {name}\n\n`{shown}`\n\n" + "\n".join(_markdown(lines)) + "\n")
    for item in args.also:
        title, file = item.split("=", 1)
        lines = [line for line in Path(file).read_text().splitlines() if line.strip()]
        sections.append(f"## {title}\n\n" + "\n".join(_markdown(lines)) + "\n")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = ["| benchmark | result |", "|---|---|", *[f"| {n} | `{h}` |" for n, h in headlines]]
    text = (f"# Benchmark results\n\nWritten by `make bench` (benchmarks/report.py) on {stamp}.\n\n"
            f"Machine: {machine()}\n\n" + "\n".join(summary) + "\n\n" + "\n".join(sections))
    args.out.write_text(text)
    print(text)
    return 0


def _markdown(lines: list[str]) -> list[str]:
    """Tables stay tables; other lines become a code block (they are aligned text)."""
    out, block = [], []
    for line in lines:
        if line.startswith("|") or line.startswith("#"):
            if block:
                out += ["```", *block, "```", ""]
                block = []
            out.append(line.replace("## ", "### ", 1) if line.startswith("## ") else line)
        else:
            block.append(line)
    if block:
        out += ["", "```", *block, "```"]
    return out


if __name__ == "__main__":
    sys.exit(main())
