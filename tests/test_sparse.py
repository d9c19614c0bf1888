"""SparseVectors: the CSR-like type every stage shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prosper.sparse import SparseVectors

DENSE = np.array([[0.0, 1.5, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.5, 0.0]], np.float32)


def test_from_dense_numpy_and_torch_agree():
    a = SparseVectors.from_dense(DENSE, ["x", "y", "z"])
    b = SparseVectors.from_dense(torch.from_numpy(DENSE), ["x", "y", "z"])
    assert a.equals(b)
    assert a.offsets.tolist() == [0, 2, 2, 4]
    assert a.term_ids.tolist() == [1, 3, 0, 2]
    assert a.weights.tolist() == [1.5, 2.0, 3.0, 0.5]
    assert a.nnz.tolist() == [2, 0, 2]
    assert np.array_equal(a.to_dense(), DENSE)


def test_from_rows_sorts_and_drops_non_positive():
    v = SparseVectors.from_rows(["a", "b"], [([3, 1, 2], [0.3, 0.1, 0.0]), ([], [])], vocab_size=4)
    assert v.term_ids.tolist() == [1, 3] and v.weights.tolist() == pytest.approx([0.1, 0.3])
    with pytest.raises(ValueError, match="out of range"):
        SparseVectors.from_rows(["a"], [([9], [1.0])], vocab_size=4)


def test_take_gathers_rows_in_order():
    v = SparseVectors(["a", "b", "c"], [0, 2, 2, 5], [1, 3, 0, 2, 4], [1, 2, 3, 4, 5], 6)
    out = v.take([2, 0, 1])
    assert out.ids == ["c", "a", "b"]
    assert out.offsets.tolist() == [0, 3, 5, 5]
    assert out.term_ids.tolist() == [0, 2, 4, 1, 3]
    assert out.weights.tolist() == [3, 4, 5, 1, 2]
    assert np.array_equal(out.to_dense(), v.to_dense()[[2, 0, 1]])


def test_concat_slice_and_scipy_round_trip():
    v = SparseVectors.from_dense(DENSE, ["x", "y", "z"])
    joined = SparseVectors.concat([v.slice(0, 1), v.slice(1, 3)])
    assert joined.equals(v)
    assert np.array_equal(v.to_scipy().toarray(), DENSE)
    with pytest.raises(ValueError, match="different vocabularies"):
        SparseVectors.concat([v, SparseVectors.empty(7)])


def test_inconsistent_arrays_are_rejected():
    with pytest.raises(ValueError, match="offsets"):
        SparseVectors(["a"], [0], [], [], 3)
    with pytest.raises(ValueError, match="disagree"):
        SparseVectors(["a"], [0, 2], [1], [1.0], 3)
