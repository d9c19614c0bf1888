"""Readable text for vocabulary terms, for display only (reports, tables, explanations).

A term id names a tokenizer piece, and the piece's raw string is rarely what a person should
read: byte-level BPE (GPT-2, Qwen) spells a leading space ``Ġ`` and a newline ``Ċ``, so the
raw ``Ġdrill`` is the text `` drill``; a piece may also hold part of a multi-byte UTF-8
character, which decodes to nothing printable. :func:`display_terms` asks the tokenizer to
decode each piece, then makes the result one short, printable word:

* surrounding whitespace is dropped (``Ġdrill`` -> ``drill``);
* a piece that is only whitespace shows it visibly (``␣`` for a space, ``\\n``, ``\\t``);
* control and other invisible characters inside are written as escapes (``\\x01``, ``\\u200b``),
  so no raw control character ever reaches a terminal or a Markdown file;
* a piece that is part of a UTF-8 character shows its bytes, ``<0xE6>``, read through the
  byte-level alphabet (Radford et al. 2019, GPT-2 §2.2: bytes as printable code points).

Indexing, export and search keep the raw vocabulary strings (they must stay unique and
reversible); only what people read goes through here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache

_VISIBLE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


@lru_cache(maxsize=1)
def _byte_of_char() -> dict[str, int]:
    """The byte-level BPE alphabet, inverted: printable bytes stand for themselves, the other
    68 bytes (controls, space, 0x7F-0xA0, 0xAD) for the code points from 256 up, in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in chars)
    chars.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return {c: b for b, c in chars.items()}


def _escape(ch: str) -> str:
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def readable(text: str) -> str:
    """``text`` (a decoded piece) as one printable word: see the module docstring."""
    stripped = text.strip()
    if not stripped:
        return "".join(_escape(ch) for ch in text) or "∅"
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") or (ch.isspace() and ch != " ") else ch
        for ch in stripped
    )


def raw_bytes(token: str) -> bytes | None:
    """The bytes a byte-level BPE piece stands for, or ``None`` when ``token`` is not one."""
    table = _byte_of_char()
    if not token or any(ch not in table for ch in token):
        return None
    return bytes(table[ch] for ch in token)


def display_terms(tokenizer, term_ids: Sequence[int]) -> list[str]:
    """Readable text of each term id of ``tokenizer`` (a Hugging Face tokenizer), for display.

    Ids past the tokenizer's length (a padded LM head) show as ``<unused_N>``.
    """
    size = len(tokenizer)
    out = []
    for term_id in (int(i) for i in term_ids):
        if not 0 <= term_id < size:
            out.append(f"<unused_{term_id}>")
            continue
        text = tokenizer.decode([term_id])
        if "\ufffd" in text:  # part of a multi-byte character: show the bytes
            token = tokenizer.convert_ids_to_tokens(term_id)
            data = raw_bytes(token)
            text = "".join(f"<0x{b:02X}>" for b in data) if data is not None else readable(token)
            out.append(text)
            continue
        out.append(readable(text))
    return out
