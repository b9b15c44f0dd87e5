"""The streaming destination's two ends, in process: a table's DynamoDB stream and Kinesis.

The emulator runs moto in its own process (``Emulator`` serves moto's backends from threads of
this process), so its DynamoDB → Kinesis streaming destination does not need HTTP to reach
them. Over HTTP, every change cost a DynamoDB Streams ``GetRecords`` response built by moto's
generic shape serializer, parsed again by botocore, then a ``PutRecords`` request serialized by
botocore and parsed by moto: ``changelake bench load`` profiled that as the emulator's
bottleneck (~125-400 changes/s forwarded, ADR 0041). Here the destination reads moto's stream
records where moto keeps them and puts records through moto's Kinesis backend, so everything
that reads Kinesis (the KCL, the local runner, the Firehose bridge, tests) sees exactly what a
``PutRecords`` call would have stored: the same backend method, the same shard routing
(``kinesis_resharding``'s patched ``put_record``), the same sequence numbers.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from moto.dynamodb import responses as moto_dynamodb_responses
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models import table as moto_table
from moto.kinesis import models as moto_kinesis_models
from moto.kinesis.models import kinesis_backends

from changelake_emulator.bootstrap import ACCOUNT_ID
from changelake_emulator.kinesis_shard_end import get_records_page

_install_lock = threading.Lock()
_installed = False

# Kinesis PutRecords limits: 500 records and 5 MiB (data + partition keys) per call.
PUT_RECORDS_MAX = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024


class KinesisSink(Protocol):
    """Where forwarded records go: Kinesis ``PutRecords`` semantics."""

    def put_records(self, entries: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Put ``(partition key, data)`` entries in order; per entry, whether it was accepted.

        May raise (nothing known to be accepted) or accept only some entries (like a
        ``PutRecords`` response with ``FailedRecordCount``).
        """
        ...


class MotoKinesisSink:
    """``PutRecords`` straight into moto's Kinesis backend of this process."""

    def __init__(self, stream_name: str, region: str, account_id: str = ACCOUNT_ID) -> None:
        self.stream_name = stream_name
        self.region = region
        self.account_id = account_id

    def put_records(self, entries: Sequence[tuple[str, bytes]]) -> list[bool]:
        """One moto ``put_records`` call (its own limits apply: 500 records, 5 MiB)."""
        backend = kinesis_backends[self.account_id][self.region]
        # moto keeps Data as the base64 text the PutRecords JSON carries (and returns it so).
        records = [
            {"PartitionKey": key, "Data": base64.b64encode(data).decode("ascii")}
            for key, data in entries
        ]
        # As over HTTP without a StreamARN: moto looks the stream up by name.
        response = backend.put_records(stream_arn="", stream_name=self.stream_name, records=records)
        return ["ErrorCode" not in result for result in response["Records"]]


class MotoKinesisReads:
    """A boto3 Kinesis client whose ``GetRecords`` reads moto's backend in this process.

    For the Firehose bridge (ADR 0047): over HTTP each of its polls cost botocore parsing every
    record of the page (base64 of ``Data`` decoded, every timestamp through dateutil's local
    zone), 8 % of the emulator's GIL time at 1,560 changes/s. This returns the page the
    emulator's own HTTP answer would carry (``get_records_page``: ``Data`` as moto's base64
    text, ``ApproximateArrivalTimestamp`` in epoch seconds); what the backend call rejects goes
    to the client for the service's exact error. Every other call is the client's.
    """

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self._region = region

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_records(self, *, ShardIterator: str, Limit: int) -> Any:  # noqa: N803 - boto3 names
        """One page of a shard from moto's backend, or the client's answer (its error)."""
        page = get_records_page(self._region, ShardIterator, Limit)
        if page is None:
            return self._client.get_records(ShardIterator=ShardIterator, Limit=Limit)
        return page


class NoStreamError(RuntimeError):
    """The table has no DynamoDB stream to follow."""


class MotoStreamReader:
    """Follows one table's DynamoDB stream in moto's backend of this process, like an iterator.

    moto keeps a table's stream as one shard whose records are a list in write order; the
    reader keeps its position in that list. ``seek_latest`` is ``GetShardIterator(LATEST)``;
    ``read`` returns the next records as moto's ``GetRecords`` would (the same dicts, before
    serialization: images in DynamoDB JSON, ``ApproximateCreationDateTime`` a naive UTC
    datetime, which is made aware here). If the table's stream is replaced (the table deleted
    and created again), the new stream is followed from its first record.
    """

    def __init__(self, table: str, region: str, account_id: str = ACCOUNT_ID) -> None:
        self.table = table
        self.region = region
        self.account_id = account_id
        self._shard: Any = None
        self._next = 0

    def _current_shard(self) -> Any:
        table = dynamodb_backends[self.account_id][self.region].get_table(self.table)
        shard = table.stream_shard
        if shard is None:
            raise NoStreamError(f"table {self.table} has no DynamoDB stream")
        return shard

    def seek_latest(self) -> None:
        """Start after the stream's last record (enabling the destination now)."""
        shard = self._current_shard()
        self._shard, self._next = shard, len(shard.items)

    def read(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records after the last one read, in stream order."""
        shard = self._current_shard()
        if shard is not self._shard:
            self._shard, self._next = shard, 0
        # moto appends fully built records to this list; a slice is atomic under the GIL.
        items = shard.items[self._next : self._next + limit]
        self._next += len(items)
        return [_aware(item.to_json()) for item in items]


def _aware(record: dict[str, Any]) -> dict[str, Any]:
    """moto's record with its creation time as an aware UTC datetime (a shallow copy)."""
    src = record["dynamodb"]
    created = src["ApproximateCreationDateTime"]
    if isinstance(created, datetime) and created.tzinfo is None:
        src = {**src, "ApproximateCreationDateTime": created.replace(tzinfo=UTC)}
    return {**record, "dynamodb": src}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def stream_record_dump(value: Any) -> str:
    """moto's ``dynamo_json_dump`` for a stream record's ``SizeBytes``, with orjson.

    moto sizes every stream record by dumping it with the standard library's encoder and a
    Python ``default`` hook: 9 % of the emulator's GIL time at 600 changes/s (ADR 0041). The
    figure is moto's own "substantial overestimate" that nothing reads (the streaming
    destination computes the Kinesis record's ``SizeBytes`` itself); this keeps a JSON length,
    compact instead of spaced.
    """
    return orjson.dumps(value, default=_json_default).decode()


def utcnow() -> datetime:
    """moto's ``utcnow`` (a naive UTC datetime) without its import statement per call.

    moto's version runs ``from datetime import UTC`` on every call: 2-3 % of the emulator's
    GIL time under load, called for every Kinesis record and every stream record (ADR 0047).
    """
    return datetime.now(UTC).replace(tzinfo=None)


def install() -> None:
    """Patch moto's stream-record sizing, its ``BatchWriteItem`` duplicate check's JSON dump
    and its ``utcnow`` where records are made (idempotent; every moto in this process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        moto_table.dynamo_json_dump = stream_record_dump  # type: ignore[attr-defined,assignment]
        # BatchWriteItem compares the dumps of its requests' keys to reject duplicates: any
        # one deterministic dump gives the same verdict.
        moto_dynamodb_responses.dynamo_json_dump = stream_record_dump  # type: ignore[attr-defined,assignment]
        moto_table.utcnow = utcnow  # type: ignore[attr-defined]
        moto_kinesis_models.utcnow = utcnow  # type: ignore[attr-defined]
        _installed = True
