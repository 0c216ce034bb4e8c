"""Open a user's raster or vector file only as what it claims to be.

GDAL picks a driver from a file's *content*: an OGR VRT saved as ``fields.geojson`` or a
``<VRTDataset>`` saved as ``scene.tif`` opens as a VRT, and a VRT reads whatever it names (any file
on the server through ``CSV:``/``VRTRawRasterBand``, or a URL through ``/vsicurl/``). So every file
from outside goes through three gates here before GDAL sees it:

1. its *name*: GDAL virtual file systems (``/vsicurl/``, ``/vsis3/``, ``/vsizip/`` ...), URLs and
   ``DRIVER:`` prefixes (``CSV:/etc/passwd``) are refused unless the caller says the user typed
   the path (`allow_virtual`; the command line sets it for its own arguments, the app never);
2. its *content*: the first bytes must be the magic of the format its suffix names (a TIFF or
   JPEG 2000 header; a GeoPackage, GeoJSON object, shapefile, FlatGeobuf or Parquet file);
3. its *driver*: rasters open with an explicit allow-list of drivers (``GTiff``, ``JP2OpenJPEG``),
   vectors are checked against the driver their suffix names before any feature is read.

Reads run with GDAL's network access and directory listing off (`gdal_options`), so nothing a
file says can make the process fetch a URL. Every refusal is one `InputError` line naming the
file and the reason.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from indexer.core.errors import InputError
from indexer.core.limits import Limits, over_limit

#: Raster drivers a file may open with. Cloud-optimised GeoTIFFs are GeoTIFFs (GDAL's "COG"
#: driver only writes; COGs are read by GTiff).
RASTER_DRIVERS: tuple[str, ...] = ("GTiff", "JP2OpenJPEG")

#: Vector suffix -> the only OGR driver such a file may open with (Parquet is read by pyarrow).
VECTOR_DRIVERS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".fgb": "FlatGeobuf",
}

#: Files that belong to a shapefile besides its .shp (extracted with it from a zip).
SHAPEFILE_SIDECARS: tuple[str, ...] = (".shx", ".dbf", ".prj", ".cpg")

#: GDAL settings while reading a file from outside:
#: no directory listing beside the file (no sidecar is looked for by listing), no PAM .aux.xml
#: sidecars (they may carry metadata that overrides the file's own), and the network off: no
#: URL passes /vsicurl/'s extension filter, and any request that still started would go to a
#: closed local port with no retry.
SAFE_GDAL_OPTIONS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_PAM_ENABLED": "NO",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".xvision-network-off",
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
}

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# "CSV:/etc/passwd", "GPKG:file.gpkg:table", "NETCDF:...": two characters or more, so that a
# Windows drive letter ("C:\\data") is not one.
_DRIVER_PREFIX = re.compile(r"^[A-Za-z0-9_]{2,}:")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_JP2_MAGIC = (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")  # JP2 box, raw codestream
_GPKG_APPLICATION_IDS = (b"GPKG", b"GP10", b"GP11")


def is_virtual(path: str | Path) -> bool:
    """True for a GDAL virtual file system path, a URL or a ``DRIVER:`` prefixed name."""
    text = str(path)
    return (
        text.lower().startswith(("/vsi", "\\vsi"))
        or bool(_URL.match(text))
        or bool(_DRIVER_PREFIX.match(text))
    )


_WEB_URL = re.compile(r"^(?:/vsicurl/)?(https?|ftp):/+", re.IGNORECASE)


def gdal_path(path: str | Path) -> str:
    """The name GDAL reads: a web URL becomes its ``/vsicurl/`` path, with the ``//`` that
    `pathlib.Path` folds (``https://host`` -> ``https:/host``) put back."""
    text = str(path)
    match = _WEB_URL.match(text)
    if match:
        return f"/vsicurl/{match.group(1)}://{text[match.end():]}"
    return text


def check_path(path: str | Path, *, allow_virtual: bool = False) -> None:
    """InputError unless `path` names a plain local file (or the user typed a virtual one)."""
    if is_virtual(path) and not allow_virtual:
        raise InputError.about(
            path, "refused: GDAL virtual file systems (/vsi...), URLs and DRIVER: prefixes are not read "
                  "from an uploaded or referenced file", hint="download the file and give its local path",
            path=path, value=str(path))


#: The options of `SAFE_GDAL_OPTIONS` that keep the network off (dropped for a URL the user typed).
_NETWORK_OFF: tuple[str, ...] = ("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", "GDAL_HTTP_PROXY", "GDAL_HTTP_MAX_RETRY",
                                 "GDAL_HTTP_TIMEOUT", "GDAL_HTTP_CONNECTTIMEOUT")


def _options(network: bool) -> dict[str, str]:
    return {k: v for k, v in SAFE_GDAL_OPTIONS.items() if not (network and k in _NETWORK_OFF)}


@contextmanager
def gdal_options(*, network: bool = False) -> Iterator[None]:
    """rasterio's GDAL environment for reading a file from outside (`SAFE_GDAL_OPTIONS`).

    `network=True` (a URL the user typed on the command line) keeps the listing and PAM off but
    leaves HTTP on.
    """
    with rasterio.Env(**_options(network)):
        yield


@contextmanager
def ogr_options(*, network: bool = False) -> Iterator[None]:
    """The same settings in pyogrio's GDAL (its own library, configured process-wide) while reading;
    the previous values are put back after."""
    import pyogrio

    options = _options(network)
    saved = {key: pyogrio.get_gdal_config_option(key) for key in SAFE_GDAL_OPTIONS}
    pyogrio.set_gdal_config_options({**{key: None for key in SAFE_GDAL_OPTIONS}, **options})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(saved)


def _head(path: Path, size: int = 128) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise InputError.about(path, f"cannot be read ({exc.strerror or exc})", path=path) from None


def _looks_like_xml(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def sniff_raster(path: Path) -> str:
    """The driver the file's first bytes call for ("GTiff" or "JP2OpenJPEG"); InputError for
    anything else (a VRT is named as such)."""
    head = _head(path, 16)
    if head.startswith(_TIFF_MAGIC):
        return "GTiff"
    if head.startswith(_JP2_MAGIC):
        return "JP2OpenJPEG"
    if _looks_like_xml(head):
        raise InputError.about(
            path, "not a readable raster: it is XML (a GDAL VRT can read any file it names), not a GeoTIFF "
                  "or JPEG 2000; VRT files are refused", hint="give the GeoTIFF or JPEG 2000 file itself", path=path)
    raise InputError.about(path, "not a readable raster (neither a GeoTIFF nor a JPEG 2000 header)", path=path)


def open_raster(path: str | Path, *, allow_virtual: bool = False):
    """A rasterio dataset of `path`, opened only by the GeoTIFF or JPEG 2000 driver.

    Local files are sniffed first (`sniff_raster`); a virtual path the user typed
    (`allow_virtual`) goes to GDAL with the same driver allow-list and the network on.
    """
    check_path(path, allow_virtual=allow_virtual)
    virtual = is_virtual(path)
    if virtual:
        driver = "JP2OpenJPEG" if str(path).lower().endswith((".jp2", ".j2k")) else "GTiff"
    else:
        driver = sniff_raster(Path(path))
    try:
        # A raster without georeferencing is reported by the reader as one clear error; rasterio's
        # own NotGeoreferencedWarning would print two more lines on stderr before it.
        with gdal_options(network=virtual), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            # rasterio hands the driver to GDALOpenEx as its allow-list: no other driver is tried.
            src = rasterio.open(gdal_path(path) if virtual else str(path), driver=driver)
    except RasterioError as exc:
        raise InputError.about(path, f"not a readable raster ({' '.join(str(exc).split())[:300]})", path=path) from None
    if src.driver not in RASTER_DRIVERS:  # the allow-list should make this impossible: checked anyway
        src.close()
        raise InputError.about(path, f"opened as {src.driver}, which is refused (only {', '.join(RASTER_DRIVERS)})",
                               path=path)
    return src


def sniff_vector(path: Path, suffix: str, shown: object) -> None:
    """InputError unless `path` starts like the format its `suffix` names (`shown` in the message)."""
    head = _head(path, 100)
    expected = VECTOR_DRIVERS.get(suffix) or ("Parquet" if suffix in (".parquet", ".geoparquet") else None)
    if expected is None:
        raise InputError.about(shown, f"{suffix or 'no suffix'} is not a parcels format (GeoPackage, GeoJSON, "
                                      "shapefile, FlatGeobuf, GeoParquet)", path=str(shown))
    ok = {
        "GPKG": head.startswith(b"SQLite format 3\x00") and head[68:72] in _GPKG_APPLICATION_IDS,
        "GeoJSON": head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"),
        "ESRI Shapefile": head.startswith(b"\x00\x00\x27\x0a"),
        "FlatGeobuf": head.startswith(b"fgb\x03"),
        "Parquet": head.startswith(b"PAR1"),
    }[expected]
    if ok:
        return
    if _looks_like_xml(head):
        raise InputError.about(shown, f"not a {expected} file: it is XML (an OGR VRT can read any file it names); "
                                      "VRT files are refused", hint="give the parcels file itself", path=str(shown))
    raise InputError.about(shown, f"not a {expected} file (its content does not start like one)", path=str(shown))


def check_vector_driver(driver: str, suffix: str, shown: object) -> None:
    """InputError unless OGR opened the file with the driver its suffix names."""
    if driver != VECTOR_DRIVERS.get(suffix):
        raise InputError.about(shown, f"opened as {driver}, not {VECTOR_DRIVERS.get(suffix)}; refused",
                               path=str(shown))


def check_zip(source: Path, limits: Limits) -> list[zipfile.ZipInfo]:
    """The archive's entries, after checking their count and declared uncompressed size."""
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError.about(source, f"not a readable zip ({exc})", path=source) from None
    if len(infos) > limits.max_zip_members:
        raise over_limit(source, "the zip's number of entries", len(infos), limits.max_zip_members, "max_zip_members")
    total = sum(info.file_size for info in infos)
    if total > limits.max_unzipped_bytes:
        raise over_limit(source, "the zip's uncompressed size in bytes", total, limits.max_unzipped_bytes,
                         "max_unzipped_bytes")
    return infos


def extract_members(source: Path, members: list[str], folder: Path, limits: Limits) -> dict[str, Path]:
    """Extract `members` of the zip flat into `folder` (base names only: no entry name can write
    outside it), never more than `limits.max_unzipped_bytes` whatever the entries claim; member
    name -> extracted path."""
    budget = limits.max_unzipped_bytes
    out: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(source) as archive:
            for member in members:
                name = PurePosixPath(member.replace("\\", "/")).name
                if not name or name in (".", ".."):
                    continue
                target = folder / name
                with archive.open(member) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        budget -= len(chunk)
                        if budget < 0:
                            raise InputError.about(
                                source, f"unpacks to more than the limit of {limits.max_unzipped_bytes:,} bytes",
                                hint="refused (limit max_unzipped_bytes, environment variable "
                                     "XVISION_MAX_UNZIPPED_BYTES)", path=source, field="max_unzipped_bytes")
                        dst.write(chunk)
                out[member] = target
    except InputError:
        raise
    # A damaged, encrypted or exotic archive: zipfile raises BadZipFile, RuntimeError (password),
    # NotImplementedError (compression method), zlib.error, EOFError ... all the file's fault.
    except Exception as exc:  # noqa: BLE001
        raise InputError.about(source, f"cannot unpack the zip ({' '.join(str(exc).split())[:200]})",
                               path=source) from None
    return out
