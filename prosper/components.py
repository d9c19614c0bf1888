"""The component contracts: one small base class per kind of plugin.

Over 300 lines on purpose: the whole extension contract on one page, the way plugin authors read it.

A plugin registers a factory for one of these kinds through :mod:`prosper.hookspecs`; the
factory returns an instance of the matching base class here. The core of prosper (trainer,
inference driver, exporters' driver, search and evaluation) uses **only** what these classes
declare: nothing is probed with ``hasattr``. ``prosper plugins check NAME`` runs the same
contract tests on any registered component (:mod:`prosper.contracts`).

===================  ====================================  ==================================
kind                 base class                            the core calls
===================  ====================================  ==================================
backbone             :class:`Backbone`                     ``load(precision, quantization, device)``
ranking loss         :class:`RankingLoss`                  ``loss(W_q, W_d, batch)``, ``bind_scoring``, ``requires_teacher``
regularizer          :class:`Regularizer`                  ``penalty``, ``weight``, ``peak_weight``, ``target``, ``ramp_steps``
exporter             :class:`Exporter` + :class:`Writer`   ``suffix``, ``open`` -> ``write/close/abort``, ``merge``, ``read``, ``roundtrip``
searcher             :class:`Searcher` + :class:`SearchIndex`  ``build``, ``open`` -> ``search``, ``save``, ``len``
===================  ====================================  ==================================

This module imports neither torch nor numpy: plugin modules import it at registration time,
and ``prosper --help`` must stay fast. Tensors appear only in annotations.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from prosper.training.schedules import ScheduleName, scheduled_weight

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy as np
    import torch

    from prosper.modeling.backbones.base import LoadedBackbone
    from prosper.sparse import SparseVectors

SIDES = ("query", "item")


# -- training ------------------------------------------------------------------------------
@dataclass
class TrainingBatch:
    """One training batch as the trainer hands it to a ranking loss.

    ``item_texts``/``item_ids``/``item_index`` hold the B positives (row i is query i's
    positive) followed by the hard negatives in query-major order: query i owns rows
    ``B + i·h ... B + i·h + h - 1`` with ``h = num_negatives``. ``positive_index[i]`` lists every
    item known relevant to query i (padded with -1), so a loss can keep another query's positive
    that is also relevant to query i out of its negatives. ``teacher_scores`` is ``[B, 1 + h]``
    (positive first) when the triples file carries teacher scores, else ``None``. The trainer
    always fills every field; the defaults let a loss be called on a hand-made batch.
    """

    query_ids: list[str] = field(default_factory=list)
    query_texts: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    item_texts: list[str] = field(default_factory=list)
    item_index: torch.Tensor | None = None  # LongTensor [B + B·h]: global item rows
    positive_index: torch.Tensor | None = None  # LongTensor [B, P]
    num_negatives: int = 0
    teacher_scores: torch.Tensor | None = None


class Backbone(ABC):
    """A language model the encoder runs: loads weights and tokenizer on request.

    The factory receives the validated params (``path`` at least, see
    :class:`prosper.modeling.backbones.base.BackboneParams`); nothing heavy happens until
    :meth:`load`.
    """

    @abstractmethod
    def load(self, precision: str, quantization: str, device) -> LoadedBackbone:
        """The model split into body, head and tokenizer (:class:`LoadedBackbone`).

        ``precision``: ``fp32 | bf16 | fp16``; ``quantization``: ``none | 8bit | 4bit``;
        ``device``: a ``torch.device``. Raise :class:`prosper.errors.ProsperError` subclasses
        with a one-line message on failure.
        """


def _paper_scoring(query_vectors, item_vectors):
    """Eq. 11 (only the query L2-normalised), until the trainer binds the model's own rule."""
    from prosper.modeling.scoring import score

    return score(query_vectors, item_vectors, "query_l2")


class RankingLoss(ABC):
    """A ranking loss over final query and item vectors (Eq. 12's ``L_rank``).

    Subclasses implement :meth:`forward`; the trainer calls the loss like a function. Scores
    must come from :meth:`score`, which the trainer binds to the encoder's scoring rule (Eq. 11
    by default, or the configured ablation).
    """

    #: True when the loss needs ``batch.teacher_scores`` (distillation); the trainer refuses to
    #: start, naming ``train.loss``, when the data has none or ``train.hard_negatives < 1``.
    requires_teacher: bool = False

    def __init__(self) -> None:
        self.score_fn: Callable[[Any, Any], Any] = _paper_scoring

    def bind_scoring(self, score_fn: Callable[[Any, Any], Any]) -> None:
        """Use ``score_fn(query_vectors, item_vectors) -> [Bq, Bd]`` for :meth:`score`."""
        self.score_fn = score_fn

    def score(self, query_vectors: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        return self.score_fn(query_vectors, item_vectors)

    @abstractmethod
    def forward(self, query_vectors: torch.Tensor, item_vectors: torch.Tensor, batch: TrainingBatch) -> torch.Tensor:
        """A scalar loss. ``query_vectors``: ``[B, V]``; ``item_vectors``: ``[B + B·h, V]``."""

    def __call__(self, query_vectors, item_vectors, batch: TrainingBatch):
        return self.forward(query_vectors, item_vectors, batch)


class Regularizer(ABC):
    """A sparsity penalty the trainer adds per side: ``weight(t, side) · penalty(w_side)``."""

    #: ``base``: the penalty sees the base vector ``w`` (before LRN and LFW, Eq. 13);
    #: ``final``: the final vector ``W``.
    target: Literal["base", "final"] = "base"
    #: Updates until the weight reaches its final value (0: no ramp). The trainer's collapse
    #: guard starts watching the vectors' width after the longest ramp.
    ramp_steps: int = 0

    @abstractmethod
    def penalty(self, vectors: torch.Tensor) -> torch.Tensor:
        """A scalar penalty of a ``[B, V]`` batch of vectors (differentiable)."""

    @abstractmethod
    def weight(self, step: int, side: str) -> float:
        """λ for ``side`` (``query`` | ``item``) at optimizer update ``step`` (from 1)."""

    def peak_weight(self, side: str) -> float:
        """λ for ``side`` once any ramp is over; the term-budget controller scales from it."""
        return self.weight(max(self.ramp_steps, 1) * 1_000_000, side)


class RegularizerParams(BaseModel):
    """The parameters of a regularizer with a λ per side on a ramp (:class:`ScheduledRegularizer`)."""

    model_config = ConfigDict(extra="forbid")

    lambda_query: float = Field(5e-3, ge=0)  # λ_q at the end of the ramp (paper: 5e-3 for FLOPS)
    lambda_item: float = Field(1e-3, ge=0)  # λ_d at the end of the ramp (paper: 1e-3 for FLOPS)
    schedule: ScheduleName = "quadratic"  # quadratic: λ·min(1, t/T)^2 (the paper); linear; constant
    ramp_steps: int = Field(400, ge=0)  # T: steps to reach the full λ
    target: Literal["base", "final"] = "base"  # base: w before LRN/LFW (Eq. 13); final: W after them


class ScheduledRegularizer(Regularizer):
    """A regularizer whose λ per side ramps up on a schedule; subclasses implement ``penalty``.

    Takes a :class:`RegularizerParams` (or a subclass of it); ``target`` and ``ramp_steps``
    follow the params.
    """

    def __init__(self, params: RegularizerParams | None = None):
        self.params = params or RegularizerParams()
        self.target = self.params.target
        self.ramp_steps = self.params.ramp_steps

    def weight(self, step: int, side: str) -> float:
        if side not in SIDES:
            raise ValueError(f"side must be 'query' or 'item', got {side!r}")
        lam = self.params.lambda_query if side == "query" else self.params.lambda_item
        return scheduled_weight(lam, self.params.schedule, step, self.params.ramp_steps)

    def peak_weight(self, side: str) -> float:
        return float(self.params.lambda_query if side == "query" else self.params.lambda_item)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


# -- export --------------------------------------------------------------------------------
class Writer(ABC):
    """Receives batches of vectors for one file; nothing appears under the path before close."""

    @abstractmethod
    def write(self, batch: SparseVectors) -> None:
        """Append a batch (rows in order)."""

    @abstractmethod
    def close(self) -> dict[str, Any]:
        """Finish atomically; return counters (``rows`` at least), summed over shards."""

    @abstractmethod
    def abort(self) -> None:
        """Drop everything written so far (temporary files included)."""


class Exporter(ABC):
    """Turns sparse vectors into the files (or collection) a search engine loads.

    Usage by the inference driver and ``prosper export``::

        writer = exporter.open(path, vocabulary, side, metadata)
        for batch in batches:
            writer.write(batch)
        summary = writer.close()         # on failure: writer.abort()
        exporter.merge(parts, output, side)  # shards -> one output

    ``vocabulary`` is the term string per term id; ``side`` is ``item`` or ``query``;
    ``metadata`` carries ``tokenizer``, ``checkpoint`` and whatever else is worth recording.
    """

    #: The validated parameters the factory received (recorded in run manifests).
    params: BaseModel | None = None
    #: The sides it can export (a vector database holding the catalogue takes items only).
    sides: tuple[str, ...] = SIDES
    #: True when every shard writes into one shared store (a database collection) instead of a
    #: file of its own: ``read`` then returns the whole store, and rows come back sorted by id.
    store: bool = False

    @abstractmethod
    def suffix(self, side: str) -> str:
        """File name suffix of one shard for ``side`` (e.g. ``.jsonl``)."""

    @abstractmethod
    def open(self, path: str | Path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> Writer:
        """A :class:`Writer` for one output file."""

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None:
        """Combine finished shard files into ``output``; the default concatenates their bytes
        (right for line formats), atomically."""
        from prosper.fileio import AtomicFile

        target = AtomicFile(output)
        try:
            for part in parts:
                with Path(part).open("rb") as handle:
                    shutil.copyfileobj(handle, target.handle, 1 << 22)
            target.commit()
        except BaseException:
            target.abort()
            raise

    @abstractmethod
    def read(self, path: str | Path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        """Read back what :meth:`open` wrote (all rows, in order)."""

    def roundtrip(self, vectors: SparseVectors, side: str) -> SparseVectors:
        """The vectors :meth:`read` returns after writing ``vectors``: the identity for lossless
        formats; lossy ones (quantised weights, dropped zeros) say what they keep."""
        return vectors


# -- search --------------------------------------------------------------------------------
class SearchResult(NamedTuple):
    """Top-k of one query, best first: item ids (object array of str) and float32 scores."""

    ids: np.ndarray
    scores: np.ndarray


class SearchIndex(ABC):
    """An index over item vectors that answers top-k queries."""

    #: The scoring rule (Eq. 11 or an ablation) searches use when none is given.
    scoring: str = "query_l2"
    #: One term string per term id, when the index was built with its vocabulary.
    vocabulary: Sequence[str] | None = None
    #: Item ids in row order, when the index holds them locally (None for a service's index).
    ids: Sequence[str] | None = None

    @abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abstractmethod
    def search(
        self, queries: SparseVectors, k: int = 10, scoring: str | None = None, query_top_terms: int | None = None
    ) -> list[SearchResult]:
        """Top ``k`` per query row, best first; only items with a positive score; ties by the
        order the items were added. ``scoring=None`` uses :attr:`scoring`."""

    @abstractmethod
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the index to ``directory`` (atomically) with a ``meta.json`` naming the
        searcher, so :func:`prosper.retrieval.searchers.open_index` reopens it."""


class Searcher(ABC):
    """What ``search.searcher: {name: ...}`` selects: builds and opens :class:`SearchIndex`es."""

    #: False for approximate searchers: the contract check then asks for recall >= 0.9 on a
    #: small index (and Eq. 11's scores for what is returned) instead of exhaustive results.
    exact: bool = True
    #: False for searchers whose index lives in a service named by their params (a database
    #: URI): ``prosper search``/``eval`` then need no ``--index`` folder.
    needs_directory: bool = True

    @abstractmethod
    def build(self, items: SparseVectors, vocabulary: Sequence[str] | None = None, metadata: dict | None = None) -> SearchIndex:
        """An index over ``items``; ``metadata`` may carry ``scoring``, ``tokenizer``, ..."""

    @abstractmethod
    def open(self, directory: str | Path | None) -> SearchIndex:
        """Reopen a saved index (``directory`` is ``None`` when :attr:`needs_directory` is False)."""


__all__ = [
    "Backbone",
    "Exporter",
    "RankingLoss",
    "Regularizer",
    "RegularizerParams",
    "ScheduledRegularizer",
    "SearchIndex",
    "SearchResult",
    "Searcher",
    "TrainingBatch",
    "Writer",
]
