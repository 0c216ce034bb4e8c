"""The Leaflet map (folium + streamlit-folium), fully offline.

No tile server is reachable offline, so the background is the acquisition itself (a true-colour
image of the selected date's scenes) and Leaflet's own script and stylesheet are served by the app
(`ui/static/leaflet`, Streamlit static serving) instead of a CDN. branca's own map legend loads d3
from a CDN, so the colour bar is drawn here as an SVG in a Leaflet control, from the same branca
colormap that colours the parcels.

Everything a parcel file or a store holds (ids, crop labels, statuses) reaches the map's HTML only
through `data.html_text`: folium's tooltip writes property values as HTML, and the map frame is
same-origin with the app.
"""

from __future__ import annotations

import base64
import os

import branca.colormap
import folium
import numpy as np
from branca.element import MacroElement
from jinja2 import Template
from streamlit_folium import st_folium

from ui import data
from ui.data import html_text

#: Leaflet 1.9.4 (BSD-2-Clause), served by Streamlit from ui/static at /app/static/.
_STATIC = "/app/static/leaflet"
#: Parcel labels show from this zoom on (below it, 19 labels over a few km are clutter).
LABEL_MIN_ZOOM = 15
#: How the map can colour the parcels: the index itself, or a difference against a reference.
COLOURINGS = {
    "value": "Index value",
    "seasons": "Difference from its own other seasons (same time of year)",
    "crop": "Difference from parcels of the same crop (this date)",
}


class OfflineMap(folium.Map):
    """A folium map that loads Leaflet from the app, not from a CDN (jQuery/Bootstrap unused)."""

    default_js = [("leaflet", f"{_STATIC}/leaflet.js")]
    default_css = [("leaflet_css", f"{_STATIC}/leaflet.css")]


SELECTED = {"color": "#111111", "weight": 4, "dashArray": None}
CITED = {"color": "#1565c0", "weight": 3, "dashArray": "6 4"}
UNUSABLE_FILL = "#9e9e9e"


def scale(view: data.AppView, colouring: data.Colouring, index: str) -> branca.colormap.LinearColormap:
    """The colour scale of a colouring.

    Index values: one scale per index for the whole store (2nd–98th percentile of usable records),
    so colours mean the same on every date. Differences: a diverging scale centred on 0 (red below
    the reference, blue above), symmetric, spanning the largest difference shown (at least 0.05).
    """
    if not colouring.diverging:
        values = view.records.loc[view.records["usable"], f"{index}_mean"].dropna()
        low, high = (np.percentile(values, [2, 98]) if len(values) else (0.0, 1.0))
        if high <= low:
            high = low + 1e-3
        return branca.colormap.linear.RdYlGn_11.scale(float(low), float(high))
    shown = colouring.values.dropna().abs()
    span = max(0.05, float(np.ceil(shown.max() * 20) / 20) if len(shown) else 0.05)
    return branca.colormap.linear.RdBu_11.scale(-span, span)


def colour_bar(colours: branca.colormap.LinearColormap, title: str, width: int = 260) -> str:
    """An SVG colour bar of `colours` with five ticks and a title (escaped)."""
    steps = 64
    fmt = "+.2f" if colours.vmin < 0 < colours.vmax else ".2f"
    rects = "".join(
        f'<rect x="{i * width / steps:.1f}" y="16" width="{width / steps + 0.5:.1f}" height="12" '
        f'fill="{colours.rgb_hex_str(colours.vmin + (colours.vmax - colours.vmin) * (i + 0.5) / steps)}"/>'
        for i in range(steps))
    ticks = "".join(
        f'<text x="{width * f:.1f}" y="42" text-anchor="{anchor}">'
        f'{format(colours.vmin + (colours.vmax - colours.vmin) * f, fmt)}</text>'
        for f, anchor in ((0, "start"), (0.25, "middle"), (0.5, "middle"), (0.75, "middle"), (1, "end")))
    return (f'<svg class="xv-colourbar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="46" '
            f'font-family="sans-serif" font-size="11"><text x="0" y="11">{html_text(title)}</text>{rects}{ticks}</svg>')


class _Control(MacroElement):
    """A fixed HTML panel on the map (the colour bar); `html` must already be escaped."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function() {
            var control = L.control({position: "bottomright"});
            control.onAdd = function() {
                var div = L.DomUtil.create("div", "xv-legend");
                div.innerHTML = {{ this.html|tojson }};
                return div;
            };
            control.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, html: str) -> None:
        super().__init__()
        self._name = "XVisionLegend"
        self.html = html


class _ZoomedLayer(MacroElement):
    """Shows `layer` only from `min_zoom` on."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function() {
            var map = {{ this._parent.get_name() }}, layer = {{ this.layer.get_name() }};
            function sync() {
                if (map.getZoom() >= {{ this.min_zoom }}) { if (!map.hasLayer(layer)) { map.addLayer(layer); } }
                else if (map.hasLayer(layer)) { map.removeLayer(layer); }
            }
            map.on("zoomend", sync);
            sync();
        })();
        {% endmacro %}
    """)

    def __init__(self, layer, min_zoom: int) -> None:
        super().__init__()
        self._name = "XVisionZoomedLayer"
        self.layer = layer
        self.min_zoom = int(min_zoom)


_CSS = """<style>
.xv-legend {background: rgba(255,255,255,0.85); padding: 4px 6px; border-radius: 4px;}
.xv-label {font: 600 11px sans-serif; color: #111; text-shadow: 0 0 3px #fff, 0 0 3px #fff;
           white-space: nowrap; pointer-events: none;}
</style>"""


def short_labels(ids: list[str]) -> dict[str, str]:
    """Each id without the prefix all of them share (cut at a separator: "Flanders31UES-001" -> "001")."""
    if len(ids) < 2:
        return {i: i for i in ids}
    prefix = os.path.commonprefix(ids)
    cut = max((k + 1 for k, c in enumerate(prefix) if not c.isalnum()), default=0)
    return {i: (i[cut:] or i) for i in ids}


def features(view: data.AppView, date: str, index: str, area: str, selected: str | None,
             cited: list[str], colouring: data.Colouring | None = None) -> dict:
    """GeoJSON of the area's parcels with their (escaped) tooltip fields and their style.

    `key` is the raw parcel id (never shown: a click returns it); every shown field is HTML-escaped.
    """
    colouring = colouring or view.colouring("value", date, index, area)
    colours = scale(view, colouring, index)
    records = view.on_date(date)
    parcels = view.parcels[view.parcels["area"] == area]
    column = f"{index}_mean"
    out = []
    for row in parcels.itertuples():
        rec = records.loc[row.parcel_id] if row.parcel_id in records.index else None
        usable = rec is not None and bool(rec["usable"]) and np.isfinite(rec[column])
        shade = colouring.values.get(row.parcel_id, np.nan)
        coloured = usable and np.isfinite(shade)
        style = {"fillColor": colours(shade) if coloured else UNUSABLE_FILL, "fillOpacity": 0.65 if coloured else 0.35,
                 "color": "#ffffff", "weight": 1, "dashArray": None}
        if row.parcel_id in cited:
            style.update(CITED)
        if row.parcel_id == selected:
            style.update(SELECTED)
        delta = f"{shade:+.3f}" if coloured and colouring.diverging else "—"
        out.append({
            "type": "Feature",
            "geometry": row.geometry.__geo_interface__,
            "properties": {
                "key": row.parcel_id,
                "parcel": html_text(row.parcel_id), "crop": html_text(row.label or "—"),
                "value": f"{rec[column]:.3f}" if usable else "—", "delta": delta,
                "reference": html_text(colouring.reference.get(row.parcel_id, "") or "—"),
                "status": html_text(data.status_text(rec) if rec is not None else "no acquisition"),
                "style": style},
        })
    return {"type": "FeatureCollection", "features": out}


def build(view: data.AppView, date: str, index: str, area: str, selected: str | None,
          cited: list[str], kind: str = "value") -> folium.Map:
    """The folium map of `area` on `date`, coloured by `kind` (see COLOURINGS), with its colour bar."""
    colouring = view.colouring(kind, date, index, area)
    collection = features(view, date, index, area, selected, cited, colouring)
    parcels = view.parcels[view.parcels["area"] == area]
    minx, miny, maxx, maxy = parcels.total_bounds
    fmap = OfflineMap(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, zoom_start=15,
                      control_scale=True, prefer_canvas=False)
    fmap.get_root().header.add_child(folium.Element(_CSS))
    for png, (south, west, north, east) in view.overlay(date, area):
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        folium.raster_layers.ImageOverlay(url, bounds=[[south, west], [north, east]], opacity=0.9,
                                          name=html_text(f"Sentinel-2 {date}")).add_to(fmap)
    fields, aliases = ["parcel", "crop", "value"], ["Parcel", "Crop", f"{index.upper()} mean"]
    if colouring.diverging:
        fields += ["delta", "reference"]
        aliases += [html_text(colouring.title), "Reference"]
    folium.GeoJson(
        collection,
        name="parcels",
        style_function=lambda feature: feature["properties"]["style"],
        highlight_function=lambda feature: {"weight": 4, "color": "#ffeb3b"},
        tooltip=folium.GeoJsonTooltip(fields=[*fields, "status"], aliases=[*aliases, "Observation"]),
    ).add_to(fmap)
    labels = folium.FeatureGroup(name="labels", control=False)
    short = short_labels(list(parcels["parcel_id"]))
    for row in parcels.itertuples():
        point = row.geometry.representative_point()
        folium.Marker([point.y, point.x], interactive=False, keyboard=False,
                      icon=folium.DivIcon(html=f'<span class="xv-label">{html_text(short[row.parcel_id])}</span>',
                                          class_name="xv-label-icon", icon_size=(0, 0))).add_to(labels)
    labels.add_to(fmap)
    fmap.add_child(_ZoomedLayer(labels, LABEL_MIN_ZOOM))
    fmap.add_child(_Control(colour_bar(scale(view, colouring, index), colouring.title)))
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    return fmap


def legend(view: data.AppView, date: str, index: str, area: str, kind: str = "value") -> str:
    """The colouring in words, with its reference (plain text: the caller escapes it for markdown)."""
    colouring = view.colouring(kind, date, index, area)
    colours = scale(view, colouring, index)
    if colouring.diverging:
        reading = f"red: below the reference, blue: above (scale ±{colours.vmax:.2f})"
    else:
        reading = f"red ({colours.vmin:.2f}) to green ({colours.vmax:.2f})"
    return (f"{colouring.legend} Colours: {reading}. Black outline: the selected parcel; "
            f"labels from zoom {LABEL_MIN_ZOOM}.")


def parcel_map(view: data.AppView, date: str, index: str, area: str, selected: str | None,
               cited: list[str], kind: str = "value") -> str | None:
    """Draw the map; return the parcel id of the last clicked parcel (None when none was)."""
    fmap = build(view, date, index, area, selected, cited, kind)
    # Only clicks come back: panning and zooming return nothing, so they do not rerun the page.
    out = st_folium(fmap, key="parcel-map", height=540, use_container_width=True,
                    returned_objects=["last_active_drawing", "last_object_clicked_tooltip"])
    out = out or {}
    feature = out.get("last_active_drawing") or {}
    parcel = (feature.get("properties") or {}).get("key")
    if parcel is None and out.get("last_object_clicked_tooltip"):
        # The tooltip of the clicked parcel ("Parcel <id> Crop ..."): the longest known id in it.
        tooltip = str(out["last_object_clicked_tooltip"])
        found = [p for p in view.parcels["parcel_id"] if p in tooltip]
        parcel = max(found, key=len) if found else None
    return parcel
