"""The LCEL chain with langchain-core's fake chat models on the generated farm store.

Plans are injected (the parser is tested on its own); everything else is the real chain: the
retrievers over the store, the grounding gate, the composer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage

from assistant.chain import build_chain
from assistant.grounding import Evidence
from assistant.plan import ClassCondition, Condition
from assistant.store_access import StoreView
from assistant.answers.observe import relevant_sentences
from plans import fixed, make_plan, window
from eval import farm
from indexer.analysis import write_analysis
from indexer.seasons import NOISE
from indexer.store import Store


class Spy(BaseCallbackHandler):
    """Records chain step names and the messages chat models receive."""

    def __init__(self):
        self.chains: list[str] = []
        self.messages: list = []

    def on_chain_start(self, serialized, inputs, *, name=None, **kwargs):
        self.chains.append(name or (serialized or {}).get("name"))

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.messages.append(messages[0])


def _row(view: StoreView, parcel: str, date: str) -> dict:
    records = view.records()
    return records[(records.parcel_id == parcel) & (records.date == date)].iloc[0].to_dict()


def _ask(view, plan, model=None, spy=None, **kwargs):
    chain = build_chain(view, model, parse=fixed(plan), **kwargs)
    config = {"callbacks": [spy]} if spy else {}
    return chain.invoke({"question": plan.question}, config=config)


def _grounded(out: dict, view: StoreView, derived=()) -> None:
    """Every number of the answer is in a cited record (or a difference of two, or a mean the test
    computed itself: `derived`), re-checked here."""
    ev = Evidence()
    ev.allow(*derived)
    for c in out["citations"]:
        ev.add_record(_row(view, c["parcel_id"], c["date"]))
    ev.allow_text(out["question"])
    ev.identifiers.update(view.parcels()["parcel_id"])
    counts = re.findall(r"\b(\d+) (?:of|usable|parcels|acquisitions|more|sur|in)\b", out["answer"])
    ev.allow(*counts, *re.findall(r"\b(?:of|sur) (\d+)\b", out["answer"]))
    ev.allow(*(f"{s['distance']:.3f}" for s in out["similar"]), *{d[:4] for d in view.dates()})
    ev.allow(*(f"{x:.2f}" for x in NOISE.values()))  # "stable" is a change within the measured noise
    assert ev.ungrounded(out["answer"]) == [], out["answer"]


def test_describe_uses_a_generated_analysis_that_passes_the_gate(view):
    row = _row(view, "farm-03", "2022-05-30")
    generated = write_analysis(row, seed=99)  # the record's classes and values, other words
    assert generated != row["analysis"]
    spy = Spy()
    plan = make_plan("How is farm-03 doing on 30 May 2022?", "describe", ["farm-03"], window("2022-05-30"))
    out = _ask(view, plan, FakeListChatModel(responses=[generated]), spy)
    assert set(out) == {"question", "plan", "answer", "citations", "similar", "history", "warnings"}
    assert out["plan"]["analysis_source"] == "generated"
    # The sentences of the analysis about vigor, moisture and cover: not every statistic it holds.
    assert shown(generated) in out["answer"] and "farm-03 on 2022-05-30" in out["answer"]
    assert "EVI" not in out["answer"]
    assert any("passed the grounding gate" in n for n in out["plan"]["notes"])
    # The generator saw the focus record, by id, in the message (no tensor).
    [messages] = spy.messages
    assert messages[-1].additional_kwargs["record_id"] == row["record_id"]
    assert {"plan", "retrieve", "generate", "ground", "compose"} <= set(spy.chains)
    # Citations are the store's own values, exactly.
    [cite] = out["citations"]
    assert (cite["parcel_id"], cite["date"], cite["source"]) == ("farm-03", "2022-05-30", Path(row["source"]).name)
    assert cite["valid_fraction"] == row["valid_fraction"] and cite["cloud_fraction"] == row["cloud_fraction"]
    assert cite["indices"] and all(cite["indices"][k] == row[k] for k in cite["indices"])
    assert f"NDVI {row['ndvi_mean']:.2f}" in out["answer"]
    _grounded(out, view)


@pytest.mark.parametrize("inject", ["number", "class"])
def test_the_gate_rejects_a_wrong_number_or_class(view, inject):
    row = _row(view, "farm-01", "2022-05-30")
    good = write_analysis(row, seed=5)
    ndvi = f"{row['ndvi_mean']:.2f}"
    if inject == "number":
        bad = good.replace(ndvi, f"{row['ndvi_mean'] - 0.2:.2f}")
    else:
        bad = re.sub(r"(high vigor|strong vegetation vigor|Vigorous vegetation)", "low vigor", good, count=1)
    assert bad != good
    plan = make_plan("farm-01 on 2022-05-30", "describe", ["farm-01"], window("2022-05-30"))
    out = _ask(view, plan, GenericFakeChatModel(messages=iter([AIMessage(content=bad)])))
    assert out["plan"]["analysis_source"] == "stored"
    assert shown(bad) not in out["answer"] and shown(row["analysis"]) in out["answer"]
    problems = out["plan"]["rejected_analysis"]["problems"]
    assert any(("vigor 'low'" in p) if inject == "class" else (f"{row['ndvi_mean'] - 0.2:.2f}" in p) for p in problems)
    assert any("set aside" in n for n in out["plan"]["notes"])
    _grounded(out, view)


def test_unusable_date_is_reported_with_nearest_usable_dates(view):
    spy = Spy()
    plan = make_plan("farm-01 on 2021-06-24?", "describe", ["farm-01"], window(farm.CLOUDY_DATE))
    out = _ask(view, plan, FakeListChatModel(responses=["never used"]), spy)
    row = _row(view, "farm-01", farm.CLOUDY_DATE)
    assert not row["valid"]
    assert (f"no usable observation on {farm.CLOUDY_DATE}: cloud ({round(100 * row['cloud_fraction'])} % cloud"
            in out["answer"])
    assert "Nearest usable dates for farm-01: 2021-05-05" in out["answer"] or "2021-05-30" in out["answer"]
    assert "2021-07-19" in out["answer"]
    assert "vigor" not in out["answer"].lower()  # never read as low vigor
    assert spy.messages == []  # the generator is not asked to describe a cloud
    _grounded(out, view)


def test_suspect_scene_is_reported_and_left_out_of_the_trend(view):
    plan = make_plan("farm-06 on 2023-07-19", "describe", ["farm-06"], window(farm.HAZY_DATE))
    out = _ask(view, plan)
    assert f"The acquisition of {farm.HAZY_DATE} is suspect" in out["answer"]
    assert "6 parcels compared" in out["answer"] and "vigor" not in out["answer"].lower()
    assert farm.HAZY_DATE in out["plan"]["suspect_dates"]
    _grounded(out, view)

    plan = make_plan("NDVI of farm-06 in 2023", "history", ["farm-06"], window("2023-01-01", "2023-12-31", "2023"),
                     index="ndvi")
    out = _ask(view, plan)
    assert f"Not usable: {farm.HAZY_DATE} (a suspect scene" in out["answer"]
    lowest = re.search(r"lowest (\S+) on (\S+)\.", out["answer"])
    assert lowest and lowest.group(2) != farm.HAZY_DATE
    assert any(h["date"] == farm.HAZY_DATE and h["suspect"] for h in out["history"])
    _grounded(out, view)


def test_compare_gives_both_values_and_the_signed_delta(view):
    plan = make_plan("farm-01 on 2022-07-19 vs last year", "compare", ["farm-01"], window("2022-07-19"),
                     [window("2021-07-19", label="2021-07-19")])
    out = _ask(view, plan)
    assert "(the usable observation closest in day of year)" in out["answer"]  # a single day: by day of year
    _grounded(out, view)
    plan = make_plan("farm-01 in July 2022 compared with July 2021", "compare", ["farm-01"],
                     window("2022-07-01", "2022-07-31", "July 2022"), [window("2021-07-01", "2021-07-31", "July 2021")])
    out = _ask(view, plan)
    now, then = _row(view, "farm-01", "2022-07-19"), _row(view, "farm-01", "2021-07-19")
    delta = round(now["ndvi_mean"], 2) - round(then["ndvi_mean"], 2)
    # A month against a month: same-window means (one usable observation in each July here).
    expected = (f"Parcel farm-01's NDVI in July 2022 averaged {now['ndvi_mean']:.2f} against {then['ndvi_mean']:.2f} in "
                f"July 2021: {'+' if delta >= 0 else '-'}{abs(delta):.2f}, lower.")
    assert expected in out["answer"] and delta < 0  # the drought season is lower
    assert {(c["parcel_id"], c["date"]) for c in out["citations"]} >= {("farm-01", "2022-07-19"), ("farm-01", "2021-07-19")}
    _grounded(out, view)


def test_rank_by_condition_and_by_class(view):
    records = view.records()
    july = records[(records.date >= "2022-07-01") & (records.date <= "2022-07-31") & records.valid]
    expected = sorted(july[july.ndvi_mean < 0.3].parcel_id)
    plan = make_plan("which parcels had NDVI below 0.3 in July 2022", "rank", win=window("2022-07-01", "2022-07-31", "July 2022"),
                     condition=Condition("ndvi", "<", 0.3))
    out = _ask(view, plan)
    assert sorted(c["parcel_id"] for c in out["citations"]) == expected == ["farm-01", "farm-04"]
    assert out["answer"].startswith(f"{len(expected)} of 6 observed parcels had NDVI below 0.3")
    _grounded(out, view)

    plan = make_plan("which fields were water-stressed in summer 2022", "rank",
                     win=window("2022-06-01", "2022-08-31", "summer 2022"), class_condition=ClassCondition("moisture", "low"))
    out = _ask(view, plan)
    summer = records[(records.date >= "2022-06-01") & (records.date <= "2022-08-31") & records.valid]
    assert sorted(c["parcel_id"] for c in out["citations"]) == sorted(summer[summer.ndmi_mean < 0.1].parcel_id.unique())
    _grounded(out, view)


def test_similar_lists_other_parcels_with_distances(view):
    plan = make_plan("fields like farm-02 on 2022-09-07", "similar", ["farm-02"], window("2022-09-07"), k=3)
    out = _ask(view, plan)
    assert len(out["similar"]) == 3 and all(s["parcel_id"] != "farm-02" for s in out["similar"])
    assert all(f"{s['parcel_id']} on {s['date']} (distance {s['distance']:.3f}," in out["answer"] for s in out["similar"])
    assert len({s["parcel_id"] for s in out["similar"]}) == 3  # one record per parcel
    _grounded(out, view)


def test_questions_it_cannot_answer_get_a_helpful_answer(view, tmp_path):
    cases = {
        "unknown parcel": (make_plan("how is parcel 99?", unresolved=["99"]), "Nothing in this store is called '99'"),
        "outside the archive": (make_plan("farm-01 in June 2030", "describe", ["farm-01"],
                                          window("2030-06-01", "2030-06-30", "June 2030")), "No acquisition in June 2030"),
        "off topic": (make_plan("what is the capital of France?", "unknown"), "I answer questions about the 6 parcels"),
        "empty area": (make_plan("the rice fields in 2022", "describe", attributes={"attr_crop": ("rice",)},
                                 win=window("2022-01-01", "2022-12-31", "2022")), "No parcel of this store matches"),
        "no place": (make_plan("how is it doing?", "describe"), "Which parcel do you mean?"),
    }
    for name, (plan, expected) in cases.items():
        out = _ask(view, plan)
        assert expected in out["answer"], (name, out["answer"])
        _grounded(out, view)
    # A parser that fails still gets an answer, not a traceback.
    def broken(question, context, today=None, lang=None):
        raise RuntimeError("boom")
    out = build_chain(view, parse=broken).invoke({"question": "?!"})
    assert "I answer questions about" in out["answer"] and "could not be read" in out["warnings"][0]
    assert any("boom" in n for n in out["plan"]["notes"])  # the detail for the log, not the user
    # An empty store.
    source = Store.open(view.path)
    empty = Store.open_or_create(tmp_path / "empty", source.manifest["encoder"])
    empty._dirty = True
    empty.commit()
    out = _ask(StoreView.open(tmp_path / "empty"), make_plan("farm-01 today?", "describe", ["farm-01"]))
    assert "holds no records yet" in out["answer"] and out["citations"] == []


def test_french_question_gets_a_french_answer(view):
    plan = make_plan("Comment va farm-05 en août 2022 ?", "describe", ["farm-05"],
                     window("2022-08-01", "2022-08-31", "août 2022"), lang="fr")
    out = _ask(view, plan)
    row = _row(view, "farm-05", "2022-08-13")
    assert out["answer"].startswith("Parcelle farm-05 le 2022-08-13 : NDVI")
    assert shown(row["analysis_fr"]) in out["answer"] and "de pixels valides" in out["answer"]
    _grounded(out, view)


def test_stream_yields_the_answer_in_pieces_that_add_up_to_invoke(view):
    row = _row(view, "farm-02", "2022-09-07")
    plan = make_plan("farm-02 in September 2022 vs 2021", "compare", ["farm-02"],
                     window("2022-09-01", "2022-09-30", "September 2022"), [window("2021-09-01", "2021-09-30", "September 2021")])
    chain = build_chain(view, FakeListChatModel(responses=[write_analysis(row, seed=1)] * 2), parse=fixed(plan))
    whole = chain.invoke({"question": plan.question})
    chunks = list(chain.stream({"question": plan.question}))
    texts = [c["answer"] for c in chunks if "answer" in c]
    assert len(texts) >= 2 and "".join(texts) == whole["answer"]
    assert chunks[-1]["citations"] == whole["citations"]


def test_answer_writer_mode_keeps_a_grounded_answer_and_rejects_an_invented_number(view):
    row = _row(view, "farm-04", "2023-06-24")
    plan = make_plan("how is farm-04 on 2023-06-24", "describe", ["farm-04"], window("2023-06-24"))
    good = f"Parcel farm-04 on 2023-06-24: NDVI {row['ndvi_mean']:.2f}, high vigor."
    spy = Spy()
    out = _ask(view, plan, FakeListChatModel(responses=[good]), spy, writer="answer")
    assert out["answer"] == good and any("passed the grounding gate" in n for n in out["plan"]["notes"])
    system = spy.messages[0][0].content
    assert "farm-04, 2023-06-24, usable" in system and f"NDVI {row['ndvi_mean']:.2f}" in system
    invented = f"Parcel farm-04 on 2023-06-24: NDVI {row['ndvi_mean'] + 0.11:.2f}."
    out = _ask(view, plan, FakeListChatModel(responses=[invented]), writer="answer")
    assert invented not in out["answer"] and out["answer"].startswith("Parcel farm-04 on 2023-06-24: NDVI")
    assert any("set aside" in n for n in out["plan"]["notes"])


def test_a_trend_reads_the_whole_usable_series_not_first_against_last(view):
    plan = make_plan("NDVI of farm-05 in 2022", "history", ["farm-05"], window("2022-01-01", "2022-12-31", "2022"),
                     index="ndvi")
    out = _ask(view, plan)
    records = view.records()
    own = records[(records.parcel_id == "farm-05") & (records.date >= "2022-01-01") & (records.date <= "2022-12-31")]
    usable = own[own.valid]
    hi, lo = usable.loc[usable.ndvi_mean.idxmax()], usable.loc[usable.ndvi_mean.idxmin()]
    mean = f"{usable.ndvi_mean.mean():.2f}"
    assert f"averaged {mean} over {len(usable)} usable observations of {len(own)}" in out["answer"]
    assert f"Highest {hi.ndvi_mean:.2f} on {hi.date}, lowest {lo.ndvi_mean:.2f} on {lo.date}." in out["answer"]
    assert {h["date"] for h in out["history"]} == set(own.date)
    _grounded(out, view, derived=[mean])


def test_a_threshold_cites_every_match_and_says_when_nothing_was_observed(view):
    plan = make_plan("NDVI below 0.7 in July 2023", "rank", win=window("2023-07-01", "2023-07-31", "July 2023"),
                     condition=Condition("ndvi", "<", 0.7))
    out = _ask(view, plan)
    # The hazy 2023-07-19 scene is suspect, so July 2023 has no usable record: nothing to rank.
    assert out["answer"].startswith("No parcel has a usable observation on 2023-07-19")
    plan = make_plan("NDVI below 0.7 in August 2022", "rank", win=window("2022-08-01", "2022-08-31", "August 2022"),
                     condition=Condition("ndvi", "<", 0.7))
    out = _ask(view, plan)
    records = view.records()
    august = records[(records.date >= "2022-08-01") & (records.date <= "2022-08-31") & records.valid]
    expected = sorted(august[august.ndvi_mean < 0.7].parcel_id)
    assert len(expected) > 2 and sorted(c["parcel_id"] for c in out["citations"]) == expected
    assert all(p in out["answer"] for p in expected)
    _grounded(out, view)


def test_compare_two_parcels_names_both(view):
    plan = make_plan("Compare farm-01 and farm-02 in June 2022", "compare", ["farm-01", "farm-02"],
                     window("2022-06-01", "2022-06-30", "June 2022"))
    out = _ask(view, plan)
    a, b = _row(view, "farm-01", "2022-06-24"), _row(view, "farm-02", "2022-06-24")
    assert f"On 2022-06-24, NDVI: farm-01 {a['ndvi_mean']:.2f}, farm-02 {b['ndvi_mean']:.2f}." in out["answer"]
    delta = round(a["ndvi_mean"], 2) - round(b["ndvi_mean"], 2)
    assert out["answer"].startswith("farm-01 and farm-02 are level" if abs(delta) <= 0.04 else "farm-01 is")
    assert {(c["parcel_id"], c["date"]) for c in out["citations"]} == {("farm-01", "2022-06-24"), ("farm-02", "2022-06-24")}
    _grounded(out, view)


def shown(analysis: str) -> str:
    """What an answer about one observation quotes of a record's analysis (no index asked)."""
    return relevant_sentences(analysis, None)


def test_a_day_without_an_image_is_answered_for_the_nearest_acquisition(view):
    # 2022-05-31: no image; the farm store's nearest is 2022-05-30, one day before.
    plan = make_plan("How is farm-03 doing on 31 May 2022?", "describe", ["farm-03"], window("2022-05-31"))
    out = _ask(view, plan)
    first = out["answer"].split(". ")[0]
    assert first == "No image was taken on 2022-05-31; this is about the nearest, 2022-05-30 (1 day before)"
    assert "farm-03 on 2022-05-30" in out["answer"] and out["plan"]["asked_window"]["start"] == "2022-05-31"
    assert {c["date"] for c in out["citations"]} >= {"2022-05-30"}
    _grounded(out, view, derived=["1"])
    # French, and a day after the image.
    plan = make_plan("Comment va farm-03 le 2 juin 2022 ?", "describe", ["farm-03"], window("2022-06-02"), lang="fr")
    out = _ask(view, plan)
    assert out["answer"].startswith("Aucune image n'a été prise le 2022-06-02 ; la réponse porte sur la plus "
                                    "proche, celle du 2022-05-30 (3 jours avant)")


def test_a_day_far_from_any_image_still_says_there_was_none(view):
    # 2022-01-15 is two months before the season's first image: not moved, the nearest are listed.
    plan = make_plan("How was farm-01 on 15 January 2022?", "describe", ["farm-01"], window("2022-01-15"))
    out = _ask(view, plan)
    assert out["answer"] == ("No image was taken on 2022-01-15. The archive runs from 2021-03-15 to 2023-10-02; "
                             "the nearest acquisitions are 2021-10-02, 2022-03-15, 2022-04-10.")
    assert out["plan"]["asked_window"] is None
