"""The Parcel page's downloads: the field report and the records CSV of the selected parcel's season."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from streamlit.testing.v1 import AppTest

import ui.mapview
from indexer.store import Store
from ui import config, report_view
from uidata import PARCEL

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


def test_the_parcel_page_offers_the_report_of_the_selected_dates_season(app_env, monkeypatch):
    monkeypatch.setattr(ui.mapview, "st_folium", lambda fmap, **kw: {"last_active_drawing": None,
                                                                      "last_object_clicked_tooltip": None})
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["xv_parcel"] = PARCEL
    at.session_state["xv_date"] = "2018-10-13"
    at.run()
    at.switch_page("views/parcel.py").run()
    assert not at.exception
    buttons = at.get("download_button")
    labels = [b.proto.label for b in buttons]
    assert "Field report 2018 (HTML)" in labels and "Records (CSV)" in labels
    assert any("Take it away" in s.value for s in at.subheader)


def test_the_downloads_hold_the_parcels_records(app_env, tmp_path):
    cfg = config.AppConfig(store=app_env, model=None, data_dir=tmp_path)
    html, text = report_view.report_files(cfg, PARCEL, 2019)
    assert report_view.report_files(cfg, PARCEL, 2019)[0] is html, "built once per store generation"
    history = Store.open(app_env).history(PARCEL).sort_values("date")
    assert PARCEL in html and "season 2019" in html
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["date"] for r in rows] == list(history["date"])
    newest = history[history["valid"] & history["date"].str.startswith("2019")].iloc[-1]
    assert f"{newest['ndvi_mean']:.2f}" in html and f"record {int(newest['record_id'])}" in html


def test_file_names_are_safe_for_any_parcel_id():
    assert report_view.file_stem("Flanders31UES-001", 2019) == "Flanders31UES-001-2019"
    assert report_view.file_stem("../../etc/passwd", 2019) == "etc_passwd-2019"
    assert report_view.file_stem("<script>", 2019) == "script-2019"
    assert "/" not in report_view.file_stem("a/b\\c:d", 2019)
