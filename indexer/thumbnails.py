"""Thumbnails of a parcel re-read from the raster a record was indexed from.

The window is the indexing window (`indexer.chips.parcel_window`), read with the indexer's own
reader, so a thumbnail shows the pixels the record's numbers came from. Two renderings: true
colour (B04, B03, B02) and false colour (B08, B04, B03: near infrared as red, so vegetation shows
bright red). Reflectance is drawn with a fixed gain and gamma, never stretched per image: two
thumbnails of different dates or parcels stay comparable. No data is drawn black; the parcel's
outline is drawn in yellow.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry.base import BaseGeometry

#: (bands drawn as red, green, blue; gain applied to reflectance before the gamma).
TRUE_COLOUR = (("B04", "B03", "B02"), 3.5)
FALSE_COLOUR = (("B08", "B04", "B03"), 2.5)
GAMMA = 1.3
OUTLINE_RGB = (255, 230, 0)


@dataclass(frozen=True)
class Thumbnails:
    """PNG bytes of one parcel on one record's raster, true and false colour, `size` pixels square."""

    true_colour: bytes
    false_colour: bytes
    size: int


def render_rgb(obs, bands: tuple[str, str, str], gain: float) -> np.ndarray:
    """An observation's three bands as 8-bit display colour (fixed gain and gamma; no data black).

    Missing bands are filled from the band nearest in wavelength, as the encoders do.
    """
    from indexer.chips import impute_plan

    imputed = impute_plan(obs.bands, bands)
    stack = np.stack([obs.band(imputed.get(b, b)) for b in bands])
    rgb = np.clip(np.nan_to_num(stack, nan=0.0) * gain, 0, 1) ** (1 / GAMMA)
    return (np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


def parcel_thumbnails(raster: str | Path, geometry_wgs84: BaseGeometry, size: int = 96) -> Thumbnails:
    """The parcel (a WGS84 polygon) on `raster`, as true- and false-colour PNGs with its outline."""
    import geopandas as gpd
    from PIL import Image, ImageDraw

    from indexer.chips import parcel_window
    from indexer.reader import open_scene

    scene = open_scene(raster)
    with scene:
        geometry = gpd.GeoSeries([geometry_wgs84], crs="EPSG:4326").to_crs(scene.crs).iloc[0]
        obs = scene.read(parcel_window(scene, geometry))
    inverse = ~obs.transform
    out = []
    for bands, gain in (TRUE_COLOUR, FALSE_COLOUR):
        rgb = render_rgb(obs, bands, gain)
        scale = size / max(rgb.shape[:2])
        image = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for polygon in getattr(geometry, "geoms", [geometry]):
            ring = [tuple(np.multiply(inverse * xy, scale)) for xy in polygon.exterior.coords]
            draw.line(ring, fill=OUTLINE_RGB, width=1)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        out.append(buffer.getvalue())
    return Thumbnails(out[0], out[1], size)
