"""DynamoDB → Kinesis streaming destination (moto lacks ``EnableKinesisStreamingDestination``).

Reads the table's stream and puts on Kinesis in process, through moto's backends
(``moto_direct``; ADR 0041 for the batching, retries and ordering).

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
import collections
import functools
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from changelake import ddb_json
from changelake.events import item_key
from changelake.timeutil import datetime_to_us, now_us
from changelake.wire import TTL_PRINCIPAL

from changelake_emulator.faults import Emission, FaultConfig, FaultInjector, Precision
from changelake_emulator.moto_direct import (
    PUT_RECORDS_MAX,
    PUT_RECORDS_MAX_BYTES,
    KinesisSink,
    MotoKinesisSink,
    MotoStreamReader,
)

log = logging.getLogger(__name__)

READ_LIMIT = 1000  # records per stream read (DynamoDB Streams' GetRecords maximum)
_IDLE_SLEEP_S = 0.05
_QUIET_SLEEP_S = 0.2
_FINAL_POLLS = 50
_FINAL_ATTEMPTS = 5


def _base64(raw: Any) -> str:
    # moto keeps binaries as the base64 text the request carried; boto3 parses them to bytes.
    return raw if isinstance(raw, str) else base64.b64encode(bytes(raw)).decode("ascii")


def wire_value(av: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute value (binaries as bytes or base64) → the JSON wire form."""
    ((tag, raw),) = av.items()
    if tag == "B":
        return {"B": _base64(raw)}
    if tag == "BS":
        return {"BS": [_base64(b) for b in raw]}
    if tag == "M":
        return {"M": {k: wire_value(v) for k, v in raw.items()}}
    if tag == "L":
        return {"L": [wire_value(v) for v in raw]}
    return {tag: raw}


def wire_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A whole image in wire form (a copy)."""
    for av in image.values():
        if len(av) != 1 or next(iter(av)) not in _SCALAR_TAGS:
            return {k: wire_value(v) for k, v in image.items()}
    # Only scalars (no binary, map or list): already the wire form (ADR 0047: 3 % of the GIL).
    return dict(image)


_SCALAR_TAGS = frozenset({"S", "N", "BOOL", "NULL", "SS", "NS"})


def partition_key(keys: Mapping[str, Any]) -> str:
    """Kinesis partition key from the item key: every change of one item goes to one shard."""
    try:
        wire = orjson.dumps(keys)
    except TypeError:  # a value orjson cannot write (e.g. a set): no memo
        return _partition_key(keys)
    return _partition_key_of_json(wire)


# Memoized by the keys' JSON: the same item's changes repeat its keys, and decoding them per
# change was 5 % of the emulator's GIL time under load (ADR 0047). Bounded.
@functools.lru_cache(maxsize=100_000)
def _partition_key_of_json(wire: bytes) -> str:
    return _partition_key(orjson.loads(wire))


def _partition_key(keys: Mapping[str, Any]) -> str:
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One Kinesis record to put and its partition key (computed once per change)."""

    partition_key: str
    record: dict[str, Any]


class StreamingDestination:
    """Background thread: a table's DynamoDB stream → Kinesis, with optional seeded faults.

    Both ends are moto's backends in this process (``moto_direct``, ADR 0041). Records read
    from the stream are queued in stream order (after the fault injector) and put in
    ``PutRecords``-sized batches of distinct partition keys. What a batch fails to put (all of
    it when the call raises, the failed entries of a partial ``PutRecords``) goes back to the
    head of the queue and is put again, with backoff, before anything newer: nothing is dropped
    and the changes of one item keep their order. A call that raised after storing some records
    puts them again: a duplicate, as AWS's at-least-once delivery may also produce.
    """

    name = "streaming-destination"

    def __init__(
        self,
        *,
        table: str,
        stream_name: str,
        region: str,
        precision: Precision = "MILLISECOND",
        faults: FaultConfig | None = None,
        idle_flush_s: float = 0.25,
        follow_api: bool = False,
        sink: KinesisSink | None = None,
    ) -> None:
        self.table, self.stream_name, self.region = table, stream_name, region
        self.precision: Precision = precision
        self.injector: FaultInjector[Outgoing] = FaultInjector(faults)
        self._clock = EventClock()
        self._idle_flush_s = idle_flush_s
        # follow_api: forward only while the table's destination is enabled through
        # EnableKinesisStreamingDestination (ddb_destination_api); else from start() on.
        self._follow_api = follow_api
        self._sink: KinesisSink = sink or MotoKinesisSink(stream_name, region)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: MotoStreamReader | None = None
        self._unsent: collections.deque[tuple[str, bytes]] = collections.deque()
        self._failures = 0
        self._ordinal = 0
        self._lock = threading.Lock()
        self.records_read = 0
        self.records_forwarded = 0
        self.put_attempts_failed = 0
        self.errors = 0

    def start(self) -> None:
        """Start reading at the stream's end now (like enabling the destination), then follow.

        With ``follow_api`` the reading starts when the destination is enabled instead.
        """
        if not self._follow_api:
            self._take_iterator()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _take_iterator(self) -> None:
        # moto keeps a table's stream in one shard; real tables have more (and split them).
        reader = MotoStreamReader(self.table, self.region)
        reader.seek_latest()
        self._reader = reader

    def _follow_destination(self) -> None:
        """Start at ENABLING (then report ACTIVE), stop at DISABLED (ADR 0030)."""
        from changelake_emulator import ddb_destination_api as api

        found = api.destination(self.table)
        if found is None or found.status == api.DISABLED:
            self._reader = None
        elif found.status == api.ENABLING:
            self.precision = "MICROSECOND" if found.precision == "MICROSECOND" else self.precision
            self._take_iterator()
            api.set_status(self.table, api.ACTIVE)

    @property
    def unsent(self) -> int:
        """Records read and not yet accepted by Kinesis."""
        return len(self._unsent)

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
                    self._final_flush()
                    return
            try:
                got = self._poll_once()
            except Exception:  # keep following: a failed put is retried, never dropped
                self.errors += 1
                log.exception("streaming destination poll failed", extra={"table": self.table})
                if stopping:
                    self._final_flush()
                    return
                self._stop.wait(min(2.0, 0.05 * 2 ** min(self._failures, 6)))
                continue
            if got:
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = idle_since if idle_since is not None else now
            if stopping or now - idle_since >= self._idle_flush_s:
                self._queue(self.injector.drain())  # put by the next poll (or the final flush)
            if stopping:
                self._final_flush()
                return
            # Poll briskly right after activity, then back off while the table is quiet.
            quiet_for = now - idle_since
            self._stop.wait(_IDLE_SLEEP_S if quiet_for < 1.0 else _QUIET_SLEEP_S)

    def _poll_once(self) -> int:
        self._flush()  # what failed before goes first: per-item order
        if self._follow_api:
            self._follow_destination()
        if self._reader is None:
            return 0
        records = self._reader.read(READ_LIMIT)
        observed = now_us()
        ready: list[Emission[Outgoing]] = []
        for rec in records:
            ordinal = self._ordinal
            self._ordinal += 1
            decision = self.injector.decide(ordinal, is_remove=rec["eventName"] == "REMOVE")
            key = partition_key(rec["dynamodb"]["Keys"])
            out = kinesis_record(
                rec,
                table=self.table,
                region=self.region,
                event_time_us=self._clock.event_time_us(
                    rec["dynamodb"]["ApproximateCreationDateTime"], observed, key
                ),
                precision=decision.precision or self.precision,
                ttl_delete=decision.ttl,
            )
            ready.extend(
                self.injector.push(ordinal, Outgoing(key, out), duplicate=decision.duplicate)
            )
        self.records_read += len(records)
        self._queue(ready)
        self._flush()
        return len(records)

    def _queue(self, emissions: list[Emission[Outgoing]]) -> None:
        """Queue the emissions in emission order, encoded as the Kinesis record's data."""
        self._unsent.extend((e.item.partition_key, orjson.dumps(e.item.record)) for e in emissions)

    def _flush(self) -> None:
        """Put the queue head first in PutRecords-sized batches; raise when a put fails.

        A batch holds at most one record per partition key (it ends before a key repeats), so
        putting its records in any order, or only some of them, cannot reorder one item's
        changes. What was not accepted goes back to the head of the queue, in order, for the
        next attempt; what was accepted is never put again.
        """
        while self._unsent:
            batch = _next_batch(self._unsent)
            for _ in batch:
                self._unsent.popleft()
            try:
                accepted = self._sink.put_records(batch)
            except Exception:
                self._unsent.extendleft(reversed(batch))
                self._failed_attempt()
                raise
            failed = [entry for entry, ok in zip(batch, accepted, strict=True) if not ok]
            with self._lock:
                self.records_forwarded += len(batch) - len(failed)
            if failed:
                self._unsent.extendleft(reversed(failed))
                self._failed_attempt()
                raise KinesisPutError(
                    f"Kinesis accepted {len(batch) - len(failed)} of {len(batch)} records; "
                    f"{len(failed)} go again first"
                )
            self._failures = 0

    def _failed_attempt(self) -> None:
        self._failures += 1
        with self._lock:
            self.put_attempts_failed += 1

    def _final_flush(self) -> None:
        """At stop: a few more attempts for the queue; what still fails is logged, not hidden."""
        self._queue(self.injector.drain())
        for attempt in range(_FINAL_ATTEMPTS):
            try:
                self._flush()
                return
            except Exception:
                time.sleep(min(1.0, 0.05 * 2**attempt))
        log.error(
            "streaming destination stopped with records not accepted by Kinesis",
            extra={"table": self.table, "unsent": len(self._unsent)},
        )


class KinesisPutError(RuntimeError):
    """Kinesis accepted only part of a batch."""


def _next_batch(queue: collections.deque[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The queue's head up to the first repeated partition key, 500 records or 5 MiB (data +
    partition keys), whichever comes first; at least one record."""
    batch: list[tuple[str, bytes]] = []
    keys: set[str] = set()
    size = 0
    for key, data in queue:
        entry = len(data) + len(key)
        if batch and (
            key in keys or len(batch) == PUT_RECORDS_MAX or size + entry > PUT_RECORDS_MAX_BYTES
        ):
            break
        batch.append((key, data))
        keys.add(key)
        size += entry
    return batch
