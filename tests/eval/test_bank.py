"""The evaluation bank: its facts from rasters (numpy over SCL-clear pixels), its checker, its questions.

The facts are tested on a small generated raster whose every pixel is known, and on the real
Flanders sample against the figures its README states; the checker on answers written by hand
(right ones, and the wrong kinds the issue lists: another question answered, a refusal that cites).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from eval.bank import check
from eval.bank.check import Expect, find_dates, find_months, find_numbers, find_parcels, score
from eval.bank.questions import KINDS, build_bank, harvest
from eval.bank.truth import Facts, read_facts

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"]
KNOWN = {f"Flanders31UES-{i:03d}" for i in range(1, 20)}


# -- facts on a generated raster ------------------------------------------------------------------
def _write_scene(folder: Path, date: str, red: np.ndarray, nir: np.ndarray, scl: np.ndarray) -> None:
    h, w = scl.shape
    data = np.full((len(BANDS), h, w), 800, dtype=np.uint16)
    data[BANDS.index("B04")] = red
    data[BANDS.index("B08")] = nir
    data[BANDS.index("SCL")] = scl
    with rasterio.open(folder / f"S2_L2A_TEST_{date}.tif", "w", driver="GTiff", height=h, width=w, count=len(BANDS),
                       dtype="uint16", crs="EPSG:32631", transform=from_origin(500000, 5600100, 10, 10), nodata=0) as dst:
        dst.write(data)
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(ACQUISITION_DATETIME=f"{date}T10:50:00Z")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Facts:
    """Two parcels on a 10 x 10 raster, two dates with known classes and reflectances."""
    folder = tmp_path_factory.mktemp("bank-scene")
    # parcel A: the left 5 columns (50 pixels); parcel B: a 2 x 2 sliver at the right bottom
    parcels = gpd.GeoDataFrame({"parcel_id": ["A", "B"], "crop_name": ["Maize", "Maize"]},
                               geometry=[box(500000, 5600000, 500050, 5600100), box(500080, 5600000, 500100, 5600020)],
                               crs="EPSG:32631")
    parcels.to_file(folder / "parcels_test.gpkg", driver="GPKG")
    red = np.full((10, 10), 500, dtype=np.uint16)
    nir = np.full((10, 10), 4500, dtype=np.uint16)  # NDVI 0.8 on vegetation pixels
    scl = np.full((10, 10), 4, dtype=np.uint16)
    scl[0:2, 0:5] = 5  # bare soil rows in A: NDVI 0.0 there (red = nir)
    red2 = red.copy()
    red2[0:2, 0:5] = 4500
    scl[2, 0:5] = 7  # unclassified: not clear, its (absurd) values must not count
    red2[2, 0:5] = 100
    scl[3, 0:5] = 6  # water: not clear either
    scl[4, 0:5] = 11  # snow
    scl[5:7, 0:5] = 9  # cloud
    _write_scene(folder, "2019-05-16", red2, nir, scl)
    cloudy = np.full((10, 10), 9, dtype=np.uint16)
    cloudy[8:10, 8:10] = 4
    _write_scene(folder, "2019-05-21", red, nir, cloudy)
    return read_facts(folder, folder / "parcels_test.gpkg")


def test_only_vegetation_and_soil_pixels_are_clear(scene):
    a = scene.get("A", "2019-05-16")
    assert a.pixels == 50
    # rows 0-1 soil (10 px) and 7-9 vegetation (15 px) are clear: 25 of 50
    assert a.clear == pytest.approx(0.5)
    assert a.cloud == pytest.approx(0.2)  # rows 5-6
    assert a.snow == pytest.approx(0.1)  # row 4
    # mean over the clear pixels only: 10 at NDVI 0.0, 15 at NDVI 0.8
    assert a.ndvi == pytest.approx((10 * 0.0 + 15 * 0.8) / 25, abs=1e-6)
    assert a.state == "partial"


def test_states_and_slivers(scene):
    assert scene.get("A", "2019-05-21").state == "unusable"
    assert scene.get("A", "2019-05-21").ndvi is None
    assert scene.get("B", "2019-05-21").state == "clear"
    assert scene.get("B", "2019-05-21").ndvi == pytest.approx(0.8, abs=1e-6)
    assert scene.is_sliver("B") and not scene.is_sliver("A")
    assert scene.dates == ["2019-05-16", "2019-05-21"]
    assert scene.window("A", "2019-05-01", "2019-05-31") is None  # partial and unusable: nothing clear
    assert not scene.window_is_clean("A", "2019-05-01", "2019-05-31")


# -- facts on the real Flanders sample ------------------------------------------------------------
@pytest.fixture(scope="module")
def flanders() -> Facts:
    """The Flanders sample: the repository's data/ copy, else ../shared/data's; skipped when neither."""
    root = Path(__file__).resolve().parents[2]
    for folder in (root / "data" / "worldcereal-flanders", root.parent / "shared" / "data" / "worldcereal-flanders"):
        if (folder / "parcels_Flanders31UES.gpkg").is_file():
            return read_facts(folder)
    pytest.skip("no worldcereal-flanders sample in data/ or ../shared/data")


def test_flanders_facts_match_the_sample_readme(flanders):
    """The README's sanity figures for parcel 001 (winter wheat in 2019)."""
    p = "Flanders31UES-001"
    for date, expected in (("2019-03-22", 0.77), ("2019-05-16", 0.90), ("2019-07-25", 0.25), ("2018-10-13", 0.29),
                           ("2019-10-13", 0.80)):
        assert flanders.state(p, date) == "clear"
        assert flanders.ndvi(p, date) == pytest.approx(expected, abs=0.01), date
    assert len(flanders.parcels) == 19 and len(flanders.dates) == 72


def test_flanders_snow_and_cloud_dates(flanders):
    assert flanders.area["2018-11-12"]["snow"] > 0.9  # the snowy date
    assert all(flanders.state(p, "2018-11-12") == "unusable" for p in flanders.parcels)
    assert all(flanders.state(p, "2019-06-25") == "unusable" for p in flanders.parcels)  # cirrus everywhere
    assert all(flanders.state(p, "2018-08-04") == "clear" for p in flanders.parcels)


def test_flanders_harvest_of_the_wheat(flanders):
    """Parcel 001 goes from green (0.76 on 5 July) to bare (0.25 on 25 July 2019)."""
    assert harvest(flanders, "Flanders31UES-001") == ("2019-07-05", "2019-07-25")
    assert harvest(flanders, "Flanders31UES-002") is None  # permanent grass: no harvest in the rule's sense


def test_the_bank_covers_every_kind_in_both_languages(flanders):
    bank = build_bank(flanders)
    assert len(bank) >= 150
    assert [q.text for q in bank] == [q.text for q in build_bank(flanders)]  # deterministic
    by_kind = Counter(q.kind for q in bank)
    assert set(by_kind) == set(KINDS)
    for kind in KINDS:
        texts = [q.text for q in bank if q.kind == kind]
        assert len(set(texts)) >= 10, kind
        assert {q.lang for q in bank if q.kind == kind} == {"en", "fr"}, kind
    all_text = " ".join(q.text for q in bank).lower()
    for typo in ("parcle", "jully", "juilet", "doign"):
        assert typo in all_text, typo
    for form in (r"\bparcel \d\b", r"\bfield 0\d\d\b", r"flanders31ues-0\d\d"):
        assert re.search(form, all_text), form
    for q in bank:  # every question checks something
        assert any(v not in (None, [], set(), False) for k, v in vars(q.expect).items() if k != "default_year"), q.text


def test_month_questions_never_depend_on_a_partial_observation(flanders):
    for q in build_bank(flanders):
        if q.kind == "window" and q.expect.cite_scope is not None:
            parcels, start, end = q.expect.cite_scope
            assert flanders.window_is_clean(sorted(parcels), start, end), q.text


# -- the checker ----------------------------------------------------------------------------------
def test_dates_in_the_formats_people_write():
    text = ("Parcel 009 was harvested between 5 and 20 July 2019; peak on May 16, 2019, low le 1er juin 2019, "
            "then 16/08/2019 and 2019-09-18. Récoltée du 3 au 8 août.")
    assert find_dates(text, 2019) == {"2019-07-05", "2019-07-20", "2019-05-16", "2019-06-01", "2019-08-16",
                                      "2019-09-18", "2019-08-03", "2019-08-08"}
    assert find_dates("June 2019 averaged 0.72") == set()  # a month is not a date
    assert find_months("en octobre 2019 par rapport à octobre 2018") == {"2019-10", "2018-10"}


def test_numbers_and_parcels():
    assert find_numbers("NDVI 0,72 contre 0.70 (−0.02) le 2019-05-16, 45 %") == [0.72, 0.70, -0.02]
    text = "Parcels 3, 7 and 12 lead; Flanders31UES-009 and field 001 follow (0.072); 3 parcels in all"
    assert find_parcels(text, KNOWN) == {f"Flanders31UES-{n:03d}" for n in (1, 3, 7, 9, 12)}


def test_a_right_answer_passes_and_a_wrong_one_fails():
    expect = Expect(parcels={"Flanders31UES-009"}, parcels_allowed={"Flanders31UES-009"}, values=[[0.78]],
                    date_windows=[("2019-07-05", "2019-07-25")], words=[r"harvest|recolt"], default_year=2019)
    right = {"answer": "Parcel 009 was harvested between 5 and 20 July 2019: NDVI fell from 0,78 to 0.24.",
             "citations": [{"parcel_id": "Flanders31UES-009", "date": "2019-07-05"}]}
    assert all(ok for ok, _ in score(expect, right, KNOWN).values())
    dumped = {"answer": "Parcel 009 on 2019-11-22: NDVI 0.85, a dense canopy. Parcel 010 on 2019-11-22: 0.80.",
              "citations": []}
    failed = {name for name, (ok, _) in score(expect, dumped, KNOWN).items() if not ok}
    assert {"no other parcel", "value 1", "date in 2019-07-05..2019-07-25"} <= failed


def test_a_cloudy_date_question_must_not_get_a_ranking():
    expect = Expect(dates={"2019-06-15", "2019-06-25"}, words=[check.fold("cloud|nuage")], max_parcels=3,
                    default_year=2019)
    ranking = {"answer": "Highest NDVI in June 2019: 006 (0.89), 002 (0.85), 005 (0.83), 008 (0.82).",
               "citations": [{"parcel_id": "Flanders31UES-006", "date": "2019-06-30"}]}
    assert not all(ok for ok, _ in score(expect, ranking, KNOWN).values())
    right = {"answer": "Two dates of June 2019 were clouded over the area: 15 June and 25 June 2019.", "citations": []}
    assert all(ok for ok, _ in score(expect, right, KNOWN).values())


def test_declines():
    refuse = Expect(decline="refuse")
    assert all(ok for ok, _ in score(refuse, {"answer": "I cannot forecast yields: the store holds Sentinel-2 "
                                                         "indices of the parcels.", "citations": []}, KNOWN).values())
    cited = {"answer": "Parcel 004 on 2019-11-22: NDVI 0.85.", "citations": [{"parcel_id": "Flanders31UES-004"}]}
    assert not score(refuse, cited, KNOWN)["refuse"][0]
    scope = {"answer": "I answer questions about the 19 parcels, for example: how is parcel 1 doing?", "citations": []}
    assert not score(refuse, scope, KNOWN)["refuse"][0]  # a yield question needs a refusal, not a menu
    assert score(Expect(decline="clarify"), scope, KNOWN)["clarify"][0]


def test_a_caveat_sentence_is_not_part_of_a_ranking():
    expect = Expect(parcel_sets=[{"Flanders31UES-016", "Flanders31UES-007", "Flanders31UES-013"}])
    answer = ("NDVI on 2019-07-25, highest first (3 of 16 parcels): Flanders31UES-016 0.80, Flanders31UES-007 0.79, "
              "Flanders31UES-013 0.76. No usable observation on 2019-07-25 for: Flanders31UES-017, Flanders31UES-018.")
    assert score(expect, {"answer": answer, "citations": []}, KNOWN)["parcel set"][0]
    too_many = answer.replace("No usable observation on 2019-07-25 for:", "Next come")
    assert not score(expect, {"answer": too_many, "citations": []}, KNOWN)["parcel set"][0]


def test_an_archive_question_answered_with_ndvi_fails():
    expect = Expect(words=["sugar beet|betterave"], lead=True, no_values=True)
    described = {"answer": "Parcel 012 on 2019-11-02: NDVI 0.84. That is a dense canopy for sugar beet.", "citations": []}
    failed = {name for name, (ok, _) in score(expect, described, KNOWN).items() if not ok}
    assert failed == {"says /sugar beet|betterave/", "no index value"}
    right = {"answer": "Parcel 012 is sugar beet (2019 declaration).", "citations": []}
    assert all(ok for ok, _ in score(expect, right, KNOWN).values())


def test_a_negated_cause_is_not_a_cause():
    expect = Expect(words=[r"(harvest|recolt)"], lead=True, date_windows=[("2019-07-05", "2019-07-25")],
                    default_year=2019)
    denied = {"answer": "Parcel 014's NDVI fell from 0.74 on 2019-07-05 to 0.42 on 2019-07-20, with no harvest, "
                        "cloud or suspect scene between them.", "citations": []}
    assert not score(expect, denied, KNOWN)["says /(harvest|recolt)/"][0]
    said = {"answer": "Le NDVI de la parcelle 014 a baissé parce qu'elle a été récoltée entre le 5 et le 20 juillet "
                      "2019.", "citations": []}
    assert all(ok for ok, _ in score(expect, said, KNOWN).values())


def test_an_aggregate_must_be_stated_not_listed():
    expect = Expect(values_with=[(r"(mean|averag|moyen)", [0.58])])
    listed = {"answer": "7 parcels match: 002 NDVI 0.57; 005 NDVI 0.60; 006 NDVI 0.62.", "citations": []}
    assert not score(expect, listed, KNOWN)["stated value 1"][0]
    stated = {"answer": "Sur les 5 prairies le 18 septembre 2018, NDVI moyen 0,58, de 0.50 à 0.62.", "citations": []}
    assert score(expect, stated, KNOWN)["stated value 1"][0]


def test_unusable_dates_are_named_as_such_and_clear_ones_are_not():
    expect = Expect(dates={"2019-06-15", "2019-06-25"}, date_words="(cloud|nuage|unusable)",
                    clear_dates={"2019-06-10", "2019-06-20", "2019-06-30"}, default_year=2019)
    listing = {"answer": "Of the 5 acquisitions in June 2019 (2019-06-10, 2019-06-15, 2019-06-20, 2019-06-25, "
                         "2019-06-30), 2019-06-30 is the latest usable one.", "citations": []}
    assert not score(expect, listing, KNOWN)["dates with their reason"][0]
    too_many = {"answer": "Cloudy: 2019-06-10, 2019-06-15, 2019-06-25.", "citations": []}
    assert not score(expect, too_many, KNOWN)["clear dates not called unusable"][0]
    right = {"answer": "Parcel 011 in June 2019: 3 of 5 acquisitions clear. Cloudy: 15 and 25 June 2019.",
             "citations": []}
    assert all(ok for ok, _ in score(expect, right, KNOWN).values())


def test_similar_parcels_in_a_window():
    expect = Expect(parcels={"Flanders31UES-001"}, similar_allowed=KNOWN - {"Flanders31UES-001"},
                    similar_window=("2019-06-01", "2019-06-30"))
    answer = "Parcels that looked like 001 in June 2019: 003 on 2019-06-20, 009 on 2019-06-20."
    inside = {"answer": answer, "citations": [],
              "similar": [{"parcel_id": "Flanders31UES-003", "date": "2019-06-20"},
                          {"parcel_id": "Flanders31UES-009", "date": "2019-06-20"}]}
    assert all(ok for ok, _ in score(expect, inside, KNOWN).values())
    outside = dict(inside, similar=[{"parcel_id": "Flanders31UES-003", "date": "2019-11-22"}])
    assert not score(expect, outside, KNOWN)["similar in the window"][0]


def test_an_event_date_counts_only_where_the_event_is_said():
    expect = Expect(date_windows=[("2019-06-10", "2019-06-20")], event_words=r"(emerg|green.?up|levee)",
                    default_year=2019)
    listing = {"answer": "Parcel 013 in autumn 2019 averaged 0.52 against 0.55 in 2019: stable. Usable observations: "
                         "2019-05-16, 2019-06-10, 2019-06-20.", "citations": []}
    assert not score(expect, listing, KNOWN)["date in 2019-06-10..2019-06-20"][0]
    right = {"answer": "Parcel 013 emerged between 2019-06-10 and 2019-06-20: NDVI rose from 0.42 to 0.56.",
             "citations": []}
    assert score(expect, right, KNOWN)["date in 2019-06-10..2019-06-20"][0]
