"""The embedded inverted index: Eq. 11 by hand, exact equality with brute force, save/open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prosper.errors import ConfigError, InputError
from prosper.retrieval.bruteforce import BruteForce
from prosper.retrieval.index import SCORINGS, InvertedIndex, prepare_query, top_k
from prosper.sparse import SparseVectors


def random_vectors(rng, n, vocab, max_nnz, prefix, dyadic=False):
    rows = []
    for _ in range(n):
        m = int(rng.integers(0, max_nnz + 1))
        # Zipf-like term ids so some posting lists are long, as with real models
        terms = np.unique(rng.zipf(1.5, size=m) % vocab) if m else np.zeros(0, np.int64)
        if dyadic:  # multiples of 1/8: float32 sums are exact in any order, so ties are real
            weights = rng.integers(1, 17, size=len(terms)) / 8.0
        else:
            weights = rng.random(len(terms)) + 0.01
        rows.append((terms, weights))
    return SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, vocab)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    items = random_vectors(rng, 800, 300, 40, "d")
    queries = random_vectors(rng, 40, 300, 20, "q")
    return items, queries


def test_eq11_scores_by_hand():
    # items: d0 = {1: 2, 3: 1}, d1 = {1: 1, 2: 2}, d2 = {4: 3}
    items = SparseVectors.from_rows(["d0", "d1", "d2"], [([1, 3], [2, 1]), ([1, 2], [1, 2]), ([4], [3])], 5)
    query = SparseVectors.from_rows(["q"], [([1, 2], [3, 4])], 5)  # ||q||_2 = 5, ||q||_1 = 7
    index = InvertedIndex.build(items)
    (ids, scores), = index.search(query, k=10)  # query_l2: q / 5
    assert ids.tolist() == ["d1", "d0"]  # d2 shares no term: not returned
    np.testing.assert_allclose(scores, [(3 * 1 + 4 * 2) / 5, (3 * 2) / 5], rtol=1e-6)
    (_, scores), = index.search(query, k=10, scoring="none")
    np.testing.assert_allclose(scores, [11, 6], rtol=1e-6)
    (_, scores), = index.search(query, k=10, scoring="query_l1")
    np.testing.assert_allclose(scores, [11 / 7, 6 / 7], rtol=1e-6)
    # item_l2 divides by ||d||: d1 = sqrt(5), d0 = sqrt(5) as well; both_l2 also divides by ||q|| = 5
    (_, scores), = index.search(query, k=10, scoring="item_l2")
    np.testing.assert_allclose(scores, [11 / np.sqrt(5), 6 / np.sqrt(5)], rtol=1e-6)
    (_, scores), = index.search(query, k=10, scoring="both_l2")
    np.testing.assert_allclose(scores, [11 / 5 / np.sqrt(5), 6 / 5 / np.sqrt(5)], rtol=1e-6)
    (ids, scores), = index.search(query, k=1, scoring="none")
    assert ids.tolist() == ["d1"] and scores.tolist() == [11.0]


def test_query_top_terms_keeps_the_heaviest_then_normalises():
    terms, weights = prepare_query(np.array([2, 5, 7, 9]), np.array([1.0, 4.0, 3.0, 4.0]), "query_l2", 2)
    assert terms.tolist() == [5, 9]  # 4 and 4 kept; the 3 and 1 dropped
    np.testing.assert_allclose(weights, [4 / np.sqrt(32), 4 / np.sqrt(32)], rtol=1e-6)
    # a tie at the cut goes to the lower term id
    terms, _ = prepare_query(np.array([2, 5, 7]), np.array([1.0, 1.0, 1.0]), "none", 2)
    assert terms.tolist() == [2, 5]


def test_exact_search_equals_brute_force_exactly_on_dyadic_weights():
    rng = np.random.default_rng(3)
    items = random_vectors(rng, 600, 200, 30, "d", dyadic=True)
    queries = random_vectors(rng, 30, 200, 15, "q", dyadic=True)
    index, brute = InvertedIndex.build(items), BruteForce(items)
    for k in (1, 10, 100, 1000):
        got = index.search_rows(queries, k, scoring="none")
        want = brute.search_rows(queries, k, scoring="none")
        for (g_rows, g_scores), (w_rows, w_scores) in zip(got, want):
            np.testing.assert_array_equal(g_rows, w_rows)  # ties included: broken by row
            np.testing.assert_array_equal(g_scores, w_scores)


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("top_terms", [None, 4])
def test_exact_search_equals_brute_force(data, scoring, top_terms):
    items, queries = data
    index, brute = InvertedIndex.build(items), BruteForce(items)
    got = index.search_rows(queries, 50, scoring=scoring, query_top_terms=top_terms)
    want = brute.search_rows(queries, 50, scoring=scoring, query_top_terms=top_terms)
    for i, ((g_rows, g_scores), (w_rows, w_scores)) in enumerate(zip(got, want)):
        assert len(g_rows) == len(w_rows)
        np.testing.assert_allclose(g_scores, w_scores, rtol=1e-5)
        # every returned item has exactly its brute-force score (summation order aside)
        terms, weights = prepare_query(*queries.row(i), scoring, top_terms)
        full = brute.scores(terms, weights, scoring in ("both_l2", "item_l2"))
        np.testing.assert_allclose(g_scores, full[g_rows], rtol=1e-5)
        # and the same items, except where two scores tie at float32 precision
        differ = g_rows != w_rows
        assert np.allclose(full[g_rows[differ]], full[w_rows[differ]], rtol=1e-5)


def test_save_open_roundtrip_is_memory_mapped(tmp_path, data):
    items, queries = data
    built = InvertedIndex.build(items, vocabulary=[f"t{i}" for i in range(items.vocab_size)], metadata={"side": "item"})
    built.save(tmp_path / "idx")
    opened = InvertedIndex.open(tmp_path / "idx")
    arrays = np.load(tmp_path / "idx" / "postings_items.npy", mmap_mode="r")
    assert isinstance(arrays, np.memmap)
    assert opened.postings_items.base is not None  # a view of the mapping, not a copy
    assert opened.postings_items.dtype == np.int32 and opened.postings_weights.dtype == np.float32
    assert opened.term_offsets.dtype == np.int64
    assert opened.ids.tolist() == items.ids and len(opened) == len(items)
    assert opened.vocabulary[5] == "t5"
    assert json.loads((tmp_path / "idx" / "meta.json").read_text())["metadata"] == {"side": "item"}
    a, b = built.search(queries, 20), opened.search(queries, 20)
    for (ia, sa), (ib, sb) in zip(a, b):
        assert ia.tolist() == ib.tolist()
        np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(opened.document_frequency(np.array([0, 1])), np.diff(opened.term_offsets)[:2])


def test_save_refuses_existing_unless_overwrite_and_leaves_no_temp(tmp_path, data):
    items, _ = data
    index = InvertedIndex.build(items)
    index.save(tmp_path / "idx")
    with pytest.raises(InputError, match="already exists"):
        index.save(tmp_path / "idx")
    index.save(tmp_path / "idx", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_open_rejects_bad_folders(tmp_path, data):
    with pytest.raises(InputError, match="meta.json missing"):
        InvertedIndex.open(tmp_path)
    items, _ = data
    InvertedIndex.build(items).save(tmp_path / "idx")
    (tmp_path / "idx" / "postings_weights.npy").unlink()
    with pytest.raises(InputError, match="postings_weights.npy"):
        InvertedIndex.open(tmp_path / "idx")


def test_errors_and_edge_cases(data):
    items, queries = data
    index = InvertedIndex.build(items)
    with pytest.raises(ConfigError, match="scoring"):
        index.search(queries, 10, scoring="cosine")
    other = SparseVectors.from_rows(["q"], [([1], [1.0])], items.vocab_size + 1)
    with pytest.raises(InputError, match="vocabulary size"):
        index.search(other, 10)
    with pytest.raises(InputError, match="duplicate item id"):
        InvertedIndex.build(SparseVectors.from_rows(["a", "a"], [([1], [1.0]), ([2], [1.0])], 5))
    empty = SparseVectors.from_rows(["q"], [([], [])], items.vocab_size)
    (ids, scores), = index.search(empty, 10)
    assert len(ids) == 0 and len(scores) == 0


def test_top_k_breaks_ties_by_row():
    rows, scores = top_k(np.array([0, 2, 1, 2, 2, 0], np.float32), 2)
    assert rows.tolist() == [1, 3] and scores.tolist() == [2, 2]
    rows, _ = top_k(np.array([0, 0, 0], np.float32), 2)
    assert rows.tolist() == []
