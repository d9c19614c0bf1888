"""Relevance judgments: BEIR ``qrels/<split>.tsv`` (with header) or TREC ``qid 0 docid grade``."""

from __future__ import annotations

from pathlib import Path

from prosper.errors import InputError

Qrels = dict[str, dict[str, int]]


def read_qrels(path: str | Path) -> Qrels:
    """Read judgments into ``{query_id: {item_id: grade}}``.

    Accepts BEIR TSV (``query-id<TAB>corpus-id<TAB>score``, optional header) and TREC qrels
    (``qid iteration docid grade``, whitespace separated). A malformed line raises
    :class:`InputError` naming ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("qrels file not found", path)
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if line_no == 1 and fields and not _is_int(fields[-1]):
                continue  # header
            if len(fields) == 3:
                qid, did, grade = fields
            elif len(fields) == 4:
                qid, _, did, grade = fields
            else:
                raise InputError(f"expected 3 (BEIR) or 4 (TREC) fields, found {len(fields)}", path, line_no)
            if not _is_int(grade):
                raise InputError(f"relevance grade {grade!r} is not an integer", path, line_no)
            qrels.setdefault(qid.strip(), {})[did.strip()] = int(grade)
    return qrels


def split_path(beir_dir: str | Path, split: str) -> Path:
    """``<beir_dir>/qrels/<split>.tsv``."""
    return Path(beir_dir) / "qrels" / f"{split}.tsv"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
