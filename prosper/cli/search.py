"""``prosper index``, ``prosper search`` and ``prosper eval``: a thin layer over
:mod:`prosper.retrieval` and :mod:`prosper.evaluation`. Heavy imports stay inside the commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import ConfigOption, OverridesArgument, console

_OVERRIDE = re.compile(r"^(model|data|train|infer|export|search)\.[\w.]+=")
_SCORINGS = "query_l2 | none | query_l1 | both_l2 | item_l2"

ScoringOption = Annotated[
    Optional[str],
    typer.Option("--scoring", help=f"Eq. 11 normalisation: {_SCORINGS} (default: search.scoring, else the model's, else query_l2)."),
]
TopTermsOption = Annotated[
    Optional[int],
    typer.Option("--query-top-terms", min=1, help="Keep only the N highest-weighted query terms (the paper serves with 16)."),
]
KOption = Annotated[Optional[int], typer.Option("--k", "-k", min=1, help="Items per query (default: search.k = 1000).")]
FusionOption = Annotated[
    Optional[str],
    typer.Option("--fusion", help="Also run BM25 over the same corpus and fuse the two runs: rrf | combsum (settings search.fusion_*)."),
]


def _split_args(args: list[str] | None) -> tuple[str | None, list[str]]:
    """Positional words: ``section.key=value`` are overrides, the rest is the query text."""
    overrides = [a for a in args or [] if _OVERRIDE.match(a)]
    words = [a for a in args or [] if not _OVERRIDE.match(a)]
    return (" ".join(words) if words else None), overrides


def _settings(config: Path | None, overrides: list[str] | None):
    """Settings with the searcher validated. These commands build no model from the settings
    (a checkpoint carries its own), so an unrelated component cannot stop them."""
    from prosper.plugins import get_registry
    from prosper.settings import load_settings

    settings = load_settings(config, overrides or [])
    get_registry().validate("searcher", settings.search.searcher, "search.searcher")
    return settings


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index_command(
        input: Annotated[Path, typer.Option("--input", "-i", help="Item vectors: Parquet file or shard folder from `prosper infer`.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Index folder to write.")],
        searcher: Annotated[Optional[str], typer.Option("--searcher", help="Registered searcher (default: search.searcher, i.e. exact).")] = None,
        corpus: Annotated[
            Optional[Path],
            typer.Option("--corpus", help="The items' texts (BEIR folder or JSONL/TSV/Parquet): also save a BM25 channel in INDEX/bm25 for `search --fusion`."),
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing index folder.")] = False,
        config: ConfigOption = None,
        overrides: OverridesArgument = None,
    ) -> None:
        """Build an embedded inverted index (memory-mapped arrays, no server) over item vectors."""
        settings = _settings(config, overrides)
        from prosper.retrieval.api import build_index_from_file

        spec = settings.search.searcher.model_dump()
        if searcher is not None and searcher != spec["name"]:
            spec = {"name": searcher}
        summary = build_index_from_file(input, output, spec, overwrite=force, corpus=corpus, corpus_options=_corpus_options(settings))
        bm25 = f" (+ BM25 channel in {summary['bm25']})" if summary["bm25"] else ""
        console.print(
            f"indexed {summary['items']:,} items ({summary['avg_item_nnz']:.1f} non-zeros each, vocabulary "
            f"{summary['vocab_size']:,}) with {summary['searcher']} in {summary['seconds']:.1f}s -> {output}{bm25}",
            highlight=False,
        )

    @app.command("search")
    def search_command(
        index: Annotated[Path, typer.Option("--index", help="Index folder from `prosper index`.")],
        args: Annotated[
            Optional[list[str]],
            typer.Argument(help="The query text (with --checkpoint), then any section.key=value overrides.", show_default=False),
        ] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Model that encodes the query text.")] = None,
        queries: Annotated[
            Optional[Path],
            typer.Option("--queries", help="Many queries: texts (JSONL/TSV/BEIR, needs --checkpoint) or query vectors (Parquet)."),
        ] = None,
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="TREC run file for --queries (default: stdout).")] = None,
        k: KOption = None,
        scoring: ScoringOption = None,
        query_top_terms: TopTermsOption = None,
        tag: Annotated[Optional[str], typer.Option("--tag", help="Run tag (last TREC column; default: prosper, or the fusion method).")] = None,
        fusion: FusionOption = None,
        corpus: Annotated[
            Optional[Path],
            typer.Option("--corpus", help="Item texts for the --fusion BM25 channel, built now (default: the one `index --corpus` saved in INDEX/bm25)."),
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Search an index: one query prints a table, --queries writes a TREC run file; --fusion fuses with BM25."""
        text, overrides = _split_args(args)
        settings = _settings(config, overrides)
        from prosper.errors import ConfigError

        if (text is None) == (queries is None):
            raise ConfigError("give either a query text (with --checkpoint) or --queries FILE")
        if text is not None and checkpoint is None:
            raise ConfigError("a query text needs --checkpoint to encode it")
        if fusion is not None:
            _check_fusion(fusion, index, corpus, checkpoint)  # before the index or the model loads
        from prosper.retrieval.api import load_query_vectors, resolve_scoring
        from prosper.retrieval.index import check_scoring
        from prosper.retrieval.searchers import open_index

        searcher_index = open_index(index)
        bm25 = _bm25_channel(index, corpus, searcher_index, settings) if fusion is not None else None
        encoder = None
        if checkpoint is not None:
            from prosper.modeling.encoder import SparseEncoder

            encoder = SparseEncoder.load(checkpoint)
        k = k or settings.search.k
        top_terms = query_top_terms or settings.search.query_top_terms
        chosen = check_scoring(resolve_scoring(scoring, settings.search.scoring, encoder))
        from prosper.retrieval.runs import iter_lines, results_to_run, write_run

        how = chosen if fusion is None else f"{chosen}, fused with BM25 by {fusion}"
        if text is not None:
            vectors = encoder.encode([text], side="query", ids=["q"])
            (result,) = searcher_index.search(vectors, k=k, scoring=chosen, query_top_terms=top_terms)
            _print_query_terms(vectors, encoder.vocabulary(), top_terms)
            from prosper.evaluation.report import results_table

            if bm25 is not None:
                from prosper.retrieval.api import fuse_with_bm25

                fused = fuse_with_bm25(results_to_run(["q"], [result]), bm25, ["q"], [text], fusion, k, settings.search)
                ids, scores = list(fused["q"]), list(fused["q"].values())
            else:
                ids, scores = result.ids, result.scores
            console.print(results_table(ids, scores, title=f"{text!r}: top {k} ({how})"))
            return
        texts = None
        if encoder is not None:
            from prosper.data.collections import iter_collection

            records = [(r.id, r.text) for r in iter_collection(queries, side="query", on_error=settings.infer.on_error)]
            qids, texts = [r[0] for r in records], [r[1] for r in records]
            vectors = encoder.encode(texts, side="query", batch_size=settings.infer.batch_size, ids=qids)
        else:
            vectors = load_query_vectors(queries)
            qids = list(vectors.ids)
        results = searcher_index.search(vectors, k=k, scoring=chosen, query_top_terms=top_terms)
        run = results_to_run(qids, results)
        if bm25 is not None:
            from prosper.retrieval.api import fuse_with_bm25

            run = fuse_with_bm25(run, bm25, qids, texts, fusion, k, settings.search)
        tag = tag or fusion or "prosper"
        if output is None:
            for line in iter_lines(run, tag):
                typer.echo(line)
        else:
            write_run(output, run, tag)
            console.print(f"{len(qids):,} queries, top {k} ({how}) -> {output}", highlight=False)

    @app.command("eval")
    def eval_command(
        run: Annotated[Optional[list[Path]], typer.Option("--run", help="TREC run file(s) to evaluate (repeat for several).")] = None,
        qrels: Annotated[Optional[Path], typer.Option("--qrels", help="Judgments: BEIR TSV or TREC qrels.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="All-in-one: encode, index, search, evaluate.")] = None,
        data: Annotated[Optional[Path], typer.Option("--data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")] = None,
        split: Annotated[str, typer.Option("--split", help="qrels/<split>.tsv to evaluate on.")] = "dev",
        bm25: Annotated[bool, typer.Option("--bm25", help="Also evaluate BM25 (bm25s) over the same corpus.")] = False,
        channels: Annotated[bool, typer.Option("--channels", help="Multi-channel recall_types analysis (implies --bm25 with --checkpoint).")] = False,
        fusion: FusionOption = None,
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for runs + metrics.json (default: CHECKPOINT/eval-SPLIT).")] = None,
        json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics as JSON here (run files mode).")] = None,
        measures: Annotated[Optional[list[str]], typer.Option("--measure", help="Measures instead of the defaults (repeat), e.g. nDCG@10, 'RR(rel=1)@10'.")] = None,
        config: ConfigOption = None,
        overrides: OverridesArgument = None,
    ) -> None:
        """nDCG@10, MRR@10 (grade >= search.mrr_rel, default 2), Recall@10/100/1000, Hit@1/10/100/1000."""
        settings = _settings(config, overrides)
        from prosper.errors import ConfigError
        from prosper.evaluation.report import channels_tables, metrics_table, write_json

        if checkpoint is not None:
            if data is None or run:
                raise ConfigError("--checkpoint needs --data BEIR_DIR (and no --run)")
            if measures:
                raise ConfigError("--measure applies to --run files; the all-in-one mode reports the defaults")
            from prosper.evaluation.pipeline import evaluate_checkpoint

            payload = evaluate_checkpoint(
                checkpoint, data, split, settings, output, bm25=bm25, channels=channels, fusion=fusion, console=console
            )
            console.print(metrics_table(payload["systems"], title=f"{data} / {split} ({payload['n_queries']:,} queries)"))
            if "_analysis" in payload:
                for table in channels_tables(payload["_analysis"]):
                    console.print(table)
            console.print(f"runs and metrics.json in {payload['output']}", highlight=False)
            return
        if not run or qrels is None:
            raise ConfigError("give --run RUN --qrels QRELS, or --checkpoint C --data BEIR_DIR")
        if fusion is not None:
            raise ConfigError("--fusion applies to --checkpoint; fuse run files with prosper.retrieval.fusion.fuse")
        from prosper.data.qrels import read_qrels
        from prosper.evaluation.metrics import DEFAULT_MEASURES, evaluate
        from prosper.retrieval.runs import read_run

        judged = read_qrels(qrels)
        runs = {}
        for path in run:
            name = path.stem if path.stem not in runs else str(path)
            runs[name] = read_run(path)
        chosen = list(measures or DEFAULT_MEASURES)
        kw = {"mrr_rel": settings.search.mrr_rel, "rel": settings.search.rel}
        systems = {name: evaluate(r, judged, chosen, **kw) for name, r in runs.items()}
        console.print(metrics_table(systems, title=f"{qrels} ({len(judged):,} queries)"))
        payload = {"qrels": str(qrels), "runs": {n: str(p) for n, p in zip(runs, run)}, **kw, "systems": systems}
        if channels:
            if len(runs) < 2:
                raise ConfigError("--channels needs two or more --run files")
            from prosper.retrieval.channels import analyse_channels

            analysis = analyse_channels(runs, judged, depth=settings.search.channel_depth, min_grade=settings.search.rel)
            for table in channels_tables(analysis):
                console.print(table)
            payload["channels"] = analysis.to_dict()
        if json_path is not None:
            write_json(json_path, payload)
            console.print(f"metrics -> {json_path}", highlight=False)


def _corpus_options(settings) -> dict:
    data = settings.data
    return {"title_field": data.title_field, "text_field": data.text_field, "on_error": settings.infer.on_error}


def _check_fusion(method: str, index: Path, corpus: Path | None, checkpoint: Path | None) -> None:
    """--fusion needs a method, the items' texts and the queries' texts; say which is missing in one line."""
    from prosper.errors import ConfigError
    from prosper.retrieval.api import BM25_DIR
    from prosper.retrieval.fusion import check_method

    check_method(method)
    if corpus is None and not (index / BM25_DIR / "meta.json").is_file():
        raise ConfigError(
            f"--fusion needs the items' texts for BM25: pass --corpus (BEIR folder or corpus file), "
            f"or build the index with `prosper index --corpus` ({index / BM25_DIR} is missing)"
        )
    if checkpoint is None:
        raise ConfigError("--fusion needs query texts for BM25: a query text or --queries texts, with --checkpoint")


def _bm25_channel(index: Path, corpus: Path | None, searcher_index, settings):
    """--corpus builds the channel now, over the indexed items; else the one saved in INDEX/bm25."""
    from prosper.retrieval.api import BM25_DIR, bm25_from_corpus

    if corpus is not None:
        return bm25_from_corpus(corpus, item_ids=getattr(searcher_index, "ids", None), **_corpus_options(settings))
    from prosper.retrieval.bm25 import BM25Channel

    return BM25Channel.open(index / BM25_DIR)


def _print_query_terms(vectors, vocabulary, top_terms) -> None:
    """The query's terms, highest weight first (the ones search used are all of them or the top N)."""
    import numpy as np

    terms, weights = vectors.row(0)
    order = np.argsort(-weights, kind="stable")
    if top_terms:
        order = order[:top_terms]
    shown = ", ".join(f"{vocabulary[t] if vocabulary else t}:{w:.2f}" for t, w in zip(terms[order], weights[order]))
    console.print(f"query terms ({len(order)}): {shown}", highlight=False)
