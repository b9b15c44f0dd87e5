"""The catalog's exceptions: infrastructure failures raise these, translated from boto errors."""

from __future__ import annotations


class CatalogError(Exception):
    """A Glue (or other catalog) operation failed; the work is retried later.

    ``code`` is the AWS error code when there is one (e.g. ``AlreadyExistsException``).
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ThrottledError(CatalogError):
    """Glue kept throttling past the retry budget."""


class ConcurrentUpdateError(CatalogError):
    """A table changed under us more often than the optimistic-concurrency budget allows."""


class InvalidNotificationError(ValueError):
    """An SQS message body that is neither an S3 event nor an S3 test event."""


class InvalidParquetError(ValueError):
    """An object whose bytes are not a readable Parquet file (bad magic or footer)."""
