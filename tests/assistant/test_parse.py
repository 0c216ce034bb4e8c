"""The question parser against a table of EN/FR phrasings (tests/assistant/phrasings.py) on the real
Flanders parcels, a southern-hemisphere context for seasons, and fuzzing: it never raises."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from assistant.parsing import StoreContext, parse
from assistant.plan import DateWindow, QueryPlan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phrasings import PHRASINGS  # noqa: E402

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def flanders(shared_data) -> StoreContext:
    """The 19 LPIS parcels (crops as attr_* columns, as the store keeps them) and the 72 dates."""
    import geopandas as gpd
    import pandas as pd

    folder = shared_data / "worldcereal-flanders"
    if not (folder / "parcels_Flanders31UES.gpkg").is_file():
        pytest.skip(f"Flanders sample not present in {folder}")
    parcels = gpd.read_file(folder / "parcels_Flanders31UES.gpkg")
    parcels = parcels.rename(columns={c: f"attr_{c}" for c in parcels.columns if c not in ("parcel_id", "geometry")})
    dates = pd.read_csv(folder / "acquisitions.csv")["date"]
    return StoreContext.from_parcels(parcels, dates)


def test_the_context_holds_the_sample(flanders):
    assert len(flanders.parcel_ids) == 19 and flanders.parcel_ids[0] == "Flanders31UES-001"
    assert "Maize" in flanders.attributes["attr_crop_name"]
    assert len(flanders.dates) == 72 and flanders.newest_date == D("2019-11-27")
    assert 50.7 < flanders.latitude() < 50.8


def test_the_table_is_large_and_bilingual():
    langs = [row["lang"] for row in PHRASINGS]
    assert len(PHRASINGS) >= 80
    assert langs.count("en") >= 35 and langs.count("fr") >= 35
    assert len({row["q"] for row in PHRASINGS}) == len(PHRASINGS)
    assert {row["intent"] for row in PHRASINGS} == {"describe", "history", "compare", "similar", "rank", "unknown"}


def _pid(n: int) -> str:
    return f"Flanders31UES-{n:03d}"


def _span(w: DateWindow | None):
    return None if w is None else (w.start.isoformat(), w.end.isoformat())


@pytest.mark.parametrize("row", PHRASINGS, ids=[r["q"][:60] or "<empty>" for r in PHRASINGS])
def test_phrasing(row, flanders):
    today = D(row["today"]) if "today" in row else None
    plan = parse(row["q"], flanders, today=today)
    got = {
        "lang": plan.lang, "intent": plan.intent,
        "parcels": list(plan.places.parcel_ids),
        "attrs": {k: list(v) for k, v in plan.places.attributes.items()},
        "window": _span(plan.window),
        "compare": [_span(w) for w in plan.compare_windows],
        "index": plan.index,
        "cond": None if plan.condition is None else (plan.condition.index, plan.condition.op, plan.condition.value),
        "cls": None if plan.class_condition is None else (plan.class_condition.aspect, plan.class_condition.label),
    }
    want = {
        "lang": row["lang"], "intent": row["intent"],
        "parcels": [_pid(n) for n in row.get("parcels", [])],
        "attrs": row.get("attrs", {}),
        "window": tuple(row["window"]) if "window" in row else None,
        "compare": [tuple(c) for c in row.get("compare", [])],
        "index": row.get("index"), "cond": row.get("cond"), "cls": row.get("cls"),
    }
    assert got == want, plan.notes
    if "k" in row:
        assert plan.k == row["k"]
    if "unresolved" in row:
        assert list(plan.places.unresolved) == row["unresolved"]
    if "all" in row:
        assert plan.places.all_parcels is row["all"]
    if "radius" in row:
        assert plan.places.radius_m == pytest.approx(row["radius"])
    if "point" in row:
        assert plan.places.point == pytest.approx(row["point"], abs=1e-4)
    if "bbox" in row:
        assert plan.places.bbox == pytest.approx(row["bbox"])
    if "order" in row:
        assert plan.order == row["order"]
    if "note" in row:
        assert any(row["note"] in n for n in plan.notes), plan.notes
    assert plan.reference_date == (today or D("2019-11-27"))
    assert not any("internal parser error" in n for n in plan.notes)
    json.dumps(plan.to_dict())


def test_the_rule_is_recorded_in_the_plan(flanders):
    plan = parse("parcel 5 last month", flanders, today=D("2018-07-15"))
    assert "last month = June 2018, the calendar month before the reference date 2018-07-15" in plan.date_rule
    assert "reference date 2018-07-15 (given as today)" in plan.date_rule
    plan = parse("la parcelle 5 le mois dernier", flanders)
    assert "le mois dernier = octobre 2019" in plan.date_rule
    assert "l'acquisition la plus récente" in plan.date_rule
    plan = parse("What is the capital of France?", flanders)
    assert plan.date_rule == "reference date 2019-11-27 (the newest acquisition in the store)"


def test_lang_override_and_detection(flanders):
    assert parse("la parcelle 3 en juin 2019", flanders).lang == "fr"
    plan = parse("la parcelle 3 en juin 2019", flanders, lang="en")
    assert plan.lang == "en" and plan.window.label == "June 2019"
    assert parse("la parcelle 3 en juin 2019", flanders).window.label == "juin 2019"


def test_ambiguous_prefixless_ids_stay_unresolved():
    ctx = StoreContext(parcel_ids=("A-12", "B-12", "B-7"))
    plan = parse("parcel 12 in June 2019", ctx)
    assert plan.places.parcel_ids == () and plan.places.unresolved == ("parcel 12",)
    assert any("ambiguous" in n and "A-12" in n and "B-12" in n for n in plan.notes)
    assert parse("parcel 7 in June 2019", ctx).places.parcel_ids == ("B-7",)
    assert parse("parcel b-12 in June 2019", ctx).places.parcel_ids == ("B-12",)


def test_french_stored_values_answer_english_words():
    ctx = StoreContext(parcel_ids=("p1", "p2", "p3"),
                       attributes={"attr_culture": ("Betterave sucrière", "Blé d'hiver", "Maïs")})
    assert parse("the sugar beet fields", ctx).places.attributes == {"attr_culture": ("Betterave sucrière",)}
    assert parse("winter wheat in June 2019", ctx).places.attributes == {"attr_culture": ("Blé d'hiver",)}
    assert parse("which maize fields were dry", ctx).places.attributes == {"attr_culture": ("Maïs",)}
    assert parse("les parcelles de MAIS", ctx).places.attributes == {"attr_culture": ("Maïs",)}


# ----------------------------------------------------------------------------- hemisphere
@pytest.fixture(scope="module")
def southern() -> StoreContext:
    """Two parcels near Pergamino, Argentina (34 S), and one in Flanders, for the hemisphere rule."""
    geoms = {"ar-1": box(-60.60, -33.90, -60.59, -33.89), "ar-2": box(-60.58, -33.90, -60.57, -33.89)}
    return StoreContext(
        parcel_ids=("ar-1", "ar-2"),
        dates=(D("2021-01-15"), D("2021-07-10")),
        points={k: (g.centroid.x, g.centroid.y) for k, g in geoms.items()},
        geometries=geoms,
    )


@pytest.mark.parametrize("question, start, end", [
    ("parcel ar-1 in summer 2021", "2020-12-01", "2021-02-28"),
    ("parcel ar-1 in winter 2021", "2021-06-01", "2021-08-31"),
    ("parcel ar-2 in spring 2020", "2020-09-01", "2020-11-30"),
    ("la parcelle ar-2 à l'automne 2021", "2021-03-01", "2021-05-31"),
    ("parcel ar-1 last summer", "2020-12-01", "2021-02-28"),   # ref 2021-07-10 = newest date
    ("parcel ar-1 this season", "2021-06-01", "2021-07-10"),
])
def test_seasons_follow_the_southern_hemisphere(southern, question, start, end):
    plan = parse(question, southern)
    assert _span(plan.window) == (start, end)
    assert "south" in plan.date_rule or "sud" in plan.date_rule


def test_a_point_in_the_south_resolves_to_its_parcel(southern):
    plan = parse("What is at 33°53'42\"S 60°35'42\"W in summer 2021?", southern)
    assert plan.places.parcel_ids == ("ar-1",)
    assert _span(plan.window) == ("2020-12-01", "2021-02-28")


def test_the_same_words_in_the_north(flanders):
    assert _span(parse("parcel 1 in summer 2019", flanders).window) == ("2019-06-01", "2019-08-31")
    assert "northern hemisphere" in parse("parcel 1 in summer 2019", flanders).date_rule


def test_reference_date_without_store_dates_is_the_clock():
    plan = parse("parcel 1 last month", StoreContext(parcel_ids=("1",)))
    assert plan.reference_date == dt.date.today()
    assert "system date" in plan.date_rule


# ----------------------------------------------------------------------------- store adapter
def test_context_from_a_real_store(farm_store):
    from indexer.store import Store

    store = Store.open(farm_store)
    ctx = StoreContext.from_store(store)
    records = store.records() if callable(store.records) else store.records
    assert set(ctx.parcel_ids) == set(records["parcel_id"].astype(str))
    assert [d.isoformat() for d in ctx.dates] == sorted(set(records["date"].astype(str).str[:10]))
    assert set(ctx.points) == set(ctx.parcel_ids)
    plan = parse("parcel 01 last month", ctx)
    assert plan.places.parcel_ids in ((), (sorted(ctx.parcel_ids)[0],))
    assert plan.reference_date == ctx.newest_date


# ----------------------------------------------------------------------------- fuzzing
_words = st.sampled_from(
    "parcel parcelle field 12 001 Flanders31UES-004 maize maïs blé d'hiver between and entre et from to "
    "June juin 2019 2018 last dernier summer été winter hiver since depuis vs compared par rapport à "
    "l'automne dernier NDVI below 0.3 au-dessus 0,5 top 5 similar semblables which quelles within 2 km "
    "50.746 4.063 50°44'46\"N 4°03'47\"E bbox 4.05,50.74,4.07,50.75 ago il y a deux weeks mois "
    "water-stressed sèches ? , . - / : ( ) # ° ' \" 31/02/2019 2019-13-45 99999999999 -1e308 nan".split(" "))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(_words, max_size=25).map(" ".join)))
def test_parse_never_raises(flanders, text):
    plan = parse(text, flanders)
    assert isinstance(plan, QueryPlan)
    assert not any("internal parser error" in n for n in plan.notes), plan.notes
    json.dumps(plan.to_dict())


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100), st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_parse_never_raises_with_any_today_and_no_store(text, today):
    plan = parse(text, StoreContext(), today=today)
    assert plan.reference_date == today
    assert not any("internal parser error" in n for n in plan.notes), plan.notes
    json.dumps(plan.to_dict())


# ----------------------------------------------------------------------------- grammar properties
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")
_FR_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
              "octobre", "novembre", "décembre")
_days = st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2099, 12, 31))


@settings(max_examples=150, deadline=None)
@given(_days, st.integers(0, 4))
def test_any_exact_date_in_any_common_format_is_that_day(flanders, day, style):
    text = [day.isoformat(), f"{day.day:02d}/{day.month:02d}/{day.year}", f"{day.day} {_EN_MONTHS[day.month - 1]} {day.year}",
            f"{_EN_MONTHS[day.month - 1]} {day.day}, {day.year}", f"le {day.day} {_FR_MONTHS[day.month - 1]} {day.year}"][style]
    plan = parse(f"parcel 7 on {text}", flanders)
    assert _span(plan.window) == (day.isoformat(), day.isoformat())
    assert plan.places.parcel_ids == ("Flanders31UES-007",)


@settings(max_examples=100, deadline=None)
@given(st.integers(1950, 2099), st.integers(1, 12), st.booleans())
def test_any_month_with_a_year_is_the_whole_month(flanders, year, month, french):
    name = (_FR_MONTHS if french else _EN_MONTHS)[month - 1]
    plan = parse(f"{'la parcelle 3 en' if french else 'parcel 3 in'} {name} {year}", flanders)
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).isoformat()
    assert _span(plan.window) == (f"{year}-{month:02d}-01", last)
    assert plan.lang == ("fr" if french else "en")


@settings(max_examples=100, deadline=None)
@given(st.integers(1951, 2099), st.sampled_from([("spring", 3), ("summer", 6), ("autumn", 9), ("winter", 12)]))
def test_any_northern_season_with_a_year(flanders, year, season):
    name, first = season
    plan = parse(f"parcel 3 in {name} {year}", flanders)
    start = dt.date(year - 1 if first == 12 else year, first, 1)
    assert plan.window.start == start
    assert (plan.window.end.month, plan.window.end.year) == ((2, year) if first == 12 else (first + 2, year))


@settings(max_examples=100, deadline=None)
@given(_days)
def test_last_month_is_the_calendar_month_before_today(flanders, today):
    plan = parse("parcel 1 last month", flanders, today=today)
    first_of_this = today.replace(day=1)
    assert plan.window.end == first_of_this - dt.timedelta(days=1)
    assert plan.window.start == plan.window.end.replace(day=1)
    assert plan.window.end < today


def test_an_iso_date_after_a_parcel_number_is_a_date_not_a_parcel(flanders):
    plan = parse("state of plot 8, 2019-06-20", flanders)
    assert plan.places.parcel_ids == ("Flanders31UES-008",)
    assert plan.window is not None and plan.window.start == D("2019-06-20") == plan.window.end


@pytest.mark.parametrize("question", ["Which fields looked like it in May?", "Which fields look like this one?"])
def test_fields_that_look_like_it_are_a_similarity_question_about_the_parcel_in_context(flanders, question):
    plan = parse(question, flanders)
    assert plan.intent == "similar" and not plan.places.parcel_ids
    # The app names its selected parcel for "it"; the question then has its reference.
    plan = parse(f"{question} (parcel Flanders31UES-001)", flanders)
    assert plan.intent == "similar" and plan.places.parcel_ids == ("Flanders31UES-001",)
