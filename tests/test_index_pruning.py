"""Block-max pruning in the embedded index: equal to exhaustive scoring, bit for bit.

The oracle is the index's own accumulator (``pruning="never"``), itself checked against a
scipy brute force in test_index.py: pruned results must have the same rows, the same float32
scores and the same tie-break (row ascending) on random, adversarial and real vectors.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from prosper.errors import ConfigError, InputError
from prosper.retrieval.bruteforce import BruteForce
from prosper.retrieval.index import SCORINGS, InvertedIndex, prepare_query
from prosper.retrieval.pruning import DENSE_FRACTION, PRUNING_ARRAYS, quantize_up
from prosper.sparse import SparseVectors

pytest.importorskip("numba", reason="numba compiles the pruning kernels")


def zipf_vectors(rng, n, vocab, max_nnz, prefix, dyadic=False, a=1.3):
    rows = []
    for _ in range(n):
        m = int(rng.integers(0, max_nnz + 1))
        terms = np.unique(rng.zipf(a, size=m) % vocab) if m else np.zeros(0, np.int64)
        weights = rng.integers(1, 9, size=len(terms)) / 4.0 if dyadic else rng.random(len(terms)) + 0.01
        rows.append((terms, weights))
    return SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, vocab)


def assert_same(index: InvertedIndex, queries: SparseVectors, k: int, scoring: str, top_terms=None):
    index.pruning = "never"
    want = index.search_rows(queries, k, scoring, top_terms)
    index.pruning = "always"
    got = index.search_rows(queries, k, scoring, top_terms)
    index.pruning = "auto"
    for i, ((g_rows, g_scores), (w_rows, w_scores)) in enumerate(zip(got, want)):
        assert g_rows.dtype == np.int64 and g_scores.dtype == np.float32
        np.testing.assert_array_equal(g_rows, w_rows, err_msg=f"query {i}, k={k}, {scoring}")
        np.testing.assert_array_equal(g_scores, w_scores, err_msg=f"query {i}, k={k}, {scoring}")
    return got


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(11)
    items = zipf_vectors(rng, 3000, 400, 50, "d")
    queries = zipf_vectors(rng, 30, 400, 20, "q")
    return items, queries


@pytest.mark.parametrize("block_size", [4, 16, 64])
@pytest.mark.parametrize("scoring", SCORINGS)
def test_pruned_equals_exhaustive_on_random_vectors(corpus, block_size, scoring):
    items, queries = corpus
    index = InvertedIndex.build(items, block_size=block_size)
    for k in (1, 10, 100, 5000):  # 5000 > items: every match, best first
        assert_same(index, queries, k, scoring)
    assert_same(index, queries, 10, scoring, top_terms=5)


def test_pruned_equals_brute_force_with_ties():
    # dyadic weights add exactly in float32 in any order, and 40 exact copies make real ties
    rng = np.random.default_rng(5)
    base = zipf_vectors(rng, 50, 60, 12, "b", dyadic=True)
    rows = [base.row(i % 50) for i in range(2000)]
    items = SparseVectors.from_rows([f"d{i}" for i in range(2000)], rows, 60)
    queries = zipf_vectors(rng, 25, 60, 8, "q", dyadic=True)
    index, brute = InvertedIndex.build(items, block_size=16), BruteForce(items)
    for k in (1, 7, 40, 100, 3000):
        got = assert_same(index, queries, k, "none")
        for (g_rows, g_scores), (w_rows, w_scores) in zip(got, brute.search_rows(queries, k, "none")):
            np.testing.assert_array_equal(g_rows, w_rows)  # ties broken by row ascending
            np.testing.assert_array_equal(g_scores, w_scores)
    # the ties are real: some query's k-th score is shared by rows left out of its top k
    cut = []
    for i, (rows_, scores_) in enumerate(index.search_rows(queries, 7, "none")):
        full = brute.scores(*prepare_query(*queries.row(i), "none"))
        cut.append(len(scores_) == 7 and (full == scores_[-1]).sum() > (scores_ == scores_[-1]).sum())
    assert any(cut)


def test_single_huge_posting_list_and_tiny_ones():
    rng = np.random.default_rng(2)
    n = 5000
    rows = []
    for i in range(n):
        terms = [0] + ([1 + i % 7] if i % 3 == 0 else []) + ([9] if i in (17, 4093, 4999) else [])
        rows.append((terms, rng.random(len(terms)) + 0.1))
    items = SparseVectors.from_rows([f"d{i}" for i in range(n)], rows, 10)
    index = InvertedIndex.build(items, block_size=32)
    assert index.blocks["dense_rows"][0] == 0  # the huge list has a dense row of block maxima
    assert index.blocks["dense_rows"][9] == -1  # three postings: maxima come from the postings
    queries = SparseVectors.from_rows(
        ["q0", "q1", "q2", "q3"], [([0], [1.0]), ([0, 9], [0.1, 5.0]), ([9], [1.0]), ([3, 0, 9], [2.0, 0.5, 1.0])], 10
    )
    for scoring in SCORINGS:
        for k in (1, 3, 10, 6000):
            assert_same(index, queries, k, scoring)


def test_empty_queries_unknown_terms_and_k_beyond_the_matches(corpus):
    base, _ = corpus
    vocab, rare, absent = base.vocab_size + 10, base.vocab_size + 3, base.vocab_size + 5
    rows = [base.row(i) for i in range(len(base))] + [([1, rare], [0.5, 1.0])]
    items = SparseVectors.from_rows(base.ids + ["last"], rows, vocab)
    index = InvertedIndex.build(items, block_size=16, pruning="always")
    queries = SparseVectors.from_rows(
        ["empty", "absent", "rare", "zero"], [([], []), ([absent], [1.0]), ([rare, absent], [1.0, 2.0]), ([1], [0.0])], vocab
    )
    got = assert_same(index, queries, 50, "none")
    assert [len(r) for r, _ in got] == [0, 0, 1, 0]
    rows, scores = index.search_one(np.array([rare]), np.array([0.5], np.float32), 1000)
    assert len(rows) == 1 and scores[0] > 0


def test_trailing_empty_items_and_norms_in_chunks():
    from prosper.retrieval.index import _row_norms

    rows = [([1, 2], [3.0, 4.0]), ([], []), ([2], [2.0]), ([], []), ([], [])]
    items = SparseVectors.from_rows([f"d{i}" for i in range(5)], rows, 4)
    np.testing.assert_array_equal(_row_norms(items), [5.0, 0.0, 2.0, 0.0, 0.0])
    np.testing.assert_array_equal(_row_norms(items, chunk=2), [5.0, 0.0, 2.0, 0.0, 0.0])
    index = InvertedIndex.build(items, block_size=4)
    queries = SparseVectors.from_rows(["q"], [([2], [1.0])], 4)
    for scoring in SCORINGS:
        assert_same(index, queries, 10, scoring)


def test_empty_items_and_a_partial_last_block():
    rows = [([], []), ([2], [1.0]), ([], []), ([2, 3], [1.0, 1.0]), ([3], [2.0])] * 7  # 35 rows, blocks of 8
    items = SparseVectors.from_rows([f"d{i}" for i in range(35)], rows, 5)
    index = InvertedIndex.build(items, block_size=8)
    queries = SparseVectors.from_rows(["a", "b"], [([2, 3], [1.0, 1.0]), ([3], [1.0])], 5)
    for scoring in SCORINGS:
        for k in (1, 5, 14, 100):
            assert_same(index, queries, k, scoring)


def test_negative_or_nan_query_weights_fall_back_to_the_accumulator(corpus):
    items, _ = corpus
    index = InvertedIndex.build(items, block_size=16)
    t = np.array([0, 1, 2])
    for w in (np.array([1.0, -0.5, 0.2], np.float32), np.array([1.0, np.nan, 0.2], np.float32)):
        index.pruning = "always"
        got = index.search_one(t, w, 10)
        index.pruning = "never"
        want = index.search_one(t, w, 10)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_block_arrays_hold_the_common_terms_block_maxima(corpus):
    items, _ = corpus
    index = InvertedIndex.build(items, block_size=16)
    blocks = index.blocks
    n_blocks = -(-len(items) // 16)
    assert blocks["dense_q"].shape == (index.meta["dense_terms"], n_blocks) and index.meta["dense_terms"] > 0
    assert blocks["dense_q"].dtype == np.uint8
    off, pitems, pweights = index.term_offsets, index.postings_items, index.postings_weights
    for t in range(items.vocab_size):
        lo, hi = int(off[t]), int(off[t + 1])
        blk = pitems[lo:hi] >> 4
        uniq = np.unique(blk)
        d = blocks["dense_rows"][t]
        if d < 0:
            assert len(uniq) < DENSE_FRACTION * n_blocks  # a term in few blocks takes its maxima from its postings
            continue
        assert len(uniq) >= DENSE_FRACTION * n_blocks
        want = np.zeros(n_blocks, np.float32)
        for b in uniq:
            want[b] = pweights[lo:hi][blk == b].max()
        bound = blocks["dense_q"][d].astype(np.float32) * blocks["dense_scale"][d]  # as the kernel computes it
        assert np.all(bound >= want) and np.all((bound == 0) == (want == 0))
        assert np.all(bound - want <= blocks["dense_scale"][d] * 1.0001)  # within one code of the maximum
    # the forward arrays are the item rows, term ids ascending, in the narrowest dtype
    assert blocks["forward_terms"].dtype == np.uint16
    np.testing.assert_array_equal(blocks["forward_offsets"], items.offsets)
    np.testing.assert_array_equal(blocks["forward_terms"], items.term_ids)
    np.testing.assert_array_equal(blocks["forward_weights"], items.weights)


def test_quantize_up_never_rounds_below_the_value():
    rng = np.random.default_rng(4)
    for values in (rng.random(5000).astype(np.float32) * 3, np.float32([0, 1e-30, 1e-7, 0.5, 1.0]),
                   np.full(7, np.float32(2.7)), np.zeros(3, np.float32)):
        q, scale = quantize_up(values)
        assert q.dtype == np.uint8 and np.all(q.astype(np.float32) * np.float32(scale) >= values)
        assert np.all((q == 0) == (values == 0))


def test_unsorted_rows_are_sorted_and_repeated_terms_disable_pruning():
    unsorted = SparseVectors(["a", "b"], np.array([0, 3, 5]), np.array([4, 1, 2, 3, 0]),
                             np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32), 6)
    index = InvertedIndex.build(unsorted, block_size=4)
    assert index.blocks["forward_terms"].tolist() == [1, 2, 4, 0, 3]
    assert index.blocks["forward_weights"].tolist() == [2.0, 3.0, 1.0, 5.0, 4.0]
    queries = SparseVectors.from_rows(["q"], [([0, 1, 4], [1.0, 1.0, 1.0])], 6)
    assert_same(index, queries, 2, "none")
    repeated = SparseVectors(["a"], np.array([0, 2]), np.array([1, 1]), np.array([1.0, 2.0], np.float32), 3)
    index = InvertedIndex.build(repeated)
    assert index.blocks is None and index.meta["pruning_arrays"] is False
    (rows, scores), = index.search_rows(SparseVectors.from_rows(["q"], [([1], [1.0])], 3), 5, "none")
    assert rows.tolist() == [0] and scores.tolist() == [3.0]  # the accumulator adds both
    index.pruning = "always"
    with pytest.raises(ConfigError, match="block arrays"):
        index.search_rows(SparseVectors.from_rows(["q"], [([1], [1.0])], 3), 5, "none")


def test_queries_with_unsorted_or_repeated_terms_are_scored_exhaustively(corpus):
    items, _ = corpus
    index = InvertedIndex.build(items, block_size=16)
    for t in (np.array([5, 1, 3]), np.array([1, 1, 3])):
        w = np.array([0.5, 1.0, 0.25], np.float32)
        index.pruning = "always"
        got = index.search_one(t, w, 10)
        index.pruning = "never"
        want = index.search_one(t, w, 10)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_threshold_factor_trades_recall_and_keeps_exact_scores(corpus):
    items, queries = corpus
    index = InvertedIndex.build(items, block_size=16)
    exact = index.search_rows(queries, 10, "query_l2")
    brute = BruteForce(items)
    recalls = []
    for factor in (1.0, 0.9, 0.5):
        index.pruning, index.threshold_factor = "always", factor
        approx = index.search_rows(queries, 10, "query_l2")
        for i, ((a_rows, a_scores), (e_rows, _)) in enumerate(zip(approx, exact)):
            terms, weights = prepare_query(*queries.row(i), "query_l2")
            np.testing.assert_allclose(a_scores, brute.scores(terms, weights)[a_rows], rtol=1e-5)  # true scores
            assert np.all(np.diff(a_scores) <= 0)
            if len(e_rows):
                recalls.append((factor, len(set(a_rows) & set(e_rows)) / len(e_rows)))
    assert all(r == 1.0 for f, r in recalls if f == 1.0)
    assert np.mean([r for f, r in recalls if f == 0.5]) <= np.mean([r for f, r in recalls if f == 0.9]) <= 1.0
    for bad in (0.0, 1.5):
        index.threshold_factor = bad
        with pytest.raises(ConfigError, match="threshold_factor"):
            index.search_rows(queries, 10)


def test_auto_prunes_small_k_over_long_lists_and_gives_up_within_a_budget():
    rng = np.random.default_rng(0)
    n = 40000
    # every item has term 0 and ten of terms 1..50 (11 terms a row); term 55 is in ten items
    rows = [([0] + [1 + (i + j) % 50 for j in range(10)] + ([55] if i % 4000 == 0 else []),
             [rng.random() + 0.1] + [1.0] * 10 + ([1.0] if i % 4000 == 0 else [])) for i in range(n)]
    items = SparseVectors.from_rows([f"d{i}" for i in range(n)], rows, 60)
    index = InvertedIndex.build(items)  # blocks of 8 rows
    one = np.ones(1, np.float32)
    assert index._pruning_budget(np.array([0]), one, 10) == 2 * n + n // 4  # 40k postings, k = 10: prune
    assert index._pruning_budget(np.array([55]), one, 10) is None  # 10 postings: the accumulator
    assert index._pruning_budget(np.array([0]), one, 30) is None  # k * 8 * K_RATIO > n: the accumulator
    # k = 3000 of 40000 matches: most blocks reach the threshold; the pruner gives up on its budget
    assert index._pruner.search(np.array([0]), one, 10, None, 1.0, 2 * n) is not None
    assert index._pruner.search(np.array([0]), one, 3000, None, 1.0, 2 * n) is None
    rows_, scores_ = index.search_one(np.array([0]), one, 3000)  # auto: the accumulator answers
    index.pruning = "always"  # no budget: the pruner finishes, with the same result
    got = index.search_one(np.array([0]), one, 3000)
    index.pruning = "never"
    want = index.search_one(np.array([0]), one, 3000)
    for a, b in ((rows_, want[0]), (scores_, want[1]), (got[0], want[0]), (got[1], want[1])):
        np.testing.assert_array_equal(a, b)
    assert index._pruning_budget(np.array([0]), one, 10) is None
    index.pruning = "always"
    assert index._pruning_budget(np.array([55]), one, 10) == -1
    index.pruning = "sometimes"
    with pytest.raises(ConfigError, match="pruning"):
        index.search_one(np.array([0]), np.ones(1, np.float32), 10)


def test_save_open_keeps_blocks_memory_mapped_and_params(tmp_path, corpus):
    items, queries = corpus
    built = InvertedIndex.build(items, block_size=32, pruning="always", threshold_factor=0.9)
    built.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["version"] == 2 and meta["block_size"] == 32
    assert meta["params"] == {"block_size": 32, "pruning": "always", "threshold_factor": 0.9}
    opened = InvertedIndex.open(tmp_path / "idx")
    assert opened.pruning == "always" and opened.threshold_factor == 0.9
    assert isinstance(np.load(tmp_path / "idx" / "dense_q.npy", mmap_mode="r"), np.memmap)
    assert opened.blocks["forward_weights"].base is not None  # a view of the mapping
    for name, array in built.blocks.items():
        np.testing.assert_array_equal(opened.blocks[name], array)
    exact = InvertedIndex.open(tmp_path / "idx", pruning="always", threshold_factor=1.0)
    built.pruning, built.threshold_factor = "never", 1.0
    for (a_rows, a_scores), (b_rows, b_scores) in zip(exact.search_rows(queries, 20), built.search_rows(queries, 20)):
        np.testing.assert_array_equal(a_rows, b_rows)
        np.testing.assert_array_equal(a_scores, b_scores)


def test_version_1_folders_open_and_search_exactly_without_blocks(tmp_path, corpus):
    items, queries = corpus
    index = InvertedIndex.build(items)
    index.save(tmp_path / "idx")
    want = index.search_rows(queries, 10)
    meta_path = tmp_path / "idx" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for name in PRUNING_ARRAYS:
        (tmp_path / "idx" / f"{name}.npy").unlink()
    for key in ("block_size", "dense_terms", "pruning_arrays", "params"):
        meta.pop(key)
    meta_path.write_text(json.dumps({**meta, "version": 1}))
    old = InvertedIndex.open(tmp_path / "idx")
    assert old.blocks is None
    for (a_rows, a_scores), (b_rows, b_scores) in zip(old.search_rows(queries, 10), want):
        np.testing.assert_array_equal(a_rows, b_rows)
        np.testing.assert_array_equal(a_scores, b_scores)
    old.pruning = "always"
    with pytest.raises(ConfigError, match="rebuild"):
        old.search_rows(queries, 10)
    old.pruning = "auto"
    meta_path.write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(InputError, match="rebuild it with `prosper index`"):
        InvertedIndex.open(tmp_path / "idx")
    # a version-2 folder missing a pruning array is refused, naming the file; a wrong shape too
    index.save(tmp_path / "idx2")
    (tmp_path / "idx2" / "forward_terms.npy").unlink()
    with pytest.raises(InputError, match="forward_terms.npy"):
        InvertedIndex.open(tmp_path / "idx2")
    index.save(tmp_path / "idx3")
    np.save(tmp_path / "idx3" / "dense_scale.npy", np.ones(1, np.float32))
    with pytest.raises(InputError, match="pruning arrays disagree"):
        InvertedIndex.open(tmp_path / "idx3")


def test_block_size_is_checked(corpus):
    items, _ = corpus
    for bad in (0, 3, 48, 2**17):
        with pytest.raises(ConfigError, match="block_size"):
            InvertedIndex.build(items, block_size=bad)


def test_exact_searcher_params_reach_the_index(tmp_path, corpus):
    from prosper.plugins import get_registry
    from prosper.retrieval.searchers import open_index

    items, queries = corpus
    registry = get_registry()
    searcher = registry.build("searcher", {"name": "exact", "block_size": 16, "threshold_factor": 0.8})
    index = searcher.build(items)
    assert index.meta["block_size"] == 16 and index.threshold_factor == 0.8
    index.save(tmp_path / "idx")
    reopened = open_index(tmp_path / "idx")
    assert reopened.threshold_factor == 0.8 and reopened.meta["block_size"] == 16
    # search-time params (search.searcher) override the stored ones when they name the same searcher
    assert open_index(tmp_path / "idx", overrides={"name": "exact", "threshold_factor": 1.0}).threshold_factor == 1.0
    assert open_index(tmp_path / "idx", overrides={"name": "seismic", "heap_factor": 0.5}).threshold_factor == 0.8
    with pytest.raises(ConfigError, match="threshold_factor"):
        registry.validate("searcher", {"name": "exact", "threshold_factor": 1.5}, "search.searcher")
    with pytest.raises(ConfigError, match="power of two"):
        registry.validate("searcher", {"name": "exact", "block_size": 12}, "search.searcher")
    with pytest.raises(ConfigError, match="pruning"):
        registry.validate("searcher", {"name": "exact", "pruning": "sometimes"}, "search.searcher")


def test_importing_the_index_does_not_import_numba():
    code = "import sys, prosper.retrieval.index, prosper.retrieval.pruning; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.shared
@pytest.mark.slow
def test_pruned_equals_exhaustive_on_real_splade_vectors(shared_dir):
    """Home Depot titles encoded by splade-tiny, replicated with jittered weights."""
    model = shared_dir / "models" / "splade-tiny"
    data = shared_dir / "datasets" / "homedepot"
    if not model.is_dir() or not (data / "corpus.jsonl").is_file():
        pytest.skip("splade-tiny or homedepot missing from ../shared")
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    with (data / "corpus.jsonl").open(encoding="utf-8") as fh:
        titles = [json.loads(next(fh))["title"] for _ in range(600)]
    with (data / "queries.jsonl").open(encoding="utf-8") as fh:
        texts = [json.loads(next(fh))["text"] for _ in range(40)]
    settings = ModelSettings(
        backbone={"name": "bert", "path": str(model)}, pooling="max", lrn={"enabled": False}, lfw={"enabled": False},
        device="cpu",
    )
    encoder = SparseEncoder.from_settings(settings)
    base = encoder.encode(titles, side="item", batch_size=64)
    queries = encoder.encode(texts, side="query", batch_size=64)
    rng = np.random.default_rng(0)
    parts = [base] + [
        SparseVectors([f"{i}#{c}" for i in base.ids], base.offsets, base.term_ids,
                      (base.weights * rng.uniform(0.9, 1.1, len(base.weights))).astype(np.float32), base.vocab_size)
        for c in range(1, 8)
    ]
    items = SparseVectors.concat(parts)  # 4,800 items
    index = InvertedIndex.build(items, block_size=16)
    assert index.meta["dense_terms"] > 0
    for scoring in SCORINGS:
        for k in (10, 100, 1000):
            assert_same(index, queries, k, scoring)
    assert_same(index, queries, 10, "query_l2", top_terms=16)
