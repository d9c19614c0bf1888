"""Search speed: prosper's embedded exact index vs scipy brute force vs Seismic (approximate).

Corpus: the Home Depot titles (../shared/datasets/homedepot, 54,667 items) encoded with
splade-tiny (see _encode_homedepot.py; cached under /tmp). Queries: the dev split's queries
(and more from queries.jsonl for timing). Measured in one run, on the same machine:

* ``exact``: :class:`prosper.retrieval.index.InvertedIndex`, saved then reopened memory-mapped;
* ``scipy``: brute force, ``items_csr @ q`` for each query (dense q; the sparse-q product is
  measured too and the faster one is the baseline), then the same top-k selection;
* ``scipy-batch``: one sparse-sparse product for all queries (throughput only);
* ``seismic``: pyseismic-lsr, one thread, with recall@k against exact search.

Latencies are medians over every query, methods interleaved in rounds to share the noise of a
busy machine. Run under the benchmark lock:

    flock /tmp/prosper-bench.lock python benchmarks/search.py

Writes benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _encode_homedepot import DATA, encoded  # noqa: E402

from prosper.retrieval.index import InvertedIndex, prepare_query, top_k  # noqa: E402
from prosper.sparse import SparseVectors  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"


def ms(values) -> dict:
    a = np.asarray(values) * 1e3
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "mean_ms": float(a.mean())}


def select_queries(queries: SparseVectors, n: int) -> SparseVectors:
    """The dev queries first, then others, non-empty, up to ``n``."""
    from prosper.data.qrels import read_qrels, split_path

    dev = set(read_qrels(split_path(DATA, "dev")))
    order = [i for i, q in enumerate(queries.ids) if q in dev] + [i for i, q in enumerate(queries.ids) if q not in dev]
    order = [i for i in order if queries.nnz[i] > 0][:n]
    rows = [queries.row(i) for i in order]
    return SparseVectors.from_rows([queries.ids[i] for i in order], rows, queries.vocab_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="queries timed")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seismic-n-postings", type=int, default=2000)
    parser.add_argument("--no-seismic", action="store_true")
    args = parser.parse_args()

    items, item_info = encoded("item")
    all_queries, query_info = encoded("query")
    queries = select_queries(all_queries, args.queries)
    scoring, k = "query_l2", args.k
    print(f"items {len(items):,} (avg nnz {items.nnz.mean():.1f}), queries {len(queries):,} "
          f"(avg nnz {queries.nnz.mean():.1f}), encoder: {item_info['encoder']}", flush=True)

    # -- build, save, reopen memory-mapped --------------------------------------------------
    tmp = Path(tempfile.mkdtemp(prefix="prosper-bench-idx-"))
    start = time.perf_counter()
    built = InvertedIndex.build(items)
    build_s = time.perf_counter() - start
    built.save(tmp / "idx")
    del built
    start = time.perf_counter()
    index = InvertedIndex.open(tmp / "idx")
    open_s = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in (tmp / "idx").iterdir())
    df = np.diff(index.term_offsets)

    prepared = [prepare_query(*queries.row(i), scoring) for i in range(len(queries))]
    prepared15 = [prepare_query(*queries.row(i), scoring, 15) for i in range(len(queries))]
    touched = np.array([int(df[t].sum()) for t, _ in prepared])
    n_terms = np.array([len(t) for t, _ in prepared])

    # -- brute force with scipy ---------------------------------------------------------------
    from scipy.sparse import csr_matrix

    matrix = items.to_scipy().tocsr()
    vocab = items.vocab_size

    def scipy_dense(t, w):
        q = np.zeros(vocab, np.float32)
        q[t] = w
        return top_k(np.asarray(matrix @ q, dtype=np.float32).ravel(), k)

    def scipy_sparse(t, w):
        q = csr_matrix((w, t.astype(np.int32), [0, len(t)]), shape=(1, vocab)).T.tocsc()
        scores = np.asarray((matrix @ q).toarray(), dtype=np.float32).ravel()
        return top_k(scores, k)

    def exact(t, w):
        return index.search_one(t, w, k)

    methods = {"exact": (exact, prepared), "exact_top15": (exact, prepared15),
               "scipy_dense_q": (scipy_dense, prepared), "scipy_sparse_q": (scipy_sparse, prepared)}
    for name, (fn, qs) in methods.items():  # warm-up (page in the mapping, caches)
        for t, w in qs[:20]:
            fn(t, w)
    times = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, (fn, qs) in methods.items():
            for t, w in qs:
                s = time.perf_counter()
                fn(t, w)
                times[name].append(time.perf_counter() - s)
    # correctness on the way: exact equals brute force
    mismatched = 0
    for t, w in prepared[:200]:
        a, b = exact(t, w), scipy_dense(t, w)
        if not np.allclose(a[1], b[1], rtol=1e-5):
            mismatched += 1

    # -- batch throughput: one sparse-sparse product for all queries -------------------------
    qmat = queries.to_scipy()
    rows = [prepare_query(*queries.row(i), scoring) for i in range(len(queries))]
    qn = SparseVectors.from_rows(queries.ids, [(t, w) for t, w in rows], vocab).to_scipy()
    start = time.perf_counter()
    product = (matrix @ qn.T.tocsc()).T.tocsr()
    for i in range(product.shape[0]):
        lo, hi = product.indptr[i], product.indptr[i + 1]
        dense = np.zeros(len(items), np.float32)
        dense[product.indices[lo:hi]] = product.data[lo:hi]
        top_k(dense, k)
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    index.search(queries, k, scoring)
    exact_batch_s = time.perf_counter() - start
    del qmat

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "note": "2 shared cores; other agents may have been running"},
        "corpus": {"items": len(items), "avg_item_nnz": float(items.nnz.mean()), "vocab_size": vocab,
                   "encoder": item_info["encoder"], "model": item_info["model"]},
        "queries": {"n": len(queries), "avg_nnz": float(n_terms.mean()), "median_nnz": float(np.median(n_terms)),
                    "median_postings_touched": float(np.median(touched))},
        "k": k,
        "scoring": scoring,
        "index": {"build_s": build_s, "open_s": open_s, "disk_mb": disk / 2**20},
        "latency": {name: ms(v) for name, v in times.items()},
        "exact_vs_bruteforce_mismatches": mismatched,
    }
    # the 15-term query target: queries that have exactly 15 terms
    per_query = np.asarray(times["exact"]).reshape(args.rounds, -1)
    fifteen = n_terms == 15
    report["latency"]["exact_15_term_queries"] = {**ms(per_query[:, fifteen].ravel()), "n_queries": int(fifteen.sum())}
    baseline = min(("scipy_dense_q", "scipy_sparse_q"), key=lambda n: report["latency"][n]["median_ms"])
    report["baseline"] = baseline
    report["speedup_exact_vs_scipy"] = report["latency"][baseline]["median_ms"] / report["latency"]["exact"]["median_ms"]
    report["throughput_qps"] = {
        "exact": len(queries) / exact_batch_s,
        "scipy_batch_product": len(queries) / batch_s,
        "exact_per_query_median": 1e3 / report["latency"]["exact"]["median_ms"],
        baseline + "_per_query_median": 1e3 / report["latency"][baseline]["median_ms"],
    }

    # -- seismic (approximate) ---------------------------------------------------------------
    if not args.no_seismic:
        try:
            import seismic  # noqa: F401
        except ImportError:
            report["seismic"] = "not installed (pip install 'prosper-retrieval[seismic]')"
        else:
            from prosper.retrieval.searchers import SeismicParams
            from prosper.retrieval.seismic import SeismicSearchIndex

            out = {}
            params = SeismicParams(n_postings=args.seismic_n_postings, num_threads=1)
            start = time.perf_counter()
            sx = SeismicSearchIndex.build(items, params)
            out["build_s"] = time.perf_counter() - start
            out["params"] = params.model_dump()
            exact_results = index.search(queries, k, scoring)
            for depth in (10, 100, 1000):
                if depth > k:
                    continue
                lat, recalls = [], []
                for _ in range(args.rounds):
                    for i in range(len(queries)):
                        one = queries.slice(i, i + 1)
                        s = time.perf_counter()
                        (res,) = sx.search(one, depth, scoring)
                        lat.append(time.perf_counter() - s)
                        if _ == 0:
                            truth = set(exact_results[i].ids[:depth].tolist())
                            if truth:
                                recalls.append(len(truth & set(res.ids.tolist())) / len(truth))
                out[f"k{depth}"] = {**ms(lat), "recall_vs_exact": float(np.mean(recalls))}
            report["seismic"] = out
            # exact at the same depths, for a like-for-like ratio
            for depth in (10, 100):
                lat = []
                for t, w in prepared:
                    s = time.perf_counter()
                    index.search_one(t, w, depth)
                    lat.append(time.perf_counter() - s)
                report["latency"][f"exact_k{depth}"] = ms(lat)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = RESULTS.with_name(RESULTS.name + f".tmp-{os.getpid()}")
    tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_json, RESULTS)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)

    lat = report["latency"]
    print(f"index: build {build_s:.1f}s, open (mmap) {open_s * 1e3:.1f} ms, {disk / 2**20:.0f} MiB on disk")
    print(f"queries: avg {n_terms.mean():.1f} terms, median {np.median(touched):,.0f} postings touched, k={k}")
    for name in ("exact", "exact_top15", "exact_15_term_queries", "scipy_dense_q", "scipy_sparse_q"):
        print(f"  {name:24s} median {lat[name]['median_ms']:.3f} ms  p90 {lat[name]['p90_ms']:.3f} ms")
    print(f"exact is {report['speedup_exact_vs_scipy']:.1f}x faster than {baseline} (median per query)")
    print(f"throughput: exact {report['throughput_qps']['exact']:.0f} q/s, scipy batch product "
          f"{report['throughput_qps']['scipy_batch_product']:.0f} q/s")
    if isinstance(report.get("seismic"), dict):
        for depth in (10, 100, 1000):
            s = report["seismic"].get(f"k{depth}")
            if s:
                ex = lat.get(f"exact_k{depth}", lat["exact"])
                print(f"  seismic k={depth}: median {s['median_ms']:.3f} ms (exact {ex['median_ms']:.3f} ms), "
                      f"recall vs exact {s['recall_vs_exact']:.3f}")
    print(f"exact vs brute force mismatches: {mismatched}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
