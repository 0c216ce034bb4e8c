"""The Leaflet map (folium + streamlit-folium), fully offline.

No tile server is reachable offline, so the background is the acquisition itself (a true-colour
image of the selected date's scenes) and Leaflet's own script and stylesheet are served by the app
(`ui/static/leaflet`, Streamlit static serving) instead of a CDN.
"""

from __future__ import annotations

import base64

import branca.colormap
import folium
import numpy as np
from streamlit_folium import st_folium

from ui import data

#: Leaflet 1.9.4 (BSD-2-Clause), served by Streamlit from ui/static at /app/static/.
_STATIC = "/app/static/leaflet"


class OfflineMap(folium.Map):
    """A folium map that loads Leaflet from the app, not from a CDN (jQuery/Bootstrap unused)."""

    default_js = [("leaflet", f"{_STATIC}/leaflet.js")]
    default_css = [("leaflet_css", f"{_STATIC}/leaflet.css")]


SELECTED = {"color": "#111111", "weight": 4, "dashArray": None}
CITED = {"color": "#1565c0", "weight": 3, "dashArray": "6 4"}
UNUSABLE_FILL = "#9e9e9e"


def scale(view: data.StoreView, index: str) -> branca.colormap.LinearColormap:
    """One colour scale per index for the whole store (2nd–98th percentile of usable records), so
    colours mean the same on every date."""
    values = view.records.loc[view.records["usable"], f"{index}_mean"].dropna()
    low, high = (np.percentile(values, [2, 98]) if len(values) else (0.0, 1.0))
    if high <= low:
        high = low + 1e-3
    return branca.colormap.linear.RdYlGn_11.scale(float(low), float(high))


def legend(view: data.StoreView, index: str) -> str:
    colours = scale(view, index)
    return (f"{index.upper()} mean from red ({colours.vmin:.2f}) to green ({colours.vmax:.2f}); "
            "grey: clouded or not observed on this date; black outline: selected parcel.")


def features(view: data.StoreView, date: str, index: str, area: str, selected: str | None,
             cited: list[str]) -> dict:
    """GeoJSON of the area's parcels with their value on `date` and their style."""
    colours = scale(view, index)
    records = view.on_date(date)
    parcels = view.parcels[view.parcels["area"] == area]
    out = []
    for row in parcels.itertuples():
        rec = records.loc[row.parcel_id] if row.parcel_id in records.index else None
        value = float(rec[f"{index}_mean"]) if rec is not None else float("nan")
        if rec is None:
            status = "no acquisition"
        elif rec["suspect"]:
            status = "suspect (scene-wide jump)"
        elif not rec["valid"]:
            status = f"{rec['invalid_reason'] or 'unusable'} (valid {rec['valid_fraction']:.0%})"
        else:
            status = f"clear (valid {rec['valid_fraction']:.0%})"
        usable = rec is not None and bool(rec["usable"]) and np.isfinite(value)
        style = {"fillColor": colours(value) if usable else UNUSABLE_FILL, "fillOpacity": 0.65 if usable else 0.35,
                 "color": "#ffffff", "weight": 1, "dashArray": None}
        if row.parcel_id in cited:
            style.update(CITED)
        if row.parcel_id == selected:
            style.update(SELECTED)
        out.append({
            "type": "Feature",
            "geometry": row.geometry.__geo_interface__,
            "properties": {"parcel_id": row.parcel_id, "label": row.label or "—",
                           "value": f"{value:.3f}" if usable else "—", "status": status, "style": style},
        })
    return {"type": "FeatureCollection", "features": out}


def build(view: data.StoreView, date: str, index: str, area: str, selected: str | None,
          cited: list[str]) -> folium.Map:
    collection = features(view, date, index, area, selected, cited)
    parcels = view.parcels[view.parcels["area"] == area]
    minx, miny, maxx, maxy = parcels.total_bounds
    fmap = OfflineMap(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, zoom_start=15,
                      control_scale=True, prefer_canvas=False)
    for png, (south, west, north, east) in view.overlay(date, area):
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        folium.raster_layers.ImageOverlay(url, bounds=[[south, west], [north, east]], opacity=0.9,
                                          name=f"Sentinel-2 {date}").add_to(fmap)
    folium.GeoJson(
        collection,
        name="parcels",
        style_function=lambda feature: feature["properties"]["style"],
        highlight_function=lambda feature: {"weight": 4, "color": "#ffeb3b"},
        tooltip=folium.GeoJsonTooltip(fields=["parcel_id", "label", "value", "status"],
                                      aliases=["Parcel", "Crop", index.upper(), "Observation"]),
    ).add_to(fmap)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    return fmap


def parcel_map(view: data.StoreView, date: str, index: str, area: str, selected: str | None,
               cited: list[str]) -> str | None:
    """Draw the map; return the parcel id of the last clicked parcel (None when none was)."""
    fmap = build(view, date, index, area, selected, cited)
    # Only clicks come back: panning and zooming return nothing, so they do not rerun the page.
    out = st_folium(fmap, key="parcel-map", height=540, use_container_width=True,
                    returned_objects=["last_active_drawing", "last_object_clicked_tooltip"])
    out = out or {}
    feature = out.get("last_active_drawing") or {}
    parcel = (feature.get("properties") or {}).get("parcel_id")
    if parcel is None and out.get("last_object_clicked_tooltip"):
        # The tooltip of the clicked parcel ("Parcel <id> Crop ..."): the longest known id in it.
        tooltip = str(out["last_object_clicked_tooltip"])
        found = [p for p in view.parcels["parcel_id"] if p in tooltip]
        parcel = max(found, key=len) if found else None
    return parcel
