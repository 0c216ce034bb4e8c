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


def test_a_suspect_acquisition_is_marked_and_not_read_as_the_crop(hazy_store, monkeypatch):
    """A haze the cloud mask missed: every parcel's NDVI drops on one date and comes back five and
    ten days later (the library's suspect rule), although the scene classification passed it."""
    from conftest import HAZY_DATE

    monkeypatch.setenv("XVISION_UI_STORE", str(hazy_store))
    at, _ = _app(monkeypatch)
    at.session_state["xv_parcel"] = PARCEL
    at.session_state["xv_date"] = HAZY_DATE
    at.run()
    assert not at.exception
    assert any(o.startswith(HAZY_DATE) and "⚠" in o for o in at.select_slider[0].options)
    warnings = shown(" ".join(w.value for w in at.warning))
    assert "suspect" in warnings and "No usable observation" in warnings
    assert not at.metric
    at.switch_page("views/parcel.py").run()
    assert not at.exception
    assert not at.metric and "No usable observation" in shown(" ".join(w.value for w in at.warning))


# -- the whole Flanders archive ----------------------------------------------------------------------

NEVER_USABLE = "Flanders31UES-017"  # 10 pixels: too small for a reliable value on every date


def test_a_new_session_opens_on_the_newest_date_most_parcels_are_usable(flanders_archive, monkeypatch):
    monkeypatch.setenv("XVISION_UI_STORE", str(flanders_archive))
    view = ui.data.open_view(flanders_archive)
    newest = view.dates[-1]
    assert view.quality("all parcels", newest)["unusable_share"] == 1.0, "2019-11-27 is fully clouded"
    at, fake = _app(monkeypatch)
    at.run()
    assert not at.exception
    opened = at.select_slider[0].value
    quality = view.quality("all parcels", opened)
    assert 1 - quality["unusable_share"] >= 0.5
    later = [d for d in view.dates if d > opened]
    assert later and all(view.quality("all parcels", d)["unusable_share"] > 0.5 for d in later)
    assert not at.warning, "the opening date needs no cloud warning"


def test_every_page_on_every_date_of_the_archive(flanders_archive, monkeypatch):
    """Clear, partly and fully clouded, suspect and snowy dates; a usable parcel and one never usable;
    each colouring; the map and the parcel page, with no exception and no value on unusable dates."""
    monkeypatch.setenv("XVISION_UI_STORE", str(flanders_archive))
    view = ui.data.open_view(flanders_archive)
    assert not view.history(NEVER_USABLE)["usable"].any()
    at, fake = _app(monkeypatch)
    at.run()
    kinds = list(ui.mapview.COLOURINGS)
    for page in ("views/map.py", "views/parcel.py"):
        at.switch_page(page)
        for i, date in enumerate(view.dates):
            parcel = (PARCEL, NEVER_USABLE)[i % 2]
            at.session_state["xv_parcel"] = parcel
            at.session_state["xv_date"] = date
            at.session_state["xv_colouring"] = kinds[i % len(kinds)]
            at.run()
            assert not at.exception, (page, date, parcel, at.exception)
            assert at.session_state["xv_date"] == date
            usable = bool(view.record(parcel, date)["usable"])
            assert bool(at.metric) == usable, (page, date, parcel)
            if not usable:
                assert any("No usable observation" in shown(w.value) for w in at.warning), (page, date)
            if date == "2018-11-12" and parcel == PARCEL:  # snow over Flanders: said so, not read as the crop
                assert any("snow" in shown(c.value) for c in at.caption), (page, date)
            if page == "views/parcel.py" and parcel == NEVER_USABLE:
                # Why, in the rule's words: on clear dates it is too small, not clouded.
                assert any("has no usable observation in the store" in shown(w.value)
                           and "too small for a reliable value" in shown(w.value) for w in at.warning), date


def test_status_colourings_on_every_date_agree_with_the_library(flanders_archive):
    """Grey exactly where the record is not usable; the own-seasons difference is the library's
    closest-day-of-year delta; the same-crop difference is against the other usable parcels of the crop."""
    from indexer.seasons import compare_past_seasons

    view = ui.data.open_view(flanders_archive)
    compared = 0
    for date in view.dates:
        on_date = view.on_date(date)
        for kind in ui.mapview.COLOURINGS:
            colouring = view.colouring(kind, date, "ndvi", "all parcels")
            shaded = colouring.values.dropna().index
            assert set(shaded) <= set(on_date.index[on_date["usable"]]), (date, kind)
            collection = ui.mapview.features(view, date, "ndvi", "all parcels", None, [], colouring)
            grey = {f["properties"]["key"] for f in collection["features"]
                    if f["properties"]["style"]["fillColor"] == ui.mapview.UNUSABLE_FILL}
            assert grey == set(on_date.index) - set(shaded), (date, kind)
        seasons = view.colouring("seasons", date, "ndvi", "all parcels")
        for pid, delta in seasons.values.dropna().items():
            library = compare_past_seasons(view.history(pid), date, "ndvi_mean").pairs[0]
            assert delta == pytest.approx(library.delta)
            assert library.past_date in seasons.reference[pid]
            compared += 1
        crop = view.colouring("crop", date, "ndvi", "all parcels")
        for pid, delta in crop.values.dropna().items():
            peers = on_date[on_date["usable"] & (on_date.index != pid)
                            & (on_date.index.map(view.label) == view.label(pid))]["ndvi_mean"]
            assert delta == pytest.approx(on_date.loc[pid, "ndvi_mean"] - peers.median())
    assert compared > 100, "most usable observations of the second season have a past-season pair"


def test_colourings_draw_a_colour_bar_and_a_legend_naming_the_reference(app_env, monkeypatch):
    at, fake = _app(monkeypatch)
    at.session_state["xv_date"] = "2019-10-13"
    at.run()
    # Chosen one after the other with the widget: each choice holds (a widget keyed by its own
    # value would lose the second one).
    for kind, words in (("seasons", "closest in day of year"), ("crop", "same crop"),
                        ("value", "NDVI mean on 2019-10-13")):
        next(s for s in at.selectbox if s.label == "Colour by").select(kind).run()
        assert not at.exception
        assert at.session_state["xv_colouring"] == kind
        html = fake.calls[-1]["map"].get_root().render()
        assert "xv-colourbar" in html and "xv-label" in html
        assert any(words in shown(c.value) for c in at.caption), kind
    # The own-seasons colouring on 2019-10-13: parcel 001 against its 2018-10-13 observation.
    collection = ui.mapview.features(ui.data.open_view(app_env), "2019-10-13", "ndvi", "all parcels", None, [],
                                     ui.data.open_view(app_env).colouring("seasons", "2019-10-13", "ndvi",
                                                                          "all parcels"))
    first = next(f["properties"] for f in collection["features"] if f["properties"]["key"] == PARCEL)
    assert "2018-10-13" in first["reference"] and float(first["delta"]) > 0.3


# -- the subject of a question ---------------------------------------------------------------------

@pytest.mark.parametrize("question, named", [
    ("Which parcels had NDVI below 0.3 in July 2019?", True),
    ("Comment vont les parcelles de maïs en août 2019 ?", True),
    ("How is Flanders31UES-010 doing?", True),
    ("How are all the parcels doing in May 2019?", True),
    ("How is it doing in May 2019?", False),
    ("What was the NDVI in October 2019?", False),
])
def test_the_selected_parcel_is_the_subject_only_when_the_question_names_none(app_env, question, named):
    from ui import state

    view = ui.data.open_view(app_env)
    subject = state.subject_of(view.parse(question), PARCEL)
    assert subject.selected is not named, (question, subject)
    assert (PARCEL in subject.text) is not named or "Flanders31UES-010" in subject.text
    if "maïs" in question:
        assert "Maize" in subject.text


def test_a_group_question_with_a_parcel_selected_is_answered_for_the_group(app_env, monkeypatch):
    at, _ = _app(monkeypatch)
    at.session_state["xv_parcel"] = PARCEL
    at.run()
    at.switch_page("views/chat.py").run()
    assert not at.exception
    at.chat_input[0].set_value("Which parcels had NDVI below 0.3 in July 2019?").run()
    assert not at.exception
    asked = at.session_state["xv_messages"][0]
    assert asked["content"] == "Which parcels had NDVI below 0.3 in July 2019?"
    assert PARCEL not in asked["subject"]
    assert any("About: " in shown(c.value) and "all parcels" in shown(c.value) for c in at.caption)
    answer = at.session_state["xv_messages"][1]["answer"]
    cited = {c["parcel_id"] for c in answer["citations"]}
    assert len(cited) > 1 or PARCEL not in cited, "the group is answered, not the selected parcel"
    # The same page, a question naming nothing: about the selected parcel, and it says so.
    at.chat_input[0].set_value("How is it doing in May 2019?").run()
    assert not at.exception
    assert PARCEL in at.session_state["xv_messages"][2]["subject"]
    assert {c["parcel_id"] for c in at.session_state["xv_messages"][3]["answer"]["citations"]} == {PARCEL}


# -- one truth: the map and the assistant ----------------------------------------------------------

def test_the_map_and_the_assistant_agree_on_suspect_dates_and_past_season_deltas(hazy_store, flanders_store):
    """The same library rules behind both: the map flags exactly the dates the assistant calls
    suspect, and its own-seasons colouring holds the difference the assistant states."""
    from assistant import Assistant
    from conftest import HAZY_DATE

    view = ui.data.open_view(hazy_store)
    assistant = Assistant.open(hazy_store)
    flagged = {d for d in view.dates if view.quality("all parcels", d)["suspect"]}
    assert flagged == {HAZY_DATE}
    for date in view.dates:
        answer = assistant.ask(f"How is {PARCEL} doing on {date}?")["answer"]
        assert ("suspect" in answer) == (date in flagged), (date, answer)

    view = ui.data.open_view(flanders_store)
    seasons = view.colouring("seasons", "2019-10-13", "ndvi", "all parcels")
    delta, reference = seasons.values[PARCEL], seasons.reference[PARCEL]
    answer = Assistant.open(flanders_store).ask(
        f"How does {PARCEL} on 2019-10-13 compare with the same time last year?")["answer"]
    past = re.search(r"\d{4}-\d{2}-\d{2}", reference).group(0)
    stated = [float(x) for x in re.findall(r"(?<![\w.])[+-]\d+\.\d+", answer)]
    assert past in answer and stated, (reference, answer)
    # The answer states the difference to two decimals, possibly of its two rounded values
    # (0.80 - 0.29 = +0.51 for an exact +0.504): the same pair and the same difference within that.
    assert any(abs(x - delta) <= 0.0105 for x in stated), (delta, answer)


def test_a_link_opens_a_session_on_its_date_and_parcel_once(app_env, monkeypatch):
    at, _ = _app(monkeypatch)
    at.query_params["date"] = "2019-05-16"
    at.query_params["parcel"] = PARCEL
    at.run()
    assert not at.exception
    assert at.select_slider[0].value == "2019-05-16" and at.session_state["xv_parcel"] == PARCEL
    at.select_slider[0].set_value("2019-10-13").run()  # the link does not pin the view afterwards
    assert at.session_state["xv_date"] == "2019-10-13"
    at2, _ = _app(monkeypatch)
    at2.query_params["date"] = "1999-01-01"  # not in the store: ignored
    at2.query_params["parcel"] = "<script>"
    at2.run()
    assert not at2.exception and at2.session_state["xv_parcel"] is None


# -- a long conversation -----------------------------------------------------------------------------

def _conversation(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out += [{"role": "user", "content": f"Question number {i}", "subject": "all parcels"},
                {"role": "assistant", "content": f"Answer number {i}",
                 "answer": {"answer": f"Answer number {i}", "citations": [], "warnings": [], "similar": []}}]
    return out


def test_recent_messages_keep_the_last_questions_with_their_answers():
    from ui.state import recent_messages

    messages = _conversation(10)
    shown, earlier = recent_messages(messages, 8)
    assert earlier == 2 and shown == messages[4:]
    assert shown[0]["content"] == "Question number 2" and shown[-1]["content"] == "Answer number 9"
    assert recent_messages(messages, 8, show_all=True) == (messages, 0)
    assert recent_messages(messages[:16], 8) == (messages[:16], 0)
    # A question whose answer failed (no assistant message) still counts as one question.
    broken = messages[:2] + [{"role": "user", "content": "Question unanswered"}] + messages[2:6]
    assert recent_messages(broken, 3) == (broken[2:], 1)
    with pytest.raises(ValueError):
        recent_messages(messages, 0)


def test_a_long_conversation_draws_its_last_questions_and_the_earlier_ones_on_demand(app_env, monkeypatch):
    from ui.state import SHOWN_EXCHANGES

    at, _ = _app(monkeypatch)
    at.run()
    at.switch_page("views/chat.py").run()
    at.session_state["xv_messages"] = _conversation(SHOWN_EXCHANGES + 3)
    at.run()
    assert not at.exception

    def drawn() -> list[str]:
        return [shown(m.value) for m in at.markdown if "number" in m.value]

    assert drawn()[0] == "Question number 3" and drawn()[-1] == f"Answer number {SHOWN_EXCHANGES + 2}"
    assert len(drawn()) == 2 * SHOWN_EXCHANGES
    toggle = at.toggle(key="xv_chat_show_earlier")
    assert "3 earlier questions" in toggle.label
    toggle.set_value(True).run()
    assert not at.exception
    assert drawn()[0] == "Question number 0" and len(drawn()) == 2 * (SHOWN_EXCHANGES + 3)
