"""DynamoDB → Kinesis streaming destination (moto lacks ``EnableKinesisStreamingDestination``).

Follows the table's DynamoDB stream and puts each change on the Kinesis stream in the exact
Kinesis-for-DynamoDB shape (docs/aws-behaviour.md): no ``SequenceNumber``, ``StreamViewType`` or
``eventVersion``; INSERT carries only ``NewImage``, REMOVE only ``OldImage``; ``tableName``,
``recordFormat`` and ``userIdentity`` are added; ``ApproximateCreationDateTime`` is epoch ms,
or µs with ``ApproximateCreationDateTimePrecision: MICROSECOND``.

Event time (docs/adr/0003-local-emulator-fidelity.md): the stream record's own creation time
is kept, read at millisecond resolution. If it looks coarser (a whole second), the sub-second
part is taken from the moment the record was read, clamped into that same second. In µs mode,
records sharing a millisecond get consecutive microseconds in stream order, so µs values are
distinct and ordered like the writes were.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from changelake import ddb_json
from changelake.events import item_key
from changelake.timeutil import datetime_to_us, now_us
from changelake.wire import TTL_PRINCIPAL

from changelake_emulator.faults import Emission, FaultConfig, FaultInjector, Precision

log = logging.getLogger(__name__)

PUT_RECORDS_MAX = 500
_IDLE_SLEEP_S = 0.05
_QUIET_SLEEP_S = 0.2
_FINAL_POLLS = 50


def wire_value(av: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute value as boto3 parsed it → the JSON wire form (binary as base64)."""
    ((tag, raw),) = av.items()
    if tag == "B":
        return {"B": base64.b64encode(bytes(raw)).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in raw]}
    if tag == "M":
        return {"M": {k: wire_value(v) for k, v in raw.items()}}
    if tag == "L":
        return {"L": [wire_value(v) for v in raw]}
    return {tag: raw}


def wire_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A whole image in wire form."""
    return {k: wire_value(v) for k, v in image.items()}


def partition_key(keys: Mapping[str, Any]) -> str:
    """Kinesis partition key from the item key: every change of one item goes to one shard."""
    canonical = item_key(ddb_json.deserialize_image(keys))
    return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest().upper()


def event_id(stream_event_id: str) -> str:
    """Kinesis-for-DynamoDB event IDs are UUID-shaped; moto's stream IDs are bare hex."""
    try:
        return str(uuid.UUID(hex=stream_event_id))
    except ValueError:
        return stream_event_id


def size_bytes(dynamodb: Mapping[str, Any]) -> int:
    """Record size: compact JSON bytes of Keys and the images (moto's own figure overstates)."""
    return sum(
        len(orjson.dumps(dynamodb[k])) for k in ("Keys", "NewImage", "OldImage") if k in dynamodb
    )


def kinesis_record(
    stream_record: Mapping[str, Any],
    *,
    table: str,
    region: str,
    event_time_us: int,
    precision: Precision,
    ttl_delete: bool = False,
) -> dict[str, Any]:
    """A DynamoDB *Streams* record (as boto3 returns it) → the Kinesis-for-DynamoDB record."""
    src = stream_record["dynamodb"]
    name = stream_record["eventName"]
    payload: dict[str, Any] = {
        "ApproximateCreationDateTime": (
            event_time_us if precision == "MICROSECOND" else event_time_us // 1000
        ),
    }
    if precision == "MICROSECOND":
        payload["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
    payload["Keys"] = wire_image(src["Keys"])
    # Kinesis-for-DynamoDB shape: INSERT has no OldImage, REMOVE no NewImage.
    if name != "REMOVE" and "NewImage" in src:
        payload["NewImage"] = wire_image(src["NewImage"])
    if name != "INSERT" and "OldImage" in src:
        payload["OldImage"] = wire_image(src["OldImage"])
    payload["SizeBytes"] = size_bytes(payload)
    return {
        "awsRegion": region,
        "eventID": event_id(str(stream_record["eventID"])),
        "eventName": name,
        "userIdentity": (
            {"type": "Service", "principalId": TTL_PRINCIPAL}
            if ttl_delete and name == "REMOVE"
            else None
        ),
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": payload,
        "eventSource": "aws:dynamodb",
    }


def _forget_moto_iterator(iterator: str, region: str) -> None:
    """Drop a used DynamoDB Streams iterator from moto's in-process backend.

    moto keeps every iterator it ever handed out (~1 KB each); polling a few times a second
    would grow a long-running ``local up`` by tens of MB an hour. Only our own, already
    replaced iterator is removed; any failure just leaves it in place.
    """
    try:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        from changelake_emulator.bootstrap import ACCOUNT_ID

        dynamodbstreams_backends[ACCOUNT_ID][region].shard_iterators.pop(iterator, None)
    except Exception:
        pass


class EventClock:
    """Turns stream creation times into event times of at least ms resolution (see module doc).

    Successive changes of one item never share a millisecond: DynamoDB serializes writes to an
    item and each takes milliseconds, so the real ``ApproximateCreationDateTime`` of two
    changes of the same item differs even at ms precision. Without this, the emulator's coarse
    clock would give whole polls one ms and make per-item order unrecoverable once the fault
    injector reorders records (AWS orders by ``ApproximateCreationDateTime`` alone).
    """

    _MAX_ITEMS = 200_000

    def __init__(self) -> None:
        self._last_ms = -1
        self._used_in_ms = 0
        self._last_ms_by_item: dict[str, int] = {}

    def event_time_us(self, created: datetime, observed_us: int, item: str | None = None) -> int:
        """Event time in µs: the stream's ms, refined when coarse, µs-distinct within one ms."""
        # botocore parses the wire's float seconds: round back to the ms it carried.
        ms = (datetime_to_us(created) + 500) // 1000
        if ms % 1000 == 0:
            second_ms = ms
            ms = min(max(observed_us // 1000, second_ms), second_ms + 999)
        if item is not None:
            last = self._last_ms_by_item.get(item)
            if last is not None and ms <= last:
                ms = last + 1
            if len(self._last_ms_by_item) >= self._MAX_ITEMS:
                # Bounded memory: only near-simultaneous writes of one item matter.
                self._last_ms_by_item.clear()
            self._last_ms_by_item[item] = ms
        if ms == self._last_ms:
            self._used_in_ms = min(self._used_in_ms + 1, 999)
        else:
            self._last_ms, self._used_in_ms = ms, 0
        return ms * 1000 + self._used_in_ms


class StreamingDestination:
    """Background thread: DynamoDB stream → Kinesis, with optional seeded faults."""

    name = "streaming-destination"

    def __init__(
        self,
        *,
        ddb: Any,
        streams: Any,
        kinesis: Any,
        table: str,
        stream_name: str,
        region: str,
        precision: Precision = "MILLISECOND",
        faults: FaultConfig | None = None,
        idle_flush_s: float = 0.25,
        follow_api: bool = False,
    ) -> None:
        self._ddb, self._streams, self._kinesis = ddb, streams, kinesis
        self.table, self.stream_name, self.region = table, stream_name, region
        self.precision: Precision = precision
        self.injector: FaultInjector[dict[str, Any]] = FaultInjector(faults)
        self._clock = EventClock()
        self._idle_flush_s = idle_flush_s
        # follow_api: forward only while the table's destination is enabled through
        # EnableKinesisStreamingDestination (ddb_destination_api); else from start() on.
        self._follow_api = follow_api
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._iterator: str | None = None
        self._ordinal = 0
        self._lock = threading.Lock()
        self.records_read = 0
        self.records_forwarded = 0
        self.errors = 0

    def start(self) -> None:
        """Take a LATEST iterator now (like enabling the destination), then follow it.

        With ``follow_api`` the iterator is taken when the destination is enabled instead.
        """
        if not self._follow_api:
            self._take_iterator()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _take_iterator(self) -> None:
        stream_arn = self._ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        # moto keeps a table's stream in one shard; real tables have more (and split them).
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shards[-1]["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]

    def _follow_destination(self) -> None:
        """Start at ENABLING (then report ACTIVE), stop at DISABLED (ADR 0030)."""
        from changelake_emulator import ddb_destination_api as api

        found = api.destination(self.table)
        if found is None or found.status == api.DISABLED:
            self._iterator = None
        elif found.status == api.ENABLING:
            self.precision = "MICROSECOND" if found.precision == "MICROSECOND" else self.precision
            self._take_iterator()
            api.set_status(self.table, api.ACTIVE)

    def stop(self) -> None:
        """Forward what is pending, then stop the thread; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        idle_since: float | None = None
        final_polls = 0
        while True:
            stopping = self._stop.is_set()
            if stopping:
                final_polls += 1
                if final_polls > _FINAL_POLLS:  # a writer still running must not hold stop()
                    self._emit(self.injector.drain())
                    return
            try:
                got = self._poll_once()
            except Exception:  # keep following: a transient HTTP error must not end the feed
                self.errors += 1
                log.exception("streaming destination poll failed")
                got = 0
                if stopping:
                    return
                self._stop.wait(1.0)
                continue
            if got:
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = idle_since if idle_since is not None else now
            if stopping or now - idle_since >= self._idle_flush_s:
                self._emit(self.injector.drain())
            if stopping:
                return
            # Poll briskly right after activity, then back off while the table is quiet.
            quiet_for = now - idle_since
            self._stop.wait(_IDLE_SLEEP_S if quiet_for < 1.0 else _QUIET_SLEEP_S)

    def _poll_once(self) -> int:
        if self._follow_api:
            self._follow_destination()
        if self._iterator is None:
            return 0
        previous = self._iterator
        resp = self._streams.get_records(ShardIterator=previous, Limit=1000)
        self._iterator = resp.get("NextShardIterator")
        if self._iterator != previous:
            _forget_moto_iterator(previous, self.region)
        records = resp.get("Records", [])
        observed = now_us()
        ready: list[Emission[dict[str, Any]]] = []
        for rec in records:
            ordinal = self._ordinal
            self._ordinal += 1
            decision = self.injector.decide(ordinal, is_remove=rec["eventName"] == "REMOVE")
            out = kinesis_record(
                rec,
                table=self.table,
                region=self.region,
                event_time_us=self._clock.event_time_us(
                    rec["dynamodb"]["ApproximateCreationDateTime"],
                    observed,
                    partition_key(rec["dynamodb"]["Keys"]),
                ),
                precision=decision.precision or self.precision,
                ttl_delete=decision.ttl,
            )
            ready.extend(self.injector.push(ordinal, out, duplicate=decision.duplicate))
        self.records_read += len(records)
        self._emit(ready)
        return len(records)

    def _emit(self, emissions: list[Emission[dict[str, Any]]]) -> None:
        for start in range(0, len(emissions), PUT_RECORDS_MAX):
            chunk = emissions[start : start + PUT_RECORDS_MAX]
            entries = [
                {
                    "Data": orjson.dumps(e.item),
                    "PartitionKey": partition_key(e.item["dynamodb"]["Keys"]),
                }
                for e in chunk
            ]
            self._put(entries)
            with self._lock:
                self.records_forwarded += len(chunk)

    def _put(self, entries: list[dict[str, Any]]) -> None:
        pending = entries
        for attempt in range(10):
            resp = self._kinesis.put_records(StreamName=self.stream_name, Records=pending)
            if not resp.get("FailedRecordCount"):
                return
            pending = [
                entry
                for entry, result in zip(pending, resp["Records"], strict=True)
                if "ErrorCode" in result
            ]
            self._stop.wait(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError(f"{len(pending)} records not accepted by Kinesis after 10 attempts")
