"""``changelake redrive``: re-process quarantined records after a fix (docs/adr/0031).

* ``consumer-errors``: each line of ``errors/consumer/<table>/…`` is decoded again with today's
  code and settings by the consumer's own row path (:func:`changelake_consumer.rows.prepare`)
  and written by its Parquet writer to ``changes/<table>/dt=…/hour=…/<shard>-<first>-<last>
  .parquet``: the key is made of the records' own shard and sequence numbers, so a re-drive
  that is repeated (or resumed after a crash) overwrites the same objects. A line whose bytes
  were redacted by a privacy policy is re-read from the stream by its shard and sequence number
  (while Kinesis retains it), so the fixed policy applies to the original, never to a redaction.
* ``firehose-errors``: each record of ``errors/firehose/…`` goes through the transform again
  (:func:`changelake_transform.service.transform_records`, one record per call, today's
  settings); what is now ``Ok`` is written as JSON lines to ``raw/<table>/dt=…/hour=…/`` under
  a name derived from the error object's key (deterministic again).
* ``catalog-dlq``: messages of the catalog queue's dead-letter queue go back to the queue.

Then each error object is rewritten with only the records that still fail, each with its new
reason, or deleted when none is left: a second re-drive finds nothing to do. Writes come first,
the error object last, so a re-drive killed half-way is simply run again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from changelake.events import DecodeFailure, Position
from changelake.ports import ObjectStore
from changelake.privacy import RECORD_MARKER, PrivacyPolicy
from changelake.timeutil import datetime_to_us
from changelake_lake import layout
from changelake_lake.layout import Partition

from changelake_cli.ops import lake

log = logging.getLogger(__name__)

SOURCES = ("consumer-errors", "firehose-errors", "catalog-dlq")
PARQUET_TYPE = "application/vnd.apache.parquet"
JSONL_TYPE = "application/x-ndjson"

# (shard id, sequence number) → the record's original bytes, or None if the stream lost it.
StreamReader = Callable[[str, str], bytes | None]


@dataclass(slots=True)
class RedriveSummary:
    """What a re-drive did (or, with ``dry_run``, would do)."""

    source: str
    dry_run: bool
    records: int = 0
    landed: int = 0
    still_failing: int = 0
    objects_written: list[str] = field(default_factory=list)
    error_objects_rewritten: int = 0
    error_objects_deleted: int = 0
    messages_moved: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def failed(self, reason: str) -> None:
        """Count a record that still fails, by reason."""
        self.still_failing += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _name_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _arrival_us(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    return datetime_to_us(datetime.fromisoformat(text))


def _is_redacted(data: bytes | None) -> bool:
    return data is not None and RECORD_MARKER.encode() in data


def _finish_error_object(
    store: ObjectStore,
    key: str,
    remaining: Sequence[bytes],
    summary: RedriveSummary,
) -> None:
    if summary.dry_run:
        return
    if remaining:
        store.put(key, b"".join(remaining), JSONL_TYPE)
        summary.error_objects_rewritten += 1
    else:
        store.delete(key)
        summary.error_objects_deleted += 1


def redrive_consumer_errors(
    store: ObjectStore,
    tables: Sequence[str],
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    privacy: PrivacyPolicy | None = None,
    stream: StreamReader | None = None,
) -> RedriveSummary:
    """Decode ``errors/consumer/`` again; land what decodes, keep what fails (new reason)."""
    from changelake_consumer.parquet import table_to_parquet
    from changelake_consumer.rows import prepare
    from changelake_lake.column_policy import ChangeColumns, PreparedRow

    summary = RedriveSummary("consumer-errors", dry_run)
    prefixes = [layout.errors_prefix(lake.CONSUMER_ERRORS, t) for t in tables]
    prefixes.append(layout.errors_prefix(lake.CONSUMER_ERRORS, None))
    for prefix in prefixes:
        for keys in lake.partitioned_keys(store, prefix, since).values():
            for key in keys:
                records = lake.consumer_error_records(store, key)
                buffers: dict[tuple[str, Partition], list[PreparedRow]] = {}
                remaining: list[bytes] = []
                for record in records:
                    summary.records += 1
                    line = record.line
                    position = Position(
                        str(line.get("shard_id")),
                        str(line.get("sequence_number")),
                        _arrival_us(line.get("arrival_time")),
                    )
                    data = record.data
                    if _is_redacted(data):
                        data = (
                            stream(position.shard_id, position.sequence_number) if stream else None
                        )
                        if data is None:
                            reason = "redacted in quarantine and no longer readable from the stream"
                            summary.failed(reason)
                            remaining.append(orjson.dumps({**line, "reason": reason}) + b"\n")
                            continue
                    row = prepare(data or b"", position, None, privacy)
                    if isinstance(row, DecodeFailure):
                        summary.failed(row.reason)
                        remaining.append(orjson.dumps({**line, "reason": row.reason}) + b"\n")
                        continue
                    part = layout.partition_for_us(row.event_time_us)
                    buffers.setdefault((row.table, part), []).append(row)
                for (table, part), rows in sorted(buffers.items()):
                    rows.sort(key=lambda r: int(r.system[10]))
                    first, last = rows[0].system[10], rows[-1].system[10]
                    shard = str(rows[0].system[9])
                    object_key = layout.change_object_key(table, part, shard, first, last)
                    summary.landed += len(rows)
                    summary.objects_written.append(object_key)
                    if dry_run:
                        continue
                    columns = ChangeColumns()
                    for row in rows:
                        columns.add(row)
                    meta = privacy.metadata(table) if privacy is not None else None
                    store.put(object_key, table_to_parquet(columns.to_table(), meta), PARQUET_TYPE)
                _finish_error_object(store, key, remaining, summary)
    return summary


def redrive_firehose_errors(
    store: ObjectStore,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    privacy: PrivacyPolicy | None = None,
    max_response_bytes: int | None = None,
    object_prefix: str = "changelake-redrive",
) -> RedriveSummary:
    """Transform ``errors/firehose/`` records again; write what is now Ok to ``raw/``."""
    from changelake_transform.service import OK, transform_records

    summary = RedriveSummary("firehose-errors", dry_run)
    limits = {} if max_response_bytes is None else {"max_response_bytes": max_response_bytes}
    for key in lake.firehose_error_keys(store, since):
        groups: dict[tuple[str, str, str], list[bytes]] = {}
        remaining: list[bytes] = []
        for record in lake.firehose_error_records(store, key):
            summary.records += 1
            line = record.line
            event = {
                "recordId": "redrive",
                "data": line.get("rawData"),
                "approximateArrivalTimestamp": line.get("arrivalTimestamp"),
            }
            result = transform_records([event], privacy=privacy, **limits)
            (entry,) = result.records
            if entry["result"] != OK:
                reason = result.failures.get("redrive", entry["result"])
                summary.failed(reason)
                message = f"ProcessingFailed status set for record: {reason}"
                code = "Lambda.ProcessingFailedStatus"
                new = {**line, "errorCode": code, "errorMessage": message}
                remaining.append(orjson.dumps(new) + b"\n")
                continue
            keys = entry["metadata"]["partitionKeys"]
            group = (keys["table"], keys["dt"], keys["hour"])
            groups.setdefault(group, []).append(base64.b64decode(entry["data"]))
        for (table, dt, hour), lines in sorted(groups.items()):
            raw_key = (
                layout.raw_partition_prefix(table, Partition(dt, hour))
                + f"{object_prefix}-{_name_hash(key)}"
            )
            summary.landed += len(lines)
            summary.objects_written.append(raw_key)
            if not dry_run:
                store.put(raw_key, b"".join(lines), JSONL_TYPE)
        _finish_error_object(store, key, remaining, summary)
    return summary


def redrive_catalog_dlq(
    queue: str, *, since: datetime | None = None, dry_run: bool = False, sqs: Any | None = None
) -> RedriveSummary:
    """Move the catalog queue's dead letters back to the queue (``since``: sent from then on)."""
    from changelake_cli.ops.sqs_dlq import DeadLetters

    summary = RedriveSummary("catalog-dlq", dry_run)
    dead = DeadLetters.of(queue, sqs)
    if dead is None:
        return summary
    since_ms = int(since.timestamp() * 1000) if since is not None else None
    held = []
    for letter in dead.receive():
        summary.records += 1
        if dry_run or (since_ms is not None and letter.sent_timestamp_ms < since_ms):
            held.append(letter)
            continue
        dead.move_back(letter)
        summary.messages_moved += 1
    for letter in held:
        dead.release(letter)
    return summary


def kinesis_reader(stream_name: str, kinesis: Any | None = None) -> StreamReader:
    """Read one record back from the stream by shard and sequence number (None: trimmed)."""
    from changelake.adapters import aws

    client = kinesis or aws.kinesis()

    def read(shard_id: str, sequence_number: str) -> bytes | None:
        try:
            iterator = client.get_shard_iterator(
                StreamName=stream_name,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                StartingSequenceNumber=sequence_number,
            )["ShardIterator"]
            records = client.get_records(ShardIterator=iterator, Limit=1).get("Records", [])
        except client.exceptions.ClientError as exc:
            log.warning("record not readable from the stream", extra={"error": str(exc)})
            return None
        if records and records[0]["SequenceNumber"] == sequence_number:
            return bytes(records[0]["Data"])
        return None

    return read


def redrive_from_settings(
    source: str, since: str | datetime | None = None, *, dry_run: bool = False
) -> RedriveSummary:
    """The Python entry point: re-drive ``source`` with today's ``CHANGELAKE_*`` settings."""
    from changelake.adapters import aws
    from changelake.adapters.s3_store import S3ObjectStore
    from changelake_catalog.settings import CatalogSettings

    if source not in SOURCES:
        raise ValueError(f"--source is one of {', '.join(SOURCES)}, got {source!r}")
    settings = CatalogSettings()
    when = lake.parse_since(since) if isinstance(since, str) or since is None else since
    if source == "catalog-dlq":
        return redrive_catalog_dlq(settings.catalog_queue, since=when, dry_run=dry_run)
    store = S3ObjectStore(settings.lake_bucket)
    privacy = aws.privacy_policy(settings)
    if source == "consumer-errors":
        return redrive_consumer_errors(
            store,
            lake.configured_tables(settings),
            since=when,
            dry_run=dry_run,
            privacy=privacy,
            stream=kinesis_reader(settings.stream_name),
        )
    from changelake_transform.settings import TransformSettings

    return redrive_firehose_errors(
        store,
        since=when,
        dry_run=dry_run,
        privacy=privacy,
        max_response_bytes=TransformSettings().transform_max_response_bytes,
        object_prefix=f"{settings.firehose_name}-redrive",
    )
