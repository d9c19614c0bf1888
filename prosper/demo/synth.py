"""A synthetic product-search collection in the BEIR layout, deterministic for a seed.

The catalog has products across departments and categories, each with a brand, a product line,
an alphanumeric model number (``VL-4821G``) and attributes (colour, material, size). Queries come
in the kinds that hurt lexical engines on real shops, with graded judgments:

``model_number``    the exact model number (``VL-4821G``): BM25's home ground.
``brand_category``  ``veltra sofa``.
``attribute``       ``grey linen sofa``, ``hoodie large``.
``synonym``         a word no title uses for the category (``grey couch`` for sofas).
``hypernym``        a broader word (``kasumi footwear`` for sneakers, boots, sandals, slippers).
``misspelling``     one word of a brand, attribute or synonym query misspelt (``veltar sofa``).

Synonyms and hypernyms never occur in titles or descriptions, so a lexical engine cannot match
them; misspellings never equal a catalog word. Train and dev queries are disjoint texts drawn
from the same phenomena (the same synonym pairs, hypernyms and misspelling operations), so a
learned model can pick up ``couch -> sofa`` on train and use it on dev for other products.

Grades: 2 = the product satisfies every constraint of the query; 1 = it is in the queried
category and misses exactly one constraint (for single-category queries); 0 = judged irrelevant
(a few items outside the category that share every other constraint, the distractors a lexical
engine likes). Unjudged products are not relevant.

Files: ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl`` (``{"_id", "text",
"kind", "metadata"}``), ``qrels/train.tsv`` and ``qrels/dev.tsv`` (``query-id<TAB>corpus-id<TAB>score``
with a header) and ``manifest.json`` (seed, sizes, counts per kind and split).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from prosper.demo.catalog import DEPARTMENTS, build_catalog, catalog_words
from prosper.demo.queries import DEFAULT_MIX, KINDS, Judge, generate_queries, misspell
from prosper.errors import ConfigError
from prosper.fileio import atomic_write_text

__all__ = ["DEFAULT_MIX", "DEPARTMENTS", "KINDS", "catalog_words", "generate", "load_query_kinds", "misspell"]

GENERATOR_VERSION = 1


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def generate(
    out_dir: str | Path,
    seed: int = 0,
    n_products: int = 2000,
    n_queries: int = 1000,
    dev_fraction: float = 0.2,
    mix: dict[str, float] | None = None,
) -> Path:
    """Write a synthetic BEIR folder to ``out_dir`` and return its path.

    Same arguments, same bytes. ``dev_fraction`` of each kind's queries go to ``qrels/dev.tsv``,
    the rest to ``qrels/train.tsv`` (disjoint query texts). ``mix`` maps kinds to shares
    (default :data:`DEFAULT_MIX`).
    """
    if n_products < 50:
        raise ConfigError(f"synth: n_products={n_products}; need at least 50 (a few per category)")
    if n_queries < len(KINDS):
        raise ConfigError(f"synth: n_queries={n_queries}; need at least {len(KINDS)} (one per kind)")
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"synth: dev_fraction={dev_fraction}; must be between 0 and 1")
    out = Path(out_dir)
    rng = random.Random(seed)
    products = build_catalog(rng, n_products)
    queries = generate_queries(rng, products, n_queries, mix)
    qwidth = max(5, len(str(len(queries))))
    rng.shuffle(queries)
    for i, q in enumerate(queries, start=1):
        q.id = f"q{i:0{qwidth}d}"

    judge = Judge(products)

    split: dict[str, str] = {}
    for kind in KINDS:
        ids = [q.id for q in queries if q.kind == kind]
        n_dev = max(1, round(len(ids) * dev_fraction)) if len(ids) > 1 else 0
        for j, qid in enumerate(ids):
            split[qid] = "dev" if j < n_dev else "train"

    qrel_lines = {"train": ["query-id\tcorpus-id\tscore\n"], "dev": ["query-id\tcorpus-id\tscore\n"]}
    counts: dict[str, Counter] = {"train": Counter(), "dev": Counter()}
    grade_counts: Counter = Counter()
    for q in sorted(queries, key=lambda q: q.id):
        grades = judge(q, rng)
        for pid in sorted(grades):
            qrel_lines[split[q.id]].append(f"{q.id}\t{pid}\t{grades[pid]}\n")
            grade_counts[grades[pid]] += 1
        counts[split[q.id]][q.kind] += 1

    atomic_write_text(out / "corpus.jsonl", _jsonl({"_id": p.id, "title": p.title, "text": p.text} for p in products))
    atomic_write_text(
        out / "queries.jsonl",
        _jsonl(
            {"_id": q.id, "text": q.text, "kind": q.kind, "metadata": q.metadata}
            for q in sorted(queries, key=lambda q: q.id)
        ),
    )
    for name, lines in qrel_lines.items():
        atomic_write_text(out / "qrels" / f"{name}.tsv", "".join(lines))
    manifest = {
        "generator": "prosper.demo.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_products": len(products),
        "n_queries": len(queries),
        "dev_fraction": dev_fraction,
        "mix": {k: (DEFAULT_MIX if mix is None else mix).get(k, 0.0) for k in KINDS},
        "splits": {name: {"queries": sum(c.values()), "kinds": {k: c[k] for k in KINDS}} for name, c in counts.items()},
        "judgments": {str(g): grade_counts[g] for g in (2, 1, 0)},
        "kinds": list(KINDS),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return out


def load_query_kinds(beir_dir: str | Path) -> dict[str, str]:
    """``{query_id: kind}`` from a synthetic folder's ``queries.jsonl`` (queries without a kind are left out)."""
    kinds = {}
    path = Path(beir_dir) / "queries.jsonl"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if "kind" in row:
                    kinds[str(row["_id"])] = row["kind"]
    return kinds
