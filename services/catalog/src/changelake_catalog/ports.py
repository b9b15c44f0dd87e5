"""Ports of the catalog service: the queue it drains and the catalog it maintains."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from changelake_lake.catalog import TableCatalog
from changelake_lake.layout import Partition
from changelake_lake.snapshot_view import SnapshotState


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


class CatalogRegistry(TableCatalog, Protocol):
    """The lake's catalog (Glue): tables, columns, partitions and the current-state view.

    Every method is idempotent and safe against concurrent workers: table changes use
    optimistic concurrency (re-read and retry on a version conflict), columns only grow.
    Methods take the *DynamoDB* table name; Glue names come from :mod:`changelake_lake.layout`.
    """

    def ensure_database(self) -> None:
        """Create the database if it is missing."""
        ...

    def ensure_raw_table(self, table: str) -> bool:
        """Create ``<table>_raw`` if missing; whether it was created."""
        ...

    def ensure_current_view(self, table: str) -> bool:
        """(Re)write ``<table>_current`` (and ``<table>_history``) over the table's current
        columns; whether ``_current`` was written."""
        ...

    def existing_partitions(self, table: str) -> set[Partition]:
        """Every partition registered on ``<table>_changes``."""
        ...

    def record_privacy(self, table: str, version: str, rules: str | None) -> bool:
        """Set the privacy policy parameters of ``<table>_changes``; whether written."""
        ...

    def snapshot_state(self, table: str) -> SnapshotState | None:
        """The snapshot ``<table>_current`` reads (ADR 0035), ``None`` for the full history."""
        ...

    def mark_late(self, table: str, partitions: Sequence[Partition]) -> bool:
        """Make the view read these partitions whole if its snapshot predates them (late data)."""
        ...
