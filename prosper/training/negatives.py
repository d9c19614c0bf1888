"""Hard negatives for training from qrels: mined once per run with BM25, before the first step.

When ``train.hard_negatives > 0`` and the data are BEIR qrels (no ``data.triples``),
``data.negatives: bm25`` mines each training query's negatives with
:func:`prosper.mining.mine_hard_negatives` (judged non-relevant items first, then BM25's top
candidates that are not judged positives) into ``<train.output_dir>/negatives.jsonl``; training
then reads that file as triples. The file is kept, so a resumed run reads the same negatives, and
the user can inspect where each one came from. ``data.negatives: none`` draws random items.
"""

from __future__ import annotations

from pathlib import Path

NEGATIVES_FILE = "negatives.jsonl"
MINED_PER_QUERY = 8  # a pool to draw train.hard_negatives from, so repeated epochs see variety


def training_data_settings(settings, output_dir: Path, is_main: bool, barrier):
    """The ``data`` settings training reads: the user's, or the same with mined triples."""
    data, train = settings.data, settings.train
    if train.hard_negatives < 1 or data.triples or data.negatives == "none" or not data.path:
        return data
    path = Path(output_dir) / NEGATIVES_FILE
    if is_main and not path.exists():
        from prosper.mining import mine_hard_negatives
        from prosper.mining.select import MiningOptions

        options = MiningOptions(num_negatives=max(MINED_PER_QUERY, train.hard_negatives), min_grade=data.min_grade)
        mine_hard_negatives(
            data.path, path, bm25=True, split=data.train_split, options=options, resume=True,
            title_field=data.title_field, text_field=data.text_field,
        )
    barrier()
    return data.model_copy(update={"triples": str(path)})
