"""Training examples for ``prosper train``: from BEIR qrels or a triples file, ready to batch.

Over 300 lines on purpose: loading, the seeded batch plan and batch assembly share one data
layout (:class:`TrainingData`) and must change together for resume to stay exact.

Sources (``data`` settings):

* BEIR layout (``data.path``): ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<train_split>.tsv``;
  every judged pair with grade >= ``data.min_grade`` is a positive; one example per query.
* A triples file (``data.triples``, see :mod:`prosper.data.triples`): one example per record,
  with optional hard negatives and teacher scores; texts come from ``data.path`` (or inline
  ``query_text``). Corpus/queries may be JSONL, TSV or Parquet (:mod:`prosper.data.collections`).

Every file is streamed; only the texts of the ids that training uses are kept in memory. Ids
absent from the corpus/queries are reported (count and examples) and dropped; if nothing is
left an :class:`InputError` says why.

Batches are a pure function of ``(seed, position)``: the example order of epoch ``e`` is a
seeded permutation, the positive (and hard negatives) drawn for an example at a position come
from a generator seeded with ``(seed, position, example)``. Resuming at a position therefore
replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prosper.components import TrainingBatch
from prosper.data.triples import TrainExample, iter_triples
from prosper.errors import ConfigError, InputError

MAX_EXAMPLES_SHOWN = 5


@dataclass
class UnknownIds:
    """Ids referenced by the training data but absent from the collection."""

    count: int = 0
    examples: list[str] = field(default_factory=list)  # "id (file:line)"

    def add(self, item_id: str, where: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES_SHOWN:
            self.examples.append(f"{item_id!r} ({where})" if where else repr(item_id))


@dataclass
class DataReport:
    examples: int = 0
    dropped_examples: int = 0
    unknown_queries: UnknownIds = field(default_factory=UnknownIds)
    unknown_items: UnknownIds = field(default_factory=UnknownIds)

    def warnings(self) -> list[str]:
        lines = []
        if self.unknown_queries.count:
            lines.append(
                f"{self.unknown_queries.count} query id(s) not in the queries file, e.g. "
                + ", ".join(self.unknown_queries.examples)
            )
        if self.unknown_items.count:
            lines.append(
                f"{self.unknown_items.count} item id(s) not in the corpus, e.g. " + ", ".join(self.unknown_items.examples)
            )
        if self.dropped_examples:
            lines.append(f"{self.dropped_examples} training example(s) dropped (unknown query or no positive left)")
        return lines


@dataclass
class TrainingData:
    """Examples as integer indices into ``query_texts`` / ``item_texts``."""

    query_ids: list[str]  # one per example
    query_texts: list[str]  # one per example
    positives: list[np.ndarray]  # item indices per example
    negatives: list[np.ndarray]
    teacher: list[dict[int, float] | None]
    relevant: list[np.ndarray]  # every item known relevant to the example's query (masking)
    item_ids: list[str]
    item_texts: list[str]
    report: DataReport

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def has_teacher(self) -> bool:
        return any(t is not None for t in self.teacher)


def examples_from_qrels(qrels_path: str | Path, min_grade: int = 1) -> list[TrainExample]:
    """One example per query: the items judged ``>= min_grade`` are its positives."""
    from prosper.data.qrels import read_qrels

    qrels = read_qrels(qrels_path)
    examples = []
    for qid, judged in qrels.items():
        positives = [did for did, grade in judged.items() if grade >= min_grade]
        if positives:
            examples.append(TrainExample(qid, positives, [], None, None, str(qrels_path)))
    if not examples:
        raise InputError(f"no judged pair with grade >= {min_grade}", qrels_path)
    return examples


def _select_texts(path, side: str, wanted: set[str], title_field: str, text_field: str) -> dict[str, str]:
    """Stream a collection and keep only the texts of ``wanted`` ids."""
    from prosper.data.collections import iter_collection

    found = {}
    for record in iter_collection(path, side, title_field=title_field, text_field=text_field):
        if record.id in wanted:
            found[record.id] = record.text
    return found


def build_training_data(
    examples: Iterable[TrainExample],
    queries: str | Path | dict[str, str] | None,
    corpus: str | Path | dict[str, str],
    *,
    title_field: str = "title",
    text_field: str = "text",
) -> TrainingData:
    """Resolve ids to texts, drop (and report) unknown ids, index the examples."""
    examples = list(examples)
    wanted_items = {i for ex in examples for i in ex.positives + ex.negatives}
    wanted_queries = {ex.query_id for ex in examples if ex.query_text is None}
    if isinstance(corpus, dict):
        item_text = {i: corpus[i] for i in wanted_items if i in corpus}
    else:
        item_text = _select_texts(corpus, "item", wanted_items, title_field, text_field)
    if queries is None:
        query_text = {}
    elif isinstance(queries, dict):
        query_text = {q: queries[q] for q in wanted_queries if q in queries}
    else:
        query_text = _select_texts(queries, "query", wanted_queries, title_field, text_field)

    report = DataReport()
    item_index: dict[str, int] = {}
    item_ids: list[str] = []
    seen_unknown: set[str] = set()

    def index_of(item: str, where: str) -> int | None:
        idx = item_index.get(item)
        if idx is None:
            if item not in item_text:
                if item not in seen_unknown:
                    seen_unknown.add(item)
                    report.unknown_items.add(item, where)
                return None
            idx = item_index[item] = len(item_ids)
            item_ids.append(item)
        return idx

    q_ids, q_texts, pos, neg, teach, by_query = [], [], [], [], [], {}
    unknown_q: set[str] = set()
    for ex in examples:
        text = ex.query_text if ex.query_text is not None else query_text.get(ex.query_id)
        if text is None:
            if ex.query_id not in unknown_q:
                unknown_q.add(ex.query_id)
                report.unknown_queries.add(ex.query_id, ex.source)
            report.dropped_examples += 1
            continue
        p = [i for i in (index_of(x, ex.source) for x in ex.positives) if i is not None]
        n = [i for i in (index_of(x, ex.source) for x in ex.negatives) if i is not None]
        if not p:
            report.dropped_examples += 1
            continue
        teacher = None
        if ex.teacher is not None:
            teacher = {item_index[x]: s for x, s in ex.teacher.items() if x in item_index}
        by_query.setdefault(ex.query_id, set()).update(p)
        q_ids.append(ex.query_id)
        q_texts.append(text)
        pos.append(np.asarray(p, np.int64))
        neg.append(np.asarray(n, np.int64))
        teach.append(teacher)
    report.examples = len(q_ids)
    if not q_ids:
        detail = "; ".join(report.warnings()) or "no examples"
        raise InputError(f"no usable training example ({detail})")
    relevant = [np.asarray(sorted(by_query[q]), np.int64) for q in q_ids]
    return TrainingData(q_ids, q_texts, pos, neg, teach, relevant, item_ids, [item_text[i] for i in item_ids], report)


def load_training_data(data_settings) -> TrainingData:
    """Build the training data the ``data`` settings describe (qrels or a triples file)."""
    path = Path(data_settings.path) if data_settings.path else None
    if data_settings.triples:
        examples = iter_triples(data_settings.triples)
    elif path is not None:
        from prosper.data.qrels import split_path

        examples = examples_from_qrels(split_path(path, data_settings.train_split), data_settings.min_grade)
    else:
        raise ConfigError("data.path: set a BEIR folder (or data.triples with data.path for the texts)")
    if path is None:
        raise ConfigError("data.path: a BEIR folder (or corpus file) is needed for the item texts")
    corpus = data_settings.corpus or path
    queries = data_settings.queries or path
    return build_training_data(
        examples, queries, corpus, title_field=data_settings.title_field, text_field=data_settings.text_field
    )


class BatchPlan:
    """Which examples form global batch number ``position`` (0-based, counted across epochs).

    An epoch is a seeded permutation of the examples cut into ``batch_size * world_size`` global
    batches (the tail that does not fill one is dropped: in-batch negatives want full batches).
    Rank ``r`` takes the ``r``-th slice of ``batch_size`` examples.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, world_size: int = 1):
        self.n = n_examples
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.global_batch = batch_size * world_size
        self.batches_per_epoch = n_examples // self.global_batch
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"train.batch_size: {n_examples} training examples cannot fill one batch of "
                f"{batch_size} x {world_size} process(es)"
            )
        self._cached: tuple[int, np.ndarray] | None = None

    def epoch_order(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cached = (epoch, rng.permutation(self.n))
        return self._cached[1]

    def epoch_of(self, position: int) -> int:
        return position // self.batches_per_epoch

    def indices(self, position: int, rank: int = 0) -> np.ndarray:
        epoch, within = divmod(position, self.batches_per_epoch)
        start = within * self.global_batch + rank * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size]


def make_batch(data: TrainingData, indices: np.ndarray, position: int, seed: int, hard_negatives: int = 0) -> TrainingBatch:
    """Draw one positive (and ``hard_negatives`` negatives) per example; deterministic.

    Returns texts for the encoder and the tensors the losses need (see
    :mod:`prosper.training.losses.base`). When an example has fewer hard negatives than asked,
    random items that are not relevant to it fill the gap.
    """
    import torch

    h = hard_negatives
    pos_items, neg_items, teacher_rows = [], [], []
    for example in indices:
        example = int(example)
        rng = np.random.default_rng([seed, position, example])
        pos = data.positives[example]
        chosen = int(pos[rng.integers(len(pos))])
        pos_items.append(chosen)
        negs: list[int] = []
        if h:
            pool = data.negatives[example]
            if len(pool):
                take = rng.choice(len(pool), size=min(h, len(pool)), replace=False)
                negs = [int(pool[t]) for t in take]
            relevant = set(data.relevant[example].tolist())
            while len(negs) < h:
                candidate = int(rng.integers(len(data.item_ids)))
                if candidate not in relevant or len(relevant) >= len(data.item_ids):
                    negs.append(candidate)
            neg_items.extend(negs)
        teacher = data.teacher[example]
        if teacher is not None:
            row = [teacher.get(i) for i in [chosen, *negs]]
            if any(score is None for score in row):
                raise InputError(
                    f"query {data.query_ids[example]!r}: fewer than {h} hard negatives with teacher scores "
                    "(lower train.hard_negatives or add negatives to the triples file)"
                )
            teacher_rows.append(row)
    items = pos_items + neg_items
    width = max(len(data.relevant[int(e)]) for e in indices)
    positive_index = torch.full((len(indices), width), -1, dtype=torch.long)
    for row, example in enumerate(indices):
        rel = data.relevant[int(example)]
        positive_index[row, : len(rel)] = torch.from_numpy(rel)
    teacher_scores = None
    if teacher_rows and len(teacher_rows) == len(indices):
        teacher_scores = torch.tensor(teacher_rows, dtype=torch.float32)
    return TrainingBatch(
        query_ids=[data.query_ids[int(e)] for e in indices],
        query_texts=[data.query_texts[int(e)] for e in indices],
        item_ids=[data.item_ids[i] for i in items],
        item_texts=[data.item_texts[i] for i in items],
        item_index=torch.tensor(items, dtype=torch.long),
        positive_index=positive_index,
        num_negatives=h,
        teacher_scores=teacher_scores,
    )
