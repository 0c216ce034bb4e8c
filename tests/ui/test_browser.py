"""The app in a real browser: `xvision ui` on a free loopback port, driven by Playwright + chromium.

Uses Debian's chromium (`apt-get install chromium`; `.ci/run` installs it): Playwright cannot
download its own browsers here. Waits on Streamlit's readiness markers (the app container, the
"running" status widget gone, the map's SVG paths inside the component iframe), never on sleeps.
Screenshots of every page go to the test's tmp folder, and to `$XVISION_SCREENSHOTS` when set
(`make screenshots` sets it to docs/screenshots, which the README shows).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from uidata import PARCEL, REPO

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="no /usr/bin/chromium: install it with `apt-get install -y chromium`")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
MAP_FRAME = 'iframe[title="streamlit_folium.st_folium"]'
#: The committed demo generator, as `make demo` serves it (answers then go through the real model).
DEMO_MODEL = REPO / "models" / "tiny-demo"
MODEL = ["--model", str(DEMO_MODEL)] if (DEMO_MODEL / "model_card.json").is_file() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(store: Path, workdir: Path, model: list[str] = MODEL):
    """`xvision ui` serving `store` on a free loopback port; yields its URL once it says it serves."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "xvision.cli", "ui", "--store", str(store), "--port", str(port),
         "--data-dir", str(workdir / "uploads"), *model],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in server.stdout:  # the command prints its URL only after Streamlit's health check passed
            lines.append(line)
            if "serving at" in line:
                break
        else:
            pytest.fail("the app did not start:\n" + "".join(lines))
        yield re.search(r"http://\S+", lines[-1]).group(0).replace("localhost", "127.0.0.1")
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def app_url(flanders_store, tmp_path_factory):
    """`xvision ui` serving a copy of the test store."""
    store = tmp_path_factory.mktemp("browser") / "store"
    # `make screenshots` points this at the demo store (all 72 Flanders dates) for the README.
    shutil.copytree(os.environ.get("XVISION_UI_BROWSER_STORE") or flanders_store, store)
    with serve(store, store.parent) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    out = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("XVISION_SCREENSHOTS"):
        out.append(Path(os.environ["XVISION_SCREENSHOTS"]))
        out[-1].mkdir(parents=True, exist_ok=True)
    return out


def settled(page) -> None:
    """Wait until Streamlit has drawn the app and finished running the script."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_selector('[data-testid="stSidebar"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    for exception in page.locator('[data-testid="stException"]').all():
        pytest.fail("the page shows an exception: " + exception.inner_text())


def screenshot(page, shots: list[Path], name: str, height: int = 1000) -> None:
    """Save the page; Streamlit scrolls inside its own container, so a tall page needs a tall viewport."""
    page.set_viewport_size({"width": 1400, "height": height})
    settled(page)
    for folder in shots:
        page.screenshot(path=str(folder / f"{name}.png"))


def map_frame(page):
    """The map's frame, once Streamlit has dropped the previous run's copy of it."""
    page.wait_for_function(f"() => document.querySelectorAll('{MAP_FRAME}').length === 1")
    return page.frame_locator(MAP_FRAME)


def map_paths(page):
    paths = map_frame(page).locator("path.leaflet-interactive")
    paths.first.wait_for()
    return paths


def test_clicking_a_parcel_on_the_map_shows_its_chart(app_url, page, shots):
    page.goto(app_url)
    settled(page)
    paths = map_paths(page)
    assert paths.count() == 19
    target = paths.nth(0)
    target.hover()
    tooltip = map_frame(page).locator(".leaflet-tooltip")
    tooltip.wait_for()
    parcel = re.search(r"Flanders31UES-\d{3}", tooltip.inner_text()).group(0)
    target.click()
    # The click reruns the page: the parcel's card and its season chart appear beside the map.
    heading = page.get_by_role("heading", name=re.compile(parcel))
    heading.wait_for()
    settled(page)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    assert page.locator('[data-testid="stMetric"]').count() > 0 or page.get_by_text("No usable observation").count()
    map_paths(page)
    screenshot(page, shots, "map")


def test_parcel_page_and_add_data_page_render(app_url, page, shots):
    page.goto(app_url)
    settled(page)
    map_paths(page)
    page.get_by_role("link", name="Parcel").first.click()
    settled(page)
    page.get_by_text("Choose a parcel").first.wait_for()
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=re.compile(PARCEL)).click()
    page.get_by_role("heading", name=re.compile(PARCEL)).wait_for()
    settled(page)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    page.locator('[data-testid="stImage"]').first.wait_for()
    screenshot(page, shots, "parcel", height=2300)
    page.get_by_role("link", name="Add data").first.click()
    settled(page)
    page.get_by_role("heading", name="Add imagery and parcels").wait_for()
    screenshot(page, shots, "add-data", height=800)


def test_question_gets_a_streamed_answer_citing_a_parcel(app_url, page, shots, flanders_store):
    import assistant

    if not hasattr(assistant, "Assistant"):
        pytest.skip("assistant.Assistant (issue 12) has not landed on this branch yet")
    page.goto(app_url + "/ask")
    settled(page)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(f"How is parcel {PARCEL} doing on 2019-05-16?")
    box.press("Enter")
    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    # The streamed text, then (once the stream ended) the table of the records it cites.
    answer.get_by_text(re.compile(f"{PARCEL} on 2019-05-16")).first.wait_for()
    answer.locator('[data-testid="stDataFrame"]').first.wait_for()
    settled(page)
    text = answer.inner_text()
    if not os.environ.get("XVISION_UI_BROWSER_STORE"):  # the app serves a copy of flanders_store
        from indexer.store import Store

        ndvi = Store.open(flanders_store).record(PARCEL, "2019-05-16")["ndvi_mean"]
        assert f"NDVI {ndvi:.2f}" in text, "the answer states the record's own NDVI"
    assert re.search(r"NDVI 0\.\d{2}", text)
    screenshot(page, shots, "ask")


# -- the whole Flanders archive ----------------------------------------------------------------------

#: Dates of the real archive and what they are (checked against the store in the test).
FULLY_CLOUDED = "2019-11-27"  # also the newest acquisition
SNOWY = "2018-11-12"
CLOUDED_PARCEL = "Flanders31UES-003"


@pytest.fixture(scope="module")
def archive_url(flanders_archive, tmp_path_factory):
    """`xvision ui` serving a copy of the 72-date Flanders archive, without a generator (the
    answers of these tests need none)."""
    store = tmp_path_factory.mktemp("archive") / "store"
    shutil.copytree(flanders_archive, store)
    with serve(store, store.parent, model=[]) as url:
        yield url


def no_exception_anywhere(page) -> None:
    settled(page)
    text = page.locator('[data-testid="stApp"]').inner_text()
    assert "Traceback" not in text and "Error:" not in text, text[:2000]


def every_page(page, url: str, date: str, parcel: str, shots=None, name: str | None = None) -> None:
    """The map, Parcel, Ask and Add data pages with `parcel` selected on `date`, which must be an
    unusable observation of it: no exception, no value, the reason said."""
    page.goto(f"{url}/?date={date}&parcel={parcel}")
    no_exception_anywhere(page)
    assert map_paths(page).count() == 19
    page.get_by_role("heading", name=re.compile(parcel)).first.wait_for()
    page.get_by_text(f"No usable observation of this parcel on {date}").first.wait_for()
    assert page.locator('[data-testid="stMetric"]').count() == 0, "no value shown for an unusable date"
    if name:
        screenshot(page, shots, name)
    for link, marker in (("Parcel", "Compared with past seasons"), ("Ask", "Ask about your parcels"),
                         ("Add data", "Add imagery and parcels")):
        page.get_by_role("link", name=link).first.click()
        page.get_by_text(marker).first.wait_for()
        no_exception_anywhere(page)
        if link == "Parcel":
            page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
            page.get_by_text("Parcels that looked like this").wait_for()
            assert page.locator('[data-testid="stMetric"]').count() == 0


def test_every_page_on_the_newest_fully_clouded_and_the_snowy_date(archive_url, page, shots, flanders_archive):
    from ui.data import open_view

    view = open_view(flanders_archive)
    assert view.dates[-1] == FULLY_CLOUDED and view.quality("all parcels", FULLY_CLOUDED)["unusable_share"] == 1
    for date in (FULLY_CLOUDED, SNOWY):
        assert not view.record(CLOUDED_PARCEL, date)["usable"]
        every_page(page, archive_url, date, CLOUDED_PARCEL, shots, "map-clouded" if date == FULLY_CLOUDED else None)


def test_every_page_on_a_suspect_date(hazy_store, tmp_path, page):
    from conftest import HAZY_DATE

    from ui.data import open_view

    assert open_view(hazy_store).quality("all parcels", HAZY_DATE)["suspect"]
    with serve(hazy_store, tmp_path, model=[]) as url:
        every_page(page, url, HAZY_DATE, PARCEL)
        page.get_by_role("link", name="Map").first.click()
        page.get_by_text("flagged suspect").first.wait_for()


def test_a_new_visit_opens_on_a_usable_date(archive_url, page, flanders_archive):
    from ui.data import open_view

    opening = open_view(flanders_archive).opening_date("all parcels")
    page.goto(archive_url)
    no_exception_anywhere(page)
    slider = page.locator('[data-testid="stSlider"]').first
    assert opening in slider.inner_text()
    grey = [p for p in map_paths(page).all() if p.get_attribute("fill") == "#9e9e9e"]
    assert len(grey) < 19 / 2, "most parcels are coloured on the opening date"


def test_a_group_question_with_a_parcel_selected_answers_the_group(archive_url, page):
    page.goto(f"{archive_url}/ask?parcel={PARCEL}")
    no_exception_anywhere(page)
    page.get_by_text(re.compile("about the selected parcel")).first.wait_for()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Which parcels had NDVI below 0.3 in July 2019?")
    box.press("Enter")
    question = page.locator('[data-testid="stChatMessage"]').nth(0)
    question.get_by_text("About: all parcels").wait_for()
    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    answer.locator('[data-testid="stDataFrame"]').first.wait_for()
    no_exception_anywhere(page)
    assert "1 of 1 parcels" not in answer.inner_text()
    assert PARCEL not in question.inner_text()


def test_status_colourings_render_with_their_legends(archive_url, page, shots):
    page.goto(f"{archive_url}/?date=2019-10-13&parcel={PARCEL}")
    no_exception_anywhere(page)
    for option, words in (("Difference from its own other seasons", "closest in day of year"),
                          ("Difference from parcels of the same crop", "same crop")):
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Colour by").click()
        page.keyboard.type(option)
        page.keyboard.press("Enter")
        page.locator('[data-testid="stCaptionContainer"]', has_text=words).first.wait_for()
        no_exception_anywhere(page)
        frame = map_frame(page)
        frame.locator("svg.xv-colourbar").wait_for()
        assert "Δ" in frame.locator(".xv-legend").inner_text()
        coloured = [p.get_attribute("fill") for p in map_paths(page).all()]
        assert len(set(coloured) - {"#9e9e9e"}) > 3, "a diverging colour per parcel"
        screenshot(page, shots, "map-" + option.split()[-1].strip("()"))


# -- the field report and the records CSV, downloaded as a user would -----------------------------------

#: A clear October date of the test store: the season 2019 the Parcel page offers the report of.
REPORT_DATE = "2019-10-13"


def download(page, label: str, folder: Path) -> Path:
    """Click the download button `label` and return the file the browser saved (its own name)."""
    with page.expect_download(timeout=120_000) as info:  # the report is built on the click
        page.get_by_role("button", name=label).click()
    saved = folder / info.value.suggested_filename
    info.value.save_as(saved)
    assert info.value.failure() is None
    return saved


def test_the_parcel_pages_report_and_csv_download_with_the_parcels_numbers(app_url, page, flanders_store, tmp_path):
    import csv
    import html as html_lib

    from indexer.store import Store

    if os.environ.get("XVISION_UI_BROWSER_STORE"):
        pytest.skip("checks the numbers of the test store the app serves a copy of")
    history = Store.open(flanders_store).history(PARCEL).sort_values("date")
    chosen = history[history["date"] == REPORT_DATE].iloc[0]
    assert bool(chosen["valid"]), "the test's date is a usable observation"
    page.goto(f"{app_url}/parcel?date={REPORT_DATE}&parcel={PARCEL}")
    settled(page)
    page.get_by_role("heading", name="Take it away").wait_for()

    report = download(page, "Field report 2019 (HTML)", tmp_path)
    assert report.name == f"{PARCEL}-2019-report.html"
    text = report.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html")
    assert PARCEL in text and "season 2019" in text
    # The last usable observations table: the chosen date's row holds the store's NDVI (the first
    # index column) and, in the analysis row under it, the record it came from.
    row = re.search(rf"<tr><td>{REPORT_DATE}</td>(.*?)</tr>\s*<tr><td[^>]*class=\"analysis\">(.*?)</td></tr>",
                    text, re.S)
    assert row, f"{REPORT_DATE} is among the report's last usable observations"
    cells = re.findall(r'<td class="n">([^<]*)</td>', row.group(1))
    assert cells[0] == f"{chosen['ndvi_mean']:.2f}", "the report's NDVI is the store's"
    assert f"record {int(chosen['record_id'])}" in row.group(2)
    assert html_lib.escape(str(chosen["analysis"]), quote=False)[:40] in row.group(2)

    table = download(page, "Records (CSV)", tmp_path)
    assert table.name == f"{PARCEL}-2019-records.csv"
    rows = list(csv.DictReader(table.open(encoding="utf-8", newline="")))
    assert [r["date"] for r in rows] == list(history["date"]), "every record of the parcel, oldest first"
    on_date = next(r for r in rows if r["date"] == REPORT_DATE)
    assert int(on_date["record_id"]) == int(chosen["record_id"]) and on_date["parcel_id"] == PARCEL
    for index in ("ndvi", "ndmi", "evi"):
        assert float(on_date[f"{index}_mean"]) == pytest.approx(float(chosen[f"{index}_mean"]), abs=1e-6)
    unusable = history[~history["valid"].astype(bool)]
    if len(unusable):  # a clouded date is listed with its status, not as a crop value
        clouded = next(r for r in rows if r["date"] == unusable.iloc[0]["date"])
        assert clouded["status"] != "usable"
