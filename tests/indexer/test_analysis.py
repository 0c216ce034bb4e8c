"""Tests for indexer.analysis: class table, analysis texts and reading classes back."""

from __future__ import annotations

import math
import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, when not installed

from indexer import analysis as an  # noqa: E402
from indexer.analysis import (  # noqa: E402
    CLASS_RULES,
    CLOSINGS,
    analysis_seed,
    classify,
    fact_spans,
    read_classes,
    says_unusable,
    write_analysis,
)

STATS = {"ndvi_mean": 0.63, "ndvi_std": 0.08, "ndvi_p10": 0.51, "ndvi_p90": 0.74, "ndwi_mean": -0.45,
         "ndmi_mean": 0.22, "savi_mean": 0.41, "evi_mean": 0.38, "ndre_mean": 0.31, "valid_fraction": 0.97}


# --- thresholds ---------------------------------------------------------------------------------

BOUNDARIES = [
    ("ndvi_mean", "vigor", [(0.1999, "low"), (0.2, "moderate"), (0.4999, "moderate"), (0.5, "high")]),
    ("ndmi_mean", "moisture", [(0.0999, "low"), (0.1, "moderate"), (0.2999, "moderate"), (0.3, "high")]),
    ("savi_mean", "cover", [(0.1999, "bare_soil"), (0.2, "mixed"), (0.3999, "mixed"),
                            (0.4, "vegetation_dominant")]),
    ("evi_mean", "biomass", [(0.1999, "low"), (0.2, "moderate"), (0.3999, "moderate"), (0.4, "high")]),
    ("ndre_mean", "growth", [(0.1499, "early_or_senescent"), (0.15, "developing"), (0.2999, "developing"),
                             (0.3, "mature_canopy")]),
    ("ndvi_std", "uniformity", [(0.0499, "uniform"), (0.05, "variable"), (0.1199, "variable"),
                                (0.12, "heterogeneous")]),
    ("ndwi_mean", "water", [(-0.0001, "none"), (0.0, "present"), (0.3, "present")]),
]


@pytest.mark.parametrize("stat,aspect,cases", BOUNDARIES, ids=[b[1] for b in BOUNDARIES])
def test_rule_boundaries(stat, aspect, cases):
    for value, label in cases:
        assert classify({stat: value}) == {aspect: label}, (stat, value)


def test_every_rule_is_tested_and_has_phrases():
    assert {r.aspect for r in CLASS_RULES} == {b[1] for b in BOUNDARIES}
    for lang in an.LANGS:
        for rule in CLASS_RULES:
            assert set(an.PHRASES[lang][rule.aspect]) == set(rule.labels)


def test_bad_rule_rejected():
    with pytest.raises(ValueError):
        an.ClassRule("x", "y", (0.5, 0.1), ("a", "b", "c"))


def test_missing_and_nan_omitted():
    stats = dict(STATS, ndre_mean=float("nan"), evi_mean=None)
    del stats["ndmi_mean"]
    got = classify(stats)
    assert set(got) == {"vigor", "cover", "uniformity", "water"}
    text = write_analysis(stats, seed=3)
    assert "NDRE" not in text and "EVI" not in text and "NDMI" not in text
    assert read_classes(text) == got
    assert classify({}) == {}
    assert classify({"ndvi_mean": float("inf")}) == {}


def test_numpy_values_accepted():
    np = pytest.importorskip("numpy")
    assert classify({"ndvi_mean": np.float32(0.55)}) == {"vigor": "high"}


# --- phrase banks -------------------------------------------------------------------------------

def _all_rendered(bank_texts):
    return [an._norm(an._render(t, v="0.50", p10="0.40", p90="0.60", pct="50", frac=" (50%)"))
            for t in bank_texts]


def test_every_template_has_a_key():
    for lang, aspects in an.PHRASES.items():
        for aspect, labels in aspects.items():
            for label, templates in labels.items():
                assert len(templates) >= 3, (lang, aspect, label)
                for t in templates:
                    assert an._STARS.search(t), t
                    assert an._fields(t) <= {"v", "p10", "p90"}, t
                    assert any("{v}" in t for t in templates)  # always a template for the value alone


def test_key_phrases_do_not_collide():
    """No class's key phrase appears in any other class's templates, nor in neutral sentences."""
    keys = an.class_keys()
    for lang, aspect, label, key in keys:
        pat = an._key_pattern(key)
        for lang2, aspects in an.PHRASES.items():
            for aspect2, labels in aspects.items():
                for label2, templates in labels.items():
                    if (aspect2, label2) == (aspect, label):
                        continue
                    for text in _all_rendered(templates):
                        assert not pat.search(text), (key, aspect2, label2, text)
    neutral = [t for bank in (an.INTROS, an.INVALID_FOLLOWUPS) for ts in bank.values() for t in ts]
    neutral += [t for bank in (an.CLOSINGS, an.INVALID) for d in bank.values() for ts in d.values() for t in ts]
    neutral += list(an.NO_INDEX.values())
    for text in _all_rendered(neutral):
        assert read_classes(text) == {}, text
    # ... and class sentences never read as "unusable"
    for _, aspects in an.PHRASES.items():
        for labels in aspects.values():
            for templates in labels.values():
                for text in _all_rendered(templates):
                    assert not says_unusable(text), text


# --- writing and reading back -------------------------------------------------------------------

def _random_stats(rng: random.Random) -> dict:
    stats = {k: rng.uniform(-0.2, 0.9) for k in
             ("ndvi_mean", "ndwi_mean", "ndmi_mean", "savi_mean", "evi_mean", "ndre_mean")}
    stats["ndvi_std"] = rng.uniform(0.0, 0.3)
    stats["ndvi_p10"], stats["ndvi_p90"] = sorted(rng.uniform(-0.2, 0.9) for _ in range(2))
    stats["valid_fraction"] = rng.uniform(0.5, 1.0)
    for k in list(stats):
        r = rng.random()
        if r < 0.1:
            del stats[k]
        elif r < 0.15:
            stats[k] = float("nan")
    return stats


def _random_analyses(rng_seed: int, n: int, lang: str):
    """`n` (stats, analysis text) pairs from random statistics, phrasing seeds 0..n-1."""
    rng = random.Random(rng_seed)
    for seed in range(n):
        stats = _random_stats(rng)
        yield stats, write_analysis(stats, lang=lang, seed=seed)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_round_trip(lang):
    for stats, text in _random_analyses(1234, 500, lang):
        assert read_classes(text) == classify(stats), text
        assert not says_unusable(text)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_fact_spans_cover_every_stated_class_and_number_and_nothing_else(lang):
    for stats, text in _random_analyses(99, 200, lang):
        spans = fact_spans(text)
        facts = [text[a:b] for a, b in spans]
        # Reading the classes from the fact spans alone finds every stated class ...
        assert read_classes(" | ".join(facts)) == classify(stats), (facts, text)
        # ... every quoted value is a span of its own, and the "2" of "Sentinel-2" is not one.
        for value in re.findall(r"-?\d+\.\d\d", text):
            assert value in facts, (value, facts)
        assert "-2" not in facts and "2" not in facts
        # The rest is phrasing: what is left once the spans are removed states no class.
        rest = "".join(c for i, c in enumerate(text) if not any(a <= i < b for a, b in spans))
        assert read_classes(rest) == {}, rest
    unusable = write_analysis({"valid_fraction": 0.13}, valid=False, reason="cloud", lang=lang, seed=1)
    facts = [unusable[a:b] for a, b in fact_spans(unusable)]
    assert "13" in facts and says_unusable(" | ".join(facts))


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_values_quoted_with_two_decimals(lang):
    text = write_analysis(STATS, lang=lang, seed=7)
    for index, value in (("NDVI", "0.63"), ("NDMI", "0.22"), ("SAVI", "0.41"), ("EVI", "0.38"),
                         ("NDRE", "0.31"), ("NDWI", "-0.45")):
        assert index in text and value in text, (index, value, text)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_phrasing_varies(lang):
    texts = {write_analysis(STATS, lang=lang, seed=s) for s in range(20)}
    assert len(texts) >= 5
    firsts = {re.split(r"(?<=\.) ", t)[1] for t in texts}  # vigor sentence wording varies too
    assert len(firsts) >= 2


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_deterministic(lang):
    assert write_analysis(STATS, lang=lang, seed=42) == write_analysis(STATS, lang=lang, seed=42)


def test_english_and_french_differ_and_bad_lang():
    assert write_analysis(STATS, lang="en") != write_analysis(STATS, lang="fr")
    with pytest.raises(ValueError):
        write_analysis(STATS, lang="de")


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("reason", ["cloud", "nodata", "shadow", "snow", None, "weird"])
def test_invalid_observation(lang, reason):
    stats = dict(STATS, ndvi_mean=0.05, valid_fraction=0.03)  # would be "low vigor" if valid
    for seed in range(10):
        text = write_analysis(stats, valid=False, reason=reason, lang=lang, seed=seed)
        assert says_unusable(text), text
        assert read_classes(text) == {}, text
        assert "3" in text  # valid fraction quoted
    cloud = write_analysis({"valid_fraction": 0.0}, valid=False, reason="cloud", lang=lang)
    assert ("cloud" if lang == "en" else "nuage") in cloud.lower()


def test_invalid_without_fraction():
    text = write_analysis({}, valid=False, reason="cloud")
    assert says_unusable(text) and "%" not in text


def test_no_index_text():
    text = write_analysis({"valid_fraction": 1.0}, seed=1)
    assert read_classes(text) == {} and not says_unusable(text)


def test_read_classes_first_stated_wins_and_lenient():
    text = "Vegetation shows high vigor (NDVI 0.7). Later: low vigor. Bare soil everywhere."
    assert read_classes(text) == {"vigor": "high", "cover": "bare_soil"}
    assert read_classes("VÉGÉTATION TRÈS VIGOUREUSE, humidite du couvert elevee") == {
        "vigor": "high", "moisture": "high"}
    assert read_classes("Le couvert paraît sec.") == {"moisture": "low"}
    assert says_unusable("Cette date n’est pas exploitable.")
    assert not says_unusable("Overall, crop development looks good.")


def test_analysis_seed_stable():
    assert analysis_seed("FR-31-000123", "2021-06-01") == 3393298071810897670
    assert analysis_seed("FR-31-000123", "2021-06-01") != analysis_seed("FR-31-000123", "2021-06-02")
    assert not math.isnan(analysis_seed("", ""))


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_snow_is_said_and_never_read_as_soil_water_or_a_failed_crop(lang):
    # Flanders 2018-11-12 under quality rule 1: NDVI 0.00, NDWI > 0 -> "open water", "field visit".
    snowed = dict(STATS, ndvi_mean=0.002, ndwi_mean=0.05, savi_mean=0.01, valid_fraction=0.04)
    for seed in range(10):
        text = write_analysis(snowed, valid=False, reason="snow", lang=lang, seed=seed)
        assert ("snow" if lang == "en" else "neige") in text and says_unusable(text)
        assert read_classes(text) == {}, text  # no vigor, cover or water class at all
        assert not any(w in text.lower() for w in ("water", "visit", "eau libre", "visite"))


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_too_small_parcel_says_so_first_and_recommends_nothing(lang):
    small = dict(STATS, ndvi_mean=0.15, n_pixels=2)  # "low vigor" would close with "a field visit"
    for seed in range(20):
        text = write_analysis(small, lang=lang, seed=seed, too_small=True)
        sentences = re.split(r"(?<=\.) ", text)
        assert ("2 pixels" if lang == "en" else "2 pixels de 10 m") in sentences[1], text
        assert not any(c in text for c in CLOSINGS[lang]["low"]), text
        assert read_classes(text) == classify(small)  # the values are still stated, with the caveat
    assert any(c in write_analysis(small, lang=lang, seed=s) for s in range(20) for c in CLOSINGS[lang]["low"])


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_missing_bands_is_its_own_reason_never_cloud_and_quotes_no_fraction(lang):
    text = write_analysis({"valid_fraction": 1.0}, valid=False, reason="missing bands", lang=lang)
    assert says_unusable(text)
    assert "%" not in text  # nothing of the ground was measured: no "100% valid pixels"
    assert not any(word in text.lower() for word in ("cloud", "nuage"))
    assert ("bands" if lang == "en" else "bandes") in text
