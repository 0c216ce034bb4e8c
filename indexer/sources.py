"""Re-reading a stored record's chip from the imagery it was indexed from.

A record's ``source`` is the path of the raster, band folder or STAC item it was read from.
`reread_chips` opens those sources again with the indexer's own reader and extracts each
record's chip with the same window-and-extract step as indexing (`chips.extract_parcels`), so
fine-tuning can augment real chips and the app can draw thumbnails. Moved files are found by
name under the folders given as `imagery`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np

from indexer.chips import extract_parcels
from indexer.core.errors import InputError
from indexer.reader import discover_inputs, open_scene


@dataclass(frozen=True)
class SourceLookup:
    """Where each record source is on this machine; `missing` lists those found nowhere."""

    found: Mapping[str, Path]
    missing: tuple[str, ...]


def locate_sources(sources: Sequence[str], imagery: Sequence[str | Path] = ()) -> SourceLookup:
    """Find each source: at its recorded path, else by name under the `imagery` folders/files.

    `imagery` wins over the recorded path when both have the file (the user named it).
    """
    by_name: dict[str, Path] = {}
    if imagery:
        for path in discover_inputs(imagery):
            by_name.setdefault(path.name, path)
    found, missing = {}, []
    for source in dict.fromkeys(str(s) for s in sources):
        name = Path(source).name
        if name in by_name:
            found[source] = by_name[name]
        elif Path(source).exists():
            found[source] = Path(source)
        else:
            missing.append(source)
    return SourceLookup(found, tuple(missing))


def reread_chips(records: Sequence[Mapping], bands: Sequence[str], size: int, imagery: Sequence[str | Path] = (),
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The chips of `records` (store rows with ``source``, ``geometry`` in WGS84, ``parcel_id``)
    re-extracted from their sources.

    Returns float32 reflectance [N, len(bands), size, size] and the valid masks [N, size, size]
    in the order of `records`. InputError listing every source found neither at its recorded
    path nor under `imagery`.
    """
    lookup = locate_sources([r["source"] for r in records], imagery)
    if lookup.missing:
        where = f" or under {', '.join(map(str, imagery))}" if imagery else ""
        shown = ", ".join(lookup.missing[:5]) + (f" and {len(lookup.missing) - 5} more" if len(lookup.missing) > 5 else "")
        raise InputError(f"{len(lookup.missing)} source(s) of the records are not at their recorded path{where}: "
                         f"{shown}", path=lookup.missing[0], field="imagery", value=list(lookup.missing),
                         hint="name the folder the imagery was moved to")
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        rows_of[str(record["source"])].append(i)
    bands = tuple(bands)
    chips = np.zeros((len(records), len(bands), size, size), dtype=np.float32)
    valid = np.zeros((len(records), size, size), dtype=bool)
    for source, rows in rows_of.items():
        with open_scene(lookup.found[source]) as scene:
            shapes = gpd.GeoSeries([records[i]["geometry"] for i in rows], crs="EPSG:4326").to_crs(scene.crs)
            extracted = extract_parcels(scene, list(shapes), [records[i]["parcel_id"] for i in rows], bands, size)
            for i, chip in zip(rows, extracted):
                chips[i], valid[i] = chip.chip, chip.chip_valid
        if progress:
            progress(len(rows))
    return chips, valid
