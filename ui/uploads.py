"""Uploaded rasters and parcels: written inside the app's data folder only, then indexed.

Nothing the user sends names a path: each upload goes to a new folder under
`<data_dir>/uploads/`, under a sanitised version of its base name (kept because the reader takes
the acquisition date from the file name). Indexing goes through `indexer.pipeline.index`, which
reads and checks every raster and the parcels file before it opens the store, and the run commits
once, at the end: the store's manifest replacement is its only commit point, so a bad file, or
any failure while indexing, leaves the store exactly as it was.

Uploads are hostile until checked: they are read only as the formats they claim, never through
GDAL's network or virtual file systems (`indexer.safe_open`), their declared sizes are held to
`indexer.core.limits.Limits` before any work, and the checking and indexing run in a *worker
process* (`python -m ui.uploads`) whose address space is capped (`RLIMIT_AS`,
`Limits.worker_memory_bytes`). Whatever an upload makes the reader allocate is the worker's: when
it fails or is killed, its memory goes back to the system and the server stays as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from indexer.core.errors import InputError, StoreError, XVisionError
from indexer.core.limits import Limits

RASTER_TYPES = ("tif", "tiff", "jp2")
PARCEL_TYPES = ("gpkg", "geojson", "json", "zip", "parquet", "geoparquet")
#: One commit per upload: the run is all or nothing.
_ONE_COMMIT = 1 << 62


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the browser gave and its bytes."""

    name: str
    data: bytes


def safe_name(name: str, allowed: tuple[str, ...]) -> str:
    """The base name with only letters, digits, `.`, `-`, `_`; refused unless its suffix is allowed."""
    base = re.split(r"[\\/]", name)[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")[:120]
    suffix = clean.rsplit(".", 1)[-1].lower() if "." in clean else ""
    if not clean or suffix not in allowed:
        raise InputError(f"{name!r}: not a {' / '.join('.' + a for a in allowed)} file", field="file", value=name)
    return clean


def save(data_dir: Path, rasters: list[Upload], parcels: Upload | None,
         max_bytes: int) -> tuple[list[Path], Path | None]:
    """Write the uploads into a fresh folder under `data_dir/uploads`; return their paths."""
    if not rasters:
        raise InputError("no raster uploaded", field="rasters")
    for upload in [*rasters, *([parcels] if parcels else [])]:
        if len(upload.data) > max_bytes:
            raise InputError(f"{upload.name}: {len(upload.data) / 1e6:.1f} MB is over the "
                             f"{max_bytes / 1e6:.0f} MB limit", field="file", value=upload.name)
    names = [safe_name(u.name, RASTER_TYPES) for u in rasters]
    if len(set(names)) != len(names):
        raise InputError("two rasters have the same name", field="rasters")
    parcels_name = "parcels-" + safe_name(parcels.name, PARCEL_TYPES) if parcels else None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    folder = (Path(data_dir) / "uploads" / f"{stamp}-{uuid.uuid4().hex[:8]}").resolve()
    folder.mkdir(parents=True)
    paths = [_write(folder, name, upload.data) for upload, name in zip(rasters, names)]
    parcels_path = _write(folder, parcels_name, parcels.data) if parcels else None
    return paths, parcels_path


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = (folder / name).resolve()
    if path.parent != folder:  # cannot happen after safe_name; checked because it must never happen
        raise InputError(f"{name!r}: refused, it would be written outside the upload folder")
    path.write_bytes(data)
    return path


def check(rasters: list[Path], parcels: Path | None, limits: Limits | None = None) -> None:
    """Open every saved raster and the parcels file with the indexer's readers (their errors name
    the file and what is wrong), before anything is indexed. Uploads are never read as virtual
    paths, and their declared sizes are held to `limits`."""
    from indexer.parcels import read_parcels
    from indexer.reader import ReadOptions, discover_inputs, open_scene

    options = ReadOptions(limits=limits or Limits(), allow_virtual=False)
    for path in discover_inputs([str(p) for p in rasters], allow_virtual=False):
        open_scene(path, options).close()
    if parcels is not None:
        read_parcels(parcels, limits=options.limits, allow_virtual=False)


#: Lines of the worker's protocol on its stdout start with this (libraries may print other lines).
_MARK = "XVISION-WORKER "


def index_uploads(store: Path, rasters: list[Path], parcels: Path | None, grid: int | None,
                  on_progress: Callable[[int, int], None], limits: Limits | None = None,
                  on_stage: Callable[[str], None] | None = None) -> list[str]:
    """Check and index the saved uploads into `store` (with the store's own encoder, in one commit)
    in a worker process capped at `limits.worker_memory_bytes`; returns the run's summary lines.

    `on_stage(text)` is told when the worker moves on (checking, loading the encoder, indexing);
    `on_progress(done, total)` after every batch. The library's errors come back as the same error
    types with their message; a worker that runs out of its memory, or dies, is an InputError
    saying so. Nothing is committed unless the whole run succeeds.
    """
    limits = limits or Limits()
    job = {"store": str(store), "rasters": [str(p) for p in rasters], "parcels": str(parcels) if parcels else None,
           "grid": None if parcels else grid, "limits": asdict(limits)}
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # fewer per-thread malloc arenas: less address space
    result: dict | None = None
    # stderr goes to a file: a pipe nobody reads while progress is read would fill and block.
    with tempfile.TemporaryFile(mode="w+") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "ui.uploads", json.dumps(job)], stdout=subprocess.PIPE,
                                stderr=errors, stdin=subprocess.DEVNULL, text=True, env=env)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith(_MARK):
                    continue
                message = json.loads(line[len(_MARK):])
                if "progress" in message:
                    on_progress(*message["progress"])
                elif "stage" in message:
                    if on_stage:
                        on_stage(message["stage"])
                else:
                    result = message
            code = proc.wait()
        finally:
            if proc.poll() is None:  # the page was left mid-run: the worker goes with it
                proc.kill()
                proc.wait()
        errors.seek(0)
        stderr = errors.read()
    if result is not None and "summary" in result:
        return list(result["summary"])
    if result is not None and result.get("error") in _ERRORS:
        raise _ERRORS[result["error"]](result["message"], field=result.get("field"), path=result.get("path"))
    gib = limits.worker_memory_bytes / (1 << 30)
    out_of_memory = (result is not None and result.get("error") == "MemoryError") or "bad_alloc" in stderr
    if out_of_memory or code in (-9, -6):  # SIGKILL (the kernel's OOM killer), SIGABRT (C++ bad_alloc)
        raise InputError(f"indexing the upload needs more memory than the worker's limit of {gib:.1f} GiB; nothing "
                         "was added (split the input, or raise worker_memory_bytes)", field="worker_memory_bytes",
                         value=limits.worker_memory_bytes)
    detail = result.get("message") if result else (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
    raise InputError(f"indexing the upload failed: {' '.join(str(detail).split())[:300]}")


#: Error types the worker reports by name and the page shows as the library's own errors.
_ERRORS: dict[str, type[XVisionError]] = {cls.__name__: cls for cls in (InputError, StoreError, XVisionError)}


def _emit(message: dict) -> None:
    print(_MARK + json.dumps(message), flush=True)


def _worker(job: dict) -> None:
    """The worker's run: cap the address space first, then check, load the encoder and index."""
    import resource

    limits = Limits(**job["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.worker_memory_bytes, limits.worker_memory_bytes))
    try:
        from assistant import encoder_for
        from indexer.pipeline import IndexConfig, index
        from indexer.reader import ReadOptions

        rasters = [Path(p) for p in job["rasters"]]
        parcels = Path(job["parcels"]) if job["parcels"] else None
        _emit({"stage": "Checking the files…"})
        check(rasters, parcels, limits)
        _emit({"stage": "Loading the store's encoder…"})
        encoder = encoder_for(job["store"])
        config = IndexConfig(store=Path(job["store"]), inputs=tuple(job["rasters"]), parcels=parcels,
                             grid=job["grid"], read=ReadOptions(limits=limits, allow_virtual=False),
                             commit_every=_ONE_COMMIT, progress=False)
        summary = index(config, encoder, progress=lambda done, total: _emit({"progress": [done, total]}))
        _emit({"summary": summary.lines()})
    except XVisionError as exc:
        kind = next(c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERRORS)  # its nearest reported base
        _emit({"error": kind, "message": str(exc), "field": exc.field, "path": exc.path})
    except MemoryError:
        _emit({"error": "MemoryError", "message": "out of memory"})
    except ImportError as exc:
        # Under the address-space cap a shared library that cannot be mapped is an ImportError.
        if "failed to map segment" in str(exc) or "Cannot allocate memory" in str(exc):
            _emit({"error": "MemoryError", "message": str(exc)})
        else:  # this build cannot provide the store's encoder
            _emit({"error": "ImportError",
                   "message": f"indexing from the app is not available in this build ({exc})"})


def discard(paths: list[Path]) -> None:
    """Remove the upload folder of a failed run (its files were never referenced by a record)."""
    if paths:
        shutil.rmtree(paths[0].parent, ignore_errors=True)


if __name__ == "__main__":  # the worker process of `index_uploads`
    _worker(json.loads(sys.argv[1]))
