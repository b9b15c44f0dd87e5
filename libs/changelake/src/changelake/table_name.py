"""DynamoDB's table-name rule, which every table name in settings, records and the lake obeys."""

from __future__ import annotations

import re

_TABLE_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}\Z")


def check_table_name(table: str) -> str:
    """Return ``table`` if it is a valid DynamoDB table name, else raise ``ValueError``."""
    if not _TABLE_RE.match(table):
        raise ValueError(f"invalid DynamoDB table name {table!r}")
    return table
