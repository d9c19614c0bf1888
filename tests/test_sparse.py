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


# -- the sequence protocol, decode, scipy ---------------------------------------------------
V = SparseVectors(["a", "b", "c", "d"], [0, 2, 2, 5, 6], [1, 3, 0, 2, 4, 5], [1, 2, 3, 4, 5, 6], 6)


def test_len_iteration_and_indexing_give_one_row_vectors():
    assert len(V) == 4
    rows = list(V)
    assert [r.ids for r in rows] == [["a"], ["b"], ["c"], ["d"]]
    assert SparseVectors.concat(rows).equals(V)
    assert V[0].ids == ["a"] and V[0].term_ids.tolist() == [1, 3] and V[0].offsets.tolist() == [0, 2]
    assert V[-1].equals(V[3]) and V[np.int64(2)].equals(V.slice(2, 3))
    assert V[1].nnz.tolist() == [0]  # an empty row stays a row
    with pytest.raises(IndexError, match="row 4 is out of range for 4 rows"):
        V[4]
    with pytest.raises(IndexError):
        V[-5]


def test_slices_lists_and_masks_select_rows():
    assert V[1:3].equals(V.slice(1, 3)) and V[:].equals(V) and len(V[3:1]) == 0
    assert V[::2].ids == ["a", "c"] and np.array_equal(V[::-1].to_dense(), V.to_dense()[::-1])
    assert V[[3, 0, -1]].ids == ["d", "a", "d"]
    assert V[np.array([True, False, False, True])].ids == ["a", "d"]
    assert len(V[[]]) == 0
    with pytest.raises(IndexError, match="boolean mask"):
        V[np.array([True, False])]
    with pytest.raises(TypeError, match="rows are selected by"):
        V["a"]


def test_decode_orders_by_weight_and_names_terms():
    vocab = ["[PAD]", "oak", "table", "drill", "##s", "x"]
    assert V.decode() == [[("3", 2.0), ("1", 1.0)], [], [("4", 5.0), ("2", 4.0), ("0", 3.0)], [("5", 6.0)]]
    assert V.decode(top_k=2, vocabulary=vocab)[2] == [("##s", 5.0), ("table", 4.0)]
    ties = SparseVectors(["q"], [0, 3], [0, 2, 4], [1.0, 1.0, 1.0], 6)
    assert [t for t, _ in ties.decode(vocabulary=vocab)[0]] == ["[PAD]", "table", "##s"]  # ties: lower id first
    with pytest.raises(ValueError, match="vocabulary has 2 terms but the vectors 6"):
        V.decode(vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="top_k"):
        V.decode(top_k=0)


def test_decode_byte_level_and_sentencepiece_vocabularies_are_readable():
    import unicodedata

    from prosper.sparse import vocabulary_terms

    byte_vocab = ["Ġdrill", "Ċ", "Ġ", "Ã©", "æ", "<|endoftext|>", "drill", "Ā"] + [chr(c) for c in range(0x21, 0x7F)]
    names = vocabulary_terms(byte_vocab, range(8))
    assert names[:3] == ["drill", "\\n", "␣"]
    assert names[3] == "é"  # two bytes, one character
    assert names[4] == "<0xE6>"  # the first byte of a three-byte character
    assert names[5:7] == ["<|endoftext|>", "drill"]
    assert names[7] == "\\x00"  # byte 0: escaped, never the control character itself
    assert vocabulary_terms(["▁drill", "▁", "s"], range(3)) == ["drill", "␣", "s"]
    # WordPiece / plain vocabularies are left alone (no Ġ terms): 'é' is a letter, not a byte
    assert vocabulary_terms(["é", "drill", "##ing"], range(3)) == ["é", "drill", "##ing"]
    for name in names:
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name)


def test_decode_with_a_real_byte_level_tokenizer_matches_its_decoder():
    """Oracle: the tokenizer's own decode of each term, stripped, wherever that is printable text;
    the raw-vocabulary route and the tokenizer route agree term by term."""
    from prosper.demo.scratch import train_tokenizer

    tokenizer = train_tokenizer(None, vocab_size=400)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert sum(t.startswith("Ġ") and len(t) > 1 for t in vocab) > 20  # merges with a leading space
    every = SparseVectors.from_rows(["v"], [(list(range(len(vocab))), np.arange(len(vocab), 0, -1))], len(vocab))
    by_list = [name for name, _ in every.decode(vocabulary=vocab)[0]]  # weights descend with the id
    by_tokenizer = [name for name, _ in every.decode(vocabulary=tokenizer)[0]]
    assert by_list == by_tokenizer
    checked = 0
    for i in range(len(vocab)):
        text = tokenizer.decode([i])
        if text.strip() and text.strip().isprintable() and "\ufffd" not in text:
            assert by_list[i] == text.strip(), (i, vocab[i])
            checked += 1
    assert checked > 200 and "with" in by_list and not any("Ġ" in name for name in by_list)


def test_from_scipy_round_trip_and_cleaning():
    from scipy.sparse import coo_matrix, csr_matrix

    assert SparseVectors.from_scipy(V.to_scipy(), ids=V.ids).equals(V)
    messy = coo_matrix(([2.0, 1.0, 0.5, 0.0, -1.0], ([0, 0, 0, 1, 1], [3, 1, 3, 2, 0])), shape=(2, 5))
    clean = SparseVectors.from_scipy(messy)
    assert clean.ids == ["0", "1"] and clean.offsets.tolist() == [0, 2, 2]
    assert clean.term_ids.tolist() == [1, 3] and clean.weights.tolist() == [1.0, 2.5]  # duplicates summed, sorted
    original = csr_matrix(np.array([[0.0, 3.0, -2.0]], np.float32))
    SparseVectors.from_scipy(original)
    assert original.data.tolist() == [3.0, -2.0]  # the caller's matrix is not modified
    with pytest.raises(ValueError, match="1 ids for 2 rows"):
        SparseVectors.from_scipy(messy, ids=["x"])
