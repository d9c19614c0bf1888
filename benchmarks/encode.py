"""Encoding speed and peak memory through the CLI: ``prosper infer`` vs sentence-transformers.

What a user gets, not what the encoder does in a loop: each system runs as a whole process,
from interpreter start to the last vector, in the same run on the same machine.

* prosper: ``python -m prosper infer --checkpoint CK --input X.jsonl --output out.parquet``
  with every ``infer.*`` default (``--prosper-args`` adds overrides). ``CK`` is
  ``../shared/models/splade-tiny`` wrapped as a prosper checkpoint (max pooling, LRN and LFW
  off, ``max_length`` 512: the settings under which both systems give the same vectors).
* baseline: sentence-transformers ``SparseEncoder(splade-tiny).encode_document(texts)`` at its
  default batch size (32), in its own subprocess that reads the same JSONL. Its clock stops
  when ``encode_document`` returns (it writes nothing), which favours the baseline.

Peak memory is the child's peak resident set (``ru_maxrss`` from ``wait4``, what
``/usr/bin/time -v`` prints as "Maximum resident set size"); time is the wall time of the whole
command (Python start-up, imports and model loading included). A forked child's resident set
starts as its parent's, so this script keeps its own small: the vector comparison runs in a
subprocess too (it once put 1.86 GiB on the next run's peak).

Two kinds of text, from ``../shared/datasets/homedepot`` (titles only):

* ``titles``: the first ``--titles`` product titles (20,000 by default), 20 tokens on average;
* ``long``: ``--long`` texts (9,913 by default) of 200-510 splade-tiny tokens, standing in for
  a catalogue with descriptions (none is available here): each is a product's title followed by
  the titles of other products of the same family (the same first word of the title, usually
  the brand) in random order, topped up with random titles, until a length drawn uniformly from
  200-510 tokens is reached (seed 0; built in this script, cached in the work folder).

Also measured: prosper's peak on a quarter of each set (memory must not grow with the catalogue)
and, with ``--check``, that both systems wrote the same vectors. Ratios are prosper over the
baseline (speed: docs/s; memory: peak RSS). Run it alone, under the benchmark lock::

    flock /tmp/prosper-bench.lock python benchmarks/encode.py            # 20,000 titles + 9,913 long texts
    flock /tmp/prosper-bench.lock python benchmarks/encode.py --repeat 3 # medians of 3 runs
    python benchmarks/encode.py --smoke                                  # ~500 texts, checks the plumbing

Writes benchmarks/results/encode.json (``--smoke``: encode-smoke.json in the work folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "splade-tiny"
CORPUS = SHARED / "datasets" / "homedepot" / "corpus.jsonl"
LONG_MIN, LONG_MAX = 200, 510  # tokens between [CLS] and [SEP]: at most 512 with them
CHECKPOINT_SETTINGS = {
    "backbone": {"name": "bert", "path": str(MODEL)},
    "pooling": "max", "lrn": {"enabled": False}, "lfw": {"enabled": False},
    "max_length": 512, "precision": "fp32", "device": "cpu",
}


# -- data ----------------------------------------------------------------------------------
def _titles() -> list[str]:
    with CORPUS.open(encoding="utf-8") as fh:
        return [json.loads(line)["title"] for line in fh]


def write_titles(path: Path, n: int) -> Path:
    if not path.exists():
        rows = [{"_id": f"t{i}", "title": t} for i, t in enumerate(_titles()[:n])]
        _write_jsonl(path, rows)
    return path


def write_long_texts(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` records ``{"_id", "title", "text"}`` of LONG_MIN-LONG_MAX tokens (see the module docstring)."""
    if path.exists():
        return path
    from tokenizers import Tokenizer

    titles = _titles()
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads batches to their longest: every title would count as the longest
    tokenizer.no_truncation()
    lengths = [len(e.ids) for e in tokenizer.encode_batch(titles, add_special_tokens=False)]
    families: dict[str, list[int]] = defaultdict(list)
    for i, title in enumerate(titles):
        families[title.split()[0].lower() if title.split() else ""].append(i)
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        target = rng.randint(LONG_MIN, LONG_MAX)
        anchor = rng.randrange(len(titles))
        family = [i for i in families[titles[anchor].split()[0].lower()] if i != anchor]
        rng.shuffle(family)
        parts, total = [], lengths[anchor]
        for i in family + [rng.randrange(len(titles)) for _ in range(200)]:
            if total >= target:
                break
            if total + lengths[i] <= LONG_MAX:  # whitespace never merges WordPiece tokens
                parts.append(titles[i])
                total += lengths[i]
        rows.append({"_id": f"l{k}", "title": titles[anchor], "text": " ".join(parts)})
    _write_jsonl(path, rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def read_texts(path: Path) -> tuple[list[str], list[str]]:
    """Ids and texts as prosper's collection reader joins them (title, one space, text)."""
    ids, texts = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            ids.append(r["_id"])
            texts.append(" ".join(str(p).strip() for p in (r.get("title"), r.get("text")) if p and str(p).strip()))
    return ids, texts


# -- processes -----------------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; wall seconds of the whole process and its peak RSS (``wait4``'s ru_maxrss, KiB)."""
    with log.open("w") as out:
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        end = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return {"start": start, "end": end, "seconds": end - start, "peak_rss_gib": usage.ru_maxrss / 2**20,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime}


def child_env(threads: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def make_checkpoint(work: Path, env: dict) -> Path:
    checkpoint = work / "splade-tiny-checkpoint"
    if not (checkpoint / "prosper.yaml").exists():
        run_measured([sys.executable, __file__, "--worker", "checkpoint", "--work", str(work)], env, work / "checkpoint.log")
    return checkpoint


def run_prosper(data: Path, work: Path, checkpoint: Path, env: dict, extra: list[str], tag: str) -> dict:
    out = work / f"{tag}.parquet"
    cmd = [sys.executable, "-m", "prosper", "infer", "--checkpoint", str(checkpoint), "--input", str(data),
           "--output", str(out), "--overwrite", *extra]
    result = run_measured(cmd, env, work / f"{tag}.log")
    result["output"] = str(out)
    return result


def run_st(data: Path, work: Path, env: dict, batch_size: int, dump: bool, tag: str) -> dict:
    report = work / f"{tag}.json"
    cmd = [sys.executable, __file__, "--worker", "st", "--input", str(data), "--report", str(report),
           "--st-batch-size", str(batch_size)] + (["--dump", str(work / f"{tag}.npz")] if dump else [])
    result = run_measured(cmd, env, work / f"{tag}.log")
    inner = json.loads(report.read_text())
    result["seconds"] = inner["encoded_at"] - result["start"]  # stop the clock when encode_document returns
    result.update({k: v for k, v in inner.items() if k != "encoded_at"})
    return result


# -- workers (run in the subprocesses) -----------------------------------------------------
def worker_checkpoint(args) -> None:
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    SparseEncoder.from_settings(ModelSettings(**CHECKPOINT_SETTINGS)).save(Path(args.work) / "splade-tiny-checkpoint")


def worker_st(args) -> None:
    import torch
    from sentence_transformers import SparseEncoder

    _, texts = read_texts(Path(args.input))
    model = SparseEncoder(str(MODEL), device="cpu")
    out = model.encode_document(texts, batch_size=args.st_batch_size, show_progress_bar=False)
    encoded_at = time.time()
    out = out.coalesce()
    report = {"encoded_at": encoded_at, "docs": len(texts), "mean_nnz": out._nnz() / max(1, len(texts)),
              "threads": torch.get_num_threads(), "batch_size": args.st_batch_size,
              "max_seq_length": model.max_seq_length}
    if args.dump:
        import numpy as np

        rows, cols = out.indices().numpy()
        np.savez(args.dump, rows=rows, cols=cols, values=out.values().float().numpy(), n=len(texts))
    Path(args.report).write_text(json.dumps(report), encoding="utf-8")


# -- comparison ----------------------------------------------------------------------------
def compare(parquet: Path, dump: Path) -> dict:
    """Both systems' vectors, term by term: how many (row, term) pairs only one of them has (a
    weight within float rounding of zero on one side), and the largest weight difference."""
    import numpy as np

    from prosper.export.parquet import read_parquet_vectors

    ours, _ = read_parquet_vectors(parquet)
    z = np.load(dump)
    keep = z["values"] > 0
    vocab = np.int64(ours.vocab_size)
    theirs = dict(zip((z["rows"][keep] * vocab + z["cols"][keep]).tolist(), z["values"][keep].tolist()))
    mine = dict(zip((np.repeat(np.arange(len(ours)), ours.nnz) * vocab + ours.term_ids).tolist(), ours.weights.tolist()))
    only = set(mine).symmetric_difference(theirs)
    union = set(mine) | set(theirs)
    diffs = [abs(mine.get(k, 0.0) - theirs.get(k, 0.0)) for k in union]
    return {"same_terms": not only, "terms": len(mine), "terms_in_one_only": len(only),
            "largest_weight_in_one_only": max((mine.get(k, 0.0) + theirs.get(k, 0.0) for k in only), default=0.0),
            "max_abs_diff": max(diffs, default=0.0)}


def median_of(runs: list[dict]) -> dict:
    out = dict(runs[0])
    for key in ("seconds", "peak_rss_gib", "docs_per_s", "user_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


def measure(kind: str, data: Path, n: int, args, work: Path, checkpoint: Path, env: dict) -> dict:
    prosper_args = args.prosper_args.split() if args.prosper_args else []
    runs: dict[str, list[dict]] = {"prosper": [], "sentence-transformers": []}
    for rep in range(args.repeat):
        order = ["prosper", "sentence-transformers"] if rep % 2 == 0 else ["sentence-transformers", "prosper"]
        for system in order:
            if system == "prosper":
                r = run_prosper(data, work, checkpoint, env, prosper_args, f"{kind}-prosper")
            elif args.skip_st:
                continue
            else:
                r = run_st(data, work, env, args.st_batch_size, args.check and rep == 0, f"{kind}-st")
            r["docs"], r["docs_per_s"] = n, n / r["seconds"]
            runs[system].append(r)
            print(f"  {kind} run {rep + 1}: {system:<22} {r['docs_per_s']:8.1f} docs/s  {r['seconds']:7.1f} s"
                  f"  peak {r['peak_rss_gib']:.2f} GiB", flush=True)
    result = {"docs": n, "input": str(data), "results": {k: median_of(v) for k, v in runs.items() if v}, "all_runs": runs}
    if runs["sentence-transformers"]:
        p, s = result["results"]["prosper"], result["results"]["sentence-transformers"]
        result["ratios"] = {"speed": p["docs_per_s"] / s["docs_per_s"], "memory": p["peak_rss_gib"] / s["peak_rss_gib"]}
        if args.check:  # in a subprocess: this process forks the next runs, and their peak RSS starts at ours
            report = work / f"{kind}-check.json"
            run_measured([sys.executable, __file__, "--worker", "compare", "--input", runs["prosper"][0]["output"],
                          "--dump", str(work / f"{kind}-st.npz"), "--report", str(report)], env, work / f"{kind}-check.log")
            result["check"] = json.loads(report.read_text())
    if not args.no_flat:  # a quarter of the catalogue: the peak must not grow with the catalogue
        quarter = work / f"{kind}-quarter.jsonl"
        lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
        quarter.write_text("".join(lines[: max(1, len(lines) // 4)]), encoding="utf-8")
        small = run_prosper(quarter, work, checkpoint, env, prosper_args, f"{kind}-prosper-quarter")
        result["flat"] = {"quarter_docs": max(1, len(lines) // 4), "quarter_peak_rss_gib": small["peak_rss_gib"],
                          "full_peak_rss_gib": result["results"]["prosper"]["peak_rss_gib"]}
    return result


def print_table(document: dict) -> None:
    print(f"\n{'texts':<8}{'system':<24}{'docs':>7}{'docs/s':>9}{'peak GiB':>10}{'speed x':>9}{'memory x':>10}")
    for kind in ("titles", "long"):
        part = document.get(kind)
        if not part:
            continue
        base = part["results"].get("sentence-transformers")
        for name, r in part["results"].items():
            speed = f"{r['docs_per_s'] / base['docs_per_s']:.2f}" if base else "-"
            memory = f"{r['peak_rss_gib'] / base['peak_rss_gib']:.3f}" if base else "-"
            print(f"{kind:<8}{name:<24}{r['docs']:>7}{r['docs_per_s']:>9.1f}{r['peak_rss_gib']:>10.2f}{speed:>9}{memory:>10}")
        if "flat" in part:
            f = part["flat"]
            print(f"{'':<8}prosper on {f['quarter_docs']:,} of them: peak {f['quarter_peak_rss_gib']:.2f} GiB "
                  f"(all: {f['full_peak_rss_gib']:.2f} GiB)")
        if "check" in part:
            c = part["check"]
            print(f"{'':<8}vectors: {c['terms_in_one_only']} of {c['terms']:,} terms in one system only (largest such "
                  f"weight {c['largest_weight_in_one_only']:.1e}), largest weight difference {c['max_abs_diff']:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--titles", type=int, default=20_000, help="product titles to encode (0: skip)")
    parser.add_argument("--long", type=int, default=9_913, help="long texts (200-510 tokens) to encode (0: skip)")
    parser.add_argument("--smoke", action="store_true", help="400 titles and 100 long texts: checks the plumbing only")
    parser.add_argument("--repeat", type=int, default=1, help="runs per system; medians are reported")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="OMP_NUM_THREADS of both")
    parser.add_argument("--st-batch-size", type=int, default=32, help="encode_document batch size (its default)")
    parser.add_argument("--prosper-args", default="", help="extra arguments for prosper infer, e.g. 'infer.batch_tokens=4096'")
    parser.add_argument("--check", action="store_true", help="also compare the two systems' vectors")
    parser.add_argument("--skip-st", action="store_true", help="prosper only")
    parser.add_argument("--no-flat", action="store_true", help="skip the quarter-catalogue memory run")
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--output", default=None, help="results JSON")
    parser.add_argument("--worker", choices=["st", "checkpoint", "compare"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "st":
        return worker_st(args)
    if args.worker == "checkpoint":
        return worker_checkpoint(args)
    if args.worker == "compare":
        return Path(args.report).write_text(json.dumps(compare(Path(args.input), Path(args.dump))), encoding="utf-8")
    if not MODEL.is_dir() or not CORPUS.is_file():
        raise SystemExit(f"needs {MODEL} and {CORPUS}")
    if args.smoke:
        args.titles, args.long = min(args.titles, 400), min(args.long, 100)
        args.check = True
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="prosper-encode-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(args.threads)
    checkpoint = make_checkpoint(work, env)
    document: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "python": platform.python_version()},
        "command": "prosper infer --checkpoint CK --input X.jsonl --output out.parquet " + args.prosper_args,
        "baseline": f"sentence_transformers.SparseEncoder.encode_document(batch_size={args.st_batch_size})",
        "smoke": args.smoke, "repeat": args.repeat,
    }
    print(f"work folder {work}; {args.threads} thread(s)", flush=True)
    if args.titles:
        data = write_titles(work / f"titles-{args.titles}.jsonl", args.titles)
        document["titles"] = measure("titles", data, args.titles, args, work, checkpoint, env)
    if args.long:
        data = write_long_texts(work / f"long-{args.long}.jsonl", args.long)
        document["long"] = measure("long", data, args.long, args, work, checkpoint, env)
    print_table(document)
    out = Path(args.output) if args.output else (work / "encode-smoke.json" if args.smoke
                                                 else ROOT / "benchmarks" / "results" / "encode.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
