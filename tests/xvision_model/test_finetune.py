"""Training and evaluation of the generator on real (tiny) stores: split, loop, resume, scores."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import make_rasters
from indexer.analysis import EVALUATED_ASPECTS, read_classes, says_unusable, write_analysis
from indexer.pipeline import IndexConfig, index
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder
from indexer.store import Store
from indexer.core.errors import InputError, WeightsError
from xvision_model.artifacts import load_model, read_card
from xvision_model.evaluate import Scores, describe, evaluate, score_analysis
from xvision_model.finetune import TINY, Split, build_pairs, held_out_parcels, train
from xvision_model.finetune.dataset import SPLIT_NAME, UNOBSERVED_PREFIX, store_fingerprint, with_unobserved
from xvision_model.finetune.augment import require_sources
from xvision_model.finetune.batches import length_bucketed
from xvision_model.finetune.profiles import AugmentSettings, StageSettings
from xvision_model.lm import PICKLE_SUFFIXES, LoraSettings, TinyLMSettings
from xvision_model.writer import failures, parse_sentence, split_sentences, write_analyses

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

DATES = ("2021-04-01", "2021-07-01")
#: The tiny profile scaled down to seconds: same code path, smaller everything.
QUICK = dataclasses.replace(
    TINY,
    tiny_lm=TinyLMSettings(vocab_size=300, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, max_positions=256),
    text_stage=StageSettings(epochs=2, lr=5e-3, batch_size=8, rephrase=0.5, decimal_sigma=1.0),
    vision_stage=StageSettings(epochs=3, lr=5e-3, batch_size=8, feature_noise=0.1, rephrase=1.0, aux_weight=0.5,
                               decimal_sigma=1.0, fact_weight=3.0, validate_every=2),
    num_tokens=4,
    lora=LoraSettings(r=4, alpha=8, dropout=0.0),
    augment=AugmentSettings(copies=1),
)


def _index(inputs: list[Path], store: Path, grid: int = 20) -> Path:
    index(IndexConfig(store=store, inputs=tuple(map(str, inputs)), grid=grid, progress=False), build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture(scope="module")
def small_store(hesbaye_dir, tmp_path_factory) -> Path:
    """Two Hesbaye dates on a 20 px grid: 25 parcels x 2 dates."""
    files = [hesbaye_dir / f"S2_L2A_hesbaye_{d}.tif" for d in DATES]
    return _index(files, tmp_path_factory.mktemp("ft") / "store")


@pytest.fixture(scope="module")
def trained(small_store, hesbaye_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "model"
    # No imagery named: the chips are re-read from the sources the store recorded.
    return train(small_store, out, profile=QUICK, progress=False, seed=0), out


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_split_is_by_parcel_without_leak(small_store, tmp_path):
    store = Store.open(small_store)
    pairs = build_pairs(store, "both")
    assert len(pairs) == 2 * len(store)  # "both": each record in English and in French
    split = Split.of(store, pairs)
    assert split.held_out and split.train_parcels > 0
    val = pairs.select(split.held_out, keep=True)
    rest = pairs.select(split.held_out, keep=False)
    assert val.parcels.isdisjoint(rest.parcels)
    assert len(val) + len(rest) == len(pairs)
    # Every date of a held-out parcel is held out.
    dates = store.records().groupby("parcel_id")["date"].nunique()
    assert len(val) == 2 * sum(dates[p] for p in split.held_out)
    # Deterministic, and about the asked fraction on many ids.
    assert Split.of(store, pairs).held_out == split.held_out
    ids = [f"parcel-{i}" for i in range(2000)]
    assert held_out_parcels(ids) == held_out_parcels(reversed(ids))
    assert 0.17 < len(held_out_parcels(ids)) / len(ids) < 0.23
    assert len(held_out_parcels(["a", "b"], 0.2)) == 1
    split.save(tmp_path)
    assert Split.load(tmp_path).held_out == split.held_out


def test_both_languages_train_one_language_per_record_drawn_anew_each_epoch(small_store):
    """"both": each training record appears once (not twice: training time stays that of one
    language), in either language, and each epoch draws its language again, with the prompt of
    that language; the targets write number slots, the record's words otherwise."""
    from indexer.analysis import NUMBER_SLOT
    from xvision_model.finetune.dataset import PROMPTS, one_language_each
    from xvision_model.finetune.tokens import token_rows
    from xvision_model.tokenizer import train_tokenizer

    store = Store.open(small_store)
    pairs = build_pairs(store, "both", slots=True)
    once = one_language_each(pairs)
    assert len(once) == len(store) and {p.lang for p in once.pairs} == {"en", "fr"}
    assert len({p.row for p in once.pairs}) == len(once)
    for pair in once.pairs[:20]:
        record = once.records[pair.row]
        plain = record["analysis" if pair.lang == "en" else "analysis_fr"]
        # The stored analysis with its numbers replaced by slots: same phrasing, same classes.
        assert NUMBER_SLOT in pair.text and not re.search(r"\d\.\d", pair.text)
        assert read_classes(pair.text) == read_classes(plain)
    tokenizer = train_tokenizer([p.text for p in pairs.pairs] + list(PROMPTS.values()), vocab_size=300)
    data, _ = token_rows(once, once.select([], keep=True), tokenizer, prompts=list(PROMPTS.values()),
                         max_length=256, visual_tokens=4, marks=False)
    prompt_of = {code: tokenizer(PROMPTS[code], add_special_tokens=False)["input_ids"] for code in PROMPTS}
    seen: dict[int, set[str]] = {}
    for variant in range(1, 6):
        epoch = data.rephrased(1.0, seed=0, variant=variant)
        for i in range(len(epoch)):
            lang = "en" if epoch.prompts[i] == prompt_of["en"] else "fr"
            assert epoch.prompts[i] == prompt_of[lang]
            # The target is the record's analysis written in the prompt's language.
            text = once.rephrase(once.in_language(once.pairs[i], lang), variant=variant)
            assert epoch.targets[i] == tokenizer(text, add_special_tokens=False)["input_ids"][:data.max_target]
            assert ("Vegetation" in text or "NDVI of" in text or "vigor" in text.lower()) == (lang == "en")
            seen.setdefault(i, set()).add(lang)
    assert sum(len(langs) == 2 for langs in seen.values()) > 0.8 * len(seen)  # most records seen in both


def test_unobserved_pairs_teach_zero_vector_means_unusable(small_store):
    pairs = build_pairs(Store.open(small_store), "both")
    assert all(p.valid for p in pairs.pairs)  # cloud-free composites: the case the pairs exist for
    extended = with_unobserved(pairs, share=0.05, seed=1)
    added = extended.pairs[len(pairs):]
    assert len(added) == round(0.05 * len(pairs)) and {p.lang for p in added} == {"en", "fr"}
    assert extended.pairs[: len(pairs)] == pairs.pairs
    for pair in added:
        assert pair.parcel_id.startswith(UNOBSERVED_PREFIX) and not pair.valid
        assert not extended.features[pair.row].any() and np.isnan(extended.stats[pair.row]).all()
        for text in (pair.text, extended.rephrase(pair, variant=3)):
            assert says_unusable(text) and not set(EVALUATED_ASPECTS) & set(read_classes(text))
    # Real pairs keep their vectors; nothing is added when the set already has unusable records.
    assert np.array_equal(extended.features[: len(pairs.features)], pairs.features)
    assert with_unobserved(extended) is extended and with_unobserved(pairs, share=0) is pairs


def test_class_targets_are_the_classes_each_analysis_states(small_store):
    """The targets the adapter's "target" bins are fitted to: per pair, the class index of every
    rule, the classes its analysis text states; -1 for a pair with no usable observation."""
    from indexer.analysis import CLASS_RULES
    from xvision_model.finetune.dataset import class_targets

    pairs = with_unobserved(build_pairs(Store.open(small_store), "en"), share=0.1, seed=0)
    targets = class_targets(pairs)
    assert targets.shape == (len(pairs), len(CLASS_RULES))
    for pair, row in zip(pairs.pairs, targets):
        if not pair.valid:
            assert (row == -1).all()
            continue
        stated = read_classes(pair.text)
        assert stated and all(CLASS_RULES[k].labels[row[k]] == stated[rule.aspect]
                              for k, rule in enumerate(CLASS_RULES) if rule.aspect in stated)
    assert (targets[[p.valid for p in pairs.pairs]] >= 0).all()


def test_validation_cadence():
    stage = StageSettings(epochs=8, lr=1e-3, validate_every=3)
    assert [e for e in range(1, 9) if stage.validates_after(e)] == [3, 6, 8]
    assert all(StageSettings(epochs=2, lr=1e-3).validates_after(e) for e in (1, 2))
    with pytest.raises(InputError, match="validate_every"):
        StageSettings(epochs=2, lr=1e-3, validate_every=0)


def test_training_lowers_validation_loss_and_writes_a_model(trained, small_store):
    result, out = trained
    log = _log(out)
    for stage in ("text", "vision"):
        epochs = [e for e in log if e.get("event") == "epoch" and e["stage"] == stage]
        assert len(epochs) == (QUICK.text_stage if stage == "text" else QUICK.vision_stage).epochs
        validated = [e for e in epochs if e["val_loss"] is not None]
        assert validated[-1]["val_loss"] < validated[0]["val_loss"]
    # The vision stage validates every second epoch and after its last: epochs 2 and 3, not 1.
    vision = [e for e in log if e.get("event") == "epoch" and e["stage"] == "vision"]
    assert [e["val_loss"] is not None for e in vision] == [False, True, True]
    assert abs(result.val_loss - vision[-1]["val_loss"]) < 1e-5
    card = read_card(out)
    assert card["encoder"] == "spectral-v2" and card["profile"] == "tiny"
    assert card["training"]["held_out_parcels"] == result.held_out_parcels > 0
    assert card["training"]["augmentation"]["copies"] == 1  # chips re-read from the recorded sources
    held = json.loads((out / SPLIT_NAME).read_text())["held_out"]
    assert len(held) == result.held_out_parcels
    model = load_model(out)
    assert model.is_lora and model.adapter.config.in_dim == 64 and model.adapter.config.num_tokens == 4
    assert result.steps == QUICK.vision_stage.epochs * -(-result.n_train // QUICK.vision_stage.batch_size)


def test_resume_continues_from_the_checkpoint(trained, tmp_path, small_store):
    _, out = trained
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    before = [e for e in _log(copy) if e.get("stage") == "vision" and "loss" in e]
    extra = QUICK.vision_stage.epochs + 1
    result = train(small_store, copy, profile=QUICK, epochs=extra, resume=True, progress=False)
    after = [e for e in _log(copy) if e.get("stage") == "vision" and "loss" in e]
    resumed = after[len(before):]
    assert resumed[0]["step"] == before[-1]["step"] + 1 and resumed[0]["epoch"] == extra
    assert result.steps == resumed[-1]["step"]
    assert not [p for p in copy.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert json.loads((copy / "checkpoint" / "state.json").read_text())["epoch"] == extra
    load_model(copy)
    with pytest.raises(InputError, match="lang"):
        train(small_store, copy, profile=QUICK, resume=True, lang="fr", progress=False)


def test_evaluate_scores_held_out_parcels(trained, small_store):
    result, out = trained
    scores = evaluate(out, small_store, batch_size=16)
    assert {"overall", "per_aspect", "all_three", "n", "held_out"} <= scores.keys()
    assert scores["held_out"] is True and scores["n"] == result.n_val
    assert set(scores["per_aspect"]) == set(EVALUATED_ASPECTS)
    for value in [scores["overall"], scores["all_three"], *scores["per_aspect"].values()]:
        assert 0.0 <= value <= 1.0
    limited = evaluate(out, small_store, limit=3)  # trained in both languages: each record in each
    assert limited["lang"] == "both" and limited["n"] == 6
    assert {code: r["n"] for code, r in limited["by_lang"].items()} == {"en": 3, "fr": 3}
    assert evaluate(out, small_store, limit=3, lang="en")["n"] == 3
    # The scores are the tally of what the model wrote for each held-out record, aspect by aspect.
    store = Store.open(small_store)
    held = store.records()[store.records()["parcel_id"].isin(Split.load(out).held_out)].sort_values("record_id")
    rows = held.to_dict("records")
    model = load_model(out, merge=True).eval()
    features = torch.from_numpy(store.vectors(held["record_id"].tolist()))
    written = write_analyses(model, features, rows, "en", max_new_tokens=read_card(out)["training"]["max_new_tokens"])
    verdicts = [score_analysis(a.generated, r, bool(r["valid"])) for a, r in zip(written, rows)]
    for aspect in EVALUATED_ASPECTS:
        assert scores["per_aspect"][aspect] == pytest.approx(np.mean([v[aspect] for v in verdicts]))
    assert scores["overall"] == pytest.approx(np.mean([ok for v in verdicts for ok in v.values()]))
    assert scores["all_three"] == pytest.approx(np.mean([all(v.values()) for v in verdicts]))
    raw_missing = np.mean([failures(a.raw, r)["missing_aspect"] for a, r in zip(written, rows)])
    raw_numbers = np.mean([failures(a.raw, r)["wrong_number"] for a, r in zip(written, rows)])
    assert scores["failures"]["raw"]["missing_aspect"] == pytest.approx(raw_missing)
    assert scores["failures"]["raw"]["wrong_number"] == pytest.approx(raw_numbers)
    # What users see: every number is the record's, by construction.
    assert scores["failures"]["shown"] == {"repeated_sentence": 0.0, "missing_aspect": 0.0, "unusable_as_usable": 0.0,
                                           "wrong_number": 0.0}


def test_scores_of_known_texts():
    """The tally itself: the records' own analyses score 1, a wrong vigor class costs exactly vigor."""
    rng = np.random.default_rng(4)
    records = [{"ndvi_mean": v, "ndmi_mean": m, "savi_mean": c, "valid_fraction": 1.0}
               for v, m, c in rng.uniform(-0.1, 0.9, (40, 3))]
    right, wrong_vigor = Scores(), Scores()
    for i, record in enumerate(records):
        right.add(write_analysis(record, seed=i), record, True)
        lie = {**record, "ndvi_mean": 0.9 if record["ndvi_mean"] < 0.5 else 0.1}
        wrong_vigor.add(write_analysis(lie, seed=i), record, True)
    assert right.result() == {"overall": 1.0, "per_aspect": {a: 1.0 for a in EVALUATED_ASPECTS}, "all_three": 1.0}
    assert wrong_vigor.result()["per_aspect"] == {"vigor": 0.0, "moisture": 1.0, "cover": 1.0}
    assert wrong_vigor.result()["overall"] == pytest.approx(2 / 3) and wrong_vigor.result()["all_three"] == 0.0


def test_evaluate_other_store_scores_every_record(trained, tmp_path):
    _, out = trained
    other = _index([make_rasters.write_l2a_stack(tmp_path)], tmp_path / "other")
    scores = evaluate(out, other, lang="fr")
    assert scores["held_out"] is False and scores["n"] == len(Store.open(other))


def test_batched_single_and_streamed_writing_agree(trained, small_store):
    """The trained model writes sentences, loops and drops aspects; all three paths show the same."""
    model = load_model(trained[1], merge=True).eval()
    store = Store.open(small_store)
    records = store.records().sort_values("record_id").iloc[:5].to_dict("records")
    records[3] = {**records[3], "valid": False, "invalid_reason": "cloud", "valid_fraction": 0.1}
    features = torch.from_numpy(store.vectors([r["record_id"] for r in records]))
    batched = write_analyses(model, features, records, max_new_tokens=60, batch_size=3)
    for i, record in enumerate(records):
        single = write_analyses(model, features[i:i + 1], [record], max_new_tokens=60)[0]
        pieces = []
        streamed = write_analyses(model, features[i:i + 1], [record], max_new_tokens=60, on_text=pieces.append)[0]
        assert single == streamed == batched[i]
        assert " ".join(pieces) == streamed.text
    # Whatever the model decoded, what users read fails in none of the three ways.
    for analysis, record in zip(batched, records):
        assert not any(failures(analysis.text, record).values()), analysis
        if record["valid"]:
            assert all(n == 1 for n in _aspect_counts(analysis.text).values())
            stated = set(re.findall(r"(?<![\w-])-?\d+\.\d+", analysis.text))
            assert stated <= {f"{v:.2f}" for v in record.values() if isinstance(v, float)}
    assert any(a.raw != a.generated for a in batched)  # the decoded text did need the grammar


def _aspect_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sentence in split_sentences(text):
        parsed = parse_sentence(sentence, "en")
        assert parsed is not None, sentence  # every sentence shown is a grammar sentence
        if parsed[0].kind == "aspect":
            counts[parsed[0].aspect] = counts.get(parsed[0].aspect, 0) + 1
    return counts



def test_describe_reports_indices_beside_the_text(trained, small_store):
    _, out = trained
    record = Store.open(small_store).records().iloc[0]
    info = describe(out, small_store, record["parcel_id"], record["date"])
    assert isinstance(info["generated"], str) and info["reference"] == record["analysis"]
    assert info["indices"]["ndvi_mean"] == pytest.approx(record["ndvi_mean"], abs=1e-4)
    assert set(info["faithful"]) <= set(EVALUATED_ASPECTS)


def test_length_bucketed_batches_cover_every_row_once_with_less_padding():
    rng = np.random.default_rng(0)
    targets = [[0] * int(n) for n in rng.integers(80, 190, size=1003)]

    def steps(seed, pool):
        return length_bucketed(targets, 8, torch.Generator().manual_seed(seed), pool_steps=pool)

    bucketed = steps(1, 32)
    assert sorted(i for step in bucketed for i in step) == list(range(len(targets)))
    assert [len(s) for s in bucketed].count(8) == len(targets) // 8 and len(bucketed) == -(-len(targets) // 8)
    assert bucketed == steps(1, 32) and bucketed != steps(2, 32)

    def padding(batches):
        lengths = [[len(targets[i]) for i in step] for step in batches]
        return sum(max(ls) * len(ls) - sum(ls) for ls in lengths) / sum(max(ls) * len(ls) for ls in lengths)

    # pool_steps=1 is plain random batching.
    assert padding(bucketed) < 0.25 * padding(steps(1, 1))


def test_score_analysis_rules():
    stats = {"ndvi_mean": 0.7, "ndmi_mean": 0.05, "savi_mean": 0.3}
    text = "Vegetation displays high vigor (NDVI 0.10). The canopy looks dry. Partial vegetation cover."
    assert score_analysis(text, stats) == {"vigor": True, "moisture": True, "cover": True}
    assert score_analysis("Medium vigor is observed.", stats) == {"vigor": False, "moisture": False, "cover": False}
    unusable = "This acquisition is unusable because of cloud cover."
    assert all(score_analysis(unusable, stats, valid=False).values())
    assert not any(score_analysis(text, stats, valid=False).values())


def test_training_finds_its_imagery_or_says_which_is_missing(hesbaye_dir, tmp_path):
    imagery = tmp_path / "imagery"
    imagery.mkdir()
    shutil.copy(hesbaye_dir / f"S2_L2A_hesbaye_{DATES[0]}.tif", imagery)
    store = _index([imagery], tmp_path / "store", grid=32)
    moved = tmp_path / "moved"
    imagery.rename(moved)
    with pytest.raises(InputError) as err:
        train(store, tmp_path / "model", profile=QUICK, progress=False)
    missing = str(imagery / f"S2_L2A_hesbaye_{DATES[0]}.tif")
    assert missing in str(err.value) and err.value.field == "imagery" and err.value.value == [missing]
    assert not (tmp_path / "model" / "checkpoint").exists()  # refused before any training
    pairs = build_pairs(Store.open(store))
    assert require_sources(Store.open(store), pairs, [moved]) == 1  # found by name where it moved
    # Training on the stored embeddings alone is a choice, and the card says so.
    short = dataclasses.replace(QUICK, text_stage=dataclasses.replace(QUICK.text_stage, epochs=1),
                                vision_stage=dataclasses.replace(QUICK.vision_stage, epochs=1))
    train(store, tmp_path / "model", profile=short, progress=False, reread=False)
    assert read_card(tmp_path / "model")["training"]["augmentation"] is None


def test_store_without_valid_records_is_refused(tmp_path):
    store = _index([make_rasters.write_fully_clouded_stack(tmp_path)], tmp_path / "clouded", grid=16)
    assert not Store.open(store).records()["valid"].any()
    with pytest.raises(InputError, match="valid"):
        train(store, tmp_path / "model", profile=QUICK, progress=False)


def test_full_profile_without_base_model_is_a_weights_error(small_store, tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        train(small_store, tmp_path / "model", profile="full", base_model=str(tmp_path / "no-such-qwen2"),
              progress=False)


def test_fingerprint_survives_a_move(small_store, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(small_store, moved)
    a, b = store_fingerprint(Store.open(small_store)), store_fingerprint(Store.open(moved))
    assert a["path"] != b["path"]
    assert {k: a[k] for k in ("created", "encoder", "first_record")} == {k: b[k] for k in ("created", "encoder", "first_record")}


def _flanders(shared_data: Path, store: Path) -> Path:
    flanders = shared_data / "worldcereal-flanders"
    index(IndexConfig(store=store, inputs=(str(flanders),), parcels=flanders / "parcels_Flanders31UES.gpkg",
                      progress=False), build_encoder(DEFAULT_ENCODER))
    return store


@pytest.mark.slow
def test_tiny_profile_on_the_readme_training_store_meets_the_held_out_target(hesbaye_dir, bigearthnet_dir,
                                                                            shared_data, tmp_path):
    """The README's training command on the README's store (Hesbaye 10 px cells + BigEarthNet 20 px
    cells + the Flanders parcels), seed 0: >= 0.97 on held-out parcels (measured 0.973, ~14 min)."""
    store = _index(sorted(hesbaye_dir.glob("S2_L2A_hesbaye_*.tif")), tmp_path / "store", grid=10)
    _index([bigearthnet_dir], store, grid=20)
    _flanders(shared_data, store)
    train(store, tmp_path / "model", progress=False)
    scores = evaluate(tmp_path / "model", store)
    assert scores["held_out"] and scores["overall"] >= 0.97
    assert not any(scores["failures"]["shown"].values())


@pytest.mark.slow
def test_tiny_profile_meets_the_targets_on_real_imagery_it_never_saw(hesbaye_dir, bigearthnet_dir, shared_data,
                                                                     tmp_path):
    """The same command on the store without Flanders, seed 0; on every record of the real Flanders
    acquisitions (72 dates, clouds included), which it never saw: >= 0.95 overall and >= 0.90 with
    all three aspects right (measured 0.978 / 0.938); in what users see no repeated sentence, no
    missing aspect, no unusable record described as usable, no number other than the record's,
    there and on generated rasters (an L1C band folder, a cloudy stack, a fully clouded date)."""
    store = _index(sorted(hesbaye_dir.glob("S2_L2A_hesbaye_*.tif")), tmp_path / "store", grid=10)
    _index([bigearthnet_dir], store, grid=20)
    train(store, tmp_path / "model", progress=False)
    scores = evaluate(tmp_path / "model", _flanders(shared_data, tmp_path / "unseen"))
    assert not scores["held_out"] and scores["overall"] >= 0.95 and scores["all_three"] >= 0.90
    assert not any(scores["failures"]["shown"].values())
    generated = make_rasters.write_all(tmp_path / "generated")
    synthetic = tmp_path / "synthetic"
    for name in ("l2a_stack", "l2a_baseline0400", "cloudy_l2a_stack", "l1c_band_folder", "fully_clouded"):
        _index([generated[name]], synthetic, grid=12)
    assert not any(evaluate(tmp_path / "model", synthetic)["failures"]["shown"].values())
