"""The demo's reports: the terminal tables, ``summary.md``, ``summary.json`` and ``metrics.json``.

:class:`DemoSummary` is what :func:`prosper.demo.pipeline.run_demo` found; everything here only
formats it (rich tables for the terminal, Markdown for people, JSON for machines). Terms are
already decoded for display (:func:`prosper.modeling.terms.display_terms`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prosper.demo.presets import CLAIM_MEASURE, DISCLAIMER, MEASURES, PRINTED
from prosper.fileio import atomic_write_json, atomic_write_text


@dataclass
class DemoSummary:
    """What :func:`prosper.demo.pipeline.run_demo` did and found; ``to_dict()`` is ``summary.json``."""

    out_dir: Path
    size: str
    backbone: str  # "scratch" or the hub id / folder given
    seed: int
    wall_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system -> kind -> measure
    beats_bm25: dict[str, bool] = field(default_factory=dict)  # claim kind -> prosper > bm25
    fusion: dict[str, Any] = field(default_factory=dict)  # FUSION_CLAIM's system and the kinds it is below BM25 on
    channels: dict[str, Any] = field(default_factory=dict)
    explanations: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def claim_holds(self) -> bool:
        return bool(self.beats_bm25) and all(self.beats_bm25.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["claim_holds"] = self.claim_holds
        out["disclaimer"] = DISCLAIMER if self.backbone == "scratch" else None
        return out


def print_metrics(console, summary: DemoSummary) -> None:
    """Per query kind, prosper beside BM25 (the better value in bold), then who found what."""
    from rich.table import Table

    table = Table(title="dev metrics per query kind: prosper vs BM25 (the better value in bold)")
    table.add_column("query kind")
    table.add_column("n", justify="right")
    for name in PRINTED:
        table.add_column(f"{name}\nprosper", justify="right")
        table.add_column(f"{name}\nBM25", justify="right")
    for kind, values in summary.metrics["prosper"].items():
        bm = summary.metrics["bm25"][kind]
        cells = []
        for name in PRINTED:
            p, b = values[name], bm[name]
            cells.append(f"[bold green]{p:.3f}[/]" if p > b else f"{p:.3f}")
            cells.append(f"[bold]{b:.3f}[/]" if b > p else f"{b:.3f}")
        label = "[bold]all[/]" if kind == "all" else kind
        table.add_row(label, str(values["queries"]), *cells, end_section=kind == "misspelling")
    console.print(table)

    names = ("prosper only", "bm25 only", "both", "neither")
    channels = Table(
        title=f"relevant dev items (grade >= 1) in each channel's top {summary.channels.get('depth')}: who found them"
    )
    channels.add_column("query kind")
    for name in names:
        channels.add_column(name, justify="right")
    total = dict.fromkeys(names, 0)
    for kind, counts in summary.channels.get("relevant_by_kind", {}).items():
        channels.add_row(kind, *(f"{counts[n]:,}" for n in names))
        for name in names:
            total[name] += counts[name]
    channels.add_row("[bold]all[/]", *(f"[bold]{total[n]:,}[/]" for n in names), end_section=True)
    console.print(channels)
    examples = summary.channels.get("examples", {}).get("prosper only", [])
    if examples:
        console.print("found by prosper alone, for example:")
        for ex in examples[:3]:
            item = ex.get("item", ex["item_id"])
            console.print(
                f"  [cyan]{ex.get('query', ex['query_id'])!r}[/] -> {item[:70]!r}… (grade {ex['grade']}, "
                f"prosper rank {ex['rank']})",
                highlight=False,
            )


def print_explanation(console, explanation: dict, item_texts: dict[str, str]) -> None:
    """One query's top terms, literal or expansion, and prosper's first item."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"explain ({explanation['kind']} query): {explanation['query']!r}", title_justify="left")
    table.add_column("term")
    table.add_column("weight", justify="right")
    table.add_column("", justify="left")
    for term in explanation["terms"]:
        kind = "literal" if term["literal"] else "[magenta]expansion[/]"
        table.add_row(escape(term["term"]), f"{term['weight']:.3f}", kind)
    console.print(table)
    top = explanation.get("top_item")
    if top:
        console.print(f"  prosper's first item: {item_texts.get(top, top)[:80]!r}…", highlight=False)


def print_verdict(console, summary: DemoSummary) -> None:
    """The demo's claims, each with yes or no."""
    for kind, wins in summary.beats_bm25.items():
        p = summary.metrics["prosper"][kind][CLAIM_MEASURE]
        b = summary.metrics["bm25"][kind][CLAIM_MEASURE]
        mark = "[bold green]yes[/]" if wins else "[bold red]no[/]"
        console.print(
            f"prosper beats BM25 on {kind} queries ({CLAIM_MEASURE} {p:.3f} vs {b:.3f}): {mark}", highlight=False
        )
    if summary.fusion:
        below = summary.fusion["below_bm25"]
        mark = f"[bold red]no[/] ({', '.join(below)})" if below else "[bold green]yes[/]"
        console.print(f"{summary.fusion['system']} is never below BM25 on a query kind: {mark}", highlight=False)


def write_reports(out: Path, summary: DemoSummary) -> None:
    """``metrics.json``, ``summary.json`` and ``summary.md``, each written atomically."""
    summary.files.update(
        data=str(out / "data"),
        settings=str(out / "settings.yaml"),
        metrics=str(out / "metrics.json"),
        summary_json=str(out / "summary.json"),
        summary_md=str(out / "summary.md"),
    )
    metrics = {
        "split": "dev",
        "measures": list(MEASURES),
        "systems": summary.metrics,
        "channels": summary.channels,
        "explanations": summary.explanations,
    }
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_json(out / "summary.json", summary.to_dict())
    atomic_write_text(out / "summary.md", summary_markdown(summary))


def _code(text: str) -> str:
    """``text`` as Markdown inline code, fenced so that a backtick inside cannot end it."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def summary_markdown(summary: DemoSummary) -> str:
    """``summary.md``: the run on one page of Markdown."""
    lines = ["# prosper demo", ""]
    if summary.backbone == "scratch":
        lines += [f"**Note:** {DISCLAIMER}.", ""]
    else:
        lines += [f"Backbone: `{summary.backbone}` (pretrained), fine-tuned with the PROSPER recipe.", ""]
    lines += [
        f"- size preset `{summary.size}`, seed {summary.seed}, wall time {summary.wall_s:.0f} s",
        f"- data: {summary.sizes.get('products', 0):,} products, {summary.sizes.get('train_queries', 0):,} train / "
        f"{summary.sizes.get('dev_queries', 0):,} dev queries",
        "",
        "## Dev metrics per query kind",
        "",
        "| kind | n | " + " | ".join(f"{m} prosper | {m} BM25" for m in MEASURES) + " |",
        "|---|---:|" + "---:|" * (2 * len(MEASURES)),
    ]
    for kind, values in summary.metrics.get("prosper", {}).items():
        bm = summary.metrics["bm25"][kind]
        cells = " | ".join(f"{values[m]:.3f} | {bm[m]:.3f}" for m in MEASURES)
        lines.append(f"| {kind} | {values['queries']} | {cells} |")
    lines += ["", "## Verdict", ""]
    for kind, wins in summary.beats_bm25.items():
        p = summary.metrics["prosper"][kind][CLAIM_MEASURE]
        b = summary.metrics["bm25"][kind][CLAIM_MEASURE]
        verb = "beats" if wins else "does not beat"
        lines.append(f"- prosper {verb} BM25 on **{kind}** queries ({CLAIM_MEASURE} {p:.3f} vs {b:.3f})")
    if summary.fusion:
        lines += _fusion_markdown(summary)
    by_kind = summary.channels.get("relevant_by_kind", {})
    if by_kind:
        lines += [
            "",
            f"## Multi-channel analysis (relevant items in the top {summary.channels.get('depth')} of each channel)",
            "",
            "| kind | prosper only | bm25 only | both | neither |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind, c in by_kind.items():
            lines.append(f"| {kind} | {c['prosper only']} | {c['bm25 only']} | {c['both']} | {c['neither']} |")
    if summary.explanations:
        lines += ["", "## Explain (top query terms; expansion = not in the query text)", ""]
        for ex in summary.explanations:
            terms = ", ".join(
                f"{_code(t['term'])} {t['weight']:.2f}{'' if t['literal'] else ' (expansion)'}"
                for t in ex["terms"]
            )
            lines.append(f"- {ex['kind']} {_code(ex['query'])}: {terms}")
    lines += ["", "## Timings (s)", ""]
    lines += [f"- {key}: {value}" for key, value in summary.timings.items()]
    lines += ["", "## Files", ""]
    lines += [f"- {key}: `{_relative(value, summary.out_dir)}`" for key, value in summary.files.items()]
    return "\n".join(lines) + "\n"


def _fusion_markdown(summary: DemoSummary) -> list[str]:
    """The fused runs beside both channels, on the claim's measure, per query kind."""
    systems = [name for name in summary.metrics if name not in ("prosper", "bm25")]
    below = summary.fusion["below_bm25"]
    verdict = f"below BM25 on {', '.join(below)}" if below else "never below BM25"
    lines = [
        "",
        f"## Fusion with BM25 ({CLAIM_MEASURE}; `{summary.fusion['system']}` is {verdict})",
        "",
        "| kind | prosper | BM25 | " + " | ".join(systems) + " |",
        "|---|---:|---:|" + "---:|" * len(systems),
    ]
    for kind, values in summary.metrics["prosper"].items():
        cells = [summary.metrics[name][kind][CLAIM_MEASURE] for name in ("bm25", *systems)]
        lines.append(f"| {kind} | {values[CLAIM_MEASURE]:.3f} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    return lines
