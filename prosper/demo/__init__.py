"""``prosper demo``: the whole PROSPER pipeline end to end on synthetic product search, offline.

Every step calls the library (training, inference, export, index, the evaluation pipeline,
fusion); this package holds only what is the demo's own::

    presets.py   sizes, the recipe's settings tree, the claims it checks
    pipeline.py  run_demo: the eight steps, each a library call
    findings.py  means per query kind, verdicts, channel counts, explanations
    report.py    DemoSummary and the tables, summary.md, summary.json, metrics.json
    synth.py     the synthetic BEIR collection (catalog.py: products; queries.py: queries, grades)
    scratch.py   tiny random models and tokenizers built from scratch (also used by tests)

Output folder (``run_demo(OUT)``)::

    OUT/
      data/                 synthetic BEIR collection (prosper.demo.synth)
      backbone-init/        the untrained Qwen-architecture model and its tokenizer (scratch mode)
      model/                training run: checkpoints/, metrics.jsonl, settings.yaml, final/
      vectors.parquet       item vectors (id, term_ids, weights + vocabulary metadata)
      queries.parquet       dev query vectors
      lucene/docs.jsonl     Anserini JsonVectorCollection (impact weights) for the items
      lucene/queries.tsv    Anserini impact queries (terms repeated by weight)
      index/                prosper's embedded inverted index (memory-mapped .npy arrays)
      bm25/                 the BM25 channel over the same titles and descriptions
      runs/                 TREC runs of both channels and of their fusions on the dev queries
      metrics.json          metrics per query kind and channel, channel analysis, explanations
      summary.json          what ran, how long, where every artefact is, the verdicts
      summary.md            the same for people

By default (``backbone=None``) the backbone is a *tiny Qwen2-architecture model built from
scratch* (random weights, a byte-level BPE tokenizer trained on the catalog) and trained with the
PROSPER recipe (InfoNCE with in-batch negatives, FLOPS regularisation with the quadratic λ ramp,
LRN, LFW; METHOD.md Eq. 5-13) on the synthetic train queries. It is not a pretrained LLM: whatever
it knows about "couch" and "sofa" it learned from the demo's own training queries. With
``backbone=HUB_ID_OR_DIR`` the same pipeline fine-tunes a real pretrained model instead.

Importing this package imports neither torch nor transformers.
"""

from prosper.demo.pipeline import run_demo
from prosper.demo.presets import DISCLAIMER, MEASURES, PRESETS, DemoPreset, backbone_spec, demo_settings_tree
from prosper.demo.report import DemoSummary

__all__ = ["DISCLAIMER", "MEASURES", "PRESETS", "DemoPreset", "DemoSummary", "backbone_spec", "demo_settings_tree", "run_demo"]
