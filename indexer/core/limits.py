"""How large an input may be before any work is done on it.

Inputs come from users and, through the app, from anyone who can reach it: a 42 KB sparse GeoTIFF
can declare 36000 x 18000 pixels, a 4 MB zip can hold 4 GiB. Every reader checks the sizes a file
*declares* (raster width x height from its header, feature counts from the layer's metadata, the
uncompressed sizes in a zip's central directory) against these limits before it reads a pixel or a
geometry, and the refusal names the file, what was found and the limit.

The defaults fit real Sentinel-2 use on a laptop: one full 110 x 110 km tile at 10 m, a regional
LPIS extract, a zipped shapefile of it. `Limits.from_env` lets an operator change any of them
without code (`XVISION_MAX_RASTER_PIXELS=...`); the command line and the app both read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from indexer.core.errors import InputError

#: One full Sentinel-2 tile at 10 m (10980 x 10980 px).
S2_TILE_PIXELS = 10980 * 10980

#: Environment variable prefix of `Limits.from_env` (`XVISION_` + the field name in upper case).
ENV_PREFIX = "XVISION_"


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one input may declare, checked before the input is read.

    Attributes:
        max_raster_pixels: width x height of one raster (or of the finest band of a band folder).
        max_grid_cells: grid pseudo-parcels cut from one raster (`--grid N`): each becomes a record.
        max_parcel_features: features in one parcels file.
        max_parcel_vertices: coordinates over all geometries of one parcels file.
        max_unzipped_bytes: total uncompressed size of the members of one zip archive.
        max_zip_members: entries in one zip archive (a zipped shapefile has 4 to 8).
        max_upload_bytes: size of one file uploaded through the app.
        max_pixel_size_m: pixels coarser than this (metres; Sentinel-2's coarsest band is 60 m)
            are not Sentinel-2 imagery: a parcel would be one or two pixels.
        worker_memory_bytes: address space of the worker process that indexes an upload in the
            app (`resource.RLIMIT_AS`); the server itself never grows by an upload.
    """

    max_raster_pixels: int = S2_TILE_PIXELS
    max_grid_cells: int = 200_000
    max_parcel_features: int = 500_000
    max_parcel_vertices: int = 20_000_000
    max_unzipped_bytes: int = 1 << 30
    max_zip_members: int = 100
    max_upload_bytes: int = 200_000_000
    max_pixel_size_m: float = 60.0
    worker_memory_bytes: int = 8 << 30

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"limit {item.name} must be a positive number, got {value!r}",
                                 field=item.name, value=value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, each overridden by `XVISION_<FIELD>` when set (e.g. `XVISION_MAX_GRID_CELLS`).

        Integers may be written with `_` separators; an unparsable value is an InputError naming
        the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, int | float] = {}
        for item in fields(cls):
            name = ENV_PREFIX + item.name.upper()
            raw = environ.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[item.name] = float(raw) if item.type in (float, "float") else int(raw.replace("_", ""))
            except ValueError:
                raise InputError(f"environment variable {name}={raw!r} is not a number", field=item.name,
                                 value=raw) from None
        return cls(**values)


def over_limit(subject: object, what: str, found: int | float, limit: int | float, setting: str) -> InputError:
    """The one-line refusal: "<subject>: <what>: <found>, over the limit of <limit>; ...".

    `setting` is the `Limits` field, so front ends and operators know which knob it is
    (`XVISION_<SETTING>`).
    """
    return InputError.about(
        subject, f"{what}: {_number(found)}, over the limit of {_number(limit)}",
        hint=f"refused before any work (limit {setting}, environment variable {ENV_PREFIX}{setting.upper()})",
        path=None if subject is None else str(subject), field=setting, value=found,
    )


def _number(value: int | float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"
