"""Time and peak memory of the README's training command, against the release before it.

    python benchmarks/training.py                      # builds the README's training store from data/
    python benchmarks/training.py --store train-store  # an existing store
    python benchmarks/training.py --epochs 1           # a short run (no ratio: not the same work)
    python benchmarks/training.py --keep models/bench  # keep the trained model (then: xvision eval)

Runs `xvision train --store STORE --out TMP` in a fresh process (what a user runs: the tiny profile,
both languages, the spectral augmentation re-reading every training chip) and measures its wall
time and its peak resident memory (its own `getrusage(RUSAGE_SELF).ru_maxrss`, written on exit:
training runs in one process). The previous release's figures on the same 2-core machine are the reference: its model
card (`models/tiny-demo` of commit 776ebb8, `make demo-model`) recorded 945.7 s, the README's four
runs 13:57-15:46, and its peak memory was 8.1 GB (every re-read chip held at once). Ends with
``training: W s wall (ratio R to the previous release's 945.7 s), peak RSS M GB (target <= 720 s, < 3 GB)``.
The command's last step, the ONNX export the assistant serves the model from (`xvision export-onnx`,
which the previous release did not have), is timed apart and printed on its own line after it.
Run it alone: with 2 cores any other job changes the wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
#: The previous release's README training command on this machine (see the module docstring).
REFERENCE_SECONDS = 945.7
TARGET_SECONDS, TARGET_PEAK_GB = 720.0, 3.0


def xvision() -> list[str]:
    script = Path(sys.executable).parent / "xvision"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "xvision.cli"]


def build_store(out: Path) -> Path:
    """The README's training store from the repository's own samples (Hesbaye, BigEarthNet, Flanders)."""
    flanders = DATA / "worldcereal-flanders"
    for step in (["index", str(DATA / "worldcereal-hesbaye"), "--grid", "10"],
                 ["index", str(DATA / "bigearthnet-s2-examples"), "--grid", "20"],
                 ["index", str(flanders), "--parcels", str(flanders / "parcels_Flanders31UES.gpkg")]):
        subprocess.run([*xvision(), *step, "--store", str(out), "--quiet"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="training store (default: built from data/ in a temporary folder)")
    parser.add_argument("--epochs", type=int, help="vision-stage epochs (default: the profile's; a ratio is printed only then)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the trained model to DIR (to evaluate it) instead of a temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xvision-train-bench-") as tmp:
        store = args.store or build_store(Path(tmp) / "train-store")
        out = args.keep or Path(tmp) / "model"
        command = [*xvision(), "train", "--store", str(store), "--out", str(out), "--quiet",
                   "--seed", str(args.seed), "--no-onnx"]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        print("$", " ".join(command), flush=True)
        peak_file = Path(tmp) / "peak-kb"
        # The same command in a process that writes its own peak RSS when it exits.
        probe = ("import resource, sys\nfrom xvision.cli import main\ntry:\n    code = main(sys.argv[2:])\n"
                 "finally:\n    open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
                 "sys.exit(code)\n")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", probe, str(peak_file), *command[len(xvision()):]], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kb = int(peak_file.read_text())
        start = time.perf_counter()
        subprocess.run([*xvision(), "export-onnx", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        export_seconds = time.perf_counter() - start
    peak_gb = peak_kb * 1024 / 1e9
    ratio = "" if args.epochs else f" (ratio {seconds / REFERENCE_SECONDS:.2f} to the previous release's {REFERENCE_SECONDS} s)"
    print(f"training: {seconds:.0f} s wall{ratio}, peak RSS {peak_gb:.2f} GB "
          f"(target <= {TARGET_SECONDS:.0f} s, < {TARGET_PEAK_GB:.0f} GB)")
    print(f"export for serving (xvision export-onnx, the command's last step): {export_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
