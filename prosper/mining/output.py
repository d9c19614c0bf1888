"""A JSONL output written chunk by chunk that an interrupted run can resume exactly.

While running, finished chunks are appended to ``<output>.partial`` (flushed and fsynced) and
then ``<output>.progress.json`` is replaced atomically with how many queries and bytes are
done. The marker therefore never claims more than what is on disk; bytes after its count (a
chunk cut short by a crash) are truncated on resume, so no query is lost or written twice.
When every chunk is in, the sidecar ``<output>.meta.json`` is written and the partial file is
renamed to ``<output>``: a file under the final name is always complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prosper.errors import ConfigError, InputError
from prosper.fileio import atomic_write_json

FORMAT = "prosper-mined-triples"
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def sidecar_paths(output: Path) -> tuple[Path, Path, Path]:
    """``(partial, progress marker, meta)`` next to ``output``."""
    return (
        output.with_name(output.name + ".partial"),
        output.with_name(output.name + ".progress.json"),
        output.with_name(output.name + ".meta.json"),
    )


class ResumableJsonl:
    """``check()`` before any heavy work, ``verify_queries()``, ``start()``, ``append()`` per chunk,
    ``finish()``."""

    def __init__(self, output: str | Path, fingerprint: dict, resume: bool = False, force: bool = False) -> None:
        self.output = Path(output)
        self.partial, self.marker, self.meta = sidecar_paths(self.output)
        self.fingerprint = fingerprint
        self.resume = resume
        self.force = force
        self.state: dict | None = None  # the marker of the run being resumed
        self.queries_digest: str | None = None

    def check(self) -> None:
        """Decide between a fresh run and a resumed one; refuse anything ambiguous (one-line errors)."""
        if self.resume and self.force:
            raise ConfigError("--resume continues an interrupted run and --force starts over: give one of them")
        if self.output.suffix.lower() not in _JSONL_SUFFIXES:
            raise ConfigError(f"--output {self.output}: name it *.jsonl (prosper train reads triples by suffix)")
        if self.output.is_dir():
            raise InputError("output is a folder; give a file name", self.output)
        if self.force:
            return
        if self.marker.is_file() and not self.partial.exists() and self.output.is_file():
            self.marker.unlink()  # the run finished, only the marker's removal was cut short
        if self.resume and self.marker.is_file():
            self.state = self._read_marker()
            return
        left = next((p for p in (self.partial, self.marker) if p.exists()), None)
        if left is not None:
            if self.resume:
                raise InputError("unfinished output without its progress marker; start over with --force", left)
            raise InputError("an interrupted run left this; continue with --resume or start over with --force", left)
        if self.output.exists():
            raise InputError("output already exists (use --force to replace it)", self.output)
        # --resume with nothing to resume is a fresh run

    def _read_marker(self) -> dict:
        try:
            state = json.loads(self.marker.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"unreadable progress marker ({exc}); start over with --force", self.marker) from None
        if not isinstance(state, dict) or not {"bytes", "queries_done", "counts", "fingerprint"} <= set(state):
            raise InputError("not a progress marker of prosper mine; start over with --force", self.marker)
        old = state["fingerprint"]
        for key in sorted(set(old) | set(self.fingerprint)):
            if old.get(key) != self.fingerprint.get(key):
                raise ConfigError(
                    f"--resume: the interrupted run used {key}={old.get(key)!r}, this one "
                    f"{self.fingerprint.get(key)!r}; repeat its options or start over with --force"
                )
        size = self.partial.stat().st_size if self.partial.is_file() else -1
        if size < state["bytes"]:
            detail = f"shorter than the {state['bytes']} bytes its progress marker records"
            raise InputError(f"partial output missing or {detail}; start over with --force", self.partial)
        return state

    def verify_queries(self, queries_digest: str) -> None:
        """A resumed run must mine the same queries in the same order (cheap: before a model loads)."""
        if self.state is not None and self.state.get("queries_digest") != queries_digest:
            raise ConfigError("--resume: the split's queries changed since the interrupted run; use --force")
        self.queries_digest = queries_digest

    def start(self) -> tuple[int, dict]:
        """Open for appending; returns ``(queries already done, counts so far)``."""
        if self.state is not None:
            with self.partial.open("r+b") as handle:  # drop a chunk that was cut short
                handle.truncate(self.state["bytes"])
            return int(self.state["queries_done"]), dict(self.state["counts"])
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.partial.write_bytes(b"")
        self.state = {
            "fingerprint": self.fingerprint, "queries_digest": self.queries_digest,
            "bytes": 0, "queries_done": 0, "counts": {},
        }
        atomic_write_json(self.marker, self.state)
        return 0, {}

    def append(self, lines: list[str], queries_done: int, counts: dict) -> None:
        """Append one finished chunk, then record it in the marker (data durable first)."""
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self.partial.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.state.update(bytes=self.state["bytes"] + len(data), queries_done=queries_done, counts=counts)
        atomic_write_json(self.marker, self.state)

    def finish(self, meta: dict) -> Path:
        atomic_write_json(self.meta, {"format": FORMAT, **meta})
        os.replace(self.partial, self.output)
        self.marker.unlink(missing_ok=True)
        return self.output
