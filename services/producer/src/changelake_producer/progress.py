"""A rich progress bar on stderr (stdout stays free for data)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
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
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("changes"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
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
