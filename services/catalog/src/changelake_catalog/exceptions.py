"""The catalog service's own exceptions (the catalog's are in ``changelake_lake.catalog``)."""

from __future__ import annotations


class QueueError(Exception):
    """An SQS or S3 listing call failed (translated from boto errors); the work is retried later.

    ``code`` is the AWS error code when there is one.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InvalidNotificationError(ValueError):
    """An SQS message body that is neither an S3 event nor an S3 test event."""


class InvalidParquetError(ValueError):
    """An object whose bytes are not a readable Parquet file (bad magic or footer)."""
