"""What an evaluation searches: judged queries with their texts, and the items to search.

:class:`EvalSet` is the input of the one evaluation pipeline (:mod:`prosper.evaluation.pipeline`).
``prosper eval`` and the demo load a whole split of a BEIR folder with :func:`load_eval_set`;
training validation samples one (:func:`prosper.training.validation.build_dev_set`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prosper.errors import InputError


@dataclass
class EvalSet:
    """Judged queries (ids, texts, ``qrels``) and the items searched for them (ids, texts).

    Every query in ``qrels`` is one of ``query_ids``: metrics average over all of them.
    """

    query_ids: list[str]
    query_texts: list[str]
    item_ids: list[str]
    item_texts: list[str]
    qrels: dict[str, dict[str, int]]

    def __len__(self) -> int:
        return len(self.query_ids)

    def query_text(self) -> dict[str, str]:
        return dict(zip(self.query_ids, self.query_texts))

    def item_text(self) -> dict[str, str]:
        return dict(zip(self.item_ids, self.item_texts))

    def subset(self, qids) -> dict[str, dict[str, int]]:
        """The qrels of ``qids`` (e.g. the queries of one kind)."""
        return {q: self.qrels[q] for q in qids}


def load_eval_set(
    data: str | Path,
    split: str,
    *,
    title_field: str = "title",
    text_field: str = "text",
    on_error: str = "fail",
) -> EvalSet:
    """``qrels/<split>.tsv`` of a BEIR folder, its queries' texts and the whole corpus.

    Queries come in qrels order; a judged query without a text in ``queries.jsonl`` is an
    :class:`~prosper.errors.InputError` (a metric over it would silently count a zero).
    """
    from prosper.data.collections import iter_collection
    from prosper.data.qrels import read_qrels, split_path

    data = Path(data)
    qrels = read_qrels(split_path(data, split))
    fields = {"title_field": title_field, "text_field": text_field, "on_error": on_error}
    item_ids, item_texts = [], []
    for record in iter_collection(data, side="item", **fields):
        item_ids.append(record.id)
        item_texts.append(record.text)
    texts = {r.id: r.text for r in iter_collection(data, side="query", **fields)}
    missing = [qid for qid in qrels if qid not in texts]
    if missing:
        raise InputError(f"{len(missing)} judged queries have no text in queries.jsonl (first: {missing[0]!r})", data)
    qids = list(qrels)
    return EvalSet(qids, [texts[q] for q in qids], item_ids, item_texts, qrels)
