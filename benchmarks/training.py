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
runs 13:57-15:46, and its peak memory was 8.1 GB (every re-read chip held at once). The command's
last step, the ONNX export the assistant serves the model from (`xvision export-onnx`, which the
previous release did not have), is timed apart and printed on its own line. Ends with
``training: W s wall (ratio R to ...), peak RSS M GB (target <= 720 s, < 3 GB)``.
Run it alone: with 2 cores any other job changes the wall time.

`--against REV` also runs the same command from revision REV of this repository (a temporary git
worktree, the same interpreter and packages, on the README's store as REV's own indexer builds it
from data/; indexing is not timed), one after the other in this run, and prints the
ratio measured side by side: the shared machine's speed changes from day to day by a quarter, so
that ratio, not the recorded reference, is the measure. The target, 720 s of the reference's
945.7 s, is a ratio of 0.76. `--against 776ebb8` is the release the reference was measured on
(~16 min more).
"""

from __future__ import annotations

import argparse
import os
import shutil
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
TARGET_RATIO = TARGET_SECONDS / REFERENCE_SECONDS


def xvision() -> list[str]:
    """The `xvision` console script next to this interpreter (what a user runs), else `-m`."""
    script = Path(sys.executable).parent / "xvision"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "xvision.cli"]


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that runs the `xvision` of source tree `tree` (this checkout: unchanged)."""
    env = dict(os.environ)
    if tree != ROOT:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def build_store(out: Path, tree: Path = ROOT) -> Path:
    """The README's training store from the repository's own samples (Hesbaye, BigEarthNet, Flanders),
    indexed by the `xvision` of source tree `tree`."""
    flanders = DATA / "worldcereal-flanders"
    for step in (["index", str(DATA / "worldcereal-hesbaye"), "--grid", "10"],
                 ["index", str(DATA / "bigearthnet-s2-examples"), "--grid", "20"],
                 ["index", str(flanders), "--parcels", str(flanders / "parcels_Flanders31UES.gpkg")]):
        subprocess.run([sys.executable, "-m", "xvision.cli", *step, "--store", str(out), "--quiet"], cwd=tree,
                       env=tree_env(tree), check=True, stdout=subprocess.DEVNULL)
    return out


def timed_training(store: Path, out: Path, args: argparse.Namespace, peak_file: Path,
                   tree: Path = ROOT) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of `xvision train` on `store`, run from the source tree `tree`."""
    env = tree_env(tree)
    options = ["--quiet", "--seed", str(args.seed)] + (["--epochs", str(args.epochs)] if args.epochs else [])
    help_text = subprocess.run([sys.executable, "-m", "xvision.cli", "train", "--help"], cwd=tree, env=env,
                               capture_output=True, text=True, check=True).stdout
    if "--no-onnx" in help_text:  # the ONNX export is timed apart (releases before it had none)
        options.append("--no-onnx")
    command = ["train", "--store", str(store), "--out", str(out), *options]
    print(f"$ {'' if tree == ROOT else f'({tree.name}) '}xvision {' '.join(command)}", flush=True)
    # The same command in a process that writes its own peak RSS when it exits.
    probe = ("import resource, sys\nfrom xvision.cli import main\ntry:\n    code = main(sys.argv[2:])\n"
             "finally:\n    open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
             "sys.exit(code)\n")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", probe, str(peak_file), *command], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, int(peak_file.read_text()) * 1024 / 1e9


def reference_tree(rev: str, parent: Path) -> Path:
    """A detached git worktree of revision `rev` of this repository under `parent`."""
    tree = parent / f"xvision-{rev[:12]}"
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(tree), rev], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="training store (default: built from data/ in a temporary folder)")
    parser.add_argument("--epochs", type=int,
                        help="vision-stage epochs (default: the profile's; with it no ratio is printed: not the same work)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the trained model to DIR (to evaluate it) instead of a temporary folder")
    parser.add_argument("--against", metavar="REV",
                        help="also train with revision REV of this repository in the same run (e.g. 776ebb8, the "
                             "release the recorded reference was measured on) and print the side-by-side ratio")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xvision-train-bench-") as tmp:
        tmp = Path(tmp)
        store = args.store or build_store(tmp / "train-store")
        reference = None
        if args.against:
            tree = reference_tree(args.against, tmp)
            try:
                # Each release trains on the store its own indexer builds (stores and chip readers
                # changed between releases: a release's training checks its re-read chips against them).
                print(f"indexing the README's training store with {args.against} ...", flush=True)
                ref_store = build_store(tmp / "reference-store", tree)
                reference = timed_training(ref_store, tmp / "reference-model", args, tmp / "peak-reference", tree=tree)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
                shutil.rmtree(tmp / "reference-model", ignore_errors=True)
            print(f"{args.against}: {reference[0]:.0f} s wall, peak RSS {reference[1]:.2f} GB", flush=True)
        out = args.keep or tmp / "model"
        seconds, peak_gb = timed_training(store, out, args, tmp / "peak-kb")
        start = time.perf_counter()
        subprocess.run([*xvision(), "export-onnx", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        export_seconds = time.perf_counter() - start
    print(f"export for serving (xvision export-onnx, the command's last step): {export_seconds:.0f} s")
    if args.epochs:
        ratio = ""
    elif reference is not None:
        ratio = (f" (ratio {seconds / reference[0]:.2f} to {args.against}'s {reference[0]:.0f} s side by side, "
                 f"target <= {TARGET_RATIO:.2f})")
    else:
        ratio = f" (ratio {seconds / REFERENCE_SECONDS:.2f} to the previous release's recorded {REFERENCE_SECONDS} s)"
    print(f"training: {seconds:.0f} s wall{ratio}, peak RSS {peak_gb:.2f} GB "
          f"(target <= {TARGET_SECONDS:.0f} s, < {TARGET_PEAK_GB:.0f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
