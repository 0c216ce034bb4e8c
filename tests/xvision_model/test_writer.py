"""What users read (xvision_model.writer): the analysis grammar, fill-ins, the unusable rule."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from indexer.analysis import EVALUATED_ASPECTS, read_classes, says_unusable, write_analysis
from indexer.pipeline import IndexConfig, index
from indexer.store import Store
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder
from xvision_model.tiny import build_tiny_model
from xvision_model.writer import (
    SentenceFilter, failures, grammar_text, parse_sentence, split_sentences, unusable_text, write_analyses,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

RECORD = {"ndvi_mean": 0.72, "ndmi_mean": 0.12, "savi_mean": 0.38, "evi_mean": 0.57, "ndre_mean": 0.21,
          "ndvi_std": 0.04, "ndvi_p10": 0.61, "ndvi_p90": 0.80, "ndwi_mean": -0.57, "valid_fraction": 1.0,
          "valid": True, "parcel_id": "p-1", "date": "2021-06-01"}
#: The loop measured on L1C imagery the model never saw (issue 11), cut off mid-sentence.
LOOP = ("Vigorous vegetation across the parcel, NDVI 0.72. The parcel is free of surface water (NDWI -0.60). "
        "The parcel is free of surface water (NDWI -0.60). The parcel is free of surface water (NDWI -0.57). "
        "SAVI of 0.41 reflects a dense vegetation cover. The parcel is free of surface")
LOOP_FR = ("Végétation très vigoureuse (NDVI moyen 0.70). Aucune eau de surface détectée (NDWI -0.60). "
           "Aucune eau de surface détectée (NDWI -0.60). Aucune eau de surface détectée (NDWI -0.60).")


def _random_records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = ("ndvi_mean", "ndmi_mean", "savi_mean", "evi_mean", "ndre_mean", "ndwi_mean")
    return [{**dict(zip(names, rng.uniform(-0.3, 0.95, len(names)))), "ndvi_std": rng.uniform(0, 0.2),
             "ndvi_p10": rng.uniform(0, 0.5), "ndvi_p90": rng.uniform(0.5, 1.0), "valid_fraction": rng.uniform(0.3, 1),
             "valid": True, "parcel_id": f"p-{i}", "date": "2021-06-01"} for i in range(n)]


def _aspect_counts(text: str, lang: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sentence in split_sentences(text):
        parsed = parse_sentence(sentence, lang)
        assert parsed is not None, sentence  # every sentence shown is a grammar sentence
        if parsed[0].kind == "aspect":
            counts[parsed[0].aspect] = counts.get(parsed[0].aspect, 0) + 1
    return counts


def _numbers(text: str) -> list[str]:
    return re.findall(r"(?<![\w-])-?\d+\.\d+", text)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_analysis_the_indexer_writes_is_kept_as_it_is(lang):
    for i, record in enumerate(_random_records(150)):
        text = write_analysis(record, seed=i, lang=lang)
        assert grammar_text(text, record, lang) == text
        unusable = {**record, "valid": False, "invalid_reason": ("cloud", "nodata", "")[i % 3],
                    "valid_fraction": (0.0, 0.12, 0.29)[i % 3]}
        text = write_analysis(unusable, valid=False, reason=unusable["invalid_reason"] or None, seed=i, lang=lang)
        assert grammar_text(text, unusable, lang) == text


@pytest.mark.parametrize("lang, raw", [("en", LOOP), ("fr", LOOP_FR)])
def test_a_loop_becomes_one_statement_per_aspect_with_the_records_numbers(lang, raw):
    assert failures(raw, RECORD, lang)["repeated_sentence"] and failures(raw, RECORD, lang)["missing_aspect"]
    assert failures(raw, RECORD, lang)["wrong_number"]  # the loop's NDWI -0.60 and SAVI 0.41
    asked = []

    def even(prefix, candidates):  # every phrase equally likely: the model's stated classes stand
        asked.append(candidates)
        return [0.0] * len(candidates)

    text = grammar_text(raw, RECORD, lang, scorer=even)
    assert not any(failures(text, RECORD, lang).values())
    counts = _aspect_counts(text, lang)
    assert all(counts[a] == 1 for a in EVALUATED_ASPECTS) and max(counts.values()) == 1
    # The model's own statements stay first, in its order; what it never said is chosen by it.
    assert split_sentences(text)[0].startswith("Vigorous" if lang == "en" else "Végétation très vigoureuse")
    # Only the aspects the model never stated were asked of it (at the end); its stated classes stand.
    assert len(asked) == len(set(EVALUATED_ASPECTS) - set(read_classes(raw))) >= 1
    asked.clear()
    grammar_text(raw, RECORD, lang, scorer=even, repair="override")
    assert len(asked) == 3  # "override" asks every aspect: where it was stated, or at the end
    # Every number is the record's, at the precision written (the model had written 0.60 and 0.41).
    record_values = {f"{v:.2f}" for k, v in RECORD.items() if isinstance(v, float)}
    assert _numbers(text) and set(_numbers(text)) <= record_values
    assert "-0.57" in text and "-0.60" not in text and "0.41" not in text


def test_an_unusable_statement_stays_one_and_a_valid_record_is_still_described():
    raw = ("Clouds obscure the parcel, so this date is not usable. Vegetation shows low vigor (NDVI 0.10). "
           "No agronomic conclusion can be drawn from this date.")
    text = grammar_text(raw, RECORD, "en", scorer=lambda p, c: [0.0] * len(c))
    assert says_unusable(text) and not read_classes(text)  # the model said unusable: its classes go
    shown = SentenceFilter(RECORD, "en", usable=True, scorer=lambda p, c: [0.0] * len(c))
    for sentence in split_sentences(raw):
        shown.feed(sentence)
    shown.finish()
    assert not says_unusable(shown.text) and set(EVALUATED_ASPECTS) <= set(read_classes(shown.text))
    assert "0.72" in shown.text  # the model's low vigor is kept, with the record's number


@pytest.fixture(scope="module")
def model():
    """An untrained tiny model: what it writes is noise, which is the point of the rule tested here."""
    texts = [write_analysis(r, seed=i) for i, r in enumerate(_random_records(60, seed=1))]
    return build_tiny_model(texts, in_dim=8, num_tokens=2, vocab_size=300, hidden=32, layers=1, heads=2, kv_heads=1,
                            intermediate=48, max_positions=256, lora=None, seed=0).eval()


@pytest.fixture(scope="module")
def clouded_store(shared_data, tmp_path_factory):
    """Real Flanders acquisitions, clear and clouded, on the real parcels."""
    folder = shared_data / "worldcereal-flanders"
    if not folder.is_dir():
        pytest.skip(f"Flanders samples not present at {folder}")
    files = sorted(folder.glob("S2_L2A_Flanders31UES_2018-0*.tif"))[:8]
    store = tmp_path_factory.mktemp("flanders") / "store"
    index(IndexConfig(store=store, inputs=tuple(map(str, files)), parcels=folder / "parcels_Flanders31UES.gpkg",
                      progress=False), build_encoder(DEFAULT_ENCODER))
    return store


@pytest.mark.parametrize("lang, column", [("en", "analysis"), ("fr", "analysis_fr")])
def test_every_unusable_record_of_a_real_store_is_shown_unusable_with_its_reason(model, clouded_store, lang, column):
    store = Store.open(clouded_store)
    table = store.records().sort_values("record_id")
    unusable = table[~table["valid"].astype(bool)]
    assert len(unusable) >= 40 and table["valid"].any()  # clouds on most of these dates
    rows = unusable.to_dict("records")
    features = torch.from_numpy(store.vectors(unusable["record_id"].tolist()))
    # The model here never learned what an embedding means: whatever it writes, the rule holds.
    written = write_analyses(model, features[:, :8], rows, lang, max_new_tokens=24)
    reasons = {"en": {"cloud": "cloud", "nodata": "no valid data"}, "fr": {"cloud": "nuage", "nodata": "aucune donnée"}}
    for analysis, record in zip(written, rows):
        assert analysis.text == unusable_text(record, lang) == record[column]
        assert says_unusable(analysis.text) and not read_classes(analysis.text)
        assert reasons[lang][record["invalid_reason"]] in analysis.text.lower()
        assert failures(analysis.text, record, lang) == {"repeated_sentence": False, "missing_aspect": False,
                                                         "unusable_as_usable": False, "wrong_number": False}
    # The model's own text is kept apart, for evaluation: here it describes clouds as fields.
    assert any(failures(a.generated, r)["unusable_as_usable"] for a, r in zip(written, rows))


def test_the_class_shown_is_the_models_most_probable_summed_over_its_phrasings():
    """Greedy decoding stated high vigor; the model's likelihoods give moderate vigor more mass in
    total (two phrasings at 0.3 against one at 0.4): moderate is shown, with the record's number."""
    from xvision_model.writer import decide_class

    probabilities = {"Vegetation displays high vigor": 0.4, "Vegetation shows moderate vigor": 0.3,
                     "Medium vigor": 0.3}

    def scorer(prefix, candidates):
        return [np.log(probabilities.get(c, 1e-6)) for c in candidates]

    total, best = decide_class(scorer, "", "vigor", "en")
    assert best.label == "moderate" and max(total, key=total.get) == "moderate"
    assert np.isclose(np.exp(total["moderate"]), 0.6) and np.isclose(np.exp(total["high"]), 0.4)
    raw = "Vegetation displays high vigor (NDVI 0.31). The canopy looks dry (NDMI 0.05)."
    text = grammar_text(raw, RECORD, "en", scorer=scorer, repair="override")
    assert read_classes(text)["vigor"] == "moderate" and "0.72" in text and "0.31" not in text
    assert split_sentences(text)[0] == "Vegetation shows moderate vigor (NDVI 0.72)."
    # The default repair fills only what the model did not state: its high vigor stands, with the
    # record's number, and the cover it never reached is its most probable class.
    text = grammar_text(raw, RECORD, "en", scorer=scorer)
    assert split_sentences(text)[0] == "Vegetation displays high vigor (NDVI 0.72)."
    assert set(read_classes(text)) >= set(EVALUATED_ASPECTS)
    # Without a scorer the decoded class stands (and nothing is filled in).
    assert read_classes(grammar_text(raw, RECORD, "en"))["vigor"] == "high"


def test_a_class_named_in_a_garbled_sentence_is_the_class_filled_in():
    """The model named dense cover in a sentence outside the grammar: that class is shown (in the
    grammar's most probable phrasing of it), not the likelihood's favourite."""
    raw = ("Vegetation displays high vigor (NDVI 0.72). The canopy looks dry (NDMI 0.12). "
           "The ground shows a dense vegetation cover with some gaps (SAVI 0.38).")
    assert read_classes(raw)["cover"] == "vegetation_dominant"

    def prefers_bare(prefix, candidates):
        return [0.0 if "soil" in c.lower() or "little" in c.lower() else -5.0 for c in candidates]

    text = grammar_text(raw, RECORD, "en", scorer=prefers_bare)
    assert read_classes(text)["cover"] == "vegetation_dominant"
    assert grammar_text(raw.rsplit(". ", 1)[0] + ".", RECORD, "en", scorer=prefers_bare).count("oil") >= 1


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_what_users_see_is_never_worse_than_the_decoded_text_on_any_aspect(lang):
    """Random decoded texts (grammar sentences of random classes, repeated, garbled, cut off) and a
    scorer that favours random classes: with the default repair, every aspect the decoded text
    gets right (`read_classes` against `classify`) is right in the text users see."""
    from indexer.analysis import classify

    rng = np.random.default_rng(7)
    for i, record in enumerate(_random_records(120, seed=9)):
        pieces = []
        for k in range(int(rng.integers(1, 6))):
            other = _random_records(1, seed=1000 * i + k)[0]
            sentences = split_sentences(write_analysis(other, seed=int(rng.integers(1 << 30)), lang=lang))
            sentence = sentences[int(rng.integers(len(sentences)))]
            if rng.random() < 0.3:  # garbled: a word dropped
                words = sentence.split()
                del words[int(rng.integers(len(words)))]
                sentence = " ".join(words)
            pieces.append(sentence)
        raw = " ".join(pieces)
        favourite = rng.random(64)

        def scorer(prefix, candidates):
            return [float(favourite[hash(c) % 64]) for c in candidates]

        shown = SentenceFilter(record, lang, usable=True, scorer=scorer)
        for sentence in split_sentences(raw):
            shown.feed(sentence)
        shown.finish()
        truth, decoded, seen = classify(record), read_classes(raw), read_classes(shown.text)
        for aspect in EVALUATED_ASPECTS:
            if decoded.get(aspect) == truth[aspect]:
                assert seen.get(aspect) == truth[aspect], (raw, shown.text)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_number_slots_are_filled_from_the_record(lang):
    """A slot-trained model writes '#' where a number goes: the grammar text and the decoded text
    (`fill_slots`) carry the record's values, and the slots are never failures."""
    from xvision_model.writer import fill_slots

    for i, record in enumerate(_random_records(60, seed=11)):
        slotted = write_analysis(record, seed=i, lang=lang, slots=True)
        plain = write_analysis(record, seed=i, lang=lang)
        assert "#" in slotted and not re.search(r"\d\.\d", slotted)
        assert fill_slots(slotted, record, lang) == plain  # uniformity's "percentiles 10-90" untouched
        assert grammar_text(slotted, record, lang) == plain
        assert not failures(fill_slots(slotted, record, lang), record, lang)["wrong_number"]
    # A number the model decoded itself is never rewritten by the filling: it stays a failure.
    record = RECORD
    raw = "Vegetation displays high vigor (NDVI 0.31). The canopy looks dry (NDMI #)."
    filled = fill_slots(raw, record, "en")
    assert "0.31" in filled and "NDMI 0.12" in filled and failures(filled, record, "en")["wrong_number"]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_number_other_than_the_records_is_a_failure(lang):
    record = _random_records(1, seed=4)[0]
    text = write_analysis(record, seed=3, lang=lang)
    assert not failures(text, record, lang)["wrong_number"]  # what the indexer writes
    changed = {**record, "ndvi_mean": record["ndvi_mean"] + 0.01}
    assert failures(text, changed, lang)["wrong_number"]  # NDVI off by 0.01 at two decimals
    assert failures(text + " Garbled 0.5 sentence.", record, lang)["wrong_number"]  # a number outside the grammar
    assert not failures(text + " Garbled sentence.", record, lang)["wrong_number"]


def test_batched_scoring_writes_what_per_record_and_streamed_writing_write(model):
    """Every record's class requests answered together (one forward pass per round) give the texts
    that scoring each record alone, and streaming each record, give; and the scoring decides."""
    rows = _random_records(12, seed=5)
    torch.manual_seed(0)
    features = torch.randn(len(rows), 8)
    batched = write_analyses(model, features, rows, "en", max_new_tokens=40, batch_size=5)
    alone = write_analyses(model, features, rows, "en", max_new_tokens=40, batch_size=5, scoring="per_record")
    assert batched == alone
    for i, record in enumerate(rows):
        pieces: list[str] = []
        streamed = write_analyses(model, features[i:i + 1], [record], "en", max_new_tokens=40, on_text=pieces.append)
        assert streamed == [batched[i]] and " ".join(pieces) == batched[i].text
    unscored = write_analyses(model, features, rows, "en", max_new_tokens=40, scoring="none")
    assert [a.raw for a in unscored] == [a.raw for a in batched]  # the same decoded text ...
    assert [a.generated for a in unscored] != [a.generated for a in batched]  # ... held to other classes
    for analysis, record in zip(batched, rows):  # scored: every aspect stated once
        assert _aspect_counts(analysis.text, "en") == {a: 1 for a in EVALUATED_ASPECTS}


def test_a_continuations_score_is_its_log_likelihood_after_the_text(model):
    from xvision_model.writer import PROMPTS, _Scoring

    prompt = model.tokenizer(PROMPTS["en"], add_special_tokens=False)["input_ids"]
    torch.manual_seed(1)
    features = torch.randn(2, 8)
    requests = [("Vigorous vegetation across the parcel.", ("Moisture content is low", "The canopy is dry")),
                ("", ("Moisture content is high",))]
    scores = _Scoring(model, prompt).score(features, requests)
    for i, (prefix, candidates) in enumerate(requests):
        for candidate, score in zip(candidates, scores[i]):
            head = model.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
            tail = model.tokenizer((" " if prefix else "") + candidate, add_special_tokens=False)["input_ids"]
            with torch.no_grad():  # the whole row alone, every position's logits
                batch = model.splice(features[i:i + 1], [prompt], [head + tail])
                logp = model.run(batch).logits[0].log_softmax(-1)
            n = batch.inputs_embeds.shape[1] - 1  # the last position is EOS
            expected = sum(logp[n - len(tail) + k - 1, t].item() for k, t in enumerate(tail))
            assert score == pytest.approx(expected, abs=1e-4)
