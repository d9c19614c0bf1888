"""Collapse guard: say so loudly when the vectors go all-zero or stay dense.

Two failure modes of sparse training with a FLOPS penalty: λ too strong and every weight dies
(all-zero vectors: nothing can be retrieved), or λ too weak / ramp too long and the vectors stay
as wide as the LFW cap allows (or a large part of the vocabulary without LFW), so the index is as
slow as a dense scan. The guard watches the average number of non-zeros of the final query and
item vectors, as logged, and warns once per episode.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("prosper.train")


class CollapseGuard:
    def __init__(self, vocab_size: int, caps: dict[str, int], ramp_end: int | None, dense_fraction: float = 0.9):
        self.vocab_size = vocab_size
        self.caps = caps  # side -> the most terms a vector can have (LFW k, or the vocabulary)
        self.ramp_end = ramp_end  # step after which the regularizers are at full weight (None: no regularizer)
        self.dense_fraction = dense_fraction
        self._zero: set[str] = set()
        self._dense: set[str] = set()

    def check(self, step: int, nnz: dict[str, float]) -> list[str]:
        """Return the warnings newly raised at ``step`` for ``nnz = {"query": avg, "item": avg}``."""
        messages = []
        for side, value in nnz.items():
            if value < 1e-3:
                if side not in self._zero:
                    self._zero.add(side)
                    messages.append(
                        f"step {step}: {side} vectors collapsed to all-zero (average non-zeros {value:.3g}); "
                        "lower the regularizer's lambda or lengthen its ramp"
                    )
            else:
                self._zero.discard(side)
            cap = self.caps[side]
            if self.ramp_end is not None and step > self.ramp_end and value >= self.dense_fraction * cap:
                if side not in self._dense:
                    self._dense.add(side)
                    messages.append(
                        f"step {step}: {side} vectors stay dense after the regularizer ramp "
                        f"(average non-zeros {value:.1f} of at most {cap}); raise lambda_{side}"
                    )
        for message in messages:
            logger.warning(message)
        return messages
