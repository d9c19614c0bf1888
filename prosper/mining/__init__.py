"""Hard-negative mining: rank the corpus for each training query, keep close non-relevant items.

``prosper mine`` is the command; in Python::

    from prosper.mining import MiningOptions, mine_hard_negatives

    summary = mine_hard_negatives("data/my-shop", "triples.jsonl", bm25=True,
                                  options=MiningOptions(num_negatives=8, relative_margin=0.05))

The output is a triples file for ``prosper train data.triples=triples.jsonl
train.hard_negatives=N`` (see docs/mining.md). Modules: :mod:`~prosper.mining.select` (the
rules, pure), :mod:`~prosper.mining.sources` (BM25, a checkpoint), :mod:`~prosper.mining.output`
(the resumable writer), :mod:`~prosper.mining.api` (the driver).
"""

from prosper.mining.api import MiningSummary, mine_hard_negatives
from prosper.mining.select import MiningOptions, select_negatives

__all__ = ["MiningOptions", "MiningSummary", "mine_hard_negatives", "select_negatives"]
