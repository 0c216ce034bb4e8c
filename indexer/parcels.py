"""Read agricultural parcel files into one clean, id-keyed GeoDataFrame.

Every supported format (GeoJSON, GeoPackage, shapefile, zipped shapefile / GeoPackage, fiboa-style
GeoParquet) ends up as the same shape: a ``parcel_id`` string column, a valid polygonal
``geometry`` and the file's other attribute columns untouched (crop labels live there). Anything
the user gave that cannot be used becomes an :class:`~indexer.core.errors.InputError` that names the
file and the problem in one line; GDAL / pyogrio / pyarrow tracebacks never reach the user.

The module also builds regular grid "pseudo-parcels" for rasters that come without a parcel file,
and serialises attributes to JSON so labels can be stored and searched later.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from indexer.core.errors import InputError
from indexer.core.limits import Limits, over_limit
from indexer.safe_open import (
    SHAPEFILE_SIDECARS,
    check_path,
    check_vector_driver,
    check_zip,
    extract_members,
    gdal_path,
    is_virtual,
    ogr_options,
    sniff_vector,
)

#: Columns taken as parcel ids when the user names none, in order of preference (case-insensitive).
#: ``id`` is also what fiboa GeoParquet files use.
ID_CANDIDATES: tuple[str, ...] = ("parcel_id", "id")

#: Suffixes of the vector files looked for inside a ``.zip``.
ZIP_MEMBER_SUFFIXES: tuple[str, ...] = (".shp", ".gpkg", ".geojson", ".json", ".fgb")

#: Suffixes read with ``geopandas.read_parquet`` rather than GDAL (GDAL builds may lack Parquet).
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".geoparquet")

#: Suffixes stripped from the file name to build generated ids (``x.gpkg.zip`` -> ``x``).
_STEM_SUFFIXES: frozenset[str] = frozenset(ZIP_MEMBER_SUFFIXES + PARQUET_SUFFIXES + (".zip",))

_POLYGONAL: frozenset[str] = frozenset({"Polygon", "MultiPolygon"})


@dataclass
class Parcels:
    """Parcels read from one file, cleaned and keyed by ``parcel_id``.

    Attributes:
        gdf: columns ``parcel_id`` (str, unique, non-empty), ``geometry`` (valid, non-empty
            Polygon/MultiPolygon) and every other original attribute column as read.
        source: the file the parcels came from.
        id_column: the original column the ids come from; ``None`` when ids were generated.
        repaired: how many invalid geometries were repaired with ``shapely.make_valid``.
        dropped: ``(parcel_id, reason)`` for each row left out (no geometry, not polygonal).
    """

    gdf: gpd.GeoDataFrame
    source: Path
    id_column: str | None
    repaired: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_parcels(path: str | Path, id_column: str | None = None, *, limits: Limits | None = None,
                 allow_virtual: bool = False) -> Parcels:
    """Read a parcel file, give every parcel a string id and keep only valid polygons.

    Args:
        path: GeoJSON, GeoPackage, shapefile, ``.zip`` holding one shapefile / GeoPackage /
            GeoJSON (also in a subfolder, also ``.gpkg.zip``) or GeoParquet (``.parquet``,
            ``.geoparquet``). Any CRS, but the file must declare one.
        id_column: column holding the parcel ids. ``None``: use a ``parcel_id`` or ``id`` column
            if there is one (any case), else generate ``f"{stem}-{row:05d}"`` ids.
        limits: features, vertices and (for a zip) entries and uncompressed bytes the file may
            hold; the declared counts are checked before the features are read.
        allow_virtual: read a GDAL virtual path or URL (only when the user typed it).

    The file is opened only as the format its suffix names (`indexer.safe_open`): an OGR VRT or
    any other content under a parcels suffix is refused, also inside a zip.

    Raises:
        InputError: the file is missing, unreadable, empty, not what its suffix says or over a
            limit, or has no CRS; ``id_column`` is not a column; ids are missing or duplicated;
            no polygon is left after cleaning.
    """
    check_path(path, allow_virtual=allow_virtual)
    source = Path(gdal_path(path))
    gdf = _read_frame(source, limits or Limits(), allow_virtual)
    if len(gdf) == 0:
        raise InputError(f"{source}: the parcels file contains no features")
    if gdf.crs is None:
        raise InputError(f"{source}: the parcels file has no CRS{_crs_hint(source)}")
    gdf = gdf.rename_geometry("geometry") if gdf.geometry.name != "geometry" else gdf

    chosen = _choose_id_column(gdf, source, id_column)
    ids = _ids_from_column(gdf, chosen, source) if chosen else _generated_ids(source, len(gdf))
    gdf = _insert_ids(gdf, ids, chosen)

    keep, repaired, dropped = _clean_geometries(gdf)
    if not keep.any():
        examples = "; ".join(f"{pid}: {why}" for pid, why in dropped[:3])
        raise InputError(f"{source}: no usable polygon in the parcels file ({examples})")
    gdf = gdf.loc[keep].reset_index(drop=True)
    return Parcels(gdf=gdf, source=source, id_column=chosen, repaired=repaired, dropped=dropped)


def _read_frame(source: Path, limits: Limits, allow_virtual: bool) -> gpd.GeoDataFrame:
    """Read the file's single parcel layer; every reader failure becomes one-line InputError."""
    if allow_virtual and is_virtual(source):
        return _guarded(source, lambda: _read_ogr(gdal_path(source), source.suffix.lower(), source, limits,
                                                  remote=True))
    if not source.exists():
        raise InputError(f"{source}: parcels file not found")
    if source.is_dir():
        raise InputError(f"{source}: is a folder; give the parcels file itself")
    if source.stat().st_size == 0:
        raise InputError(f"{source}: the parcels file is empty (0 bytes)")
    lower = source.name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return _guarded(source, lambda: _read_parquet(source, limits))
    if lower.endswith(".zip"):
        # The member is extracted (bounded) and read as a plain file, so that the same content and
        # driver checks apply inside a zip as outside, and GDAL's /vsizip/ never sees the archive.
        with tempfile.TemporaryDirectory(prefix="xvision-parcels-") as folder:
            member, path = _unzip_member(source, Path(folder), limits)
            return _guarded(source, lambda: _read_ogr(str(path), path.suffix.lower(), f"{source} (member {member})",
                                                      limits))
    return _guarded(source, lambda: _read_ogr(str(source), source.suffix.lower(), source, limits))


def _guarded(source: Path, read) -> gpd.GeoDataFrame:
    try:
        frame = read()
    except InputError:
        raise
    # Any reader failure here is the file's fault (corrupt, wrong format, bad zip, bad Parquet
    # metadata ...); the libraries raise many unrelated types, so they are all caught and reworded.
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{source}: cannot read the parcels file: {_one_line(err)}") from err
    if not isinstance(frame, gpd.GeoDataFrame) or frame.active_geometry_name is None:
        raise InputError(f"{source}: the parcels file has no geometry column")
    return frame


def _read_ogr(dataset: str, suffix: str, shown: object, limits: Limits, remote: bool = False) -> gpd.GeoDataFrame:
    """One layer through OGR, after the content (local files), driver and feature-count checks.

    `remote`: a virtual path or URL the user typed; its content cannot be sniffed before GDAL
    fetches it, the driver check still applies, and the network is on for it alone.
    """
    if not remote:
        sniff_vector(Path(dataset), suffix, shown)
    with ogr_options(network=remote):
        # read_info opens the dataset with whatever driver GDAL picks: its name is checked against
        # the suffix's before a layer or feature is read.
        check_vector_driver(pyogrio.read_info(dataset)["driver"], suffix, shown)
        layer = _pick_layer(dataset, shown)
        count = int(pyogrio.read_info(dataset, layer=layer, force_feature_count=True)["features"])
        if count > limits.max_parcel_features:
            raise over_limit(shown, "number of features", count, limits.max_parcel_features, "max_parcel_features")
        frame = gpd.read_file(dataset, layer=layer, engine="pyogrio", max_features=limits.max_parcel_features)
    _check_vertices(frame, shown, limits)
    return frame


def _read_parquet(source: Path, limits: Limits) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    sniff_vector(source, ".parquet", source)
    rows = pq.ParquetFile(source).metadata.num_rows
    if rows > limits.max_parcel_features:
        raise over_limit(source, "number of features", rows, limits.max_parcel_features, "max_parcel_features")
    frame = gpd.read_parquet(source)
    _check_vertices(frame, source, limits)
    return frame


def _check_vertices(frame, shown: object, limits: Limits) -> None:
    """Vertices are not in any header: counted right after reading, before any geometry work.

    What was read is already bounded by the feature limit and the file's (or zip's) size.
    """
    if isinstance(frame, gpd.GeoDataFrame) and frame.active_geometry_name is not None:
        vertices = int(shapely.get_num_coordinates(frame.geometry.to_numpy()).sum())
        if vertices > limits.max_parcel_vertices:
            raise over_limit(shown, "number of vertices", vertices, limits.max_parcel_vertices, "max_parcel_vertices")


def _unzip_member(source: Path, folder: Path, limits: Limits) -> tuple[str, Path]:
    """Extract the one vector file of the zip (a shapefile with its sidecars) into `folder`.

    The archive's entry count and declared uncompressed size are checked first (`check_zip`),
    and extraction stops at that size whatever the entries claim. Returns the member's name in
    the archive and its extracted path.
    """
    infos = check_zip(source, limits)
    names = [info.filename for info in infos if not info.is_dir()]
    member = _zip_member(source, names)
    wanted = [member]
    if member.lower().endswith(".shp"):
        stem = member[: -len(".shp")]
        wanted += [n for n in names if n != member and n.lower().startswith(stem.lower())
                   and n[len(stem):].lower() in SHAPEFILE_SIDECARS]
    extracted = extract_members(source, wanted, folder, limits)
    return member, extracted[member]


def _zip_member(source: Path, names: list[str]) -> str:
    """Name of the one vector file inside a zip, wherever it sits in the archive."""
    # macOS archivers add "__MACOSX/" and "._name" resource forks that look like data files.
    members = [
        n
        for n in names
        if n.lower().endswith(ZIP_MEMBER_SUFFIXES)
        and not n.startswith("__MACOSX/")
        and not Path(n).name.startswith("._")
    ]
    if not members:
        found = ", ".join(names[:8]) or "nothing"
        raise InputError(
            f"{source}: the zip holds no shapefile, GeoPackage or GeoJSON (found: {found})"
        )
    if len(members) > 1:
        raise InputError(
            f"{source}: the zip holds several parcel files ({', '.join(members)}); "
            "zip only one of them"
        )
    return members[0]


def _pick_layer(dataset: str, source: object) -> str:
    """Name of the layer to read: the only spatial layer, or the only polygon one among several."""
    layers = [(str(name), gtype) for name, gtype in pyogrio.list_layers(dataset)]
    spatial = [(name, gtype) for name, gtype in layers if gtype is not None]
    if not spatial:
        raise InputError(f"{source}: the parcels file has no layer with geometries")
    if len(spatial) == 1:
        return spatial[0][0]
    polygons = [name for name, gtype in spatial if "polygon" in str(gtype).lower()]
    if len(polygons) == 1:
        return polygons[0]
    names = ", ".join(name for name, _ in spatial)
    raise InputError(
        f"{source}: the parcels file has several geometry layers ({names}); keep only one"
    )


def _crs_hint(source: Path) -> str:
    """Where the CRS usually went missing, to make the error actionable."""
    lower = source.name.lower()
    if lower.endswith(".shp") or (lower.endswith(".zip") and not lower.endswith(".gpkg.zip")):
        return " (the shapefile's .prj file is missing); re-export it with its projection"
    return "; re-export it with its projection (e.g. ogr2ogr -a_srs EPSG:xxxx)"


def _one_line(err: BaseException) -> str:
    """The exception text on one line (GDAL messages may span several)."""
    text = " ".join(str(err).split())
    # pyogrio appends advice about '<DRIVER>:' path prefixes, which this reader never takes.
    text = text.split("; It might help to specify the correct driver")[0]
    return text or type(err).__name__


# --------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------


def _find_column(columns: Sequence[str], wanted: str) -> str | None:
    """The column named ``wanted``: exact match first, else the only case-insensitive match."""
    if wanted in columns:
        return wanted
    matches = [c for c in columns if c.lower() == wanted.lower()]
    return matches[0] if len(matches) == 1 else None


def _choose_id_column(gdf: gpd.GeoDataFrame, source: Path, id_column: str | None) -> str | None:
    """The column to take ids from (``None``: generate them)."""
    attributes = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    if id_column is not None:
        found = _find_column(attributes, id_column)
        if found is None:
            raise InputError(
                f"{source}: id column {id_column!r} not found; available columns: "
                f"{', '.join(attributes) or '(none)'}"
            )
        return found
    for candidate in ID_CANDIDATES:
        found = _find_column(attributes, candidate)
        if found is not None:
            return found
    return None


def _id_text(value: Any) -> str:
    """One id as text; integral floats (ints read from a float column) lose their ``.0``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.generic,)):
        value = value.item()
    return str(value).strip()


def _ids_from_column(gdf: gpd.GeoDataFrame, column: str, source: Path) -> pd.Series:
    """String ids from ``column``, refusing missing, empty or duplicated ones."""
    raw = gdf[column]
    missing = raw.isna().to_numpy()
    ids = pd.Series(
        ["" if miss else _id_text(v) for v, miss in zip(raw.tolist(), missing)],
        index=gdf.index,
        dtype=object,
    )
    empty = ids == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError(
            f"{source}: id column {column!r} has {int(empty.sum())} rows without an id "
            f"(first at row {row}); name an id column that is complete",
            path=source, field="id_column", value=column,
        )
    counts = ids.value_counts()
    duplicated = counts[counts > 1]
    if len(duplicated):
        example, times = duplicated.index[0], int(duplicated.iloc[0])
        raise InputError(
            f"{source}: id column {column!r} has duplicate ids, e.g. {example!r} ({times} rows); "
            "name an id column that is unique",
            path=source, field="id_column", value=column,
        )
    return ids


def _id_stem(source: Path) -> str:
    """File name without its format suffixes (``a.gpkg.zip`` -> ``a``)."""
    name = source.name
    while Path(name).suffix.lower() in _STEM_SUFFIXES:
        name = name[: -len(Path(name).suffix)]
    return name or source.name


def _generated_ids(source: Path, count: int) -> pd.Series:
    """Ids from the file stem and row order: the same file always gets the same ids."""
    stem = _id_stem(source)
    return pd.Series([f"{stem}-{i:05d}" for i in range(count)], dtype=object)


def _insert_ids(gdf: gpd.GeoDataFrame, ids: pd.Series, chosen: str | None) -> gpd.GeoDataFrame:
    """Put ``ids`` first as ``parcel_id``, keeping every original column."""
    gdf = gdf.reset_index(drop=True)
    # An original "parcel_id" column that is not the id source would be overwritten: keep it
    # under another name so no attribute is lost.
    if "parcel_id" in gdf.columns and chosen != "parcel_id":
        gdf = gdf.rename(columns={"parcel_id": "source_parcel_id"})
    elif chosen == "parcel_id":
        gdf = gdf.drop(columns="parcel_id")
    gdf.insert(0, "parcel_id", ids.to_numpy())
    return gdf


# --------------------------------------------------------------------------------------------
# Geometries
# --------------------------------------------------------------------------------------------


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of ``geom`` (None when it has none)."""
    if geom.geom_type in _POLYGONAL:
        return None if geom.is_empty else geom
    if geom.geom_type == "GeometryCollection":
        parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
        # union_all rather than a plain MultiPolygon: parts may touch or overlap.
        merged = shapely.union_all(parts) if parts else None
        return None if merged is None or merged.is_empty else merged
    return None


def _clean_geometries(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, int, list[tuple[str, str]]]:
    """Repair or drop geometries in place; return (rows kept, repaired count, dropped rows).

    Only rows that need work are looped over, so large, clean LPIS files stay fast.
    """
    # A copy: the GeometryArray's own buffer must not be edited behind pandas' back.
    geoms = np.array(gdf.geometry.to_numpy(), dtype=object, copy=True)
    # Raster masks are 2D; Z values only cost memory and trip some writers downstream.
    present = ~shapely.is_missing(geoms)
    geoms[present] = shapely.force_2d(geoms[present])
    type_ids = shapely.get_type_id(geoms)
    fine = (
        present
        & ~shapely.is_empty(geoms)
        & shapely.is_valid(geoms)
        & np.isin(type_ids, (3, 6))  # Polygon, MultiPolygon
    )
    keep = fine.copy()
    repaired = 0
    dropped: list[tuple[str, str]] = []
    ids = gdf["parcel_id"].to_numpy()
    for i in np.flatnonzero(~fine):
        geom = geoms[i]
        fixed, reason = _fix_one(geom)
        if fixed is None:
            dropped.append((str(ids[i]), reason))
            continue
        if not geom.is_valid:
            repaired += 1
        geoms[i] = fixed
        keep[i] = True
    gdf["geometry"] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
    return keep, repaired, dropped


def _fix_one(geom: shapely.Geometry | None) -> tuple[shapely.Geometry | None, str]:
    """Usable polygon for one problem geometry, or (None, why it cannot be used)."""
    if geom is None:
        return None, "missing geometry"
    if geom.is_empty:
        return None, "empty geometry"
    if geom.is_valid:
        fixed = _polygonal(geom)
        return fixed, "" if fixed is not None else f"not polygonal ({geom.geom_type})"
    # "structure" with keep_collapsed=False keeps areas only: zero-area rings and spikes vanish
    # instead of turning into lines.
    repaired = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    fixed = _polygonal(repaired)
    if fixed is None:
        return None, f"invalid {geom.geom_type} with no area left after repair"
    return fixed, ""


# --------------------------------------------------------------------------------------------
# Reprojection and footprints
# --------------------------------------------------------------------------------------------


def to_crs(parcels_gdf: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    """``parcels_gdf`` reprojected to ``crs`` (pyproj CRS, rasterio CRS, "EPSG:xxxx", WKT ...)."""
    if parcels_gdf.crs is None:
        raise InputError("parcels have no CRS; cannot reproject them")
    try:
        target = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise InputError(f"unknown CRS {crs!r}: {_one_line(err)}") from err
    return parcels_gdf.to_crs(target)


def in_footprint(
    parcels_gdf: gpd.GeoDataFrame, crs: Any, bounds: tuple[float, float, float, float]
) -> tuple[gpd.GeoDataFrame, int]:
    """Parcels in the raster's CRS that touch its bounds box, and how many lie outside.

    Args:
        parcels_gdf: parcels in any CRS.
        crs: the raster's CRS.
        bounds: ``(minx, miny, maxx, maxy)`` of the raster, in ``crs``.

    Returns:
        ``(kept, n_outside)``: kept parcels reprojected to ``crs`` (original order), and the
        number of parcels that do not intersect the box.
    """
    minx, miny, maxx, maxy = bounds
    if not (minx < maxx and miny < maxy):
        raise ValueError(f"bounds must be (minx, miny, maxx, maxy) with min < max, got {bounds}")
    projected = to_crs(parcels_gdf, crs)
    inside = projected.intersects(shapely.box(minx, miny, maxx, maxy)).to_numpy()
    return projected.loc[inside].copy(), int((~inside).sum())


# --------------------------------------------------------------------------------------------
# Grid pseudo-parcels
# --------------------------------------------------------------------------------------------


def _crs_tag(crs: pyproj.CRS) -> str:
    """EPSG code of ``crs``, or a short stable hash of its WKT when it has none."""
    epsg = crs.to_epsg()
    if epsg is not None:
        return str(epsg)
    return "wkt" + hashlib.sha1(crs.to_wkt().encode("utf-8")).hexdigest()[:8]


def _coord_text(value: float) -> str:
    """Coordinate for an id: integer metres stay integers, degrees keep up to 6 decimals."""
    # "+ 0.0" turns -0.0 into 0.0 so it is not written "-0".
    return f"{round(value, 6) + 0.0:.6f}".rstrip("0").rstrip(".")


def grid_parcels(
    crs: Any,
    transform: affine.Affine,
    width: int,
    height: int,
    cell: int,
    prefix: str = "grid",
) -> gpd.GeoDataFrame:
    """Cut a ``width`` x ``height`` px raster into ``cell`` x ``cell`` px square pseudo-parcels.

    Partial cells at the right and bottom edges are dropped: a partial cell would mix sizes, and
    its id would clash in meaning with the full cell of a larger raster on the same grid.

    Ids are ``f"{prefix}{cell}-{epsg}-{x0}-{y0}"`` with ``(x0, y0)`` the cell's upper-left corner
    in the raster CRS, so two rasters on the same grid give the same id to the same square.

    Returns:
        GeoDataFrame in the raster CRS with columns ``parcel_id`` and ``geometry``, row-major
        from the upper-left cell.
    """
    if cell <= 0 or width <= 0 or height <= 0:
        raise InputError(f"grid cell ({cell}) and raster size ({width}x{height}) must be positive")
    cols, rows = width // cell, height // cell
    if cols == 0 or rows == 0:
        raise InputError(f"grid cell of {cell} px is larger than the raster ({width}x{height} px)")
    target = pyproj.CRS.from_user_input(crs)

    # Pixel coordinates of each cell's corners (ring order UL, UR, LR, LL, UL), then the affine
    # transform maps them to the CRS; this also handles rotated rasters.
    row_idx, col_idx = np.divmod(np.arange(rows * cols), cols)
    px0, py0 = col_idx * cell, row_idx * cell
    ring_x = np.stack([px0, px0 + cell, px0 + cell, px0, px0], axis=1)
    ring_y = np.stack([py0, py0, py0 + cell, py0 + cell, py0], axis=1)
    xs, ys = transform @ (ring_x.astype(float), ring_y.astype(float))
    polygons = shapely.polygons(np.stack([xs, ys], axis=-1))

    tag = f"{prefix}{cell}-{_crs_tag(target)}"
    ids = [f"{tag}-{_coord_text(x)}-{_coord_text(y)}" for x, y in zip(xs[:, 0], ys[:, 0])]
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=polygons, crs=target)


# --------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """``value`` as something ``json.dumps`` writes faithfully (NaN/NaT/inf -> None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        # .item() would give bare integers for ns precision; pandas keeps the meaning.
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        if value is pd.NaT:
            return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _json_safe(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):  # pd.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):  # fiboa list / struct columns
        return [_json_safe(v) for v in value]
    if isinstance(value, shapely.Geometry):
        return value.wkt
    return str(value)


def attributes_json(gdf: gpd.GeoDataFrame) -> list[str]:
    """Per row, a JSON object of every column except ``parcel_id`` and the geometry.

    Values are made JSON-safe (numpy scalars -> Python, NaN -> null, dates -> ISO 8601) so crop
    labels can be stored as text and searched later; non-ASCII labels stay readable.
    """
    skip = {"parcel_id", gdf.geometry.name if isinstance(gdf, gpd.GeoDataFrame) else "geometry"}
    columns = [c for c in gdf.columns if c not in skip]
    values = gdf[columns].astype(object).to_numpy()
    return [
        json.dumps(
            {str(c): _json_safe(v) for c, v in zip(columns, row)},
            ensure_ascii=False,
            allow_nan=False,
        )
        for row in values
    ]
