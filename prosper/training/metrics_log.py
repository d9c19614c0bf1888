"""The JSONL metrics log of a training run (``<output_dir>/metrics.jsonl``).

One JSON object a line: ``{"event": "train", "step": ..., "loss": ..., "lr": ...}``,
``{"event": "eval", ...}``, ``{"event": "warning", ...}``. Lines are flushed as written so that a
killed run keeps everything up to its last line; on resume, lines past the checkpoint's step are
dropped (they will be written again) so the log reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step > step`` (atomically), keeping earlier ones."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by the kill
                    continue
                if int(record.get("step", 0)) <= step:
                    kept.append(json.dumps(record))
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_metrics(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
