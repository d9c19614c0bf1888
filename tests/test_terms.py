"""Terms shown to people are decoded and printable (prosper.modeling.terms)."""

from __future__ import annotations

import pytest

from prosper.modeling.terms import display_terms, raw_bytes, readable


@pytest.fixture(scope="module")
def bpe():
    pytest.importorskip("tokenizers")
    from prosper.demo.scratch import train_tokenizer

    return train_tokenizer(["cordless drill with battery\nand more", "日本"], vocab_size=300, kind="bpe")


def test_byte_level_pieces_are_decoded(bpe):
    pieces = ["Ġdrill", "Ġ", "Ċ", "æ", "ā", "d"]
    ids = bpe.convert_tokens_to_ids(pieces)
    # a leading-space word, a lone space, a newline, part of a UTF-8 character, byte 0x01, a letter
    assert display_terms(bpe, ids) == ["drill", "␣", "\\n", "<0xE6>", "\\x01", "d"]
    assert display_terms(bpe, [len(bpe) + 5]) == [f"<unused_{len(bpe) + 5}>"]


def test_no_control_character_survives():
    assert readable("a\u200bb\x07") == "a\\u200bb\\x07"
    assert readable(" \t") == "␣\\t" and readable("") == "∅" and readable("  oak ") == "oak"
    for code in range(0x20):
        assert all(ord(ch) >= 0x20 for ch in readable(chr(code) + "x" + chr(code)))


def test_raw_bytes_reads_the_byte_level_alphabet():
    assert raw_bytes("Ġdrill") == b" drill"
    assert raw_bytes("æĹ¥") == "日".encode()
    assert raw_bytes("drill\u3000") is None  # not a byte-level piece
