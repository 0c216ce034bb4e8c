"""The garbage-collector policy of one `xvision` process (issue 20, `xvision.cli._one_shot_gc`).

A command that only reads (ask, history, ...) runs no full collection while it answers and freezes
the heap for the interpreter's exit; a command that writes (index) keeps Python's defaults; the
caller's settings come back when `main` returns. Each command runs in a fresh interpreter that
reports what its collector did, as the console script would.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

import make_rasters
from xvision.cli import main

ROOT = Path(__file__).resolve().parents[2]
#: Runs the CLI; at exit (after the CLI's own atexit handler, registered later: last in, first out)
#: prints the full collections seen while it ran and how many objects the exit found frozen.
PROBE = ("import atexit, gc, json, sys\n"
         "full = []\n"
         "gc.callbacks.append(lambda phase, info: full.append(1) if phase == 'stop' and info['generation'] == 2 "
         "else None)\n"
         "atexit.register(lambda: print(json.dumps({'full': len(full), 'frozen': gc.get_freeze_count()}), "
         "file=sys.stderr))\n"
         "from xvision.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def _run(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory) -> tuple[Path, dict]:
    """A generated L2A stack indexed on a 16-pixel grid through the probe (a writing command)."""
    stack = make_rasters.write_l2a_stack(tmp_path_factory.mktemp("stack"))
    store = tmp_path_factory.mktemp("grid") / "store"
    report = _run("index", str(stack), "--grid", "16", "--store", str(store), "--quiet")
    return store, report


def test_a_writing_command_keeps_the_default_collector(grid_store):
    _, report = grid_store
    assert report["frozen"] == 0


def test_a_read_only_ask_runs_no_full_collection_and_exits_frozen(grid_store):
    store, _ = grid_store
    report = _run("ask", "Which parcels had the highest NDVI?", "--store", str(store))
    # Importing pandas, LangChain and pydantic alone reaches Python's default full-collection
    # threshold several times (3 in a default process on the demo store).
    assert report["full"] == 0
    assert report["frozen"] > 10_000  # the imported modules' objects at least


def test_main_gives_the_callers_thresholds_back(grid_store, capsys):
    store, _ = grid_store
    before = gc.get_threshold()
    assert main(["ask", "Which parcels had the highest NDVI?", "--store", str(store)]) == 0
    assert "NDVI" in capsys.readouterr().out
    assert gc.get_threshold() == before
    assert main(["history", "no-such-parcel", "--store", str(store)]) == 2  # an error on the way out too
    assert gc.get_threshold() == before
