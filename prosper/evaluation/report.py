"""Reports: metrics and channel analyses as rich tables and as JSON files (written atomically)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.table import Table

# Statistics shown after the metrics, with how many decimals.
_STATS = {"query_nnz": 1, "item_nnz": 1, "postings_per_query": 0, "flops": 3}


def metrics_table(systems: Mapping[str, Mapping[str, float]], title: str = "Retrieval quality") -> Table:
    """One row per metric (4 decimals) or statistic, one column per system: fits a narrow terminal."""
    rows: list[str] = []
    for values in systems.values():
        rows.extend(name for name in values if name not in rows)
    table = Table(title=title)
    table.add_column("metric", style="bold")
    for system in systems:
        table.add_column(system, justify="right")
    for name in rows:
        cells = []
        for values in systems.values():
            value = values.get(name)
            if value is None:
                cells.append("–")
            elif name in _STATS:
                cells.append(f"{value:,.{_STATS[name]}f}")
            else:
                cells.append(f"{value:.4f}")
        table.add_row(name, *cells)
    return table


def results_table(ids, scores, texts: Mapping[str, str] | None = None, title: str = "") -> Table:
    """Ranked items of one query: rank, id, score and the item text when known."""
    table = Table(title=title)
    table.add_column("rank", justify="right")
    table.add_column("id")
    table.add_column("score", justify="right")
    if texts is not None:
        table.add_column("text")
    for rank, (docid, score) in enumerate(zip(ids, scores), start=1):
        row = [str(rank), str(docid), f"{float(score):.4f}"]
        if texts is not None:
            row.append(texts.get(docid, ""))
        table.add_row(*row)
    return table


def channels_tables(analysis) -> list[Table]:
    """The relevant items by recall_types mask, then examples of each channel's solo finds."""
    from prosper.retrieval.channels import mask_name

    summary = Table(title=f"Relevant items by channel (top {analysis.depth}, grade ≥ {analysis.min_grade})")
    summary.add_column("recall_types")
    summary.add_column("mask", justify="right")
    summary.add_column("relevant", justify="right")
    summary.add_column("share", justify="right")
    summary.add_column("retrieved", justify="right")
    total = sum(analysis.relevant.values()) or 1
    masks = sorted(set(analysis.relevant) | set(analysis.retrieved), key=lambda m: (m == 0, bin(m).count("1"), m))
    for mask in masks:
        n = analysis.relevant.get(mask, 0)
        summary.add_row(
            mask_name(mask, analysis.channels), str(mask), f"{n:,}", f"{n / total:.1%}", f"{analysis.retrieved.get(mask, 0):,}"
        )
    tables = [summary]
    for mask, examples in sorted(analysis.examples.items()):
        if not examples:
            continue
        table = Table(title=f"Relevant items found by {mask_name(mask, analysis.channels)}")
        for column in examples[0]:
            table.add_column(column, justify="right" if column in ("grade", "rank") else "left")
        for example in examples:
            table.add_row(*(str(v) for v in example.values()))
        tables.append(table)
    return tables


def write_json(path: str | Path, payload) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    from prosper.fileio import atomic_write_json

    return atomic_write_json(path, payload)
