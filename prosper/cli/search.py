"""``prosper index`` and ``prosper search``: a thin layer over :mod:`prosper.retrieval`
(``prosper eval`` is :mod:`prosper.cli.eval`). Heavy imports stay inside the commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import (
    ConfigOption,
    FusionOption,
    OverridesArgument,
    check_input_path,
    check_model_reference,
    check_query_text,
    console,
    search_settings,
)

_OVERRIDE = re.compile(r"^(model|data|train|infer|export|search)\.[\w.]+=")
_SCORINGS = "query_l2 | none | query_l1 | both_l2 | item_l2"
#: A single query prints a short table; run files keep search.k (1000) hits per query.
SINGLE_QUERY_K = 10

ScoringOption = Annotated[
    Optional[str],
    typer.Option("--scoring", help=f"Eq. 11 normalisation: {_SCORINGS} (default: search.scoring, else the model's, else query_l2)."),
]
TopTermsOption = Annotated[
    Optional[int],
    typer.Option("--query-top-terms", min=1, help="Keep only the N highest-weighted query terms (the paper serves with 16)."),
]
KOption = Annotated[Optional[int], typer.Option("--k", "-k", min=1, help="Items per query (default: 10 for one query text, else search.k = 1000).")]
def _split_args(args: list[str] | None) -> tuple[str | None, list[str]]:
    """Positional words: ``section.key=value`` are overrides, the rest is the query text."""
    overrides = [a for a in args or [] if _OVERRIDE.match(a)]
    words = [a for a in args or [] if not _OVERRIDE.match(a)]
    return (" ".join(words) if words else None), overrides


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
        settings = search_settings(config, overrides)
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
        index: Annotated[
            Optional[Path],
            typer.Option("--index", help="Index folder from `prosper index` (not needed when search.searcher is a database, e.g. milvus)."),
        ] = None,
        args: Annotated[
            Optional[list[str]],
            typer.Argument(help="The query text (with --checkpoint), then any section.key=value overrides.", show_default=False),
        ] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--model", "--checkpoint", help="Model that encodes the query text: a prosper checkpoint, a SPLADE folder or a Hugging Face hub id; --checkpoint is an alias.")] = None,
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
        settings = search_settings(config, overrides)
        from prosper.errors import ConfigError

        if (text is None) == (queries is None):
            raise ConfigError("give either a query text (with --model) or --queries FILE")
        if text is not None and checkpoint is None:
            raise ConfigError("a query text needs --model to encode it")
        check_query_text(text)
        if fusion is not None:
            _check_fusion(fusion, index, corpus, checkpoint)  # before the index or the model loads
        check_model_reference(checkpoint)
        check_input_path(index, "--index")
        check_input_path(queries, "--queries")
        check_input_path(corpus, "--corpus")
        from prosper.retrieval.api import load_query_vectors, open_search_index, resolve_scoring
        from prosper.retrieval.index import check_scoring

        searcher_index = open_search_index(index, settings.search.searcher)
        bm25 = _bm25_channel(index, corpus, searcher_index, settings) if fusion is not None else None
        encoder = None
        if checkpoint is not None:
            from prosper.modeling.encoder import SparseEncoder

            encoder = SparseEncoder.from_pretrained(str(checkpoint))
        k = k or (SINGLE_QUERY_K if text is not None else settings.search.k)
        top_terms = query_top_terms or settings.search.query_top_terms
        chosen = check_scoring(resolve_scoring(scoring, settings.search.scoring, encoder, searcher_index))
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
            console.print(results_table(ids, scores, texts=_item_texts(index, corpus, ids, settings), title=f"{text!r}: top {k} ({how})"))
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


def _corpus_options(settings) -> dict:
    data = settings.data
    return {"title_field": data.title_field, "text_field": data.text_field, "on_error": settings.infer.on_error}


def _check_fusion(method: str, index: Path | None, corpus: Path | None, checkpoint: Path | None) -> None:
    """--fusion needs a method, the items' texts and the queries' texts; say which is missing in one line."""
    from prosper.errors import ConfigError
    from prosper.retrieval.api import BM25_DIR
    from prosper.retrieval.fusion import check_method

    check_method(method)
    if corpus is None and (index is None or not (index / BM25_DIR / "meta.json").is_file()):
        saved = f"{index / BM25_DIR} is missing" if index is not None else "no --index"
        raise ConfigError(
            f"--fusion needs the items' texts for BM25: pass --corpus (BEIR folder or corpus file), "
            f"or build the index with `prosper index --corpus` ({saved})"
        )
    if checkpoint is None:
        raise ConfigError("--fusion needs query texts for BM25: a query text or --queries texts, with --checkpoint")


def _bm25_channel(index: Path, corpus: Path | None, searcher_index, settings):
    """--corpus builds the channel now, over the indexed items; else the one saved in INDEX/bm25."""
    from prosper.retrieval.api import BM25_DIR, bm25_from_corpus

    if corpus is not None:
        return bm25_from_corpus(corpus, item_ids=searcher_index.ids, **_corpus_options(settings))
    from prosper.retrieval.bm25 import BM25Channel

    return BM25Channel.open(index / BM25_DIR)


def _item_texts(index: Path | None, corpus: Path | None, ids, settings) -> dict[str, str] | None:
    """Texts of the shown items: the index's saved titles (`index --corpus`), else --corpus."""
    from prosper.retrieval.titles import load_titles

    texts = load_titles(index, list(ids))
    if texts is None and corpus is not None:
        from prosper.retrieval.api import corpus_texts

        texts = dict(zip(map(str, ids), corpus_texts(corpus, list(ids), **_corpus_options(settings))))
    return texts


def _print_query_terms(vectors, vocabulary, top_terms) -> None:
    """The query's terms, decoded, highest weight first (all of them, or the top N search used)."""
    (pairs,) = vectors.decode(top_terms, vocabulary)
    shown = ", ".join(f"{term}:{weight:.2f}" for term, weight in pairs)
    console.print(f"query terms ({len(pairs)}): {shown}", highlight=False)
