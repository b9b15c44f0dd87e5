"""S3 event notifications (as delivered to SQS) → the change objects they announce. Pure.

A body is either an S3 test event (``{"Event": "s3:TestEvent", …}``, sent when the
notification is configured), or ``{"Records": [...]}`` of S3 events. Keys arrive URL-encoded
(``+`` for space). Only ``ObjectCreated:*`` events on the lake bucket whose key lies in a
change-table partition (:func:`changelake_lake.layout.parse_table_object_key`) are returned, those
that are not change objects (``*.parquet``) marked ``stray``; everything else is ignored
without error. A body that is neither shape raises :class:`InvalidNotificationError`
so that the message is retried and, after the queue's maxReceiveCount, dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson
from changelake_lake.layout import Partition, parse_change_object_key, parse_table_object_key

from changelake_catalog.exceptions import InvalidNotificationError


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A new change object: its DynamoDB table, partition, key and (if known) size."""

    table: str
    partition: Partition
    key: str
    size: int | None = None
    stray: bool = False
    """Inside a table partition but not a change object (``*.parquet``): to be quarantined."""


def parse_notification(body: str, bucket: str | None = None) -> list[ObjectRef]:
    """The change objects announced by one SQS message body (empty if none concern us)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidNotificationError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidNotificationError("not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise InvalidNotificationError("no Records in an S3 event notification")
    refs: list[ObjectRef] = []
    for record in records:
        ref = _object_ref(record, bucket)
        if ref is not None:
            refs.append(ref)
    return refs


def _object_ref(record: Any, bucket: str | None) -> ObjectRef | None:
    if not isinstance(record, dict):
        raise InvalidNotificationError("an S3 event record is not an object")
    if record.get("eventSource") != "aws:s3":
        raise InvalidNotificationError(f"not an S3 event: {record.get('eventSource')!r}")
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return None
    try:
        s3 = record["s3"]
        bucket_name = s3["bucket"]["name"]
        s3_object = s3["object"]
        quoted_key = s3_object["key"]
    except (KeyError, TypeError) as exc:
        raise InvalidNotificationError(f"S3 event without bucket/key: {exc!r}") from exc
    if not isinstance(quoted_key, str):
        # Found by fuzzing (docs/adr/0037): a non-string key is a broken message, not a crash.
        raise InvalidNotificationError(f"S3 event key is not a string: {quoted_key!r:.80}")
    if bucket is not None and bucket_name != bucket:
        return None
    key = unquote_plus(quoted_key)
    parsed = parse_table_object_key(key)
    if parsed is None:
        return None
    size = s3_object.get("size")
    return ObjectRef(
        parsed.table,
        parsed.partition,
        key,
        int(size) if isinstance(size, int) else None,
        stray=parse_change_object_key(key) is None,
    )
