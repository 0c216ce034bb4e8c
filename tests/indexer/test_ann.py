"""ANN index kinds against brute force: exact scores, k results whenever k are eligible, stable ids."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.ann import FLAT_MAX_FLOATS, INDEX_KINDS, AnnConfig, AnnIndex, choose_kind, resolve_kind
from indexer.core.errors import InputError, StoreError

N, DIM = 3000, 32


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """A small Gaussian mixture on the sphere (40 clusters), like embeddings of similar parcels."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((40, dim))
    x = centers[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    vectors = _clustered(N + 50, DIM)
    # Ids deliberately sparse and out of order: they are record ids, not row numbers.
    ids = np.random.default_rng(1).permutation(N) * 7 + 3
    return ids, vectors[:N], vectors[N:]


@pytest.fixture(scope="module", params=INDEX_KINDS)
def built(request, data):
    ids, vectors, _ = data
    # exact_below_floats=0 sends every filtered search through the FAISS selector path.
    return AnnIndex.build(ids, vectors, AnnConfig(kind=request.param, exact_below_floats=0, ivf_nlist=32))


def _brute(ids, vectors, q, k, eligible):
    rows = np.flatnonzero(eligible)
    scores = vectors[rows] @ q
    best = rows[np.argsort(-scores, kind="stable")[:k]]
    return ids[best], vectors[best] @ q


def test_kind_is_what_was_asked(built):
    assert built.kind in INDEX_KINDS and len(built) == N


def test_unfiltered_matches_brute_force(built, data):
    ids, vectors, queries = data
    recall = []
    for q in queries:
        got, scores = built.search(q, 10)
        want, _ = _brute(ids, vectors, q, 10, np.ones(N, bool))
        assert len(got) == 10 and len(set(got)) == 10
        # Scores are exact inner products on the stored vectors, whatever the codes are.
        np.testing.assert_allclose(scores, vectors[built.positions(got)] @ q, rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(scores) <= 1e-7)
        recall.append(len(np.intersect1d(got, want)) / 10)
    assert np.mean(recall) >= (1.0 if built.kind == "flat" else 0.9)


@pytest.mark.parametrize("share", [0.002, 0.05, 0.5])
def test_filtered_returns_k_eligible_hits(built, data, share):
    ids, vectors, queries = data
    rng = np.random.default_rng(2)
    for q in queries[:10]:
        allowed = rng.choice(ids, size=max(1, int(share * N)), replace=False)
        exclude = rng.choice(allowed, size=len(allowed) // 3, replace=False)
        eligible = np.isin(ids, allowed) & ~np.isin(ids, exclude)
        got, scores = built.search(q, 10, allowed=allowed, exclude=exclude)
        assert len(got) == min(10, eligible.sum())
        assert set(got) <= set(ids[eligible])
        want, want_scores = _brute(ids, vectors, q, 10, eligible)
        if built.kind == "flat" or eligible.sum() <= 10:
            assert set(got) == set(want)
        # Whatever the kind, no hit may be worse than the k-th eligible neighbour by much.
        assert scores[-1] >= want_scores[-1] - 0.2


def test_filter_far_from_the_query_still_fills_k(built, data):
    """The eligible vectors are the ones least like the query: graph walks and probed lists miss
    them, so the search must grow and finally scan; it still returns exactly k."""
    ids, vectors, queries = data
    q = queries[0]
    far = ids[np.argsort(vectors @ q)[:40]]
    got, _ = built.search(q, 10, allowed=far)
    want, _ = _brute(ids, vectors, q, 10, np.isin(ids, far))
    assert len(got) == 10 and set(got) <= set(far)
    if built.kind == "flat":
        assert set(got) == set(want)


def test_exclude_only_and_fewer_than_k(built, data):
    ids, vectors, queries = data
    keep = ids[:3]
    got, _ = built.search(queries[1], 10, exclude=ids[3:])
    assert sorted(got) == sorted(keep)
    got, _ = built.search(queries[1], 10, allowed=np.array([], dtype=np.int64))
    assert len(got) == 0
    got, _ = built.search(queries[1], 10, allowed=np.array([10**9]))  # an id not in the index
    assert len(got) == 0


def test_exhaustive_path_for_selective_filters_is_exact(data):
    ids, vectors, queries = data
    index = AnnIndex.build(ids, vectors, AnnConfig(kind="ivf-pq", ivf_nlist=32))  # exact_below_floats default
    allowed = ids[::10]
    for q in queries[:5]:
        got, scores = index.search(q, 10, allowed=allowed)
        want, want_scores = _brute(ids, vectors, q, 10, np.isin(ids, allowed))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_save_and_load_keep_ids_and_results(built, data, tmp_path):
    ids, vectors, queries = data
    path = tmp_path / "index.faiss"
    built.save(path)
    np.save(tmp_path / "vectors.npy", vectors)
    mapped = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    loaded = AnnIndex.load(path, ids, mapped, built.config)
    assert loaded.kind == built.kind and len(loaded) == N
    for q in queries[:5]:
        a, sa = built.search(q, 10)
        b, sb = loaded.search(q, 10)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, rtol=1e-6)


def test_choice_by_size_and_explicit_kind():
    assert choose_kind(1000, 64) == "flat"
    assert choose_kind(FLAT_MAX_FLOATS // 64, 64) == "flat"
    assert choose_kind(FLAT_MAX_FLOATS // 64 + 1, 64) == "ivf-pq"
    assert choose_kind(1_000_000, 1024) == "ivf-pq"
    assert resolve_kind(AnnConfig(kind="hnsw"), 1000, 64) == "hnsw"
    assert resolve_kind(AnnConfig(kind="ivf-sq8"), 100, 64) == "flat"  # too few to train IVF
    assert resolve_kind(AnnConfig(kind="hnsw"), 0, 64) == "flat"


def test_bad_inputs_are_named(data, tmp_path):
    ids, vectors, _ = data
    with pytest.raises(InputError, match="unknown index type 'annoy'") as info:
        AnnConfig(kind="annoy")
    assert info.value.field == "index_type"
    with pytest.raises(InputError, match="unique"):
        AnnIndex.build(np.zeros(N, np.int64), vectors)
    index = AnnIndex.build(ids, vectors, AnnConfig(kind="flat"))
    with pytest.raises(InputError, match="33 dimensions"):
        index.search(np.zeros(33, np.float32), 5)
    broken = tmp_path / "broken.faiss"
    broken.write_bytes(b"IxM2 not an index")
    with pytest.raises(StoreError, match="broken.faiss: unreadable FAISS index"):
        AnnIndex.load(broken, ids, vectors)


@pytest.mark.parametrize("kind, settings, n_far", [
    ("hnsw", dict(hnsw_m=4, hnsw_ef_search=1, rerank=1), 12),
    ("hnsw", dict(hnsw_m=4, hnsw_ef_search=1, rerank=1), 200),
    ("ivf-sq8", dict(ivf_nlist=76, ivf_nprobe=1, rerank=1), 12),
])
def test_growth_then_exhaustive_scan_settles_short_results(data, kind, settings, n_far):
    """A starved index (tiny graph / one probed list) misses a far filter every round; the search
    grows its effort and then scans the eligible vectors, so the answer is the exact one."""
    ids, vectors, queries = data
    index = AnnIndex.build(ids, vectors, AnnConfig(kind=kind, exact_below_floats=0, **settings))
    q = queries[0]
    far = ids[np.argsort(vectors @ q)[:n_far]]
    got, scores = index.search(q, 10, allowed=far, exclude=far[:1])
    want, want_scores = _brute(ids, vectors, q, 10, np.isin(ids, far[1:]))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
