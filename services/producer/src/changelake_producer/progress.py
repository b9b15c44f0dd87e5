"""Progress of a production run: a rich bar on stderr (CLI), or log lines (containers).

stdout stays free for data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _display(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("changes"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class RichProgress:
    """:class:`~changelake_producer.service.Progress` drawn with rich on stderr."""

    def __init__(self, description: str = "producing", console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._description = description
        self._progress: Progress | None = None
        self._task: int | None = None

    def start(self, total: int | None) -> None:
        """Show the bar (indeterminate for a duration run)."""
        self._progress = _display(self._console)
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total)

    def advance(self, n: int) -> None:
        """Move the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Finish the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LogProgress:
    """:class:`~changelake_producer.service.Progress` as structured log lines (containers, ECS).

    A line when the run starts, one every ``interval_s`` with the changes written so far and the
    achieved rate, and a last one at the end: a container's log shows the producer working.
    """

    def __init__(
        self,
        interval_s: float = 10.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._log = logger or logging.getLogger("changelake_producer")
        self._clock = clock
        self._total: int | None = None
        self._written = 0
        self._started = 0.0
        self._next = 0.0

    def start(self, total: int | None) -> None:
        """Log the start (``total`` is ``None`` for a duration run)."""
        self._total = total
        self._written = 0
        self._started = self._clock()
        self._next = self._started + self._interval_s
        self._log.info("producing", extra={"total": total})

    def advance(self, n: int) -> None:
        """Count ``n`` more changes; log when the interval has passed."""
        self._written += n
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval_s
            self._log.info("produced so far", extra=self._figures(now))

    def stop(self) -> None:
        """Log the final figures."""
        self._log.info("produced", extra=self._figures(self._clock()))

    def _figures(self, now: float) -> dict[str, float | int | None]:
        elapsed = max(now - self._started, 1e-9)
        return {
            "written": self._written,
            "total": self._total,
            "elapsed_s": round(elapsed, 1),
            "changes_per_s": round(self._written / elapsed, 1),
        }


class RichProgressGroup:
    """One rich display with a bar per table (``changelake produce`` writing several at once).

    Use as a context manager around the run; :meth:`bar` gives each table its
    :class:`~changelake_producer.service.Progress`.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._progress = _display(console or Console(stderr=True))

    def __enter__(self) -> RichProgressGroup:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def bar(self, description: str) -> _GroupBar:
        """The bar of one table, drawn once its run starts."""
        return _GroupBar(self._progress, description)


class _GroupBar:
    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._description = description
        self._task: TaskID | None = None

    def start(self, total: int | None) -> None:
        self._task = self._progress.add_task(self._description, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def stop(self) -> None:
        pass
