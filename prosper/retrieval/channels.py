"""Multi-channel recall analysis, as in the paper's online case study.

Several retrieval channels (PROSPER, BM25, ...) answer the same queries. Every retrieved item
carries a ``recall_types`` bitmask: bit ``i`` is set when channel ``i`` (in the order given)
retrieved it within the depth. PROSPER alone is one bit. Counting relevant items by mask answers
"what does my retriever add?": how many relevant items only PROSPER found, only BM25 found, both
found, or none did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prosper.retrieval.runs import ranked

Run = Mapping[str, Mapping[str, float]]


def recall_types(runs: Mapping[str, Run], depth: int | None = None) -> dict[str, dict[str, int]]:
    """``{qid: {docid: mask}}`` over the union of the channels' top-``depth`` items.

    ``runs`` maps channel name -> run, in bit order (first channel = bit 0 = value 1).
    """
    if len(runs) > 62:
        raise ValueError("at most 62 channels fit in a recall_types mask")
    masks: dict[str, dict[str, int]] = {}
    for bit, run in enumerate(runs.values()):
        for qid, hits in run.items():
            items = ranked(hits)[:depth] if depth is not None else hits.items()
            per_query = masks.setdefault(qid, {})
            for docid, _ in items:
                per_query[docid] = per_query.get(docid, 0) | (1 << bit)
    return masks


def mask_name(mask: int, channels: Sequence[str]) -> str:
    """``"prosper only"``, ``"bm25 only"``, ``"prosper+bm25"``, or ``"none"`` for 0."""
    names = [name for bit, name in enumerate(channels) if mask >> bit & 1]
    if not names:
        return "none"
    return f"{names[0]} only" if len(names) == 1 else "+".join(names)


@dataclass
class ChannelAnalysis:
    """Relevant items counted by which channels found them (``mask`` 0 = found by none)."""

    channels: list[str]
    depth: int | None
    min_grade: int
    n_queries: int
    relevant: dict[int, int]  # mask -> relevant (query, item) pairs
    retrieved: dict[int, int]  # mask -> all retrieved (query, item) pairs, relevant or not
    examples: dict[int, list[dict]] = field(default_factory=dict)  # single-channel masks -> examples

    def count(self, *channels: str, only: bool = True) -> int:
        """Relevant items found by exactly these channels (``only``) or by at least these."""
        want = sum(1 << self.channels.index(c) for c in channels)
        if only:
            return self.relevant.get(want, 0)
        return sum(n for mask, n in self.relevant.items() if mask & want == want)

    def to_dict(self) -> dict:
        return {
            "channels": self.channels,
            "bits": {name: 1 << bit for bit, name in enumerate(self.channels)},
            "depth": self.depth,
            "min_grade": self.min_grade,
            "n_queries": self.n_queries,
            "relevant_by_mask": {mask_name(m, self.channels): n for m, n in sorted(self.relevant.items())},
            "retrieved_by_mask": {mask_name(m, self.channels): n for m, n in sorted(self.retrieved.items())},
            "examples": {mask_name(m, self.channels): ex for m, ex in sorted(self.examples.items())},
        }


def analyse_channels(
    runs: Mapping[str, Run],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int | None = 100,
    min_grade: int = 1,
    n_examples: int = 5,
    query_texts: Mapping[str, str] | None = None,
    item_texts: Mapping[str, str] | None = None,
) -> ChannelAnalysis:
    """Count relevant items (grade >= ``min_grade``) by ``recall_types`` mask over the qrels' queries.

    Examples (first ``n_examples`` per single-channel mask, queries in qrels order, items by
    grade then id) show what each channel finds alone, with the rank it gave the item.
    """
    channels = list(runs)
    masks = recall_types(runs, depth)
    ranks = {
        name: {qid: {d: r for r, (d, _) in enumerate(ranked(hits), start=1)} for qid, hits in run.items()}
        for name, run in runs.items()
    }
    relevant: dict[int, int] = {}
    retrieved: dict[int, int] = {}
    examples: dict[int, list[dict]] = {1 << bit: [] for bit in range(len(channels))}
    for qid, judged in qrels.items():
        found = masks.get(qid, {})
        for mask in found.values():
            retrieved[mask] = retrieved.get(mask, 0) + 1
        for docid, grade in sorted(judged.items(), key=lambda kv: (-kv[1], kv[0])):
            if grade < min_grade:
                continue
            mask = found.get(docid, 0)
            relevant[mask] = relevant.get(mask, 0) + 1
            if mask in examples and len(examples[mask]) < n_examples:
                channel = channels[mask.bit_length() - 1]
                example = {"query_id": qid, "item_id": docid, "grade": grade, "rank": ranks[channel][qid][docid]}
                if query_texts is not None:
                    example["query"] = query_texts.get(qid, "")
                if item_texts is not None:
                    example["item"] = item_texts.get(docid, "")
                examples[mask].append(example)
    return ChannelAnalysis(channels, depth, min_grade, len(qrels), relevant, retrieved, examples)
