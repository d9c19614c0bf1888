"""The one progress bar every long-running prosper step shows (rich, rank 0 only).

``ProgressBar(total, description, enabled=...)`` draws a bar with done/total, a rate, elapsed
and remaining time, and optional live statistics (``update(stats=...)``); disabled, every
method is a no-op, so callers never branch on it. rich is imported only when a bar is drawn.
"""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar, or nothing when ``enabled`` is false.

    ``unit`` names the rate (``items/s``, ``steps/s``); ``transient`` removes the bar when it
    stops; ``console`` is the rich console to draw on (the caller's, injected; rich's default
    otherwise).
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        enabled: bool = True,
        unit: str = "items",
        console: Any = None,
        transient: bool = False,
        stats: bool = False,
    ) -> None:
        self._bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class _Rate(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else f"- {unit}/s")

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeElapsedColumn()]
        if total:
            columns.append(TimeRemainingColumn())
        if stats:
            columns.append(TextColumn("{task.fields[stats]}"))
        self._bar = Progress(*columns, console=console, transient=transient)
        self._task = self._bar.add_task(description, total=total, stats="")
        self._bar.start()

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def update(self, completed: int | None = None, stats: str | None = None) -> None:
        """Set the position (e.g. after a resume) and/or the statistics text."""
        if self._bar is None:
            return
        fields: dict[str, Any] = {}
        if completed is not None:
            fields["completed"] = completed
        if stats is not None:
            fields["stats"] = stats
        self._bar.update(self._task, **fields)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
