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
        summary = build_index_from_file(input, output, spec, overwrite=force)
        console.print(
            f"indexed {summary['items']:,} items ({summary['avg_item_nnz']:.1f} non-zeros each, vocabulary "
            f"{summary['vocab_size']:,}) with {summary['searcher']} in {summary['seconds']:.1f}s -> {output}",
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
        tag: Annotated[str, typer.Option("--tag", help="Run tag (last TREC column).")] = "prosper",
        config: ConfigOption = None,
    ) -> None:
        """Search an index: one query prints a table, --queries writes a TREC run file."""
        text, overrides = _split_args(args)
        settings = _settings(config, overrides)
        from prosper.errors import ConfigError

        if (text is None) == (queries is None):
            raise ConfigError("give either a query text (with --checkpoint) or --queries FILE")
        if text is not None and checkpoint is None:
            raise ConfigError("a query text needs --checkpoint to encode it")
        from prosper.retrieval.api import load_query_vectors, resolve_scoring
        from prosper.retrieval.index import check_scoring
        from prosper.retrieval.searchers import open_index

        searcher_index = open_index(index)
        encoder = None
        if checkpoint is not None:
            from prosper.modeling.encoder import SparseEncoder

            encoder = SparseEncoder.load(checkpoint)
        k = k or settings.search.k
        top_terms = query_top_terms or settings.search.query_top_terms
        chosen = check_scoring(resolve_scoring(scoring, settings.search.scoring, encoder))
        if text is not None:
            vectors = encoder.encode([text], side="query", ids=["q"])
            (result,) = searcher_index.search(vectors, k=k, scoring=chosen, query_top_terms=top_terms)
            _print_query_terms(vectors, encoder.vocabulary(), top_terms)
            from prosper.evaluation.report import results_table

            console.print(results_table(result.ids, result.scores, title=f"{text!r}: top {k} ({chosen})"))
            return
        if encoder is not None:
            from prosper.data.collections import iter_collection

            records = [(r.id, r.text) for r in iter_collection(queries, side="query", on_error=settings.infer.on_error)]
            qids = [r[0] for r in records]
            vectors = encoder.encode([r[1] for r in records], side="query", batch_size=settings.infer.batch_size, ids=qids)
        else:
            vectors = load_query_vectors(queries)
            qids = list(vectors.ids)
        from prosper.retrieval.runs import iter_lines, results_to_run, write_run

        results = searcher_index.search(vectors, k=k, scoring=chosen, query_top_terms=top_terms)
        run = results_to_run(qids, results)
        if output is None:
            for line in iter_lines(run, tag):
                typer.echo(line)
        else:
            write_run(output, run, tag)
            console.print(f"{len(qids):,} queries, top {k} ({chosen}) -> {output}", highlight=False)

    @app.command("eval")
    def eval_command(
        run: Annotated[Optional[list[Path]], typer.Option("--run", help="TREC run file(s) to evaluate (repeat for several).")] = None,
        qrels: Annotated[Optional[Path], typer.Option("--qrels", help="Judgments: BEIR TSV or TREC qrels.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="All-in-one: encode, index, search, evaluate.")] = None,
        data: Annotated[Optional[Path], typer.Option("--data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")] = None,
        split: Annotated[str, typer.Option("--split", help="qrels/<split>.tsv to evaluate on.")] = "dev",
        bm25: Annotated[bool, typer.Option("--bm25", help="Also evaluate BM25 (bm25s) over the same corpus.")] = False,
        channels: Annotated[bool, typer.Option("--channels", help="Multi-channel recall_types analysis (implies --bm25 with --checkpoint).")] = False,
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

            payload = evaluate_checkpoint(checkpoint, data, split, settings, output, bm25=bm25, channels=channels, console=console)
            console.print(metrics_table(payload["systems"], title=f"{data} / {split} ({payload['n_queries']:,} queries)"))
            if "_analysis" in payload:
                for table in channels_tables(payload["_analysis"]):
                    console.print(table)
            console.print(f"runs and metrics.json in {payload['output']}", highlight=False)
            return
        if not run or qrels is None:
            raise ConfigError("give --run RUN --qrels QRELS, or --checkpoint C --data BEIR_DIR")
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


def _print_query_terms(vectors, vocabulary, top_terms) -> None:
    """The query's terms, highest weight first (the ones search used are all of them or the top N)."""
    import numpy as np

    terms, weights = vectors.row(0)
    order = np.argsort(-weights, kind="stable")
    if top_terms:
        order = order[:top_terms]
    shown = ", ".join(f"{vocabulary[t] if vocabulary else t}:{w:.2f}" for t, w in zip(terms[order], weights[order]))
    console.print(f"query terms ({len(order)}): {shown}", highlight=False)
