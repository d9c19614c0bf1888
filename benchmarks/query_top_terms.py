"""Recall and speed of ``search.query_top_terms`` (keep a query's N highest-weighted terms).

The same vectors and queries as ``benchmarks/search_scale.py`` (Home Depot items replicated to
``--sizes``; zero-shot splade-tiny, and a trained checkpoint's with ``--checkpoint``), one
thread. For each N: recall@k of the pruned query against the full query's exact top k, and the
median latency of both, measured in the same run. Run alone:

    flock /tmp/prosper-bench.lock python benchmarks/query_top_terms.py --checkpoint CK

Writes benchmarks/results/query_top_terms.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _encode_homedepot import encoded  # noqa: E402
from search_scale import checkpoint_vectors, replicate, select_queries  # noqa: E402

from prosper.retrieval.index import InvertedIndex  # noqa: E402


def measure(index: InvertedIndex, queries, k: int, top: int | None) -> tuple[list[set], list[float]]:
    hits, times = [], []
    for i in range(len(queries)):
        one = queries.take(np.asarray([i]))
        start = time.perf_counter()
        result = index.search(one, k=k, query_top_terms=top)
        times.append(time.perf_counter() - start)
        hits.append(set(result[0].ids.tolist()))
    return hits, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[54_667, 546_670])
    parser.add_argument("--tops", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "query_top_terms.json")
    args = parser.parse_args()
    kinds = {"zero-shot": (encoded("item")[0], encoded("query")[0])}
    if args.checkpoint is not None:
        kinds["trained"] = (checkpoint_vectors(args.checkpoint, "item")[0], checkpoint_vectors(args.checkpoint, "query")[0])
    report = {"config": {k: str(v) for k, v in vars(args).items()}, "results": []}
    for kind, (items_all, queries_all) in kinds.items():
        queries = select_queries(queries_all, args.queries)
        for size in args.sizes:
            index = InvertedIndex.build(replicate(items_all, size, 0.1, 0))
            for k in args.k:
                full, full_t = measure(index, queries, k, None)
                for top in args.tops:
                    got, t = measure(index, queries, k, top)
                    recall = float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(got, full)]))
                    row = {"vectors": kind, "items": size, "k": k, "query_top_terms": top, "recall": recall,
                           "median_ms": 1e3 * float(np.median(t)), "full_median_ms": 1e3 * float(np.median(full_t)),
                           "queries_changed": int(sum(int(n) > top for n in queries.nnz))}
                    report["results"].append(row)
                    print(f"{kind:9} {size:>9,} k={k:<5} top {top:<3} recall {recall:.3f}  "
                          f"{row['median_ms']:.2f} ms vs {row['full_median_ms']:.2f} ms full  "
                          f"({row['queries_changed']} of {len(queries)} queries cut)", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
