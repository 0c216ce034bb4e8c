"""The field report: built from a store of the real Flanders sample (the repository's data/), its
numbers are the store's, the CLI writes it with its CSV, and hostile labels are escaped in both."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import pytest

from assistant.report import REPORT_INDICES, ReportConfig, build_report, records_csv, render_html, write_report
from indexer.core.errors import InputError, NotFoundError
from indexer.observations import find_suspects, observation_statuses
from indexer.store import Store

REPO = Path(__file__).resolve().parents[2]
FLANDERS = REPO / "data" / "worldcereal-flanders"
PARCELS = FLANDERS / "parcels_Flanders31UES.gpkg"
#: Clear and clouded dates of both seasons (with the October pair a year apart for the comparison).
DATES = ("2018-08-04", "2018-08-14", "2018-10-13", "2018-10-18", "2019-03-22", "2019-05-16", "2019-07-25",
         "2019-08-14", "2019-10-13", "2019-10-18")
PARCEL = "Flanders31UES-001"  # winter wheat in 2019
HOSTILE_CROP = '<script>alert("crop")</script>'
HOSTILE_SOURCE = '=HYPERLINK("http://example.invalid","x") <img src=x onerror=alert(1)>'

pytestmark = pytest.mark.skipif(not PARCELS.is_file(), reason="the Flanders sample is not in data/")


def _index(store: Path, parcels: Path, dates=DATES) -> Path:
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    files = tuple(str(FLANDERS / f"S2_L2A_Flanders31UES_{d}.tif") for d in dates)
    index(IndexConfig(store=store, inputs=files, parcels=parcels, progress=False), build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture(scope="module")
def flanders_store(tmp_path_factory) -> Path:
    return _index(tmp_path_factory.mktemp("report") / "flanders", PARCELS)


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    """The Flanders parcels with hostile labels: markup in a crop name, a formula in another column."""
    import geopandas as gpd

    folder = tmp_path_factory.mktemp("hostile")
    parcels = gpd.read_file(PARCELS)
    parcels.loc[parcels["parcel_id"] == PARCEL, "crop_name"] = HOSTILE_CROP
    parcels["label_source"] = HOSTILE_SOURCE
    path = folder / "parcels.gpkg"
    parcels.to_file(path, driver="GPKG")
    return _index(folder / "store", path, DATES[4:8])


@pytest.fixture(scope="module")
def report(flanders_store):
    return build_report(flanders_store, PARCEL, ReportConfig(season=2019, similar_k=3))


@pytest.fixture(scope="module")
def history(flanders_store):
    """The parcel's records as the store holds them, with the library's observation status."""
    store = Store.open(flanders_store)
    records = store.records()
    records = records.join(observation_statuses(records, find_suspects(records)))
    return records[records["parcel_id"] == PARCEL].sort_values("date").set_index("date")


def _close(a, b) -> bool:
    if a is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, float(b), abs_tol=1e-9)


def test_the_report_holds_the_parcels_numbers(report, history):
    assert report.parcel_id == PARCEL and report.crop == "Winter wheat" and report.season == 2019
    assert [o.date for o in report.history] == list(history.index)
    for o in report.history:
        row = history.loc[o.date]
        assert o.record_id == int(row["record_id"]) and o.status == row["status"]
        assert all(_close(o.values[i], row[f"{i}_mean"]) for i in REPORT_INDICES), o.date
    usable_2019 = [d for d in history.index if d.startswith("2019") and history.loc[d, "usable"]]
    assert [o.date for o in report.recent] == usable_2019[::-1][:3]
    unusable = {d for d in history.index if d.startswith("2019") and history.loc[d, "status"] in ("cloud", "snow", "nodata", "too_small")}
    assert {o.date for o in report.unusable} == unusable and unusable, "the test store has clouded 2019 dates"

    html = render_html(report)
    for o in report.recent:
        row = history.loc[o.date]
        for i in REPORT_INDICES:
            assert f"{row[f'{i}_mean']:.2f}" in html
        assert f"record {int(row['record_id'])}" in html
    for o in report.unusable:
        assert o.date in html and f"({o.record_id})" in html


def test_the_past_season_comparison_is_the_stores_records(report, history):
    c = report.comparison
    assert c is not None and c.observation.date == "2019-10-18"
    assert c.deltas, "2018-10-18 is a usable date a year before"
    html = render_html(report)
    for d in c.deltas:
        then = history.loc[d.past_date]
        assert d.past_record_id == int(then["record_id"]) and bool(then["usable"])
        assert _close(d.past_value, then[f"{d.index}_mean"])
        assert _close(d.value, history.loc["2019-10-18", f"{d.index}_mean"])
        assert math.isclose(d.delta, d.value - d.past_value)
        assert f"{d.delta:+.2f}" in html and f"{d.past_date} ({d.past_record_id})" in html


def test_sources_are_raster_names_never_paths(report, flanders_store):
    html = render_html(report)
    assert "S2_L2A_Flanders31UES_2019-10-18.tif" in html
    assert str(FLANDERS) not in html and str(flanders_store) not in html
    assert report.own_thumbnails is not None, "the rasters are in data/: thumbnails re-read"
    assert report.similar and all(s.true_png and s.parcel_id != PARCEL for s in report.similar)
    for s in report.similar:
        assert f"record {s.record_id}" in html and f"{s.distance:.3f}" in html


def test_the_page_is_self_contained(report):
    html = render_html(report)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    # Nothing is fetched: every reference is inline (data: images, in-document SVG links); the
    # only URLs left are XML namespace names and metadata terms, which no browser loads.
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//|file:)", html, re.I)
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", html))
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "the charts' ids do not collide"
    assert all(ref.startswith("#") for ref in re.findall(r'xlink:href="([^"]+)"', html))
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'<img src="([^"]+)"', html))


def test_the_csv_holds_every_record_with_the_stores_values(report, history, flanders_store):
    rows = list(csv.DictReader(io.StringIO(records_csv(report, flanders_store))))
    assert [r["date"] for r in rows] == list(history.index)
    for r in rows:
        stored = history.loc[r["date"]]
        assert int(r["record_id"]) == int(stored["record_id"]) and r["status"] == stored["status"]
        for column in ("ndvi_mean", "ndvi_p10", "ndmi_mean", "valid_fraction"):
            assert _close(float(r[column]) if r[column] else None, stored[column]), (r["date"], column)
        assert r["raster"] == Path(stored["source"]).name


def test_the_cli_writes_the_report_and_the_csv(flanders_store, tmp_path, capsys):
    from xvision.cli import main

    out = tmp_path / "field.html"
    assert main(["report", PARCEL, "--store", str(flanders_store), "--out", str(out), "--season", "2019"]) == 0
    assert out.is_file() and out.with_suffix(".csv").is_file()
    html = out.read_text(encoding="utf-8")
    assert PARCEL in html and "Winter wheat" in html and "season 2019" in html
    assert len(out.with_suffix(".csv").read_text(encoding="utf-8").splitlines()) == 1 + len(DATES)
    assert main(["report", "no-such-parcel", "--store", str(flanders_store), "--out", str(tmp_path / "x.html")]) == 2
    assert "no parcel 'no-such-parcel'" in capsys.readouterr().err
    assert main(["report", PARCEL, "--store", str(flanders_store), "--out", str(tmp_path / "x.html"),
                 "--season", "2017"]) == 2
    assert not (tmp_path / "x.html").exists()


def test_errors_name_what_is_wrong(flanders_store, tmp_path):
    with pytest.raises(NotFoundError, match="no parcel 'nope'"):
        build_report(flanders_store, "nope")
    with pytest.raises(InputError, match="no record in 2017"):
        build_report(flanders_store, PARCEL, ReportConfig(season=2017))
    with pytest.raises(InputError, match="name the file .html"):
        write_report(flanders_store, PARCEL, tmp_path / "report.pdf")
    with pytest.raises(InputError, match="recent"):
        ReportConfig(recent=0)


def test_hostile_labels_are_escaped_in_the_report_and_guarded_in_the_csv(hostile_store, tmp_path):
    html_path, csv_path = write_report(hostile_store, PARCEL, tmp_path / "hostile.html", ReportConfig(similar_k=2))
    html = html_path.read_text(encoding="utf-8")
    assert HOSTILE_CROP not in html and "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;crop&#34;)&lt;/script&gt;" in html
    assert "onerror=alert(1)" not in html.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert rows and all(r["attr_label_source"] == "'" + HOSTILE_SOURCE for r in rows)
    assert all(r["attr_crop_name"] == HOSTILE_CROP for r in rows), "markup is plain text in a CSV"


def test_a_grid_cell_without_parcel_attributes_gets_its_report(tmp_path):
    """Cells of `--grid` have no parcels file: no crop, no attributes; the rest of the report holds."""
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    hesbaye = REPO / "data" / "worldcereal-hesbaye"
    files = tuple(str(p) for p in sorted(hesbaye.glob("S2_L2A_hesbaye_2021-0[4-7]-01.tif")))
    if len(files) < 4:
        pytest.skip("the Hesbaye months are not in data/")
    index(IndexConfig(store=tmp_path / "grid", inputs=files, grid=10, progress=False), build_encoder(DEFAULT_ENCODER))
    store = Store.open(tmp_path / "grid")
    cell = sorted(store.records()["parcel_id"].unique())[0]
    report = build_report(store, cell, ReportConfig(similar_k=2))
    assert report.crop == "" and report.attributes == {} and report.season == 2021
    html = render_html(report)
    assert cell in html and "S2_L2A_hesbaye_&lt;date&gt;.tif" in html, "one raster per date, named by its date"
    history = store.history(cell).sort_values("date")
    newest = history[history["valid"]].iloc[-1]
    assert report.recent[0].record_id == int(newest["record_id"]) and f"{newest['ndvi_mean']:.2f}" in html


def test_crop_calendar_events_are_the_librarys_on_the_parcels_records(report, history):
    from indexer import phenology

    assert report.events is not None, "the library has a crop-calendar rule"
    expected = [e for e in phenology.crop_calendar(history.reset_index(), "ndvi_mean",
                                                   date_from="2019-01-01", date_to="2019-12-31")]
    assert report.events, "the test store holds the 2019 season of a winter wheat"
    assert [(e.kind, e.start, e.end) for e in report.events] == [(e.kind, e.start, e.end) for e in expected]
    ids = set(history["record_id"].astype(int))
    assert all(set(e.record_ids) <= ids for e in report.events)
    html = render_html(report)
    assert all(e.kind in html and e.start in html for e in report.events)
