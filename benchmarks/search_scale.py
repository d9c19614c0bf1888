"""Search at catalog scale: exact accumulator vs block-max pruning vs Seismic vs Milvus Lite.

The Home Depot corpus (54,667 items) is encoded once (splade-tiny zero-shot, and a
prosper-trained checkpoint with ``--checkpoint``; cached under /tmp) and replicated to the
sizes asked for: copy 0 is the real vectors, copy ``c > 0`` multiplies every weight by a
factor drawn uniformly from [1 - jitter, 1 + jitter] (seeded), so posting lists grow with the
real term distribution and near-duplicates exist as in a real catalog. Copies are appended in
order (copy-major), so a block of consecutive rows holds unrelated items, as in the corpus.
300 real queries (the dev split's first, non-empty), one thread everywhere.

Searchers, side by side in one run, each index built in a child process (build time and peak
extra RSS over the loaded vectors), saved, then reopened here:

* ``exact_old``: prosper's exact search as it was before pruning (the accumulator, then a
  selection over every row), the baseline every ratio is measured against;
* ``exact_acc``: today's accumulator alone (``pruning=never``; its top-k selection now works
  on the positive scores only); ``exact``: ``pruning=auto``, the default (accumulator or
  block-max pruning per query); ``exact_pruned``: pruning on every query (``pruning=always``);
* ``exact_f0.9`` ...: pruning with ``threshold_factor`` < 1 (approximate; recall reported);
* ``seismic``: pyseismic-lsr (optional extra), one thread; recall vs exact;
* ``milvus``: the ``milvus`` searcher through the registry when a plugin provides it
  (``--milvus-params`` JSON for its params); recall vs exact.

Latencies are per query (median, p99) at k=10 and k=1000 over ``--rounds`` rounds; in each
round every searcher runs the whole query set in turn (rotating the order), so the noise of a
busy machine is shared and no searcher finds a query's rows cached by another. The exact searchers' results
are checked equal (rows and scores) to ``exact_old``. The first-search numba compile time is
measured in fresh processes (empty cache, then warm cache). Run alone, under the lock:

    flock /tmp/prosper-bench.lock python benchmarks/search_scale.py
    python benchmarks/search_scale.py --smoke          # tiny sizes, a few queries: seconds

Writes benchmarks/results/search_scale.json (``--smoke``: /tmp/search_scale_smoke.json).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _encode_homedepot import CACHE, DATA, _load, _save, _texts, encoded  # noqa: E402

from prosper.retrieval.index import InvertedIndex, prepare_query  # noqa: E402
from prosper.sparse import SparseVectors  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_SIZES = (54_667, 546_670, 2_186_680)
CHECKPOINTS = ("/tmp/prosper-bench-quality/full/prosper/best", "/tmp/prosper-bench-quality/full/prosper/final")


# -- vectors ------------------------------------------------------------------------------
def checkpoint_vectors(checkpoint: Path, side: str) -> tuple[SparseVectors, dict]:
    """Corpus or query vectors of a prosper checkpoint, encoded once and cached under /tmp."""
    key = hashlib.sha1(str(checkpoint.resolve()).encode()).hexdigest()[:10]
    path = CACHE / f"ckpt-{key}-{side}.npz"
    if path.exists():
        return _load(path)
    from prosper.modeling.encoder import SparseEncoder

    encoder = SparseEncoder.load(checkpoint)
    ids, texts = _texts(DATA / ("corpus.jsonl" if side == "item" else "queries.jsonl"))
    start = time.time()
    vectors = encoder.encode(texts, side=side, batch_size=64, ids=ids)
    info = {"encoder": "prosper SparseEncoder", "model": str(checkpoint), "seconds": time.time() - start}
    CACHE.mkdir(parents=True, exist_ok=True)
    _save(path, vectors, info)
    return vectors, info


def select_queries(queries: SparseVectors, n: int) -> SparseVectors:
    """The dev queries first, then others, non-empty, up to ``n`` (as benchmarks/search.py)."""
    from prosper.data.qrels import read_qrels, split_path

    dev = set(read_qrels(split_path(DATA, "dev")))
    order = [i for i, q in enumerate(queries.ids) if q in dev] + [i for i, q in enumerate(queries.ids) if q not in dev]
    order = [i for i in order if queries.nnz[i] > 0][:n]
    return queries.take(np.asarray(order))


def replicate(items: SparseVectors, size: int, jitter: float, seed: int) -> SparseVectors:
    """``size`` rows: whole copies of ``items`` (then a prefix), copies > 0 with jittered weights."""
    n = len(items)
    copies = -(-size // n)
    rng = np.random.default_rng(seed)
    nnz = int(items.offsets[-1])
    parts_t, parts_w, parts_o, ids = [], [], [np.zeros(1, np.int64)], []
    for c in range(copies):
        rows = min(n, size - c * n)
        end = int(items.offsets[rows])
        w = items.weights[:end]
        if c:
            w = (w * rng.uniform(1 - jitter, 1 + jitter, size=end).astype(np.float32)).astype(np.float32)
        parts_t.append(items.term_ids[:end])
        parts_w.append(w)
        parts_o.append(items.offsets[1 : rows + 1] + c * nnz)
        ids.extend(items.ids[:rows] if c == 0 else [f"{i}#{c}" for i in items.ids[:rows]])
    offsets = np.concatenate(parts_o)
    # copies are contiguous slices of the same postings, so offsets just shift by nnz a copy
    return SparseVectors(ids, offsets, np.concatenate(parts_t), np.concatenate(parts_w), items.vocab_size)


# -- building (in a child process: time and peak memory of one build) ---------------------
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_searcher(spec: dict):
    """A searcher from a registry spec (``{name, ...params}``), as ``search.searcher`` gives it."""
    from prosper.plugins import get_registry

    return get_registry().build("searcher", spec, where="benchmarks/search_scale.py")


def _build_child(conn, spec, items, directory):
    try:
        searcher = make_searcher(spec)
        try:  # reset VmHWM so it tracks this build only (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        base = _rss_kib("VmRSS")
        start = time.perf_counter()
        index = searcher.build(items)
        build_s = time.perf_counter() - start
        index.save(directory, overwrite=True)
        total_s = time.perf_counter() - start
        conn.send({"build_s": build_s, "build_save_s": total_s, "build_peak_mib": (_rss_kib("VmHWM") - base) / 1024})
    except BaseException as exc:  # report, never hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def build_in_child(spec: dict, items, directory: Path) -> dict:
    """Build and save in a child of a fork server started before any engine ran here: a plain
    fork after Seismic's thread pool started would inherit its locks and hang."""
    ctx = mp.get_context("forkserver")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_build_child, args=(child, spec, items, directory))
    proc.start()
    child.close()
    out = parent.recv()
    proc.join()
    if "error" in out:
        raise RuntimeError(out["error"])
    out["disk_mib"] = sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file()) / 2**20
    return out


# -- searchers ------------------------------------------------------------------------------
class Exact:
    """prosper's index under one pruning mode / threshold factor; searches prepared queries."""

    def __init__(self, directory, pruning, factor=1.0):
        self.index = InvertedIndex.open(directory, pruning=pruning, threshold_factor=factor)

    def search(self, prepared, queries, i, k):
        t, w = prepared[i]
        return self.index.search_one(t, w, k)


class Original:
    """prosper's exact search before pruning (format 1): the accumulator, then one selection
    over every row (``np.partition``), slow on a mostly-zero accumulator. The baseline."""

    def __init__(self, directory):
        self.index = InvertedIndex.open(directory, pruning="never")
        self.acc = np.zeros(len(self.index), np.float32)

    def search(self, prepared, queries, i, k):
        t, w = prepared[i]
        idx, acc = self.index, self.acc
        items, values = idx.postings_items, idx.postings_weights
        los, his = idx.term_offsets[t].tolist(), idx.term_offsets[t + 1].tolist()
        try:
            for lo, hi, wt in zip(los, his, w.tolist()):
                if hi > lo:
                    np.add.at(acc, items[lo:hi], values[lo:hi] * np.float32(wt))
            n = len(acc)
            kth = np.partition(acc, n - k)[n - k] if k < n else 0.0
            cand = np.flatnonzero(acc >= kth) if kth > 0 else np.flatnonzero(acc > 0)
            vals = acc[cand]
            order = np.argsort(-vals, kind="stable")[:k]
            return cand[order].astype(np.int64), vals[order]
        finally:
            acc.fill(0.0)


class Registered:
    """Any searcher's index (seismic, milvus) through its ``search``; rows via the item ids."""

    def __init__(self, index, row_of):
        self.index, self.row_of = index, row_of

    def search(self, prepared, queries, i, k):
        (res,) = self.index.search(queries.slice(i, i + 1), k, "query_l2")
        rows = np.fromiter((self.row_of[x] for x in res.ids.tolist()), np.int64, len(res.ids))
        return rows, res.scores


def ms(values) -> dict:
    a = np.asarray(values) * 1e3
    return {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def compile_times() -> dict:
    """First pruned search in fresh processes: empty numba cache (compile), then warm cache."""
    code = (
        "import time, numpy as np\n"
        "from prosper.sparse import SparseVectors\n"
        "from prosper.retrieval.index import InvertedIndex\n"
        "rng = np.random.default_rng(0)\n"
        "terms = [np.unique(rng.integers(0, 500, 30)) for _ in range(3000)]\n"
        "rows = [(t, rng.random(len(t)) + 0.1) for t in terms]\n"
        "items = SparseVectors.from_rows([str(i) for i in range(3000)], rows, 500)\n"
        "index = InvertedIndex.build(items, pruning='always')\n"
        "q = SparseVectors.from_rows(['q'], [(np.arange(0, 500, 37), np.ones(14))], 500)\n"
        "s = time.perf_counter(); index.search(q, 10); first = time.perf_counter() - s\n"
        "s = time.perf_counter(); index.search(q, 10); second = time.perf_counter() - s\n"
        "print(first, second)\n"
    )
    out = {}
    with tempfile.TemporaryDirectory(prefix="prosper-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for name in ("cold_cache", "warm_cache"):
            start = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(f"compile-time probe failed: {res.stderr.strip().splitlines()[-1:]}")
            first, second = map(float, res.stdout.split())
            out[name] = {"first_search_s": first, "second_search_s": second, "process_s": time.perf_counter() - start}
    return out


def run_size(items_all, queries, size, args, tmp: Path) -> dict:
    items = replicate(items_all, size, args.jitter, args.seed)
    row_of = None
    out = {"items": len(items), "postings": int(items.offsets[-1]), "searchers": {}}
    print(f"\n== {len(items):,} items, {out['postings'] / 1e6:.1f}M postings", flush=True)
    prepared = [prepare_query(*queries.row(i), "query_l2") for i in range(len(queries))]
    searchers, builds = {}, {}

    # prosper's index: one build serves exact_old / exact / exact_pruned / exact_f*
    builds["exact"] = build_in_child({"name": "exact", "block_size": args.block_size}, items, tmp / "exact")
    searchers["exact_old"] = Original(tmp / "exact")
    searchers["exact_acc"] = Exact(tmp / "exact", "never")
    searchers["exact"] = Exact(tmp / "exact", "auto")
    searchers["exact_pruned"] = Exact(tmp / "exact", "always")
    for f in args.threshold_factors:
        searchers[f"exact_f{f:g}"] = Exact(tmp / "exact", "always", f)
    print(f"   exact: build {builds['exact']['build_s']:.1f}s, {builds['exact']['disk_mib']:.0f} MiB, "
          f"peak +{builds['exact']['build_peak_mib']:.0f} MiB", flush=True)
    if "seismic" in args.searchers:
        try:
            import seismic  # noqa: F401
        except ImportError:
            out["seismic"] = "not installed (pip install 'prosper-retrieval[seismic]')"
        else:
            from prosper.retrieval.searchers import SeismicParams, SeismicSearcher

            params = SeismicParams(n_postings=args.seismic_n_postings, num_threads=1, heap_factor=args.seismic_heap_factor)
            builds["seismic"] = build_in_child({"name": "seismic", **params.model_dump()}, items, tmp / "seismic")
            builds["seismic"]["params"] = params.model_dump()
            row_of = row_of or {x: r for r, x in enumerate(items.ids)}
            searchers["seismic"] = Registered(SeismicSearcher(params).open(tmp / "seismic"), row_of)
            print(f"   seismic: build {builds['seismic']['build_s']:.1f}s", flush=True)
    if "milvus" in args.searchers:
        from prosper.plugins import get_registry

        registry = get_registry()
        if "milvus" not in registry.names("searcher"):
            out["milvus"] = "no 'milvus' searcher registered (hook: a plugin registering one is picked up here)"
        elif len(items) > args.milvus_max_items:
            out["milvus"] = f"skipped above --milvus-max-items {args.milvus_max_items:,}"
        else:
            db = tmp / f"milvus-{len(items)}.db"  # Milvus Lite, unless --milvus-params names a server
            spec = {"name": "milvus", "uri": str(db), "replace": True, **json.loads(args.milvus_params)}
            directory = tmp / "milvus"
            try:
                searcher = make_searcher(spec)
                builds["milvus"] = build_in_child(spec, items, directory)
                if db.exists():
                    builds["milvus"]["disk_mib"] += sum(
                        p.stat().st_size for p in ([db] if db.is_file() else db.rglob("*")) if p.is_file()
                    ) / 2**20
                row_of = row_of or {x: r for r, x in enumerate(items.ids)}
                searchers["milvus"] = Registered(searcher.open(directory if searcher.needs_directory else None), row_of)
                print(f"   milvus: build {builds['milvus']['build_s']:.1f}s", flush=True)
            except Exception as exc:  # a plugin failing must not lose the rest of the run
                out["milvus"] = f"failed: {type(exc).__name__}: {exc}"

    for k in args.k:
        for name, s in searchers.items():  # warm-up: page in the mappings, compile the kernels
            for i in range(min(len(queries), 20)):
                s.search(prepared, queries, i, k)
        times = {name: [] for name in searchers}
        results = {name: [None] * len(queries) for name in searchers}
        names = list(searchers)
        for r in range(args.rounds):
            # each searcher runs the whole query set in turn (so none finds the rows of the same
            # query warm in the CPU caches from another), in a rotating order across rounds
            for name in names[r % len(names):] + names[: r % len(names)]:
                s = searchers[name]
                for i in range(len(queries)):
                    start = time.perf_counter()
                    res = s.search(prepared, queries, i, k)
                    times[name].append(time.perf_counter() - start)
                    if r == 0:
                        results[name][i] = res
            print(f"   k={k}: round {r + 1}/{args.rounds} done; medians (ms): "
                  + ", ".join(f"{n} {np.median(t) * 1e3:.2f}" for n, t in times.items()), flush=True)
        truth = results["exact_old"]
        for name in searchers:
            entry = out["searchers"].setdefault(name, {})
            stats = ms(times[name])
            stats["ratio_vs_exact_old"] = float(np.median(times["exact_old"]) / np.median(times[name]))
            if name.startswith("exact") and not name.startswith("exact_f"):
                stats["mismatches_vs_exact_old"] = sum(
                    not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])) for a, b in zip(results[name], truth)
                )
            else:
                rec = [len(set(a[0].tolist()) & set(b[0].tolist())) / len(b[0]) for a, b in zip(results[name], truth) if len(b[0])]
                stats["recall_vs_exact"] = float(np.mean(rec)) if rec else None
            entry[f"k{k}"] = stats
        if "exact" in searchers:  # how often auto chose to prune
            idx = searchers["exact"].index
            chosen = sum(idx._pruning_budget(t.astype(np.int64), w, k) is not None for t, w in prepared)
            out["searchers"]["exact"][f"k{k}"]["pruned_share"] = chosen / len(prepared)
    for name, entry in out["searchers"].items():
        base = "exact" if name.startswith("exact") else name
        entry.update({key: v for key, v in builds.get(base, {}).items()})
    del searchers
    gc.collect()
    return out


def print_table(label: str, sizes: list[dict], ks) -> None:
    print(f"\n### {label}")
    head = "| items | searcher | build s | disk MiB | build peak MiB | " + " | ".join(
        f"k={k} median / p99 ms | x old | recall" for k in ks) + " |"
    print(head)
    print("|" + "---|" * (5 + 3 * len(ks)))
    for size in sizes:
        for name, e in size["searchers"].items():
            cells = [f"{size['items']:,}", name, f"{e.get('build_s', 0):.1f}", f"{e.get('disk_mib', 0):.0f}",
                     f"{e.get('build_peak_mib', 0):.0f}"]
            for k in ks:
                s = e[f"k{k}"]
                rec = s.get("recall_vs_exact")
                exact = "exact" if "mismatches_vs_exact_old" in s and not s["mismatches_vs_exact_old"] else (
                    f"{s.get('mismatches_vs_exact_old')} mismatches" if "mismatches_vs_exact_old" in s else "")
                cells += [f"{s['median_ms']:.2f} / {s['p99_ms']:.2f}", f"{s['ratio_vs_exact_old']:.1f}",
                          f"{rec:.3f}" if rec is not None else exact]
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="catalog sizes (items)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jitter", type=float, default=0.1, help="copies > 0: weights times U[1-j, 1+j]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=None, help="prosper block size (default: the index's)")
    parser.add_argument("--threshold-factors", type=float, nargs="*", default=[0.9, 0.8])
    parser.add_argument("--searchers", nargs="*", default=["seismic", "milvus"], help="besides prosper's")
    parser.add_argument("--seismic-n-postings", type=int, default=3500)
    parser.add_argument("--seismic-heap-factor", type=float, default=0.8)
    parser.add_argument("--milvus-params", default="{}", help="JSON params of the milvus searcher (default: Milvus Lite in /tmp)")
    parser.add_argument("--milvus-max-items", type=int, default=10**9, help="skip Milvus above this catalog size")
    parser.add_argument("--vectors", nargs="+", default=["zero-shot", "trained"], choices=["zero-shot", "trained"])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"prosper checkpoint for the 'trained' vectors (default: the first of {CHECKPOINTS} found)")
    parser.add_argument("--smoke", action="store_true", help="sizes 3000 and 9000, 20 queries, 1 round, k=10 and 100")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    mp.set_forkserver_preload(["numpy", "prosper.retrieval.index"])
    mp.get_context("forkserver").Process(target=time.sleep, args=(0,)).start()  # start it now, clean
    if args.smoke:
        args.sizes, args.queries, args.rounds, args.k = [3000, 9000], 20, 1, [10, 100]
    if args.block_size is None:
        from prosper.retrieval.pruning import DEFAULT_BLOCK_SIZE

        args.block_size = DEFAULT_BLOCK_SIZE
    output = args.output or (Path(tempfile.gettempdir()) / "search_scale_smoke.json" if args.smoke else RESULTS / "search_scale.json")
    if args.checkpoint is None:
        args.checkpoint = next((Path(c) for c in CHECKPOINTS if Path(c, "prosper.yaml").is_file()), None)

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "platform": platform.platform(), "threads": 1},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "compile": compile_times(),
        "vectors": {},
    }
    c = report["compile"]
    print(f"numba first search: {c['cold_cache']['first_search_s']:.2f}s with an empty cache, "
          f"{c['warm_cache']['first_search_s']:.3f}s with a warm one", flush=True)
    for kind in args.vectors:
        if kind == "trained" and args.checkpoint is None:
            report["vectors"][kind] = "no checkpoint found (give --checkpoint)"
            continue
        if kind == "zero-shot":
            (items, info), (queries, _) = encoded("item"), encoded("query")
        else:
            (items, info), (queries, _) = checkpoint_vectors(args.checkpoint, "item"), checkpoint_vectors(args.checkpoint, "query")
        queries = select_queries(queries, args.queries)
        print(f"\n# {kind}: {info['model']} ({len(items):,} items, {items.nnz.mean():.1f} terms; "
              f"{len(queries)} queries, {queries.nnz.mean():.1f} terms)", flush=True)
        sizes = []
        tmp = Path(tempfile.mkdtemp(prefix="prosper-search-scale-"))
        try:
            for size in args.sizes:
                sizes.append(run_size(items, queries, size, args, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report["vectors"][kind] = {"model": info["model"], "avg_item_nnz": float(items.nnz.mean()),
                                   "avg_query_nnz": float(queries.nnz.mean()), "sizes": sizes}
        print_table(f"{kind} ({info['model']})", sizes, args.k)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = output.with_name(output.name + f".tmp-{os.getpid()}")
    tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_json, output)
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
