"""Hostile inputs, as an attacker would build them (issue 18): each writer returns the path it wrote.

Used by tests/indexer/test_hostile_inputs.py, tests/cli/test_bad_input.py and tests/ui/test_uploads.py.
Every file is small on disk; what makes it hostile is what GDAL would do with it, or what it declares.
"""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

#: Text of the "secret" file a VRT tries to read: the tests look for it in every output.
SECRET = "TOPSECRET-7f3a"


def write_secret_csv(folder: Path) -> Path:
    """A CSV outside any upload folder, with a WKT polygon per row: what an OGR VRT can expose."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret.csv"
    square = "POLYGON ((600020 5599980, 600280 5599980, 600280 5599400, 600020 5599400, 600020 5599980))"
    path.write_text("id,WKT\n" + "".join(f'{SECRET}-{i},"{square}"\n' for i in range(3)))
    return path


def vrt_parcels_xml(source: str, layer: str = "secret") -> str:
    """An OGR VRT whose layer reads `layer` of `source` (a ``CSV:`` path or a URL) as parcels."""
    return (
        '<OGRVRTDataSource>\n  <OGRVRTLayer name="fields">\n'
        f"    <SrcDataSource>{source}</SrcDataSource>\n    <SrcLayer>{layer}</SrcLayer>\n"
        "    <GeometryType>wkbPolygon</GeometryType>\n    <LayerSRS>EPSG:32631</LayerSRS>\n"
        '    <GeometryField encoding="WKT" field="WKT"/>\n  </OGRVRTLayer>\n</OGRVRTDataSource>\n'
    )


def write_vrt_parcels(folder: Path, secret_csv: Path, name: str = "fields.geojson") -> Path:
    """An OGR VRT over `secret_csv`, saved under a parcels name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(vrt_parcels_xml(f"CSV:{secret_csv}"))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_vrt_raster(folder: Path, target: Path, name: str = "S2_L2A_2021-06-01.tif", source: str | None = None) -> Path:
    """A ``<VRTDataset>`` saved as a GeoTIFF name, exposing `target` (any raster on the machine), or
    `source` (e.g. a ``/vsicurl/`` URL of it) on `target`'s grid."""
    with rasterio.open(target) as src:
        width, height, count = src.width, src.height, src.count
        crs, transform = src.crs.to_wkt(), src.transform
        names = src.descriptions
    bands = "".join(
        f'  <VRTRasterBand dataType="UInt16" band="{i}"><Description>{names[i - 1]}</Description>'
        f"<SimpleSource><SourceFilename>{source or target}</SourceFilename><SourceBand>{i}</SourceBand></SimpleSource>"
        "</VRTRasterBand>\n"
        for i in range(1, count + 1)
    )
    geo = ", ".join(f"{v!r}" for v in (transform.c, transform.a, transform.b, transform.f, transform.d, transform.e))
    xml = (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n  <SRS>{crs}</SRS>\n'
           f"  <GeoTransform>{geo}</GeoTransform>\n{bands}</VRTDataset>\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(xml)
    return path


def write_sparse_world_raster(folder: Path, name: str = "S2_L2A_world_2021-06-01.tif") -> Path:
    """36000 x 18000 px over the whole world in EPSG:4326 (0.01 degree pixels), four named bands,
    written sparse: a few KB on disk, 2.6 GB of pixels declared."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    profile = dict(driver="GTiff", width=36000, height=18000, count=4, dtype="uint16", crs="EPSG:4326",
                   transform=from_origin(-180.0, 90.0, 0.01, 0.01), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate", sparse_ok=True, nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        for i, band in enumerate(("B02", "B03", "B04", "B08"), start=1):
            dst.set_band_description(i, band)
        # One block of data so that the raster is not all nodata.
        dst.write(np.full((4, 512, 512), 1200, dtype="uint16"), window=rasterio.windows.Window(18000, 4000, 512, 512))
    return path


def write_stack(path: Path, bands: tuple[str, ...], pixel: float, size: int = 64, crs: str = "EPSG:32631",
                date: str = "2021-06-01") -> Path:
    """A plain named-band uint16 stack of vegetation-like values, `pixel` metres (or degrees) a side."""
    values = {"B02": 300, "B03": 600, "B04": 400, "B05": 1000, "B08": 4000, "B11": 2000, "B12": 1000, "SCL": 4}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(bands), dtype="uint16",
                       crs=crs, transform=from_origin(600000.0, 5600000.0, pixel, pixel), nodata=0) as dst:
        dst.write(np.stack([np.full((size, size), values[b], dtype="uint16") for b in bands]))
        for i, band in enumerate(bands, start=1):
            dst.set_band_description(i, band)
        dst.update_tags(ACQUISITION_DATE=date)
    return path


def write_bomb_zip(path: Path, unpacked_mib: int = 1025) -> Path:
    """A zip of a few MB whose one GeoJSON member unpacks to `unpacked_mib` MiB of spaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("fields.geojson", "w", force_zip64=True) as member:
            member.write(b'{"type": "FeatureCollection", "features": []}')
            for _ in range(unpacked_mib):
                member.write(chunk)
    return path


def write_many_features_zip(path: Path, count: int) -> Path:
    """A zipped FlatGeobuf of `count` tiny squares (its header declares the count)."""
    import geopandas as gpd
    import shapely

    x = 600000.0 + (np.arange(count) % 1000) * 10.0
    y = 5600000.0 - (np.arange(count) // 1000) * 10.0
    squares = shapely.box(x, y - 10.0, x + 10.0, y)
    fgb = path.with_suffix(".fgb")
    gpd.GeoDataFrame({"parcel_id": np.arange(count).astype(str)}, geometry=squares, crs="EPSG:32631").to_file(
        fgb, driver="FlatGeobuf", engine="pyogrio")
    write_zip(path, {"fields.fgb": fgb.read_bytes()})
    fgb.unlink()
    return path


class CountingServer:
    """A local HTTP server over `folder` that records every request path (to prove none was made)."""

    def __init__(self, folder: Path) -> None:
        requests: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args) -> None:
                requests.append(self.path)

        self.requests = requests
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def stac_item_with_remote_asset(folder: Path, href: str) -> Path:
    """A STAC item whose one band asset is a URL."""
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "S2_remote_20210601", "properties": {
            "datetime": "2021-06-01T10:00:00Z"},
        "geometry": None, "links": [], "assets": {"B04": {"href": href, "type": "image/tiff"}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path
