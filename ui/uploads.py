"""Uploaded rasters and parcels: written inside the app's data folder only, then indexed.

Nothing the user sends names a path: each upload goes to a new folder under
`<data_dir>/uploads/`, under a sanitised version of its base name (kept because the reader takes
the acquisition date from the file name). Indexing goes through `indexer.pipeline.index`, which
reads and checks every raster and the parcels file before it opens the store, and the run commits
once, at the end: the store's manifest replacement is its only commit point, so a bad file, or
any failure while indexing, leaves the store exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from indexer.core.errors import InputError

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


def check(rasters: list[Path], parcels: Path | None) -> None:
    """Open every saved raster and the parcels file with the indexer's readers (their errors name
    the file and what is wrong), before anything is indexed."""
    from indexer.parcels import read_parcels
    from indexer.reader import discover_inputs, open_scene

    for path in discover_inputs([str(p) for p in rasters]):
        open_scene(path).close()
    if parcels is not None:
        read_parcels(parcels)


def index_uploads(store: Path, rasters: list[Path], parcels: Path | None, grid: int | None, encoder,
                  on_progress: Callable[[int, int], None]):
    """Index the saved uploads into `store` with the store's `encoder`, in one commit; returns the
    pipeline's summary."""
    from indexer.pipeline import IndexConfig, index

    config = IndexConfig(store=store, inputs=tuple(str(p) for p in rasters), parcels=parcels,
                         grid=None if parcels else grid, commit_every=_ONE_COMMIT, progress=False)
    return index(config, encoder, progress=on_progress)


def discard(paths: list[Path]) -> None:
    """Remove the upload folder of a failed run (its files were never referenced by a record)."""
    if paths:
        shutil.rmtree(paths[0].parent, ignore_errors=True)
