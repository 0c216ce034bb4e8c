"""How long a question takes from the terminal, cold: `xvision ask` against `xvision history`.

    python benchmarks/cold_start.py                       # on demo-store (built from data/ if missing)
    python benchmarks/cold_start.py --store flanders-store --runs 5

Each run starts fresh processes, one after the other, on the same store: `xvision history PARCEL`
(reading a store, the baseline every command pays), `xvision ask` with a question whose answer
needs no generated text (a parcel's NDVI history) and `xvision ask` with one whose answer uses the
generator (the parcel on a date: the tiny model writes its analysis). The three are interleaved
run by run, so a machine whose load changes during the benchmark slows them alike. Each ask is
checked through its `--json` timings: the first must not load the generator, the second must.

Before the measured runs each command runs once unmeasured (page cache, bytecode). The processes
run as an installed user's do, with Python's bytecode cache: where this shell disables it
(PYTHONDONTWRITEBYTECODE, which leaves the project's modules to be compiled again by every
process), they cache it under the temporary folder instead (PYTHONPYCACHEPREFIX, kept between
runs); `--no-bytecode-cache` measures with the shell's setting. `--floors` adds, interleaved the
same way, the bare imports no ask can avoid: LangChain's Runnable (every ask runs the LCEL chain),
onnxruntime with tokenizers (a generated answer from the model's ONNX export, `xvision_model.serving`)
and, for comparison, torch with transformers' Qwen2 (a generated answer served by torch).

Prints a table of every run, the medians with the asks' step timings (their `--json` report),
and ends with ``cold ask ratio: R1 (no generation), R2 (tiny generator)``: each median divided by
the median `xvision history` (targets: <= 1.5 and <= 3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_STORE = ROOT / "demo-store"
DEMO_MODEL = ROOT / "models" / "tiny-demo"
FLANDERS = ROOT / "data" / "worldcereal-flanders"
HESBAYE = ROOT / "data" / "worldcereal-hesbaye"
TARGETS = {"no generation": 1.5, "tiny generator": 3.0}
STEPS = ("startup", "open", "load", "plan", "retrieve", "generate", "ground", "compose", "total")
#: Imports every ask of a kind pays whatever the project does (see --floors), under the garbage
#: collector policy of the CLI's read-only commands (`xvision.cli._one_shot_gc`).
_GC = "import atexit, gc; gc.set_threshold(*gc.get_threshold()[:2], 1_000_000); atexit.register(gc.freeze); "
FLOORS = {"import langchain_core Runnable": _GC + "import langchain_core.runnables.base",
          "import onnxruntime + tokenizers": _GC + "import onnxruntime, tokenizers",
          "import torch + transformers Qwen2": _GC + "import torch; from transformers.models.qwen2 import modeling_qwen2"}
PYC_PREFIX = Path(tempfile.gettempdir()) / "xvision-cold-start-pyc"


def xvision() -> list[str]:
    """The `xvision` console script next to this interpreter (what a user runs), else `-m`."""
    script = Path(sys.executable).parent / "xvision"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "xvision.cli"]


def build_demo_store(out: Path) -> Path:
    """The demo store as the Makefile's demo-store target builds it from data/."""
    steps = [["index", str(FLANDERS), "--parcels", str(FLANDERS / "parcels_Flanders31UES.gpkg"), "--store", str(out),
              "--quiet"],
             ["index", str(HESBAYE), "--grid", "10", "--store", str(out), "--quiet"]]
    for step in steps:
        subprocess.run([*xvision(), *step], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out


def process_env(bytecode_cache: bool) -> tuple[dict[str, str], str]:
    """The environment of the measured processes, and a line saying how they cache bytecode."""
    env = dict(os.environ)
    if not bytecode_cache:
        return env, f"bytecode cache as this shell has it (PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE')})"
    if not env.get("PYTHONDONTWRITEBYTECODE"):
        return env, "bytecode cached beside the sources (as installed)"
    env.pop("PYTHONDONTWRITEBYTECODE")
    env.setdefault("PYTHONPYCACHEPREFIX", str(PYC_PREFIX))
    return env, f"bytecode cached in {env['PYTHONPYCACHEPREFIX']} (this shell sets PYTHONDONTWRITEBYTECODE)"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one fresh process, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="store to ask (default: demo-store, built from data/ when missing)")
    parser.add_argument("--model", type=Path, default=DEMO_MODEL, help="generator folder (default: models/tiny-demo)")
    parser.add_argument("--runs", type=int, default=5, help="cold processes of each kind (default 5)")
    parser.add_argument("--parcel", default="Flanders31UES-001", help="parcel the questions name")
    parser.add_argument("--date", default="2019-05-16", help="a date with a usable record of that parcel")
    parser.add_argument("--no-bytecode-cache", dest="bytecode_cache", action="store_false",
                        help="run the processes with this shell's bytecode setting (default: cached, as installed)")
    parser.add_argument("--floors", action="store_true",
                        help="also time the bare imports every ask pays: LangChain's Runnable, torch + Qwen2")
    args = parser.parse_args(argv)
    env, bytecode = process_env(args.bytecode_cache)

    scratch = None
    store = args.store
    if store is None:
        store = DEMO_STORE
        if not (store / "manifest.json").is_file():
            scratch = Path(tempfile.mkdtemp(prefix="xvision-cold-"))
            print(f"building the demo store from data/ in {scratch} ...", file=sys.stderr, flush=True)
            store = build_demo_store(scratch / "demo-store")
    year = args.date[:4]
    questions = {"no generation": f"NDVI history of {args.parcel} in {year}",
                 "tiny generator": f"How is {args.parcel} doing on {args.date}?"}
    commands = {"history": [*xvision(), "history", args.parcel, "--store", str(store)],
                **{kind: [*xvision(), "ask", q, "--store", str(store), "--model", str(args.model), "--json"]
                   for kind, q in questions.items()}}
    if args.floors:
        commands.update({label: [sys.executable, "-c", code] for label, code in FLOORS.items()})
    try:
        for command in commands.values():  # once each, unmeasured: the page cache and the bytecode
            timed(command, env)
        load_before = os.getloadavg()[0]
        seconds: dict[str, list[float]] = {kind: [] for kind in commands}
        steps: dict[str, list[dict]] = {kind: [] for kind in questions}
        for _ in range(args.runs):
            for kind, command in commands.items():
                took, out = timed(command, env)
                seconds[kind].append(took)
                if kind in questions:
                    timings = json.loads(out)["timings"]
                    loaded = timings["load"] is not None
                    if loaded != (kind == "tiny generator"):
                        raise SystemExit(f"{questions[kind]!r}: the generator was {'' if loaded else 'not '}loaded; "
                                         "this benchmark needs a question of each kind (see --parcel, --date)")
                    steps[kind].append(timings)
        load_after = os.getloadavg()[0]
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"## cold start: {args.runs} fresh processes of each, interleaved, on {store}")
    print(f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} cores; {bytecode}")
    from xvision_model.serving import serving_status

    runtime = os.environ.get("XVISION_GENERATOR", "auto")
    print(f"generator runtime: {runtime}; the demo model's ONNX export: {serving_status(DEMO_MODEL).reason}")
    print()
    print("| command | " + " | ".join(f"run {i + 1} s" for i in range(args.runs)) + " | median s |")
    print("|---|" + "---|" * (args.runs + 1))
    medians = {}
    for kind, values in seconds.items():
        medians[kind] = statistics.median(values)
        label = ("xvision history" if kind == "history" else
                 f"xvision ask ({kind}): {questions[kind]!r}" if kind in questions else f"python -c: {kind}")
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {medians[kind]:.2f} |")
    print()
    print("median seconds per step of the asks (their --json timings; load: the generator's, imports included)")
    print()
    print("| ask | " + " | ".join(STEPS) + " |")
    print("|---|" + "---|" * len(STEPS))
    for kind, runs in steps.items():
        cells = []
        for step in STEPS:
            values = [t[step] for t in runs if t.get(step) is not None]
            cells.append(f"{statistics.median(values):.3f}" if values else "-")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print()
    for label in FLOORS if args.floors else ():
        print(f"floor: {label}: median {medians[label]:.2f} s = {medians[label] / medians['history']:.2f} x history")
    ratios = {kind: medians[kind] / medians["history"] for kind in questions}
    for kind, ratio in ratios.items():
        verdict = "met" if ratio <= TARGETS[kind] else "NOT met"
        print(f"{kind}: median {medians[kind]:.2f} s / history {medians['history']:.2f} s = {ratio:.2f} "
              f"(target <= {TARGETS[kind]}: {verdict})")
    print(f"cold ask ratio: {ratios['no generation']:.2f} (no generation), {ratios['tiny generator']:.2f} (tiny generator)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
