"""Open Sentinel-2 acquisitions in their three common layouts and read windows on the 10 m grid.

* a multi-band GeoTIFF whose band descriptions name the bands (or the caller gives the band order);
* a folder of one acquisition's per-band files at mixed 10/20/60 m resolution (also a SAFE
  granule's `IMG_DATA`), warped onto the grid of the finest band;
* a STAC Item JSON whose assets point to local GeoTIFF / COG files.

`open_scene` validates what can be checked up front (readable, georeferenced, named bands, not
all nodata) so that a bad input fails before anything is written to a store. Reads are windowed:
memory is bounded by the parcel window, not by the raster.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from indexer.core.bands import (
    BAND_FILE_RE,
    BAND_NAMES,
    TILE_RE,
    normalize_band_name,
)
from indexer.radiometry import Radiometry, baseline_from_name, choose_radiometry, parse_baseline
from indexer.core.errors import InputError
from indexer.core.limits import Limits, over_limit
from indexer.safe_open import check_path, gdal_path, is_virtual, open_raster

RASTER_SUFFIXES = {".tif", ".tiff", ".jp2"}
_DATE_RES = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T\d{4,6})?(?!\d)"),
)


@dataclass(frozen=True)
class ReadOptions:
    """What the user told us about inputs whose metadata is incomplete."""

    bands: tuple[str, ...] | None = None  # band order of a stack without descriptions
    date: dt.date | None = None  # acquisition date when nothing in the file says it
    boa_offset: float | None = None  # force the DN offset (e.g. -1000 or 0)
    #: Sizes a raster may declare (pixels, pixel size); checked from its header before any read.
    limits: Limits = field(default_factory=Limits)
    #: Read GDAL virtual paths and URLs (`/vsicurl/...`). Only for paths the user typed on the
    #: command line: a file's own references and the app's uploads never are.
    allow_virtual: bool = False


@dataclass
class BandRef:
    """Where one band lives: a file and its 1-based band index."""

    path: Path
    index: int = 1


@dataclass
class Observation:
    """A window read on the scene's 10 m grid.

    `reflectance` is float32 [band, row, col] in `bands` order with NaN for nodata; `scl` is the
    Sen2Cor scene classification on the same grid when the product has one.
    """

    bands: tuple[str, ...]
    reflectance: np.ndarray
    scl: np.ndarray | None
    window: Window
    transform: rasterio.Affine

    def band(self, name: str) -> np.ndarray:
        return self.reflectance[self.bands.index(name)]


@dataclass
class Scene:
    """One acquisition: its grid, date, product facts and where each band is stored."""

    name: str
    paths: list[Path]
    date: dt.date
    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    width: int
    height: int
    band_refs: dict[str, BandRef]
    scl_ref: BandRef | None
    radiometry: Radiometry
    nodata: dict[str, tuple[float, ...]]
    level: str  # "L1C", "L2A" or "unknown"
    tile: str | None = None
    #: The path the acquisition was opened from (what a record's ``source`` names).
    origin: Path | None = None
    #: Whether the scene's paths may be virtual (the user typed them; see `ReadOptions`).
    allow_virtual: bool = False
    _stack: ExitStack | None = field(default=None, repr=False)
    _datasets: dict[tuple[Path, str], object] = field(default_factory=dict, repr=False)

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands present, in Sentinel-2 product order."""
        return tuple(b for b in BAND_NAMES if b in self.band_refs)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the grid in the scene CRS."""
        return _bounds(self.transform, self.width, self.height)

    # -- reading -------------------------------------------------------------------------
    def __enter__(self) -> Scene:
        self._stack = ExitStack()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._datasets.clear()

    def _dataset(self, ref: BandRef, resampling: Resampling):
        """The band's dataset, warped onto the 10 m grid when its own grid differs."""
        key = (ref.path, resampling.name)
        if key in self._datasets:
            return self._datasets[key]
        if self._stack is None:
            self._stack = ExitStack()
        src = self._stack.enter_context(open_raster(ref.path, allow_virtual=self.allow_virtual))
        if src.transform != self.transform or (src.width, src.height) != (self.width, self.height):
            nodata = src.nodata if src.nodata is not None else 0
            src = self._stack.enter_context(
                WarpedVRT(
                    src,
                    crs=self.crs,
                    transform=self.transform,
                    width=self.width,
                    height=self.height,
                    resampling=resampling,
                    src_nodata=nodata,
                    nodata=nodata,
                )
            )
        self._datasets[key] = src
        return src

    def read(self, window: Window) -> Observation:
        """Read `window` (may extend past the raster: the outside is NaN / SCL 0)."""
        full = Window(0, 0, self.width, self.height)
        inner = window.intersection(full) if _overlaps(window, full) else None
        h, w = int(window.height), int(window.width)
        bands = self.bands
        out = np.full((len(bands), h, w), np.nan, dtype=np.float32)
        scl = np.zeros((h, w), dtype=np.uint8) if self.scl_ref is not None else None
        if inner is not None:
            r0 = int(inner.row_off - window.row_off)
            c0 = int(inner.col_off - window.col_off)
            ih, iw = int(inner.height), int(inner.width)
            for i, name in enumerate(bands):
                ref = self.band_refs[name]
                dn = self._read_band(ref, inner, Resampling.bilinear)
                out[i, r0 : r0 + ih, c0 : c0 + iw] = self.radiometry.to_reflectance(
                    dn, self.nodata[name]
                )
            if self.scl_ref is not None and scl is not None:
                # Classes are categorical: nearest neighbour, never interpolated.
                scl[r0 : r0 + ih, c0 : c0 + iw] = self._read_band(
                    self.scl_ref, inner, Resampling.nearest
                )
        transform = rasterio.windows.transform(window, self.transform)
        return Observation(bands, out, scl, window, transform)

    def _read_band(self, ref: BandRef, window: Window, resampling: Resampling) -> np.ndarray:
        src = self._dataset(ref, resampling)
        try:
            return src.read(ref.index, window=window)
        except RasterioError as exc:
            raise InputError(f"{ref.path}: read failed, file truncated or corrupt ({_one_line(exc)})") from None


def _bounds(transform: rasterio.Affine, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (width, height)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _overlaps(a: Window, b: Window) -> bool:
    return (
        a.col_off < b.col_off + b.width
        and b.col_off < a.col_off + a.width
        and a.row_off < b.row_off + b.height
        and b.row_off < a.row_off + a.height
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# ---------------------------------------------------------------------------------------------
# Metadata helpers


def date_from_text(text: str) -> dt.date | None:
    """First YYYY-MM-DD or YYYYMMDD date in `text` that is a real calendar date."""
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            try:
                return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            except ValueError:
                continue
    return None


def _level_from_text(text: str) -> str | None:
    upper = text.upper()
    for level in ("L2A", "L1C"):
        if level in upper:
            return level
    return None


def _tile_from_text(text: str) -> str | None:
    match = TILE_RE.search(text)
    return match.group("tile") if match else None


# ---------------------------------------------------------------------------------------------
# Opening


def open_scene(path: str | Path, options: ReadOptions | None = None) -> Scene:
    """Open one acquisition (GeoTIFF stack, band folder / SAFE granule, or STAC item JSON)."""
    options = options or ReadOptions()
    check_path(path, allow_virtual=options.allow_virtual)
    path = _as_path(path)
    if is_virtual(path):  # a URL the user typed: read as a stack through the network
        scene = _open_stack(path, options)
        scene.allow_virtual = True
        _check_has_data(scene)
        scene.origin = path
        return scene
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        scene = _open_band_folder(path, options)
    elif path.suffix.lower() == ".json":
        scene = _open_stac_item(path, options)
    elif path.suffix.lower() in RASTER_SUFFIXES:
        scene = _open_stack(path, options)
    else:
        raise InputError(f"{path}: not a GeoTIFF/JP2 raster, band folder or STAC item JSON")
    _check_has_data(scene)
    scene.origin = path.resolve()
    return scene


def discover_inputs(paths: Sequence[str | Path], allow_virtual: bool = False) -> list[Path]:
    """Expand the user's arguments into one path per acquisition.

    A folder holding band files (directly or under a SAFE `IMG_DATA`) is one acquisition; any
    other folder contributes each raster stack, STAC item and sub-folder inside it. A GDAL virtual
    path or URL is refused unless `allow_virtual` (the user typed it); it is then one stack.
    """
    found: list[Path] = []
    for raw in paths:
        check_path(raw, allow_virtual=allow_virtual)
        path = _as_path(raw)
        if is_virtual(path):
            found.append(path)
            continue
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        found.extend(_discover(path))
    if not found:
        raise InputError(f"no Sentinel-2 rasters found in: {', '.join(map(str, paths))}")
    return found


def _as_path(raw: str | Path) -> Path:
    """`raw` as a Path; a typed web URL becomes its `/vsicurl/` path (`safe_open.gdal_path`)."""
    return Path(gdal_path(raw))


def _discover(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    if _band_files(path):
        # A STAC item saved beside its assets (B04.tif, SCL.tif ...) is the acquisition, not the folder.
        items = [c for c in sorted(path.glob("*.json")) if _looks_like_stac_item(c)]
        yield from items or [path]
        return
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _discover(child)
        elif child.suffix.lower() in RASTER_SUFFIXES:
            yield child
        elif child.suffix.lower() == ".json" and _looks_like_stac_item(child):
            yield child


def _looks_like_stac_item(path: Path) -> bool:
    try:
        with path.open() as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" and "assets" in data


def _band_files(folder: Path) -> dict[str, Path]:
    """Band name -> file for a folder of per-band rasters, finest resolution first.

    SAFE L2A granules keep several resolutions of the same band (R10m/R20m/R60m); the native
    (finest) one is taken.
    """
    candidates: dict[str, list[Path]] = {}
    search = list(folder.glob("*"))
    # Only the SAFE layouts' own IMG_DATA (granule/IMG_DATA, product/GRANULE/*/IMG_DATA), never one
    # further down: a folder holding several products must not be read as one acquisition.
    img_data = [p for p in (folder / "IMG_DATA", *folder.glob("GRANULE/*/IMG_DATA")) if p.is_dir()]
    for sub in img_data:
        search.extend(sub.rglob("*"))
    for file in search:
        if not file.is_file():
            continue
        match = BAND_FILE_RE.search(file.name)
        if match:
            candidates.setdefault(match.group("band").upper(), []).append(file)
    chosen: dict[str, Path] = {}
    for band, files in candidates.items():
        chosen[band] = min(files, key=_pixel_size_hint)
    return chosen


def _pixel_size_hint(path: Path) -> float:
    match = re.search(r"_(10|20|60)m\.", path.name)
    return float(match.group(1)) if match else 0.0


def _nodata_of(src) -> tuple[float, ...]:
    # DN 0 is nodata in every Sentinel-2 product; a file may declare another value too.
    values = [0.0]
    if src.nodata is not None and src.nodata != 0:
        values.append(float(src.nodata))
    return tuple(values)


def _open_dataset(path: Path, options: ReadOptions):
    """The raster, opened only as a GeoTIFF / JPEG 2000 (`indexer.safe_open`), its declared size
    checked against the limits before anything else is read."""
    src = open_raster(path, allow_virtual=options.allow_virtual)
    try:
        _check_size(src, path, options.limits)
    except InputError:
        src.close()
        raise
    return src


def _check_size(src, path: Path, limits: Limits) -> None:
    pixels = src.width * src.height
    if pixels > limits.max_raster_pixels:
        raise over_limit(path, f"raster size {src.width} x {src.height} pixels", pixels, limits.max_raster_pixels,
                         "max_raster_pixels")


def pixel_size_m(crs, transform: rasterio.Affine, height: int) -> float:
    """The larger side of one pixel in metres (degrees converted at the raster's middle latitude)."""
    x_size = math.hypot(transform.a, transform.d)
    y_size = math.hypot(transform.b, transform.e)
    if crs is not None and crs.is_geographic:
        latitude = (transform * (0, height / 2))[1]
        metres_per_degree = 111_320.0
        return max(x_size * metres_per_degree * max(math.cos(math.radians(latitude)), 1e-6),
                   y_size * metres_per_degree)
    factor = 1.0
    if crs is not None:
        try:
            factor = float(crs.linear_units_factor[1])
        except Exception:  # noqa: BLE001  a CRS without linear units: taken as metres
            factor = 1.0
    return max(x_size, y_size) * factor


def _check_pixel_size(crs, transform: rasterio.Affine, height: int, path: Path, limits: Limits) -> None:
    """Refuse pixels coarser than Sentinel-2's: a parcel would be one or two pixels "100 % valid"."""
    size = pixel_size_m(crs, transform, height)
    if size > limits.max_pixel_size_m * 1.001:  # rounding of 60 m grids in other CRSs
        raise InputError.about(
            path, f"pixels of about {size:,.0f} m are coarser than Sentinel-2's ({limits.max_pixel_size_m:g} m at most)",
            hint="this is not Sentinel-2 imagery at its own resolution; resample it to 10 m", path=path,
            field="max_pixel_size_m", value=round(size, 1))


def _require_crs(src, path: Path) -> None:
    if src.crs is None:
        raise InputError(f"{path}: raster has no CRS (georeferencing missing); cannot place parcels on it")


def _open_stack(path: Path, options: ReadOptions) -> Scene:
    with _open_dataset(path, options) as src:
        _require_crs(src, path)
        _check_pixel_size(src.crs, src.transform, src.height, path, options.limits)
        names = _stack_band_names(src, path, options.bands)
        tags = {k.upper(): v for k, v in src.tags().items()}
        is_float = np.dtype(src.dtypes[0]).kind == "f"
        nodata = _nodata_of(src)
        date = options.date or _date_from_tags(tags) or date_from_text(path.name)
        if date is None:
            raise InputError(f"{path}: no acquisition date in tags or file name; give the date explicitly", path=path, field="date")
        level = _level_from_text(" ".join([tags.get("PROCESSING_LEVEL", ""), tags.get("PRODUCT", ""), path.name])) or "unknown"
        baseline = parse_baseline(tags.get("PROCESSING_BASELINE")) or baseline_from_name(path.name)
        offset_tag = tags.get("BOA_ADD_OFFSET") or tags.get("RADIO_ADD_OFFSET")
        radiometry = choose_radiometry(
            is_float=is_float,
            baseline=baseline,
            explicit_offset=float(offset_tag) if offset_tag else None,
            date=date,
            override=options.boa_offset,
        )
        refs = {name: BandRef(path, i + 1) for i, name in enumerate(names) if name not in ("SCL", "SKIP")}
        scl = BandRef(path, names.index("SCL") + 1) if "SCL" in names else None
        return Scene(
            name=path.name,
            paths=[path],
            date=date,
            crs=src.crs,
            transform=src.transform,
            width=src.width,
            height=src.height,
            band_refs=refs,
            scl_ref=scl,
            radiometry=radiometry,
            nodata={name: nodata for name in refs},
            level=level,
            tile=tags.get("TILE_ID") or _tile_from_text(path.name),
        )


def _stack_band_names(src, path: Path, given: tuple[str, ...] | None) -> list[str]:
    if given:
        if len(given) != src.count:
            raise InputError(
                f"{path}: the band order given names {len(given)} bands ({','.join(given)}) but the file has {src.count}",
                path=path, field="bands", value=",".join(given),
            )
        return [_checked_band(b, path, "the band order given") for b in given]
    names: list[str] = []
    for i, desc in enumerate(src.descriptions):
        name = normalize_band_name(desc) if desc else None
        if name is None:
            described = ", ".join(repr(d) for d in src.descriptions)
            raise InputError(
                f"{path}: band {i + 1} of {src.count} is not named as a Sentinel-2 band "
                f"(descriptions: {described}); give the band order ({src.count} names, e.g. B02,B03,B04,...)",
                path=path, field="bands", value=described,
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise InputError(f"{path}: duplicate band names in descriptions {names}", path=path, field="bands", value=names)
    return names


def _checked_band(label: str, path: Path, where: str) -> str:
    if label.upper() == "SKIP":
        return "SKIP"
    name = normalize_band_name(label)
    if name is None:
        raise InputError(f"{path}: {where} value {label!r} is not a Sentinel-2 band (B01..B12, B8A, SCL, or SKIP)",
                         path=path, field="bands", value=label)
    return name


def _date_from_tags(tags: dict[str, str]) -> dt.date | None:
    for key in ("ACQUISITION_DATE", "DATE_ACQUIRED", "DATETIME", "TIFFTAG_DATETIME", "SENSING_TIME"):
        if key in tags:
            found = date_from_text(tags[key].replace(":", "-", 2) if key == "TIFFTAG_DATETIME" else tags[key])
            if found:
                return found
    return None


def _open_band_folder(folder: Path, options: ReadOptions) -> Scene:
    files = _band_files(folder)
    if not files:
        raise InputError(f"{folder}: no band files (*_B02.tif, *_B8A.jp2, ...) found in this folder")
    band_files = {b: p for b, p in files.items() if b != "SCL"}
    if not band_files:
        raise InputError(f"{folder}: only an SCL file, no spectral band files")
    sidecar = _bigearthnet_metadata(folder)
    text = " ".join([folder.name, *(p.name for p in band_files.values()), sidecar.get("tile_source", "")])
    return _scene_from_band_files(
        name=folder.name,
        band_files=band_files,
        scl_file=files.get("SCL"),
        text=text,
        date=options.date or date_from_text(sidecar.get("acquisition_date", "")) or date_from_text(folder.name),
        baseline=baseline_from_name(sidecar.get("tile_source", "")) or baseline_from_name(text),
        explicit_offset=None,
        options=options,
        where=folder,
    )


def _bigearthnet_metadata(folder: Path) -> dict[str, str]:
    """BigEarthNet patches carry `*_labels_metadata.json` with date and source product."""
    for meta in folder.glob("*_metadata.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        return {k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))}
    return {}


def _scene_from_band_files(
    *,
    name: str,
    band_files: dict[str, Path],
    scl_file: Path | None,
    text: str,
    date: dt.date | None,
    baseline: float | None,
    explicit_offset: float | None,
    options: ReadOptions,
    where: Path,
    level: str | None = None,
    tile: str | None = None,
) -> Scene:
    grids = {}
    nodata = {}
    is_float = False
    crs = None
    for band, file in band_files.items():
        with _open_dataset(file, options) as src:
            _require_crs(src, file)
            if crs is not None and src.crs != crs:
                raise InputError(f"{file}: CRS {src.crs} differs from the other bands' {crs}")
            crs = src.crs
            grids[band] = (abs(src.transform.a), src.transform, src.width, src.height)
            nodata[band] = _nodata_of(src)
            is_float = is_float or np.dtype(src.dtypes[0]).kind == "f"
    if date is None:
        date = date_from_text(text)
    if date is None:
        raise InputError(f"{where}: no acquisition date in metadata or names; give the date explicitly", path=where,
                         field="date")
    # The 10 m grid: the finest band's own grid (B02/B03/B04/B08 in a full product).
    _, transform, width, height = min(grids.values(), key=lambda g: g[0])
    _check_pixel_size(crs, transform, height, where, options.limits)
    radiometry = choose_radiometry(
        is_float=is_float, baseline=baseline, explicit_offset=explicit_offset, date=date, override=options.boa_offset
    )
    return Scene(
        name=name,
        paths=sorted(band_files.values()),
        date=date,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        band_refs={b: BandRef(p) for b, p in band_files.items()},
        scl_ref=BandRef(scl_file) if scl_file else None,
        radiometry=radiometry,
        nodata=nodata,
        level=level or _level_from_text(text) or "unknown",
        tile=tile or _tile_from_text(text),
    )


def _open_stac_item(path: Path, options: ReadOptions) -> Scene:
    import pystac

    try:
        item = pystac.Item.from_file(str(path))
    except Exception as exc:  # pystac raises many types for malformed JSON
        raise InputError(f"{path}: not a readable STAC Item ({_one_line(exc)})") from None
    band_files: dict[str, Path] = {}
    scl_file = None
    for key, asset in item.assets.items():
        band = _asset_band(key, asset)
        if band is None:
            continue
        raw_href = asset.get_absolute_href() or asset.href
        # An item's own references are never read from the network or a virtual file system,
        # whoever typed the item's path.
        if is_virtual(raw_href):
            raise InputError(f"{path}: asset {key!r} points to {raw_href}, which is not a local file "
                             "(only local files are read)", path=path, value=raw_href)
        href = Path(raw_href)
        if not href.exists():
            raise InputError(f"{path}: asset {key!r} points to {href}, which does not exist (only local files are read)")
        try:
            open_raster(href).close()
        except InputError as exc:
            raise InputError(f"{path}: asset {key!r} ({href}) is unreadable: {exc}", path=path) from None
        if band == "SCL":
            scl_file = href
        else:
            band_files[band] = href
    if not band_files:
        raise InputError(f"{path}: no asset of this STAC item is a Sentinel-2 band (keys: {', '.join(item.assets)})")
    props = item.properties
    date = options.date or (item.datetime.date() if item.datetime else None) or date_from_text(
        str(props.get("start_datetime", ""))
    )
    level = _level_from_text(" ".join(str(props.get(k, "")) for k in ("s2:processing_level", "s2:product_type", "processing:level")) + " " + item.id)
    offset = props.get("earthsearch:boa_offset_applied")
    return _scene_from_band_files(
        name=item.id,
        band_files=band_files,
        scl_file=scl_file,
        text=item.id,
        date=date,
        baseline=parse_baseline(props.get("s2:processing_baseline")) or baseline_from_name(item.id),
        # Earth Search flags products whose offset was already removed: then apply none.
        explicit_offset=0.0 if offset is True else None,
        options=options,
        where=path,
        level=level,
        tile=props.get("s2:mgrs_tile") or props.get("grid:code") or _tile_from_text(item.id),
    )


def _asset_band(key: str, asset) -> str | None:
    name = normalize_band_name(key)
    if name:
        return name
    for band in asset.extra_fields.get("eo:bands", []) or asset.extra_fields.get("bands", []) or []:
        for label in (band.get("name"), band.get("common_name")):
            if label and (name := normalize_band_name(label)):
                return name
    return None


def _check_has_data(scene: Scene) -> None:
    """Fail fast on an all-nodata or unreadable raster (a decimated read of every band)."""
    step = max(1, max(scene.width, scene.height) // 256)
    shape = (max(1, scene.height // step), max(1, scene.width // step))
    any_valid = False
    with ExitStack() as stack:
        for name, ref in scene.band_refs.items():
            src = stack.enter_context(open_raster(ref.path, allow_virtual=scene.allow_virtual))
            try:
                dn = src.read(ref.index, out_shape=shape, resampling=Resampling.nearest)
            except RasterioError as exc:
                raise InputError(f"{ref.path}: read failed, file truncated or corrupt ({_one_line(exc)})") from None
            if not any_valid:
                valid = np.isfinite(dn) if dn.dtype.kind == "f" else np.ones(dn.shape, bool)
                for value in scene.nodata[name]:
                    valid &= dn != value
                any_valid = bool(valid.any())
    if not any_valid:
        values = sorted({v for vals in scene.nodata.values() for v in vals})
        raise InputError(f"{scene.paths[0]}: every pixel is nodata ({', '.join(f'{v:g}' for v in values)}); nothing to index")


def parse_bands_option(value: str) -> tuple[str, ...]:
    """A band order "B02,B03,B04" -> ('B02', 'B03', 'B04'), validated."""
    labels = tuple(v.strip() for v in value.split(",") if v.strip())
    if not labels:
        raise InputError("the band order is empty; give a comma-separated list like B02,B03,B04,B08", field="bands",
                         value=value)
    for label in labels:
        if label.upper() != "SKIP" and normalize_band_name(label) is None:
            raise InputError(f"band order: {label!r} is not a Sentinel-2 band (B01..B12, B8A, SCL, or SKIP)",
                             field="bands", value=label)
    return labels
