"""One lifecycle for what runs in the background: ``with thing:`` starts it, always stops it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """Mixin for a ``start() -> Self`` / ``stop()`` pair: the context manager around them.

    ``stop`` runs however the block ends, so a failed test or command never leaves a server,
    a thread or a child process behind.
    """

    def start(self) -> Self:
        """Start serving or working in the background; return ``self``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop and release everything ``start`` took (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
