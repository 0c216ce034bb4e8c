"""Each kind of answer alone: its retrieval and composition over an injected fake context.

The context is `ListContext` over hand-made records (a winter wheat parcel harvested in July, its
peers, a grass parcel, a cloudy date, a parcel too small): no store, no parser, no chain. Numbers
asserted are computed here from the records, never copied from an answer.
"""

from __future__ import annotations

import dataclasses
import re
import statistics

import pytest

from assistant.answers import registry
from assistant.answers.turn import ListContext, Turn
from assistant.documents import to_document
from assistant.plan import Condition, StoreContext
from plans import fixed, make_plan, window

CROPS = {"W-1": "Winter wheat", "W-2": "Winter wheat", "W-3": "Winter wheat", "G-1": "Permanent grass",
         "S-1": "Maize"}
#: NDVI per date (None: a cloudy, unusable record).
SERIES = {
    "W-1": {"2018-10-15": 0.30, "2019-05-10": 0.85, "2019-06-05": 0.82, "2019-06-15": None, "2019-06-25": 0.78,
            "2019-07-05": 0.76, "2019-07-20": 0.24, "2019-08-01": 0.22, "2019-10-15": 0.70},
    "W-2": {"2018-10-15": 0.32, "2019-05-10": 0.86, "2019-06-05": 0.84, "2019-06-15": None, "2019-06-25": 0.80,
            "2019-07-05": 0.77, "2019-07-20": 0.26, "2019-08-01": 0.23, "2019-10-15": 0.69},
    "W-3": {"2018-10-15": 0.31, "2019-05-10": 0.84, "2019-06-05": 0.60, "2019-06-15": None, "2019-06-25": 0.50,
            "2019-07-05": 0.45, "2019-07-20": 0.44, "2019-08-01": 0.43, "2019-10-15": 0.71},
    "G-1": {"2018-10-15": 0.70, "2019-05-10": 0.80, "2019-06-05": 0.79, "2019-06-15": None, "2019-06-25": 0.81,
            "2019-07-05": 0.80, "2019-07-20": 0.78, "2019-08-01": 0.79, "2019-10-15": 0.72},
    "S-1": {"2019-06-05": 0.50, "2019-06-25": 0.52},
}
PIXELS = {"S-1": 4}


def _docs() -> list:
    docs, rid = [], 0
    for pid, series in SERIES.items():
        for date, ndvi in series.items():
            rid += 1
            docs.append(to_document({
                "record_id": rid, "parcel_id": pid, "date": date, "valid": ndvi is not None,
                "invalid_reason": "" if ndvi is not None else "cloud", "valid_fraction": 1.0 if ndvi is not None else 0.0,
                "cloud_fraction": 0.0 if ndvi is not None else 1.0, "n_pixels": PIXELS.get(pid, 200),
                "source": f"/srv/data/S2_{date}.tif", "ndvi_mean": ndvi,
                "ndmi_mean": None if ndvi is None else round(ndvi / 2, 3),
                "attr_crop_name": CROPS[pid], "analysis": f"analysis of {pid} on {date}",
            }))
    return docs


@pytest.fixture()
def ctx() -> ListContext:
    docs = _docs()
    dates = sorted({d.metadata["date"] for d in docs})
    return ListContext(docs=docs, context=StoreContext(
        parcel_ids=tuple(SERIES), attributes={"attr_crop_name": tuple(sorted(set(CROPS.values())))},
        dates=tuple(__import__("datetime").date.fromisoformat(d) for d in dates),
        parcel_attributes={p: {"attr_crop_name": c} for p, c in CROPS.items()}))


def answer(ctx, question: str, plan, kind: str | None = None):
    """Retrieve and compose with the kind the registry chooses (or `kind`); returns (kind, composition)."""
    chosen = registry.by_name(kind) if kind else registry.choose(plan, question.lower())
    turn = Turn(question=question, lang=plan.lang, plan=dataclasses.replace(plan, question=question), kind=chosen.name)
    module = chosen.load()
    turn = dataclasses.replace(turn, found=module.retrieve(turn, ctx))
    return chosen.name, module.compose(turn, ctx)


def text(comp) -> str:
    return " ".join(comp.sentences)


def cited(comp) -> set[tuple[str, str]]:
    return {(d.metadata["parcel_id"], d.metadata["date"]) for d, _ in comp.cited}


JUNE = window("2019-06-01", "2019-06-30", "June 2019")
JULY = window("2019-07-01", "2019-07-31", "July 2019")


@pytest.mark.parametrize("question, plan, kind", [
    ("What will the wheat yield be?", make_plan(intent="describe", parcels=["W-1"]), "decline"),
    ("What does the archive hold?", make_plan(intent="unknown"), "archive"),
    ("Which dates were cloudy in June 2019?", make_plan(intent="rank", win=JUNE, all_parcels=True), "quality"),
    ("Why did W-1 drop in July?", make_plan(intent="describe", parcels=["W-1"], win=JULY), "why"),
    ("When was W-1 harvested?", make_plan(intent="describe", parcels=["W-1"]), "calendar"),
    ("NDVI of W-1 from May to August", make_plan(intent="history", parcels=["W-1"], win=JULY), "calendar"),
    ("W-1 in June 2019 vs last year", make_plan(intent="compare", parcels=["W-1"], win=JUNE,
                                                 compare=[window("2018-06-01", "2018-06-30", "June 2018")]), "seasons"),
    ("Average NDVI of the wheat parcels", make_plan(intent="describe", attributes={"attr_crop_name": ("Winter wheat",)}), "groups"),
    ("Compare W-1 and W-2", make_plan(intent="compare", parcels=["W-1", "W-2"]), "parcels"),
    ("Fields like W-1", make_plan(intent="similar", parcels=["W-1"]), "similar"),
    ("How is W-1 in June 2019?", make_plan(intent="describe", parcels=["W-1"], win=JUNE), "observe"),
    ("qwxz", make_plan(intent="unknown"), "clarify"),
])
def test_the_registry_chooses_one_kind_per_question(question, plan, kind):
    assert registry.choose(plan, question.lower()).name == kind


def test_every_kind_is_one_module_with_retrieve_and_compose():
    for k in registry.KINDS:
        module = k.load()
        assert callable(module.retrieve) and callable(module.compose), k.name
    modules = {}
    for k in registry.KINDS:  # a kind may have two rows, never two modules
        assert modules.setdefault(k.name, k.module) == k.module, k.name


def test_a_window_is_summarised_over_all_its_usable_observations(ctx):
    kind, comp = answer(ctx, "How is W-1 in June 2019?", make_plan(parcels=["W-1"], win=JUNE))
    values = {d: v for d, v in SERIES["W-1"].items() if d.startswith("2019-06") and v is not None}
    out = text(comp)
    assert kind == "observe"
    assert out.startswith(f"Parcel W-1 in June 2019: NDVI averaged {statistics.fmean(values.values()):.2f} over 2 usable")
    assert "0.78 on 2019-06-25" in out and "0.82 on 2019-06-05" in out  # low and peak, with dates
    assert "2019-06-15 (cloud)" in out
    assert cited(comp) == {("W-1", d) for d in SERIES["W-1"] if d.startswith("2019-06")}


def test_a_low_value_after_harvest_is_stubble_never_stress(ctx):
    _, comp = answer(ctx, "W-1 on 2019-08-01", make_plan(parcels=["W-1"], win=window("2019-08-01")))
    out = text(comp)
    assert out.startswith("Parcel W-1 on 2019-08-01: NDVI 0.22")
    assert "stubble after the harvest" in out and "stress" not in out.lower()


def test_a_parcel_too_small_is_not_read_as_the_crop(ctx):
    _, comp = answer(ctx, "S-1 on 2019-06-05", make_plan(parcels=["S-1"], win=window("2019-06-05")))
    assert "only 4 pixels" in text(comp) and "NDVI 0.50" not in text(comp)


def test_past_season_by_day_of_year_with_a_signed_delta(ctx):
    plan = make_plan(intent="compare", parcels=["W-1"], win=window("2019-10-15"),
                     compare=[window("2018-10-15", label="2018-10-15")])
    kind, comp = answer(ctx, "W-1 on 2019-10-15 vs last year", plan)
    assert kind == "seasons"
    assert text(comp).startswith("On 2019-10-15, parcel W-1's NDVI was 0.70 against 0.30 on 2018-10-15 in 2018")
    assert "+0.40, higher" in text(comp)
    assert cited(comp) == {("W-1", "2019-10-15"), ("W-1", "2018-10-15")}


def test_a_change_within_the_noise_is_stable(ctx):
    plan = make_plan(intent="compare", parcels=["G-1"], win=window("2019-10-15"),
                     compare=[window("2018-10-15", label="2018-10-15")])
    _, comp = answer(ctx, "G-1 vs last year", plan)
    assert "+0.02, stable" in text(comp) and "read as stable" in text(comp)


def test_harvest_is_a_dated_window_between_two_observations(ctx):
    kind, comp = answer(ctx, "When was W-1 harvested?", make_plan(parcels=["W-1"]))
    assert kind == "calendar"
    assert text(comp).startswith("Parcel W-1 was harvested between 2019-07-05 and 2019-07-20: NDVI fell from 0.76 to 0.24.")
    assert cited(comp) == {("W-1", "2019-07-05"), ("W-1", "2019-07-20")}


def test_a_trend_names_its_events_not_first_against_last(ctx):
    _, comp = answer(ctx, "NDVI trend of W-1 in 2019", make_plan(intent="history", parcels=["W-1"],
                                                                 win=window("2019-01-01", "2019-12-31", "2019")))
    out = text(comp)
    assert "peak 0.85 on 2019-05-10" in out and "harvest between 2019-07-05 and 2019-07-20" in out
    assert "Highest 0.85 on 2019-05-10, lowest 0.22 on 2019-08-01" in out and "2019-06-15 (cloud)" in out


def test_why_a_drop_names_the_harvest(ctx):
    kind, comp = answer(ctx, "Why did W-1 drop in July?", make_plan(parcels=["W-1"], win=JULY))
    assert kind == "why"
    assert text(comp).startswith("Parcel W-1's NDVI fell in July 2019 because it was harvested between 2019-07-05 "
                                 "and 2019-07-20: it went from 0.76 to 0.24")


def test_why_a_fall_the_peers_do_not_share_is_a_real_decline(ctx):
    _, comp = answer(ctx, "Why did W-3 fall in June 2019?", make_plan(parcels=["W-3"], win=JUNE))
    out = text(comp)
    # W-3: 0.84 -> 0.60 between 2019-05-10 and 2019-06-05 while W-1 and W-2 fell by 0.03 and 0.02.
    assert "fell from 0.84 on 2019-05-10 to 0.60 on 2019-06-05 (-0.24)" in out and "real decline" in out
    assert ("W-2", "2019-06-05") in cited(comp)


def test_damage_asked_names_the_unexplained_fall_and_the_limit(ctx):
    # W-3 fell 0.84 -> 0.60 between 2019-05-10 and 2019-06-05 while W-1 and W-2 fell by 0.03 and 0.02.
    kind, comp = answer(ctx, "Was W-3 damaged by hail in June 2019?", make_plan(parcels=["W-3"], win=JUNE))
    assert kind == "damage"
    out = text(comp)
    peers = statistics.median([round(SERIES[p]["2019-06-05"] * 100) - round(SERIES[p]["2019-05-10"] * 100)
                               for p in ("W-1", "W-2")])
    assert out.startswith("Parcel W-3's NDVI fell in June 2019 where no harvest, cut or season explains it: "
                          "from 0.84 on 2019-05-10 to 0.60 on 2019-06-05 (-0.24; the other winter wheat parcels: ")
    said = re.search(r"the other winter wheat parcels: ([-+]\d\.\d\d)\)", out)
    assert said and abs(float(said.group(1)) * 100 - peers) <= 0.5  # their median change, not W-3's
    assert "not whether hail did it" in out
    assert {("W-3", "2019-05-10"), ("W-3", "2019-06-05"), ("W-1", "2019-06-05")} <= cited(comp)


def test_damage_asked_where_the_harvest_explains_the_fall_says_no_sign(ctx):
    kind, comp = answer(ctx, "Was there frost damage on W-1 in July 2019?", make_plan(parcels=["W-1"], win=JULY))
    assert kind == "damage"
    out = text(comp)
    assert out.startswith("No sign of frost on parcel W-1 in July 2019 that the imagery can show")
    assert "the harvest between 2019-07-05 and 2019-07-20 (0.76 to 0.24)" in out
    assert "Sentinel-2 cannot see frost itself" in out


def test_damage_asked_of_a_group_lists_the_parcels_with_an_unexplained_fall(ctx):
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)}, win=JUNE)
    kind, comp = answer(ctx, "Did disease hit the winter wheat in June 2019?", plan)
    assert kind == "damage"
    out = text(comp)
    assert out.startswith("In June 2019, 1 of 3 parcels had a fall of NDVI that no harvest, cut or season explains: "
                          "W-3 (2019-05-10 to 2019-06-05, 0.84 to 0.60)")
    assert "W-1" not in out and "a disease" in out


@pytest.mark.parametrize("question, hazard", [
    ("Was parcel 3 damaged by hail?", "hail"), ("Y a-t-il eu du gel sur la parcelle 2 ?", "frost"),
    ("does field 7 have a fungal disease", "disease"), ("des ravageurs sur la parcelle 4 ?", "pests"),
    ("Did the storm flatten parcel 9?", "storm"), ("Is there lodging on parcel 1?", "lodging"),
    ("Des dégâts sur la parcelle 5 ?", "damage")])
def test_damage_words_choose_the_damage_answer_and_name_the_hazard(question, hazard):
    from assistant.answers.damage import hazard_of
    from assistant.answers.common import fold_text

    folded = fold_text(question)
    assert registry.DAMAGE.search(folded)
    assert hazard_of(folded) == hazard


def test_why_names_clouds_when_only_unusable_records_are_low(ctx):
    plan = make_plan(parcels=["G-1"], win=window("2019-06-10", "2019-06-20", "mid June 2019"))
    _, comp = answer(ctx, "Why is G-1 low in mid June?", plan, kind="why")
    assert "2019-06-15" in text(comp) and "clouded" in text(comp) and "not the crop" in text(comp)


def test_quality_lists_the_cloudy_dates_of_a_parcel_and_of_the_area(ctx):
    kind, comp = answer(ctx, "Which dates were cloudy for W-1 in June 2019?", make_plan(parcels=["W-1"], win=JUNE))
    assert kind == "quality"
    assert text(comp).startswith("Parcel W-1 in June 2019: 2 of 3 acquisitions usable. Cloudy: 2019-06-15")
    _, comp = answer(ctx, "Which dates were cloudy in June 2019?", make_plan(intent="rank", win=JUNE, all_parcels=True))
    assert "Cloudy: 2019-06-15 (4 of 4)" in text(comp)


def test_group_aggregates_mean_median_range_and_count(ctx):
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)}, win=window("2019-06-05"))
    kind, comp = answer(ctx, "average NDVI of the winter wheat parcels on 2019-06-05", plan)
    xs = [SERIES[p]["2019-06-05"] for p in ("W-1", "W-2", "W-3")]
    assert kind == "groups"
    assert text(comp).startswith(f"Over the 3 winter wheat parcels on 2019-06-05, mean NDVI {statistics.fmean(xs):.2f}, "
                                 f"median {statistics.median(xs):.2f}, from 0.60 (W-3) to 0.84 (W-2); 3 parcels observed.")


def test_a_ranking_lists_exactly_the_number_asked(ctx):
    plan = dataclasses.replace(make_plan(intent="rank", all_parcels=True, win=window("2019-06-05"), k=2), order="desc")
    _, comp = answer(ctx, "top 2 parcels on 2019-06-05", plan)
    assert re.findall(r"\b[WGS]-\d\b", comp.sentences[0]) == ["W-2", "W-1"]
    assert "(2 of 4 parcels)" in comp.sentences[0] and "S-1" in comp.sentences[1]  # too small: not ranked, said


def test_a_threshold_counts_the_observed_parcels(ctx):
    plan = make_plan(intent="rank", all_parcels=True, win=JULY, condition=Condition("ndvi", "<", 0.3))
    _, comp = answer(ctx, "Which parcels had NDVI below 0.3 in July 2019?", plan)
    assert text(comp).startswith("2 of 4 observed parcels had NDVI below 0.3 in July 2019: W-1 NDVI 0.24 on 2019-07-20, "
                                 "W-2 NDVI 0.26 on 2019-07-20.")


def test_parcels_behind_their_crop_peers(ctx):
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)}, win=window("2019-06-25"))
    _, comp = answer(ctx, "Which wheat parcels are behind their peers on 2019-06-25?", plan, kind="groups")
    assert text(comp).startswith("One parcel was more than 0.10 below the median of its crop's other parcels "
                                 "on 2019-06-25: W-3 (winter wheat) 0.50 against 0.79")


def test_several_parcels_compared_on_the_same_dates(ctx):
    kind, comp = answer(ctx, "Compare W-1 and W-3 in June 2019", make_plan(intent="compare", parcels=["W-1", "W-3"], win=JUNE))
    assert kind == "parcels"
    a = statistics.fmean([0.82, 0.78])
    b = statistics.fmean([0.60, 0.50])
    assert text(comp).startswith(f"W-1 is {round(a, 2) - round(b, 2):.2f} above W-3.")
    assert "2019-06-05, 2019-06-25" in text(comp)


def test_similar_parcels_by_embedding_cosine(ctx):
    ctx.vectors = {d.metadata["record_id"]: [1.0, d.metadata["ndvi_mean"] or 0.0] for d in ctx.docs
                   if d.metadata["valid"]}
    kind, comp = answer(ctx, "parcels like W-1 on 2019-06-05", make_plan(intent="similar", parcels=["W-1"],
                                                                         win=window("2019-06-05")))
    assert kind == "similar" and comp.similar
    assert comp.similar[0]["parcel_id"] == "W-2" and "W-1" not in {s["parcel_id"] for s in comp.similar}


def test_archive_decline_and_clarify(ctx):
    _, comp = answer(ctx, "What does the archive hold?", make_plan(intent="unknown"))
    assert text(comp).startswith("The archive holds 5 parcels and 9 acquisition dates")
    for question in ("What will the wheat yield be?", "qwxz"):
        _, comp = answer(ctx, question, make_plan(intent="unknown"))
        assert comp.sentences and not comp.cited


def test_french_answers_use_the_lexicon(ctx):
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)}, win=window("2019-06-05"), lang="fr")
    _, comp = answer(ctx, "NDVI moyen des parcelles de blé d'hiver le 2019-06-05", plan)
    assert "blé d'hiver" in text(comp) and "Winter wheat" not in text(comp)


def test_the_chain_steps_run_alone_on_a_fake_context(ctx):
    """plan -> retrieve -> compose as plain functions over a Turn, with no store: the context and
    the parser are injected."""
    from assistant.chain import generate_turn, ground_turn, plan_turn, retrieve_turn, stream_answer

    plan = make_plan("When was W-2 harvested?", parcels=["W-2"])
    turn = plan_turn({"question": plan.question}, ctx, parse=fixed(plan))
    assert turn.kind == "calendar" and turn.plan.kind == "calendar"
    turn = retrieve_turn(turn, ctx)
    assert {d.metadata["parcel_id"] for d in turn.found.extra} == {"W-2"}
    turn = ground_turn(generate_turn(turn, ctx, model=None), ctx)
    chunks = list(stream_answer(turn, ctx))
    answer = "".join(c.get("answer", "") for c in chunks)
    assert answer.startswith("Parcel W-2 was harvested between 2019-07-05 and 2019-07-20: NDVI fell from 0.77 to 0.26.")
    assert [(c["parcel_id"], c["date"], c["source"]) for c in chunks[-1]["citations"]] == [
        ("W-2", "2019-07-05", "S2_2019-07-05.tif"), ("W-2", "2019-07-20", "S2_2019-07-20.tif")]


def test_one_parcel_against_the_other_parcels_of_its_crop(ctx):
    plan = make_plan(intent="compare", parcels=["W-3"], win=window("2019-06-25"))
    kind, comp = answer(ctx, "How does W-3 compare with the other wheat fields on 2019-06-25?", plan)
    assert kind == "peers"
    median = statistics.median([SERIES["W-1"]["2019-06-25"], SERIES["W-2"]["2019-06-25"]])
    assert text(comp).startswith(f"W-3's NDVI on 2019-06-25 was 0.50, {round(median, 2) - 0.50:.2f} below the median "
                                 f"{median:.2f} of the 2 other winter wheat parcels.")


def test_the_largest_fall_of_a_group(ctx):
    plan = make_plan(intent="rank", all_parcels=True, win=JULY, k=5)
    _, comp = answer(ctx, "Which field had the biggest drop in July 2019?", dataclasses.replace(plan, k=5))
    # W-1 fell 0.76 -> 0.24 (-0.52), W-2 0.77 -> 0.26 (-0.51): W-1 first.
    assert re.search(r"W-1 -0\.52, from 0\.76 on 2019-07-05 to 0\.24 on 2019-07-20", text(comp)), text(comp)


def test_which_parcels_cannot_be_trusted_names_the_too_small_one(ctx):
    kind, comp = answer(ctx, "Which parcels cannot be trusted?", make_plan(intent="rank", all_parcels=True))
    assert kind == "quality"
    assert text(comp).startswith("Too small for a reliable value (fewer than 20 pixels of 10 m): S-1 (4 px).")


def test_misspellings_of_one_meaning_are_no_tie():
    from assistant.parsing.spelling import correct

    assert correct("how is parcele 4 in juen 2019")[1] == [("parcele", "parcel"), ("juen", "June")]
    assert correct("the main field")[1] == []  # a real word is never "corrected"


def test_how_similar_two_named_parcels_are(ctx):
    ctx.vectors = {d.metadata["record_id"]: [1.0, d.metadata["ndvi_mean"] or 0.0] for d in ctx.docs
                   if d.metadata["valid"]}
    plan = make_plan(intent="similar", parcels=["W-1", "G-1"], win=window("2019-06-05"))
    _, comp = answer(ctx, "how similar are W-1 and G-1 on 2019-06-05?", plan)
    [hit] = comp.similar
    assert (hit["parcel_id"], hit["date"]) == ("G-1", "2019-06-05")
    assert text(comp).startswith(f"The imagery of G-1 on 2019-06-05 (NDVI 0.79) was at distance {hit['distance']:.3f} "
                                 "from W-1's on 2019-06-05 (NDVI 0.82).")


def test_a_crop_against_its_past_season_gives_the_group_first(ctx):
    plan = make_plan(intent="compare", attributes={"attr_crop_name": ("Winter wheat",)}, win=window("2019-10-15"),
                     compare=[window("2018-10-15", label="2018-10-15")])
    kind, comp = answer(ctx, "wheat on 2019-10-15 vs last year", plan)
    assert kind == "seasons"
    now = statistics.fmean(SERIES[p]["2019-10-15"] for p in ("W-1", "W-2", "W-3"))
    then = statistics.fmean(SERIES[p]["2018-10-15"] for p in ("W-1", "W-2", "W-3"))
    assert text(comp).startswith(f"Over the 3 parcels compared, mean NDVI {now:.2f} in 2019-10-15 against {then:.2f}")
    assert {("W-3", "2018-10-15"), ("W-3", "2019-10-15")} <= cited(comp)


def test_what_happened_on_a_date_without_a_parcel_is_the_scene(ctx):
    plan = make_plan(intent="describe", all_parcels=True, win=window("2019-06-15"))
    kind, comp = answer(ctx, "What happened on 2019-06-15?", plan)
    assert kind == "why"
    assert text(comp).startswith("On 2019-06-15, 0 of 4 parcels had a usable observation. Cloudy: G-1, W-1, W-2, W-3.")


@pytest.mark.parametrize("question, lang", [
    ("What does NDMI mean?", "en"), ("what is ndmi", "en"), ("Meaning of NDMI please", "en"),
    ("Qu'est-ce que le NDMI ?", "fr"), ("que signifie le NDMI", "fr"), ("NDMI, c'est quoi ?", "fr"),
])
def test_what_an_index_means_is_explained_with_the_analyses_own_thresholds(ctx, question, lang):
    from indexer.analysis import RULE_BY_ASPECT

    plan = make_plan(intent="unknown", index="ndmi", lang=lang, all_parcels=True)
    kind, comp = answer(ctx, question, plan)
    assert kind == "glossary"
    said = text(comp)
    assert said.startswith("NDMI is" if lang == "en" else "Le NDMI est")
    for threshold in RULE_BY_ASPECT["moisture"].breaks:  # the table the analyses are written with
        assert f"{threshold:g}" in said and threshold in comp.rules
    assert not comp.cited  # about the method, not a field


@pytest.mark.parametrize("question, plan", [
    ("What is the NDMI of W-1?", make_plan(intent="describe", parcels=["W-1"], index="ndmi")),
    ("What does NDMI mean for W-1 in June?", make_plan(intent="describe", parcels=["W-1"], index="ndmi", win=JUNE)),
    ("What is the average NDMI of the wheat parcels?",
     make_plan(intent="describe", index="ndmi", attributes={"attr_crop_name": ("Winter wheat",)})),
])
def test_a_value_asked_of_a_field_is_not_a_definition(question, plan):
    assert registry.choose(plan, question.lower()).name != "glossary"


@pytest.mark.parametrize("question, kind", [
    ("Which dates had snow?", "quality"), ("Was there any snow in the archive?", "quality"),
    ("Which dates were cloudy?", "quality"), ("How much will I earn from parcel 3?", "decline"),
    ("What is the soil pH of parcel 3?", "decline"),
])
def test_words_alone_choose_the_kind_when_the_parser_found_no_intent(question, kind):
    assert registry.choose(make_plan(question, intent="unknown"), question.lower()).name == kind


@pytest.mark.parametrize("question, kind", [
    ("W-1 lost a lot of NDVI in July, was it a problem?", "why"),
    ("Should I worry about W-1 in July?", "why"),
    ("La parcelle W-1 a baissé en juillet, est-ce normal ?", "why"),
])
def test_a_worry_about_a_change_asks_why(question, kind):
    plan = make_plan(question, intent="describe", parcels=["W-1"], win=JULY)
    assert registry.choose(plan, question.lower()).name == kind


def test_the_clarifying_answer_suggests_a_usable_date_of_its_example_parcel(ctx, monkeypatch):
    # The archive's newest date clouded for every parcel (as 2019-11-27 is on the Flanders sample).
    for series in SERIES.values():
        monkeypatch.setitem(series, "2019-11-27", None)
    docs = _docs()
    clouded = ListContext(docs=docs, context=dataclasses.replace(
        ctx.context, dates=tuple(__import__("datetime").date.fromisoformat(d)
                                 for d in sorted({d.metadata["date"] for d in docs}))))
    _, comp = answer(clouded, "qwxz", make_plan(intent="unknown"))
    said = text(comp)
    assert "to 2019-11-27" in said  # the archive's span is still said
    example = re.search(r"doing on (\d{4}-\d{2}-\d{2})", said).group(1)
    pid = re.search(r"How is parcel (\S+) doing", said).group(1)
    assert SERIES[pid][example] is not None  # a usable record of that parcel, not the clouded date


@pytest.mark.parametrize("lang, said", [("en", "too small for a reliable value (under 20 pixels): S-1"),
                                         ("fr", "trop petites pour une valeur fiable (moins de 20 pixels) : S-1")])
def test_a_group_says_a_sliver_is_too_small_not_unobserved(ctx, lang, said):
    plan = make_plan(all_parcels=True, win=window("2019-06-05"), lang=lang)
    _, comp = answer(ctx, "Average NDVI of all parcels on 2019-06-05", plan)
    assert said in text(comp) and "S-1" not in text(comp).split(said)[0]
    assert 20 in comp.rules


def test_months_of_a_parcel_ranked_by_their_usable_mean(ctx):
    plan = make_plan(parcels=["W-1"], win=window("2019-05-01", "2019-07-31", "May to July 2019"))
    kind, comp = answer(ctx, "What was the best month for W-1 between May and July 2019?", plan)
    assert kind == "months"
    series = SERIES["W-1"]
    means = {}
    for month in ("05", "06", "07"):
        vals = [v for d, v in series.items() if d[5:7] == month and d.startswith("2019") and v is not None]
        means[month] = sum(vals) / len(vals)
    assert max(means, key=means.get) == "05"  # 0.85; June's clouded 2019-06-15 does not count
    out = text(comp)
    assert out.startswith("Parcel W-1's best month for NDVI in May to July 2019 was May: mean 0.85 over 1 usable "
                          "observation.")
    assert f"June {means['06']:.2f} (2 obs.), July {means['07']:.2f} (2 obs.)" in out
    _, low = answer(ctx, "Which was the worst month for W-1 between May and July 2019?", plan)
    assert text(low).startswith(f"Parcel W-1's lowest month for NDVI in May to July 2019 was July: mean {means['07']:.2f}")


def test_parcels_with_no_crop_peer_are_counted_past_a_few():
    """A store of grid cells (no crop to compare with) names a few of them and counts the rest."""
    import datetime

    docs = [to_document({"record_id": i + 1, "parcel_id": f"cell-{i:02d}", "date": "2019-06-05", "valid": True,
                         "invalid_reason": "", "valid_fraction": 1.0, "cloud_fraction": 0.0, "n_pixels": 100,
                         "source": "/srv/S2_2019-06-05.tif", "ndvi_mean": 0.5 + i / 100, "ndmi_mean": 0.2,
                         "attr_crop_name": f"crop {i}", "analysis": "a"}) for i in range(12)]
    cells = tuple(d.metadata["parcel_id"] for d in docs)
    ctx = ListContext(docs=docs, context=StoreContext(
        parcel_ids=cells, attributes={"attr_crop_name": tuple(f"crop {i}" for i in range(12))},
        dates=(datetime.date(2019, 6, 5),), parcel_attributes={p: {"attr_crop_name": f"crop {i}"} for i, p in enumerate(cells)}))
    _, comp = answer(ctx, "Which parcel should I visit first?", make_plan(intent="rank", all_parcels=True), kind="groups")
    out = text(comp)
    assert "Parcels without another parcel of their crop to compare with: cell-00, cell-01" in out
    assert "cell-07 and 4 more." in out and "cell-08" not in out


def test_damage_without_a_window_spans_the_parcels_own_records(ctx):
    # Another area's later record in the same store must not widen G-1's span (2018-10-15 to 2019-10-15).
    later = to_document({"record_id": 999, "parcel_id": "cell-1", "date": "2021-03-01", "valid": True,
                         "invalid_reason": "", "valid_fraction": 1.0, "cloud_fraction": 0.0, "n_pixels": 100,
                         "source": "/srv/S2_2021-03-01.tif", "ndvi_mean": 0.5, "ndmi_mean": 0.2, "analysis": "a"})
    mixed = dataclasses.replace(ctx, docs=[*ctx.docs, later])
    assert mixed.dates()[-1] == "2021-03-01"
    kind, comp = answer(mixed, "Was G-1 damaged by hail?", make_plan(parcels=["G-1"]))
    assert kind == "damage"
    assert "between 2018-10-15 and 2019-10-15" in text(comp) and "2021" not in text(comp), text(comp)


def test_months_of_a_crop_pool_its_parcels_usable_observations(ctx):
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)}, win=window("2019-05-01", "2019-07-31", "May to July 2019"))
    kind, comp = answer(ctx, "Which month was best for the winter wheat parcels between May and July 2019?", plan)
    assert kind == "months"
    july = [SERIES[p][d] for p in ("W-1", "W-2", "W-3") for d in ("2019-07-05", "2019-07-20")]
    may = [SERIES[p]["2019-05-10"] for p in ("W-1", "W-2", "W-3")]
    out = text(comp)
    assert out.startswith(f"The winter wheat parcels' best month for NDVI in May to July 2019 was May: mean "
                          f"{sum(may) / 3:.2f} over 3 usable observations of 3 parcels."), out
    assert f"July {sum(july) / 6:.2f} (6 obs.)" in out


def test_months_without_a_window_end_at_the_parcels_own_latest_record(ctx):
    # Another area's later record in the same store must not move the year asked past the wheat's data.
    later = to_document({"record_id": 999, "parcel_id": "cell-1", "date": "2021-03-01", "valid": True,
                         "invalid_reason": "", "valid_fraction": 1.0, "cloud_fraction": 0.0, "n_pixels": 100,
                         "source": "/srv/S2_2021-03-01.tif", "ndvi_mean": 0.5, "ndmi_mean": 0.2, "analysis": "a"})
    mixed = dataclasses.replace(ctx, docs=[*ctx.docs, later])
    plan = make_plan(attributes={"attr_crop_name": ("Winter wheat",)})
    kind, comp = answer(mixed, "Which month was best for the winter wheat parcels?", plan)
    assert kind == "months"
    assert text(comp).startswith("The winter wheat parcels' best month for NDVI over the year to 2019-10-15 was "
                                 "May 2019"), text(comp)
