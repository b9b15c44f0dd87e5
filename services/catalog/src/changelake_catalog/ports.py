"""Ports of the catalog service: the queue it drains and the listing repair reads (the catalog
it maintains is the lake's port, :class:`changelake_lake.catalog.Catalog`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received message: id, receipt handle, body, and how often it was received."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


class MessageQueue(Protocol):
    """An at-least-once queue with a visibility timeout and a dead-letter redrive policy.

    A received message stays invisible for the visibility timeout; ``delete`` acknowledges it
    (call it only after its work succeeded); an undeleted message comes back, and after the
    queue's ``maxReceiveCount`` receives the queue moves it to its dead-letter queue.
    """

    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]:
        """Long-poll up to ``max_messages`` messages (returns at once when some are there)."""
        ...

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Acknowledge messages whose work is done."""
        ...

    def retry_later(self, messages: Sequence[QueueMessage], delay_seconds: int) -> None:
        """Make failed messages visible again after ``delay_seconds`` (their next attempt)."""
        ...


class ObjectListing(Protocol):
    """Objects under a prefix with their sizes (a size saves a HEAD before a footer read)."""

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``, in lexicographic order."""
        ...
