"""Each page of the app under `streamlit.testing.v1.AppTest`, on a store built from the demo data.

AppTest does not render custom components, so the streamlit-folium map is replaced by a stand-in
that records how it was called and returns what the component returns after a click (the browser
test clicks the real map). Everything else — the store, the indexer, the charts — is real.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.mapview
from uidata import FLANDERS, PARCEL

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
TIMEOUT = 60  # the first run opens the store and imports geopandas/folium: far over AppTest's 3 s


class FakeMap:
    """Stands in for `st_folium`: keeps the map it was given, returns a click on `clicked`."""

    def __init__(self, clicked: str | None = None) -> None:
        self.clicked = clicked
        self.calls: list[dict] = []

    def __call__(self, fmap, **kwargs):
        self.calls.append({"map": fmap, **kwargs})
        if self.clicked is None:
            return {"last_active_drawing": None, "last_object_clicked_tooltip": None}
        return {"last_active_drawing": {"type": "Feature", "properties": {"parcel_id": self.clicked}},
                "last_object_clicked_tooltip": f"Parcel {self.clicked}"}


def _app(monkeypatch, clicked: str | None = None) -> tuple[AppTest, FakeMap]:
    fake = FakeMap(clicked)
    monkeypatch.setattr(ui.mapview, "st_folium", fake)
    return AppTest.from_file(APP, default_timeout=TIMEOUT), fake


def shown(markdown: str) -> str:
    """Markdown text as it reads on the page (the app backslash-escapes store values)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def test_map_page_draws_every_parcel_coloured_and_only_clicks_rerun(app_env, monkeypatch):
    at, fake = _app(monkeypatch)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Parcels"
    call = fake.calls[-1]
    # Panning must not rerun the page: only the click results come back from the component.
    assert set(call["returned_objects"]) == {"last_active_drawing", "last_object_clicked_tooltip"}
    collection = ui.mapview.features(ui.data.open_view(app_env), at.select_slider[0].value, "ndvi",
                                     "all parcels", None, [])
    assert len(collection["features"]) == 19
    html = call["map"].get_root().render()
    assert "cdn.jsdelivr" not in html and "/app/static/leaflet/leaflet.js" in html  # offline Leaflet
    # The slider snaps to the store's dates, and marks the clouded one.
    options = at.select_slider[0].options
    assert len(options) == 9 and any("2018-08-14" in o and "☁" in o for o in options)


def test_clicking_a_parcel_selects_it_and_shows_its_values_and_chart(app_env, monkeypatch):
    at, _ = _app(monkeypatch, clicked=PARCEL)
    at.run()
    assert not at.exception
    assert at.session_state["xv_parcel"] == PARCEL
    assert any(PARCEL in shown(s.value) for s in at.subheader)
    assert {m.label for m in at.metric} >= {"NDVI", "NDMI"}
    assert _charts(at), "the selected parcel's season chart is drawn beside the map"


def test_two_areas_each_get_their_own_dates(two_area_store, app_env, monkeypatch):
    monkeypatch.setenv("XVISION_UI_STORE", str(two_area_store))
    at, fake = _app(monkeypatch)
    at.run()
    assert not at.exception
    area = [s for s in at.selectbox if s.label == "Area"][0]
    assert len(area.options) == 2
    flanders = set(at.select_slider[0].options)
    assert any(o.startswith("2019-10-13") for o in flanders) and not any(o.startswith("2021") for o in flanders)
    other = next(o for o in area.options if o != area.value)
    area.set_value(other).run()
    assert not at.exception
    assert [o.split()[0] for o in at.select_slider[0].options] == ["2021-05-01", "2021-06-01"]
    assert len(ui.mapview.features(ui.data.open_view(two_area_store), "2021-06-01", "ndvi", other, None, [])
               ["features"]) == 100


def test_cloudy_date_says_so_instead_of_values(app_env, monkeypatch):
    at, _ = _app(monkeypatch)
    at.session_state["xv_parcel"] = PARCEL
    at.session_state["xv_date"] = "2018-08-14"  # fully clouded over the patch
    at.run()
    assert not at.exception
    warnings = shown(" ".join(w.value for w in at.warning))
    assert "no usable observation" in warnings and "No usable observation of this parcel" in warnings
    assert not at.metric


def test_parcel_page_from_session_state_shows_chart_compare_and_similar(app_env, monkeypatch):
    at, _ = _app(monkeypatch)
    at.session_state["xv_parcel"] = PARCEL
    at.session_state["xv_date"] = "2019-10-13"
    at.run()
    at.switch_page("views/parcel.py").run()
    assert not at.exception
    assert any(PARCEL in shown(s.value) for s in at.subheader)
    chart = _charts(at)[0]
    spec = chart.proto.spec
    assert "doy" in spec and "season" in spec  # seasons overlaid on the day of the year
    compare = at.dataframe[0].value
    # 2019-10-13 against the same window of 2018 (2018-10-13 is in the store): value, mean, delta.
    assert "2019-10-13" in compare.columns and any(c.startswith("2018 (2018-10-13") for c in compare.columns)
    delta = compare.loc["NDVI", "Δ vs 2018"]
    assert delta == pytest.approx(compare.loc["NDVI", "2019-10-13"] - compare.loc["NDVI", compare.columns[1]])
    # The README's sanity figures: winter wheat NDVI ~0.29 on 2018-10-13 against ~0.80 on 2019-10-13.
    assert delta > 0.3
    images = at.get("image")
    assert len(images) >= 4, "thumbnails of this parcel and of similar parcels"
    assert any("distance" in shown(c.value) for c in at.caption)


def test_bad_upload_shows_the_indexers_message_and_leaves_the_store_untouched(app_env, monkeypatch, tmp_path):
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in app_env.iterdir() if p.is_file()}
    at, _ = _app(monkeypatch)
    at.run()
    at.switch_page("views/add_data.py").run()
    assert not at.exception
    at.file_uploader[0].set_value(("S2_L2A_2023-06-12.tif", b"this is not a GeoTIFF", "image/tiff"))
    at.file_uploader[1].set_value(("parcels.gpkg", (FLANDERS / "parcels_Flanders31UES.gpkg").read_bytes(),
                                   "application/geopackage+sqlite3"))
    at.button[0].click().run()
    assert not at.exception
    message = at.error[0].value
    assert "store is unchanged" in message and "S2_L2A_2023-06-12.tif" in message
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in app_env.iterdir() if p.is_file()}
    assert after == before
    assert not any((tmp_path / "uploads" / "uploads").glob("*/*")), "the failed upload's files are removed"


def test_chat_page_without_a_parcel_invites_a_question(app_env, monkeypatch):
    pytest.importorskip("assistant", reason="assistant package missing")
    import assistant

    if not hasattr(assistant, "Assistant"):
        pytest.skip("assistant.Assistant (issue 12) has not landed on this branch yet")
    at, _ = _app(monkeypatch)
    at.run()
    at.switch_page("views/chat.py").run()
    assert not at.exception
    at.chat_input[0].set_value(f"How is parcel {PARCEL} doing on 2019-05-16?").run()
    assert not at.exception
    citations = at.dataframe[0].value
    assert PARCEL in set(citations["parcel"])
    assert PARCEL in at.session_state["xv_cited"]


def test_a_suspect_acquisition_is_marked_and_not_read_as_the_crop(tmp_path, monkeypatch):
    """2018-11-12 over Flanders: every parcel's NDVI drops and comes back five days later (the
    assistant's suspect rule), although the cloud mask passed the scene."""
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = tmp_path / "store"
    files = tuple(str(FLANDERS / f"S2_L2A_Flanders31UES_{d}.tif") for d in ("2018-10-18", "2018-11-12", "2018-11-17"))
    index(IndexConfig(store=store, inputs=files, parcels=FLANDERS / "parcels_Flanders31UES.gpkg", progress=False),
          build_encoder(DEFAULT_ENCODER))
    monkeypatch.setenv("XVISION_UI_STORE", str(store))
    at, _ = _app(monkeypatch)
    at.session_state["xv_parcel"] = PARCEL
    at.session_state["xv_date"] = "2018-11-12"
    at.run()
    assert not at.exception
    assert any(o.startswith("2018-11-12") and "⚠" in o for o in at.select_slider[0].options)
    warnings = shown(" ".join(w.value for w in at.warning))
    assert "suspect" in warnings and "No usable observation" in warnings
    assert not at.metric
