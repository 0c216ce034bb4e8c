"""Spectral augmentation of re-read chips (xvision_model.finetune.augment) on real Hesbaye rasters."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.analysis import EVALUATED_ASPECTS, classify, read_classes
from indexer.pipeline import IndexConfig, index
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder
from indexer.store import Store
from indexer.core.errors import InputError
from xvision_model.finetune.augment import augment_chips, augmented_pairs, read_chips
from xvision_model.finetune.dataset import CLASS_STAT_COLUMNS, build_pairs
from xvision_model.finetune.profiles import AugmentSettings

DATE = "2021-06-01"


@pytest.fixture(scope="module")
def one_date(hesbaye_dir, tmp_path_factory) -> tuple[Path, Path]:
    """One Hesbaye date on a 20 px grid (25 parcels); returns (imagery folder, store)."""
    root = tmp_path_factory.mktemp("aug")
    imagery = root / "imagery"
    imagery.mkdir()
    shutil.copy(hesbaye_dir / f"S2_L2A_hesbaye_{DATE}.tif", imagery)
    store = root / "store"
    index(IndexConfig(store=store, inputs=(str(imagery),), grid=20, progress=False), build_encoder(DEFAULT_ENCODER))
    return imagery, store


def test_identity_settings_leave_chips_unchanged():
    chips = np.random.default_rng(0).uniform(0, 0.5, (3, 12, 8, 8)).astype(np.float32)
    still = AugmentSettings(brightness=(1.0, 1.0), band_gain_sigma=0.0, haze=(0.0, 0.0), mix_max=0.0)
    np.testing.assert_allclose(augment_chips(chips, still, np.random.default_rng(1)), chips, rtol=0, atol=1e-7)
    changed = augment_chips(chips, AugmentSettings(), np.random.default_rng(1))
    assert changed.shape == chips.shape and changed.dtype == np.float32
    assert changed.min() >= 0 and changed.max() <= 1 and not np.allclose(changed, chips)


def test_reread_chips_embed_like_the_stored_records(one_date):
    imagery, store_dir = one_date
    store = Store.open(store_dir)
    pairs = build_pairs(store)
    augmented = augmented_pairs(pairs, store, [imagery], AugmentSettings(copies=2), seed=3)
    n = len(pairs)
    assert len(augmented) == 3 * n
    # Originals untouched; each copy keeps its parcel, date, language and prompt.
    assert augmented.pairs[:n] == pairs.pairs
    for copy in (1, 2):
        for original, extra in zip(pairs.pairs, augmented.pairs[copy * n:(copy + 1) * n]):
            assert (extra.parcel_id, extra.date, extra.lang, extra.prompt) == (
                original.parcel_id, original.date, original.lang, original.prompt)
            assert extra.valid and extra.row >= len(pairs.features)
            vector = augmented.features[extra.row]
            assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
            assert not np.allclose(vector, pairs.features[original.row], atol=1e-3)
    # Every text states the classes of its own (augmented) statistics: the labels stay true.
    for extra in augmented.pairs[n:]:
        stats = dict(zip(CLASS_STAT_COLUMNS, augmented.stats[extra.row].tolist()))
        expected = classify(stats)
        stated = read_classes(extra.text)
        assert {a: stated.get(a) for a in EVALUATED_ASPECTS} == {a: expected[a] for a in EVALUATED_ASPECTS}
    # The augmentation reaches conditions the region does not have (Hesbaye in June: all vigorous).
    vigor = {classify(dict(zip(CLASS_STAT_COLUMNS, augmented.stats[p.row].tolist())))["vigor"] for p in augmented.pairs[n:]}
    assert len(vigor) >= 2
    # Deterministic for a seed.
    again = augmented_pairs(pairs, store, [imagery], AugmentSettings(copies=2), seed=3)
    np.testing.assert_array_equal(again.features, augmented.features)
    assert [p.text for p in again.pairs] == [p.text for p in augmented.pairs]


def test_missing_source_names_the_file(one_date, tmp_path):
    # A store whose imagery was moved away: its recorded source paths no longer exist.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(next(one_date[0].glob("*.tif")), moved)
    store_dir = tmp_path / "store"
    index(IndexConfig(store=store_dir, inputs=(str(moved),), grid=20, progress=False), build_encoder(DEFAULT_ENCODER))
    shutil.rmtree(moved)
    store = Store.open(store_dir)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    shutil.copy(next(one_date[0].glob("*.tif")), elsewhere / "S2_L2A_hesbaye_2020-01-01.tif")
    with pytest.raises(InputError) as err:
        augmented_pairs(build_pairs(store), store, [elsewhere], AugmentSettings(copies=1))
    assert f"S2_L2A_hesbaye_{DATE}.tif" in str(err.value) and str(elsewhere) in str(err.value)


def test_other_raster_under_the_same_name_is_refused(one_date, hesbaye_dir, tmp_path):
    _, store_dir = one_date
    store = Store.open(store_dir)
    impostor = tmp_path / "impostor"
    impostor.mkdir()
    shutil.copy(hesbaye_dir / "S2_L2A_hesbaye_2021-02-01.tif", impostor / f"S2_L2A_hesbaye_{DATE}.tif")
    with pytest.raises(InputError, match="does not match its stored embedding"):
        augmented_pairs(build_pairs(store), store, [impostor], AugmentSettings(copies=1))


def test_read_chips_follows_record_order(one_date):
    imagery, store_dir = one_date
    store = Store.open(store_dir)
    records = store.records().sort_values("record_id").to_dict("records")
    chips, valid = read_chips(store, records[::-1][:4], [imagery])
    first, _ = read_chips(store, records[-1:], [imagery])
    assert chips.shape == (4, 12, 120, 120) and valid.shape == (4, 120, 120) and valid.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(chips[0], first[0])


def test_no_copies_returns_the_same_pairs(one_date):
    imagery, store_dir = one_date
    store = Store.open(store_dir)
    pairs = build_pairs(store)
    assert augmented_pairs(pairs, store, [imagery], dataclasses.replace(AugmentSettings(), copies=0)) is pairs
    with pytest.raises(InputError, match="copies"):
        AugmentSettings(copies=-1)


def test_copies_shrink_on_a_large_store_so_training_time_stays_bounded(one_date):
    settings = AugmentSettings(copies=3, max_examples=4400)
    assert [settings.copies_for(n) for n in (0, 100, 1000, 1100, 1500, 2300, 9000)] == [0, 3, 3, 3, 1, 1, 1]
    assert AugmentSettings(copies=0).copies_for(100) == 0
    with pytest.raises(InputError, match="max_examples"):
        AugmentSettings(max_examples=0)
    imagery, store_dir = one_date  # 25 parcels: a budget of 50 examples leaves one copy each
    store = Store.open(store_dir)
    pairs = build_pairs(store)
    valid = sum(p.valid for p in pairs.pairs)
    augmented = augmented_pairs(pairs, store, [imagery], AugmentSettings(copies=3, max_examples=2 * valid), seed=1)
    assert len(augmented.pairs) == len(pairs.pairs) + valid


def test_chips_streamed_block_by_block_give_the_examples_of_one_pass(one_date, monkeypatch):
    """Blocks of records (re-read, perturbed, encoded, then dropped) give the same examples, bit for
    bit, as every chip at once; and no more than one block of chips is read at a time."""
    import xvision_model.finetune.augment as augment

    imagery, store_dir = one_date
    store = Store.open(store_dir)
    pairs = build_pairs(store)
    settings = AugmentSettings(copies=2)
    monkeypatch.setattr(augment, "BATCH_SIZE", 2)
    monkeypatch.setattr(augment, "BLOCK", 10**6)  # one block: every chip in memory at once
    whole = augmented_pairs(pairs, store, [imagery], settings, seed=3)
    sizes: list[int] = []
    reread = augment.read_chips

    def counted(store, records, *args, **kwargs):
        sizes.append(len(records))
        return reread(store, records, *args, **kwargs)

    monkeypatch.setattr(augment, "read_chips", counted)
    monkeypatch.setattr(augment, "BLOCK", 4)
    streamed = augmented_pairs(pairs, store, [imagery], settings, seed=3)
    valid = len({p.row for p in pairs.pairs if p.valid})
    assert max(sizes) == 4 and sum(sizes) == valid > 8  # several blocks, each chip read once
    np.testing.assert_array_equal(streamed.features, whole.features)
    np.testing.assert_array_equal(streamed.stats, whole.stats)
    assert streamed.pairs == whole.pairs and streamed.records == whole.records
