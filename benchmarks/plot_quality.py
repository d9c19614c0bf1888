"""Quality against serving cost from ``benchmarks/results/quality.json``: one curve per trainer.

    python benchmarks/plot_quality.py                      # -> docs/images/quality_vs_terms.png

x: postings touched per query (Σ df over the query's terms, the work of exact search), log scale;
y: dev nDCG@10 and Recall@1000. prosper's curve is its term budgets (``target_*`` and the default
12/48), the peer's is sentence-transformers at FLOPS λ × 1, 4, 16; BM25 is a horizontal line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CURVES = {
    "prosper (term budgets)": ["target_8_32", "prosper", "target_16_64", "target_32_128"],
    "prosper, dot product (term budgets)": ["dot_target_8_32", "dot_product", "dot_target_16_64"],
    "sentence-transformers (FLOPS λ ×1, ×4, ×16)": ["st_lambda_x16", "st_lambda_x4", "st"],
}
POINTS = {"paper recipe": "paper", "splade-tiny zero-shot": "zero_shot"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "benchmarks" / "results" / "quality.json"))
    p.add_argument("--output", default=str(REPO / "docs" / "images" / "quality_vs_terms.png"))
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = json.loads(Path(args.input).read_text())["systems"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, measure in zip(axes, ("nDCG@10", "Recall@1000")):
        for label, names in CURVES.items():
            found = [systems[n] for n in names if n in systems]
            if found:
                ax.plot([m["postings_per_query"] for m in found], [m[measure] for m in found], marker="o", label=label)
                for name, m in zip([n for n in names if n in systems], found):
                    ax.annotate(f"{m['terms_query']:.0f}/{m['terms_item']:.0f}", (m["postings_per_query"], m[measure]),
                                textcoords="offset points", xytext=(4, -10), fontsize=7)
        for label, name in POINTS.items():
            if name in systems:
                m = systems[name]
                ax.scatter([m["postings_per_query"]], [m[measure]], marker="x", label=label)
        if "bm25" in systems:
            ax.axhline(systems["bm25"][measure], color="grey", linestyle="--", linewidth=1, label="BM25")
        ax.set_xscale("log")
        ax.set_xlabel("postings touched per query (log)")
        ax.set_ylabel(f"dev {measure}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Home Depot dev, full corpus: quality against serving cost (labels: terms per query / item)", fontsize=10)
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
