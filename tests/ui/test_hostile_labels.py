"""Stored cross-site scripting (issue 18, item 2): parcel ids and attribute values from an indexed
parcels file are data, never markup, wherever the app shows them.

The store is indexed by the real indexer from the Flanders parcels with hostile ids and crop
labels (`<img src=x onerror=...>`, `<script>`, an attribute-breaking quote, markdown links and
Streamlit directives). Every payload sets `top.__xss` when it runs: the real-browser test hovers
and clicks every parcel, opens every page and asks a question, then checks that it is unset and
that no dialog opened. The other tests check the HTML and markdown the app produces.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ui.data
import ui.mapview
from uidata import FLANDERS

#: Each sets top.__xss (the app's window, from the same-origin map frame too) if it ever runs.
PAYLOADS = (
    '<img src=x onerror="top.__xss=1">',
    "<script>top.__xss=2</script>",
    '"><svg onload="top.__xss=3">',
    "<iframe srcdoc=\"<script>top.__xss=4</script>\"></iframe>",
)
#: Markdown and Streamlit-markdown that must show as typed, not as a link, colour or formula.
MARKDOWN = ("[click me](javascript:top.__xss=5)", ":red[alarm] **bold**", "$x^2$")


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    """Flanders parcels with hostile ids and crop labels (crop words kept, so the crop column is
    still recognised), indexed on two dates a season apart."""
    import geopandas as gpd

    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    folder = tmp_path_factory.mktemp("hostile")
    parcels = gpd.read_file(FLANDERS / "parcels_Flanders31UES.gpkg")
    hostile = [*PAYLOADS, *MARKDOWN]
    for i in range(len(hostile)):
        parcels.loc[i, "parcel_id"] = f"{hostile[i]} {i:03d}"
        parcels.loc[i, "crop_name"] = f"{parcels.loc[i, 'crop_name']} {hostile[-1 - i]}"
    path = folder / "fields.geojson"
    parcels.to_file(path, driver="GeoJSON")
    store = folder / "store"
    files = tuple(str(FLANDERS / f"S2_L2A_Flanders31UES_{d}.tif") for d in ("2018-10-13", "2019-10-13"))
    index(IndexConfig(store=store, inputs=files, parcels=path, progress=False), build_encoder(DEFAULT_ENCODER))
    return store


def _raw(html: str) -> list[str]:
    """Hostile markup that reaches `html` unescaped."""
    return [p for p in (*PAYLOADS, "<img src=x", "<script>top", "<svg onload", "<iframe") if p in html]


def test_the_hostile_labels_are_stored_as_given(hostile_store):
    view = ui.data.open_view(hostile_store)
    ids = set(view.parcels["parcel_id"])
    assert all(any(p in i for i in ids) for p in PAYLOADS)
    assert view.crop_column == "attr_crop_name"
    assert any("<script>" in label for label in view.parcels["label"])


def test_the_map_html_holds_every_label_escaped(hostile_store):
    view = ui.data.open_view(hostile_store)
    for kind in ui.mapview.COLOURINGS:
        fmap = ui.mapview.build(view, "2019-10-13", "ndvi", "all parcels", view.parcels["parcel_id"][0],
                                list(view.parcels["parcel_id"][:3]), kind)
        html = fmap.get_root().render()
        assert not _raw(html), kind
        # Shown as text: HTML-escaped (inside the page's JSON, `&` itself is written \u0026).
        assert "&lt;img src=x onerror=&quot;top.__xss=1&quot;&gt;" in html.replace("\\u0026", "&")
    collection = ui.mapview.features(view, "2019-10-13", "ndvi", "all parcels", None, [])
    for feature in collection["features"]:
        props = feature["properties"]
        shown = {k: v for k, v in props.items() if k not in ("key", "style")}
        assert not _raw(" ".join(map(str, shown.values())))
        assert props["parcel"] == ui.data.html_text(props["key"])  # the raw id only as the click key


def test_markdown_shows_store_values_as_typed():
    for value in (*PAYLOADS, *MARKDOWN):
        text = ui.data.md_text(value)
        assert re.sub(r"\\(.)", r"\1", text) == " ".join(value.split())
        # No markdown, directive or formula character left unescaped.
        assert not re.search(r"(?<!\\)[\[\]()*:$<>`_]", text)


def test_no_payload_runs_in_a_real_browser(hostile_store, tmp_path):
    from test_browser import CHROMIUM, LAUNCH_ARGS, map_frame, map_paths, serve, settled

    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    view = ui.data.open_view(hostile_store)
    ids = list(view.parcels["parcel_id"])
    with serve(hostile_store, tmp_path, model=[]) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        settled(page)
        paths = map_paths(page)
        assert paths.count() == len(ids)
        tooltip = map_frame(page).locator(".leaflet-tooltip")
        seen = []
        for i in range(len(ids)):
            try:
                paths.nth(i).hover(timeout=5_000)
            except Exception:  # a parcel inside another's hole: its centre belongs to the other
                paths.nth(i).dispatch_event("mouseover")
            tooltip.wait_for()
            seen.append(tooltip.inner_text())
        assert page.evaluate("() => window.__xss") is None, "a payload ran on hover"
        assert any('<img src=x onerror="top.__xss=1">' in t for t in seen), "the label shows as text"
        paths.nth(next(i for i, t in enumerate(seen) if "onerror" in t)).click()
        settled(page)
        page.get_by_role("heading", name=re.compile(r"onerror")).first.wait_for()
        for link in ("Parcel", "Ask"):
            page.get_by_role("link", name=link).first.click()
            settled(page)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("Which parcels had NDVI above 0.5 on 2019-10-13?")
        box.press("Enter")
        page.locator('[data-testid="stChatMessage"]').nth(1).locator('[data-testid="stDataFrame"]').first.wait_for()
        settled(page)
        assert page.evaluate("() => window.__xss") is None, "a payload ran"
        assert not dialogs
        assert not page.locator('[data-testid="stMarkdown"] a[href^="javascript"]').count()
        browser.close()
