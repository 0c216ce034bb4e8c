"""Tiny generated Sentinel-2-like rasters, parcels and STAC items for the reader/cloud/index tests.

Script and module. As a script::

    python tests/make_rasters.py OUTDIR      # writes every input below into OUTDIR

As a module, each ``write_*`` function takes an output folder and returns the path(s) it wrote;
``write_all`` writes everything and returns ``{name: path}``.

Every raster sits on a real grid: EPSG:32631 (UTM 31N, central Belgium), upper-left corner
(600000, 5600000), 10 m pixels. Content is deterministic (fixed values; the only randomness, for
the bad inputs' filler, comes from ``numpy.random.default_rng(SEED)``), so tests can state the
expected reflectance and index values analytically:

* the left half of a scene is a vegetated field (``VEGETATION`` reflectance), the right half bare
  soil (``BARE_SOIL``); ``write_parcels`` gives one parcel inside each half (2 px margin);
* reflectance x 10000 is the DN (baseline < 04.00), or DN - 1000 from baseline 04.00 on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32631"
ORIGIN_X, ORIGIN_Y = 600000.0, 5600000.0
PIXEL = 10.0
SEED = 20230612
NODATA = 65535
SIZE = 64  # the L2A stacks: 64 x 64 px

#: Band layout of the L2A stacks: the Hesbaye composites' nine bands.
STACK_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")

#: Surface reflectance of the left (vegetated) and right (bare soil) fields.
VEGETATION: dict[str, float] = {
    "B01": 0.02, "B02": 0.03, "B03": 0.06, "B04": 0.04, "B05": 0.10, "B06": 0.30, "B07": 0.36,
    "B08": 0.40, "B8A": 0.42, "B09": 0.42, "B10": 0.003, "B11": 0.20, "B12": 0.10,
}
BARE_SOIL: dict[str, float] = {
    "B01": 0.08, "B02": 0.10, "B03": 0.14, "B04": 0.18, "B05": 0.20, "B06": 0.22, "B07": 0.23,
    "B08": 0.24, "B8A": 0.25, "B09": 0.25, "B10": 0.003, "B11": 0.32, "B12": 0.28,
}
#: Top-of-atmosphere reflectance (L1C) of the same two fields and of a thick cloud.
VEGETATION_TOA: dict[str, float] = {
    "B01": 0.12, "B02": 0.09, "B03": 0.08, "B04": 0.05, "B05": 0.10, "B06": 0.28, "B07": 0.33,
    "B08": 0.36, "B8A": 0.38, "B09": 0.12, "B10": 0.003, "B11": 0.18, "B12": 0.09,
}
BARE_SOIL_TOA: dict[str, float] = {
    "B01": 0.13, "B02": 0.12, "B03": 0.13, "B04": 0.16, "B05": 0.19, "B06": 0.21, "B07": 0.22,
    "B08": 0.23, "B8A": 0.24, "B09": 0.08, "B10": 0.003, "B11": 0.30, "B12": 0.26,
}
CLOUD_TOA: dict[str, float] = {
    "B01": 0.55, "B02": 0.55, "B03": 0.54, "B04": 0.55, "B05": 0.56, "B06": 0.57, "B07": 0.58,
    "B08": 0.58, "B8A": 0.58, "B09": 0.30, "B10": 0.12, "B11": 0.42, "B12": 0.32,
}
#: A bright white cloud in L2A surface reflectance (for the spectral fallback test).
CLOUD_BOA: dict[str, float] = {
    "B02": 0.50, "B03": 0.50, "B04": 0.51, "B05": 0.52, "B06": 0.53, "B07": 0.54, "B08": 0.55,
    "B11": 0.40, "B12": 0.30,
}

#: Pixel (row, col) sets of the L2A stacks (a) and (b).
NODATA_PIXELS: tuple[tuple[int, int], ...] = ((10, 5), (20, 12), (45, 25))  # 65535 in every band, left field
ZERO_PIXEL: tuple[int, int] = (30, 40)  # DN 0 in B02 only, right field
DARK_PIXEL: tuple[int, int] = (0, 0)  # B02 reflectance 0.0005 (DN 5, or 1005 from baseline 04.00), margin
DARK_REFLECTANCE = 0.0005

#: Parcels of write_parcels, in pixel (row0, row1, col0, col1) half-open ranges on the stack grid.
FIELD_PIXELS: dict[str, tuple[int, int, int, int]] = {
    "field-veg": (2, 62, 2, 30),
    "field-soil": (2, 62, 34, 62),
}
FIELD_CROPS: dict[str, str] = {"field-veg": "winter wheat", "field-soil": "bare soil"}
FIELD_REFLECTANCE: dict[str, dict[str, float]] = {"field-veg": VEGETATION, "field-soil": BARE_SOIL}

#: Dates written into the products.
STACK_DATE = "2021-06-01"  # (a): ACQUISITION_DATE tag
BASELINE_0400_DATE = "2023-03-15"  # (b): in the file name only
L1C_DATE = "2023-06-12"  # (c) and (e)
CLOUDED_DATE = "2021-07-01"  # (d)

L1C_FOLDER = "S2B_MSIL1C_20230612T103629_N0509_R008_T31UFS_20230612T124059"
SAFE_SIZE = 36  # 10 m grid of the SAFE-like product (6 px at 60 m)
SAFE_NAME = "S2A_MSIL2A_20230612T103629_N0509_R008_T31UFS_20230612T150001.SAFE"
STAC_ITEM_ID = "S2B_31UFS_20230612_0_L2A"

#: The cloud blob of the L1C band folder (c), in 10 m pixels (half-open), aligned on the 60 m grid.
L1C_SIZE = 60
CLOUD_BLOB = (0, 24, 18, 42)  # row0, row1, col0, col1


# ---------------------------------------------------------------------------------------------
# helpers


def transform(pixel: float = PIXEL):
    return from_origin(ORIGIN_X, ORIGIN_Y, pixel, pixel)


def _dn(reflectance: float, offset: int = 0) -> int:
    return int(round(reflectance * 10000)) + offset


def _halves(size: int, left: float, right: float, dtype=np.uint16) -> np.ndarray:
    """A size x size band: `left` on the left half, `right` on the right half."""
    band = np.empty((size, size), dtype=dtype)
    band[:, : size // 2] = left
    band[:, size // 2 :] = right
    return band


def _write(path: Path, data: np.ndarray, *, crs=CRS, transform_=None, nodata=None, descriptions=None,
           tags=None, tiled=False, driver="GTiff", compress=None) -> Path:
    """Write [bands, rows, cols] `data` as a GeoTIFF (or COG)."""
    if data.ndim == 2:
        data = data[np.newaxis]
    profile = {
        "driver": driver,
        "dtype": data.dtype.name,
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
    }
    if crs is not None:
        profile["crs"] = crs
        profile["transform"] = transform_ if transform_ is not None else transform()
    if nodata is not None:
        profile["nodata"] = nodata
    if driver == "COG":
        profile["blocksize"] = 16  # COG is always tiled; small tiles so that truncation loses some
    elif tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    if compress:
        profile["compress"] = compress
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # rasterio would try to open (and choke on) a broken old file
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, name in enumerate(descriptions, start=1):
                dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
    return path


def _l2a_dn(offset: int = 0, bands: tuple[str, ...] = STACK_BANDS, size: int = SIZE) -> np.ndarray:
    """The two-field L2A content with its special pixels, as DN [bands, size, size]."""
    data = np.stack([_halves(size, _dn(VEGETATION[b], offset), _dn(BARE_SOIL[b], offset)) for b in bands])
    for r, c in NODATA_PIXELS:
        data[:, r, c] = NODATA
    if "B02" in bands:
        i = bands.index("B02")
        data[i][ZERO_PIXEL] = 0
        data[i][DARK_PIXEL] = _dn(DARK_REFLECTANCE, offset)
    return data


# ---------------------------------------------------------------------------------------------
# (a), (b): L2A stacks


def write_l2a_stack(outdir: str | Path) -> Path:
    """(a) uint16 L2A stack, nine named bands, nodata 65535, date in an ACQUISITION_DATE tag.

    No processing baseline and a 2021 date: DN = reflectance x 10000, no offset.
    """
    return _write(
        Path(outdir) / "S2_L2A_synthetic_stack.tif",
        _l2a_dn(),
        nodata=NODATA,
        descriptions=STACK_BANDS,
        tags={"ACQUISITION_DATE": STACK_DATE, "PRODUCT": "Sentinel-2 L2A synthetic test stack"},
        tiled=True,
        compress="deflate",
    )


def write_l2a_baseline0400(outdir: str | Path) -> Path:
    """(b) the same scene as processing baseline 04.00: DN = reflectance x 10000 + 1000.

    Nodata (65535) and DN 0 stay as they are; the dark pixel is DN 1005. Date in the name only.
    """
    return _write(
        Path(outdir) / f"S2_L2A_baseline0400_{BASELINE_0400_DATE}.tif",
        _l2a_dn(offset=1000),
        nodata=NODATA,
        descriptions=STACK_BANDS,
        tags={"PROCESSING_BASELINE": "04.00", "PRODUCT": "Sentinel-2 L2A synthetic test stack"},
    )


def write_cloudy_l2a_stack(outdir: str | Path) -> Path:
    """(a) with a bright white 12 x 12 px cloud at rows/cols 26..37 (no SCL, no B10)."""
    data = _l2a_dn()
    for i, band in enumerate(STACK_BANDS):
        data[i, 26:38, 26:38] = _dn(CLOUD_BOA[band])
    return _write(
        Path(outdir) / "S2_L2A_cloudy_stack.tif",
        data,
        nodata=NODATA,
        descriptions=STACK_BANDS,
        tags={"ACQUISITION_DATE": STACK_DATE},
    )


def write_stack_without_date(outdir: str | Path) -> Path:
    """(a)'s content with no date anywhere (tags or name)."""
    return _write(Path(outdir) / "S2_L2A_undated.tif", _l2a_dn(), nodata=NODATA, descriptions=STACK_BANDS)


# ---------------------------------------------------------------------------------------------
# (c): per-band folder at mixed resolutions, with a cloud


def _l1c_band(band: str) -> tuple[np.ndarray, float]:
    """One band of the L1C folder at its native resolution, DN with the 04.00+ offset."""
    from indexer.core.bands import BAND_BY_NAME

    res = BAND_BY_NAME[band].resolution_m
    factor = res // 10
    size = L1C_SIZE // factor
    data = _halves(size, _dn(VEGETATION_TOA[band], 1000), _dn(BARE_SOIL_TOA[band], 1000))
    r0, r1, c0, c1 = (v // factor for v in CLOUD_BLOB)
    data[r0:r1, c0:c1] = _dn(CLOUD_TOA[band], 1000)
    return data, float(res)


def write_l1c_band_folder(outdir: str | Path) -> Path:
    """(c) an L1C product's 13 band files (10 m 60x60, 20 m 30x30, 60 m 10x10), baseline 05.09.

    Left half vegetation, right half bare soil (TOA), a thick cloud (bright in every band,
    B10 included) over rows 0..23, cols 18..41 of the 10 m grid.
    """
    from indexer.core.bands import BAND_NAMES

    folder = Path(outdir) / L1C_FOLDER
    for band in BAND_NAMES:
        data, res = _l1c_band(band)
        _write(folder / f"T31UFS_20230612T103629_{band}.tif", data, transform_=transform(res))
    return folder


def write_safe_granule(outdir: str | Path) -> Path:
    """A SAFE-like L2A product: GRANULE/<id>/IMG_DATA/R10m|R20m|R60m/T31UFS_..._B04_10m.tif.

    B02/B03/B04/B08 at 10 m (and again at 20 m, as real products do), B05/B8A/B11 and SCL at
    20 m, B01 at 60 m. Reflectance as (a)'s fields on a 36 x 36 px 10 m grid, baseline 05.09
    (N0509 in the name): DN = reflectance x 10000 + 1000. SCL: 4 (vegetation) left, 5 right.
    """
    safe = Path(outdir) / SAFE_NAME
    img = safe / "GRANULE" / "L2A_T31UFS_A032553_20230612T103629" / "IMG_DATA"
    stem = "T31UFS_20230612T103629"
    size = SAFE_SIZE
    plan = {10: ("B02", "B03", "B04", "B08"), 20: ("B02", "B03", "B04", "B08", "B05", "B8A", "B11", "SCL"), 60: ("B01",)}
    for res, bands in plan.items():
        n = size * 10 // res
        for band in bands:
            if band == "SCL":
                data = _halves(n, 4, 5, dtype=np.uint8)
            else:
                data = _halves(n, _dn(VEGETATION[band], 1000), _dn(BARE_SOIL[band], 1000))
            # Deliberately wrong values in the coarser copies of 10 m bands: the reader must take R10m.
            if res > 10 and band in plan[10]:
                data[:] = 7777
            _write(img / f"R{res}m" / f"{stem}_{band}_{res}m.tif", data, transform_=transform(float(res)))
    (safe / "MTD_MSIL2A.xml").write_text("<placeholder/>\n")
    return safe


# ---------------------------------------------------------------------------------------------
# (d): fully clouded


def write_fully_clouded_stack(outdir: str | Path) -> Path:
    """(d) B02, B03, B04, B08 + SCL, every SCL value 9 (cloud high probability), 32 x 32 px."""
    size = 32
    bands = ("B02", "B03", "B04", "B08")
    data = np.stack([np.full((size, size), _dn(CLOUD_BOA[b]), np.uint16) for b in bands]
                    + [np.full((size, size), 9, np.uint16)])
    return _write(
        Path(outdir) / "S2_L2A_fully_clouded.tif",
        data,
        nodata=NODATA,
        descriptions=(*bands, "SCL"),
        tags={"ACQUISITION_DATE": CLOUDED_DATE},
    )


# ---------------------------------------------------------------------------------------------
# (e): STAC item

#: STAC asset key (Earth Search names) -> band; native resolution from indexer.core.bands.
STAC_ASSETS: dict[str, str] = {
    "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "nir": "B08",
    "nir08": "B8A", "swir16": "B11", "swir22": "B12", "scl": "SCL",
}
STAC_SIZE = 32  # 10 m grid of the STAC item
STAC_SCL_CLOUD = (0, 4, 0, 4)  # 20 m SCL pixels with class 8 (rows 0..7, cols 0..7 at 10 m)


def write_stac_item(outdir: str | Path) -> Path:
    """(e) a STAC Item JSON (pystac) with per-band local COGs, baseline 05.09 and an SCL asset.

    10 m bands 32 x 32 px, 20 m bands and SCL 16 x 16 px; DN = reflectance x 10000 + 1000.
    SCL: 4 left, 5 right, 8 (cloud) in the top-left 4 x 4 px at 20 m. Asset hrefs are relative.
    """
    import datetime as dt

    import pystac
    from pyproj import Transformer

    from indexer.core.bands import BAND_BY_NAME

    folder = Path(outdir) / "stac"
    folder.mkdir(parents=True, exist_ok=True)
    item_path = folder / f"{STAC_ITEM_ID}.json"
    minx, maxy = ORIGIN_X, ORIGIN_Y
    maxx, miny = ORIGIN_X + STAC_SIZE * PIXEL, ORIGIN_Y - STAC_SIZE * PIXEL
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = [to_wgs84.transform(x, y) for x, y in ((minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny))]
    lons, lats = zip(*ring)
    item = pystac.Item(
        id=STAC_ITEM_ID,
        geometry={"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
        bbox=[min(lons), min(lats), max(lons), max(lats)],
        datetime=dt.datetime(2023, 6, 12, 10, 36, 29, tzinfo=dt.UTC),
        properties={
            "platform": "sentinel-2b",
            "s2:processing_baseline": "05.09",
            "s2:product_type": "S2MSI2A",
            "s2:mgrs_tile": "31UFS",
            "proj:epsg": 32631,
        },
    )
    for key, band in STAC_ASSETS.items():
        res = 20 if band == "SCL" else BAND_BY_NAME[band].resolution_m
        n = STAC_SIZE * 10 // res
        if band == "SCL":
            data = _halves(n, 4, 5, dtype=np.uint8)
            r0, r1, c0, c1 = STAC_SCL_CLOUD
            data[r0:r1, c0:c1] = 8
        else:
            data = _halves(n, _dn(VEGETATION[band], 1000), _dn(BARE_SOIL[band], 1000))
        name = f"{band}.tif"
        _write(folder / name, data, transform_=transform(float(res)), driver="COG", compress="deflate")
        item.add_asset(key, pystac.Asset(href=f"./{name}", media_type=pystac.MediaType.COG, roles=["data"]))
    item.add_asset("thumbnail", pystac.Asset(href="./thumbnail.jpg", media_type=pystac.MediaType.JPEG, roles=["thumbnail"]))
    item.set_self_href(str(item_path))
    item.make_asset_hrefs_relative()
    item.save_object(include_self_link=False, dest_href=str(item_path))
    return item_path


# ---------------------------------------------------------------------------------------------
# parcels


def _field_polygon(row0: int, row1: int, col0: int, col1: int):
    from shapely.geometry import box

    return box(ORIGIN_X + col0 * PIXEL, ORIGIN_Y - row1 * PIXEL, ORIGIN_X + col1 * PIXEL, ORIGIN_Y - row0 * PIXEL)


def write_parcels(outdir: str | Path, crs: str = "EPSG:4326") -> Path:
    """Two parcels (in `crs`) over (a)'s halves: `field-veg` and `field-soil`, with a `crop` column."""
    import geopandas as gpd

    ids = list(FIELD_PIXELS)
    gdf = gpd.GeoDataFrame(
        {"parcel_id": ids, "crop": [FIELD_CROPS[i] for i in ids]},
        geometry=[_field_polygon(*FIELD_PIXELS[i]) for i in ids],
        crs=CRS,
    ).to_crs(crs)
    path = Path(outdir) / f"parcels_{crs.replace(':', '').lower()}.geojson"
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def _write_geojson(path: Path, features: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
    return path


def write_parcels_far_away(outdir: str | Path) -> Path:
    """Valid parcels in Japan (EPSG:4326), nowhere near the rasters."""
    features = []
    for i, (lon, lat) in enumerate(((139.70, 35.68), (139.71, 35.69))):
        ring = [[lon, lat], [lon + 0.002, lat], [lon + 0.002, lat + 0.002], [lon, lat + 0.002], [lon, lat]]
        features.append({"type": "Feature", "properties": {"parcel_id": f"jp-{i}", "crop": "rice"},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return _write_geojson(Path(outdir) / "parcels_japan.geojson", features)


def write_parcels_invalid(outdir: str | Path) -> Path:
    """Parcels over (a) (EPSG:4326) whose every polygon is invalid and has no area to repair.

    Rings are written directly in lon/lat so that they stay exactly degenerate: three collinear
    points on one parallel, a segment walked there and back, a single repeated point.
    """
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(ORIGIN_X + 200, ORIGIN_Y - 200)
    d = 0.001
    rings = [
        [[lon, lat], [lon + d, lat], [lon + 2 * d, lat], [lon, lat]],  # collinear: zero area
        [[lon, lat - d], [lon + d, lat - d], [lon + d, lat - d], [lon, lat - d]],  # a line walked twice
        [[lon, lat + d]] * 4,  # a point
    ]
    features = [
        {"type": "Feature", "properties": {"parcel_id": f"bad-{i}", "crop": "none"},
         "geometry": {"type": "Polygon", "coordinates": [r]}}
        for i, r in enumerate(rings)
    ]
    return _write_geojson(Path(outdir) / "parcels_zero_area.geojson", features)


# ---------------------------------------------------------------------------------------------
# (f): bad rasters

BAD_BANDS = ("B02", "B03", "B04", "B08")


def write_truncated_geotiff(outdir: str | Path) -> Path:
    """A valid tiled, uncompressed 4-band GeoTIFF in COG layout (header and IFD first), cut to half.

    It still opens (the header is intact); reading the tiles of the lost half fails.
    """
    rng = np.random.default_rng(SEED)
    data = rng.integers(1, 5000, size=(len(BAD_BANDS), SIZE, SIZE), dtype=np.uint16)
    path = _write(
        Path(outdir) / f"truncated_{STACK_DATE}.tif",
        data,
        nodata=NODATA,
        descriptions=BAD_BANDS,
        driver="COG",
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def write_truncated_header_geotiff(outdir: str | Path) -> Path:
    """A valid tiled GeoTIFF as GDAL writes it (IFD at the end), cut to half: it no longer opens."""
    rng = np.random.default_rng(SEED)
    data = rng.integers(1, 5000, size=(len(BAD_BANDS), SIZE, SIZE), dtype=np.uint16)
    path = _write(
        Path(outdir) / f"truncated_header_{STACK_DATE}.tif",
        data,
        nodata=NODATA,
        descriptions=BAD_BANDS,
        tiled=True,
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def write_no_crs_geotiff(outdir: str | Path) -> Path:
    """A named 4-band GeoTIFF without any georeferencing."""
    rng = np.random.default_rng(SEED + 1)
    data = rng.integers(1, 5000, size=(len(BAD_BANDS), 32, 32), dtype=np.uint16)
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return _write(Path(outdir) / f"no_crs_{STACK_DATE}.tif", data, crs=None, descriptions=BAD_BANDS)


def write_unnamed_stack(outdir: str | Path) -> Path:
    """(a)'s fields as B02, B03, B04, B08 (in that order) without band descriptions."""
    return _write(
        Path(outdir) / f"unnamed_bands_{STACK_DATE}.tif",
        _l2a_dn(bands=BAD_BANDS),
        nodata=NODATA,
    )


def write_all_nodata(outdir: str | Path) -> Path:
    """A named 4-band stack whose every pixel is the declared nodata (65535)."""
    data = np.full((len(BAD_BANDS), 32, 32), NODATA, dtype=np.uint16)
    return _write(Path(outdir) / f"all_nodata_{STACK_DATE}.tif", data, nodata=NODATA, descriptions=BAD_BANDS)


def write_stac_corrupt_asset(outdir: str | Path) -> Path:
    """A STAC item whose `red` asset is a file of garbage bytes named .tif."""
    import datetime as dt

    import pystac

    folder = Path(outdir) / "stac_corrupt"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + 2)
    (folder / "B04.tif").write_bytes(b"II*\x00" + rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    _write(folder / "B08.tif", _halves(32, 4000, 2400))
    item = pystac.Item(
        id="S2B_31UFS_20230612_1_L2A",
        geometry={"type": "Point", "coordinates": [4.4, 50.5]},
        bbox=[4.4, 50.5, 4.4, 50.5],
        datetime=dt.datetime(2023, 6, 12, 10, 36, 29, tzinfo=dt.UTC),
        properties={"s2:processing_baseline": "05.09"},
    )
    item.add_asset("nir", pystac.Asset(href="./B08.tif", media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
    item.add_asset("red", pystac.Asset(href="./B04.tif", media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
    path = folder / f"{item.id}.json"
    item.set_self_href(str(path))
    item.make_asset_hrefs_relative()
    item.save_object(include_self_link=False, dest_href=str(path))
    return path


# ---------------------------------------------------------------------------------------------

WRITERS = {
    "l2a_stack": write_l2a_stack,
    "l2a_baseline0400": write_l2a_baseline0400,
    "cloudy_l2a_stack": write_cloudy_l2a_stack,
    "undated_stack": write_stack_without_date,
    "l1c_band_folder": write_l1c_band_folder,
    "safe_granule": write_safe_granule,
    "fully_clouded": write_fully_clouded_stack,
    "stac_item": write_stac_item,
    "parcels": write_parcels,
    "parcels_3857": lambda outdir: write_parcels(outdir, crs="EPSG:3857"),
    "parcels_far_away": write_parcels_far_away,
    "parcels_invalid": write_parcels_invalid,
    "truncated": write_truncated_geotiff,
    "truncated_header": write_truncated_header_geotiff,
    "no_crs": write_no_crs_geotiff,
    "unnamed_bands": write_unnamed_stack,
    "all_nodata": write_all_nodata,
    "stac_corrupt_asset": write_stac_corrupt_asset,
}


def write_all(outdir: str | Path) -> dict[str, Path]:
    """Write every input into `outdir`; returns name -> path (each in its own sub-folder)."""
    outdir = Path(outdir)
    # One folder per input so that a folder given to `xvision index` holds exactly one thing.
    return {name: writer(outdir / name) for name, writer in WRITERS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write tiny generated Sentinel-2-like test rasters, parcels and STAC items.",
        epilog="Each input goes to its own sub-folder of OUTDIR; the paths written are printed.",
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="folder to write into (created)")
    args = parser.parse_args(argv)
    for name, path in write_all(args.outdir).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
