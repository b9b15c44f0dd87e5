"""What the fault tests share (tests/faults, ADR 0038): the pipeline under test and its oracle.

:class:`Pipeline` runs the emulator on a free loopback port with the catalog in this process,
optionally a :class:`~changelake_emulator.fault_proxy.FaultProxy` in front of some services
(per-service endpoint variables) and the consumer either in this process or as real processes
(:class:`~changelake_testsupport.runners.RunnerProcesses`, killed with SIGKILL).

:func:`reconcile` is the oracle every test ends with. The Kinesis stream is the truth: it is
read from TRIM_HORIZON on every shard (closed parents included) and every record decoded with
the same strict decoder the services use. Then, per record position (shard, sequence number):

* **lost**: a valid record with no row in ``changes/`` (Parquet read straight from S3, as
  readers see it: a partition a compaction or an erasure rewrote is read at its generation,
  where one row per event id stands for every copy of the event);
* **erased but stored**: a row left of an item the test erased (``changelake erase``);
* **duplicated**: a position with more than one row, or a row at no valid stream position
  (a test where two live runners may both write a shard while its lease moves — the
  at-least-once window ADR 0017 leaves to the views' dedupe — passes ``rows_twice_ok``: rows
  written twice are then counted, reported, and not a failure; a row at no valid position
  always is);
* **quarantine**: every invalid record once under ``errors/consumer/`` with a non-empty reason
  and its original bytes, nothing else there;
* **views**: ``<table>_current`` (local engine over the Glue catalog) holds each item once and
  equals the last image per item computed from the stream, and ``<table>_changes`` has every
  distinct event id;
* **``changelake reconcile``** (ops, ADR 0031; its Python entry point
  :func:`changelake_cli.ops.reconcile.reconcile_from_settings`): no item missing, extra or
  different between the DynamoDB table and ``<table>_current`` (except items a test put on
  the stream directly, which no table holds), no event id missing between the Firehose raw path
  and the curated path, no unregistered partition, no stray object, no dead letter, and its
  quarantine count equal to the bad records on the stream, once per path that runs.

It counts by record position, not only by event id: the stream itself carries duplicates
(at-least-once, injected by the emulator), each of which must be stored exactly once.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

import boto3
import orjson
import pyarrow.parquet as pq
import pytest
from changelake import ddb_json
from changelake.events import ChangeEvent, Position, decode_record
from changelake.lifecycle import StartStop
from changelake.settings import ChangelakeSettings
from changelake_emulator.emulator import Emulator
from changelake_emulator.fault_proxy import FaultProxy, FaultRule
from changelake_emulator.faults import FaultConfig
from changelake_lake import layout

SETTINGS = ChangelakeSettings()
TABLE = SETTINGS.single_table()  # the fault tests run on one table (the default: persons)

# A runner whose state at a crash is exact: it reads at most 10 records a call and flushes a
# shard's buffer at 40 rows only (never by age). With the checkpoint rule kept, its checkpoint
# writes follow 40-row objects only; with it broken, they pass rows still in its buffers.
EXACT_BATCHES = {
    "CHANGELAKE_FLUSH_ROWS": "40",
    "CHANGELAKE_FLUSH_AGE_S": "600",
    "CHANGELAKE_GET_RECORDS_LIMIT": "10",
}


def dropped_checkpoint_write(callback: Callable[[], None], *, after: int = 0) -> FaultRule:
    """A proxy rule dropping the local runner's checkpoint write number ``after + 1`` from now,
    calling ``callback`` (a kill: the process dies with that write lost) as it does."""
    return FaultRule(
        "drop",
        "dynamodb",
        "UpdateItem",
        contains="SET #c = :c",
        after=after,
        times=1,
        callback=callback,
    )


# Fast timings for tests: small flush age, short lease timeout, quick shard sync.
FAST_ENV = {
    "CHANGELAKE_FLUSH_AGE_S": "0.3",
    "CHANGELAKE_SHARD_SYNC_S": "0.5",
    "CHANGELAKE_LEASE_TIMEOUT_S": "1.5",
    "CHANGELAKE_GET_RECORDS_PER_S": "5",
    "CHANGELAKE_METRICS_FLUSH_S": "1",
    "CHANGELAKE_WRITE_BACKOFF_S": "0.05",
    "CHANGELAKE_CATALOG_WAIT_SECONDS": "1",
    "CHANGELAKE_CATALOG_RETRY_DELAY_SECONDS": "1",
    "CHANGELAKE_CATALOG_GLUE_BACKOFF_SECONDS": "0.05",
}


# -- the oracle --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record read back from the stream and what the strict decoder made of it."""

    shard_id: str
    sequence_number: str
    data: bytes
    event: ChangeEvent | None
    reason: str | None


@dataclass(slots=True)
class Reconciliation:
    """The oracle's verdict (see the module docstring); :attr:`clean` is the test's condition."""

    stream_records: int = 0
    valid_records: int = 0
    distinct_events: int = 0
    lake_rows: int = 0
    lake_events: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)
    duplicated: list[tuple[str, str]] = field(default_factory=list)
    rows_twice: int = 0
    not_erased: list[tuple[str, str]] = field(default_factory=list)
    bad_records: int = 0
    quarantined: int = 0
    quarantine_missing: list[tuple[str, str]] = field(default_factory=list)
    quarantine_extra: list[tuple[str, str]] = field(default_factory=list)
    quarantine_without_reason: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    view_items: int | None = None
    view_problems: list[str] = field(default_factory=list)
    reconcile_gaps: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """0 lost, 0 duplicated, every bad record quarantined once with a reason, views right."""
        return not (
            self.lost
            or self.duplicated
            or self.not_erased
            or self.quarantine_missing
            or self.quarantine_extra
            or self.quarantine_without_reason
            or self.view_problems
            or self.reconcile_gaps
        )

    def summary(self) -> str:
        """One line for assertion messages and the reliability table."""
        return (
            f"stream {self.stream_records} records ({self.valid_records} valid, "
            f"{self.distinct_events} events, {self.bad_records} bad); lake {self.lake_rows} rows "
            f"({self.lake_events} events); lost {len(self.lost)}, duplicated "
            f"{len(self.duplicated)} (rows written twice {self.rows_twice}); erased but stored "
            f"{len(self.not_erased)}; quarantined "
            f"{self.quarantined} (missing {len(self.quarantine_missing)}, extra "
            f"{len(self.quarantine_extra)}, no reason {len(self.quarantine_without_reason)}); "
            f"view items {self.view_items}, problems "
            f"{self.view_problems[:3]}; changelake reconcile gaps {self.reconcile_gaps[:3]}; "
            f"first lost {self.lost[:3]}, first duplicated {self.duplicated[:3]}"
        )


def stream_records(stream: str | None = None) -> list[StreamRecord]:
    """Every record on every shard of the stream, from TRIM_HORIZON, decoded strictly."""
    kinesis = boto3.client("kinesis")
    name = stream or SETTINGS.stream_name
    out: list[StreamRecord] = []
    shards = []
    for listing in kinesis.get_paginator("list_shards").paginate(StreamName=name):
        shards.extend(listing["Shards"])
    for shard in shards:
        sid = shard["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for rec in page["Records"]:
                seq = rec["SequenceNumber"]
                arrival = rec["ApproximateArrivalTimestamp"].timestamp()
                pos = Position(sid, seq, round(arrival * 1_000_000))
                decoded = decode_record(rec["Data"], pos)
                if isinstance(decoded, ChangeEvent):
                    out.append(StreamRecord(sid, seq, rec["Data"], decoded, None))
                else:
                    out.append(StreamRecord(sid, seq, rec["Data"], None, decoded.reason))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator", "")
    return out


_BODIES: dict[tuple[str, str, str], bytes] = {}  # (endpoint, key, ETag) → body


def objects(prefix: str) -> Iterator[tuple[str, bytes]]:
    """Every object under ``prefix`` in the lake bucket (bodies cached by key and ETag)."""
    s3 = boto3.client("s3")
    bucket = SETTINGS.lake_bucket
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            cached = (endpoint, obj["Key"], obj["ETag"])
            body = _BODIES.get(cached)
            if body is None:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                if len(_BODIES) > 20_000:
                    _BODIES.clear()
                _BODIES[cached] = body
            yield obj["Key"], body


def rewritten_partitions(table: str = TABLE) -> dict[layout.Partition, str]:
    """Partitions Glue points at a rewrite's generation (compaction, erasure: ADR 0033) instead
    of their base prefix → that generation's key prefix. ``{}`` before the table exists."""
    glue = boto3.client("glue")
    out: dict[layout.Partition, str] = {}
    try:
        for page in glue.get_paginator("get_partitions").paginate(
            DatabaseName=SETTINGS.database, TableName=layout.changes_table_name(table)
        ):
            for part in page["Partitions"]:
                partition = layout.Partition(*part["Values"])
                prefix = urlsplit(part["StorageDescriptor"]["Location"]).path.lstrip("/")
                if prefix != layout.changes_partition_prefix(table, partition):
                    out[partition] = prefix
    except glue.exceptions.EntityNotFoundException:
        pass
    return out


def lake_rows(
    table: str = TABLE, rewritten: dict[layout.Partition, str] | None = None
) -> list[dict[str, Any]]:
    """Every row under ``changes/<table>/`` as readers see it (Parquet read from S3, not
    through the catalog): a partition's base-prefix objects, or, for a partition in
    ``rewritten`` (see :func:`rewritten_partitions`), the objects of its current generation."""
    rows: list[dict[str, Any]] = []
    rewritten = rewritten or {}
    columns = ["event_id", "shard_id", "sequence_number", "item_key"]
    for key, data in objects(layout.changes_prefix(table)):
        base = layout.parse_table_object_key(key)
        if base is not None and base.partition in rewritten:
            continue  # replaced by its generation (a late object is read once copied in)
        if base is None and not (
            key.endswith(".parquet") and any(key.startswith(p) for p in rewritten.values())
        ):
            continue  # another generation, a manifest, a trash record
        rows.extend(pq.read_table(io.BytesIO(data), columns=columns).to_pylist())
    return rows


def quarantine_lines(source: str = "consumer") -> list[dict[str, Any]]:
    """Every line of every object under ``errors/<source>/`` (consumer: JSON lines)."""
    lines: list[dict[str, Any]] = []
    for _key, data in objects(f"errors/{source}/"):
        lines.extend(orjson.loads(line) for line in data.splitlines() if line.strip())
    return lines


def expected_current(records: list[StreamRecord], table: str = TABLE) -> dict[str, str]:
    """``item_key → image JSON`` the current view must show: the last event per item wins.

    Last by event time, then sequence number (the view's order); a REMOVE hides the item.
    """
    last: dict[str, ChangeEvent] = {}
    for rec in records:
        ev = rec.event
        if ev is None or ev.table != table:
            continue
        held = last.get(ev.item_key)
        order = (ev.event_time_us, int(ev.position.sequence_number))
        if held is None or order > (held.event_time_us, int(held.position.sequence_number)):
            last[ev.item_key] = ev
    out: dict[str, str] = {}
    for key, ev in last.items():
        if ev.new_image is not None and ev.event_name != "REMOVE":
            image = ddb_json.image_to_json(ev.new_image)
            if image is not None:
                out[key] = image
    return out


def _view_problems(
    records: list[StreamRecord], table: str, erased_items: frozenset[str] = frozenset()
) -> tuple[int | None, list[str]]:
    from changelake_lake.query.current_check import view_images
    from changelake_lake.query.local_engine import LocalEngine

    engine = LocalEngine(SETTINGS.database, region=SETTINGS.region)
    try:
        view = view_images(engine, table)  # raises AssertionError on an item shown twice
        result = engine.run(
            f"SELECT count(DISTINCT event_id) FROM {layout.changes_table_name(table)}"
        )
    except AssertionError as exc:
        return None, [str(exc)]
    except Exception as exc:  # the catalog has not registered the table or view yet
        return None, [f"views not queryable: {exc}"]
    problems = []
    expected = expected_current(records, table)
    if view != expected:
        missing = sorted(expected.keys() - view.keys())
        extra = sorted(view.keys() - expected.keys())
        different = sorted(k for k in expected.keys() & view.keys() if expected[k] != view[k])
        problems.append(
            f"current view != stream: missing {missing[:3]} extra {extra[:3]} "
            f"different {different[:3]} ({len(missing)}/{len(extra)}/{len(different)})"
        )
    events = {
        r.event.event_id
        for r in records
        if r.event is not None and r.event.table == table and r.event.item_key not in erased_items
    }
    if result.rows[0][0] != len(events):
        problems.append(f"changes table has {result.rows[0][0]} distinct events, not {len(events)}")
    return len(view), problems


def changelake_reconcile(
    table: str,
    bad_records: int,
    *,
    stream_only_items: frozenset[str] = frozenset(),
    firehose: bool = True,
) -> list[str]:
    """``changelake reconcile`` (its Python entry point): what it reports beyond expectations.

    Expected: nothing missing or different; extra view items only among ``stream_only_items``;
    quarantined records = ``bad_records`` per path (consumer, and Firehose when it runs).
    """
    from changelake_cli.ops import lake
    from changelake_cli.ops.reconcile import reconcile_from_settings

    report = reconcile_from_settings(table)
    (mine,) = report.tables
    gaps = []
    items = mine.items
    unexpected_extra = set(items.extra.examples) - stream_only_items
    if items.missing.count or items.different.count or unexpected_extra:
        gaps.append(f"items: {items.to_dict()}")
    if len(stream_only_items) < items.extra.count and not unexpected_extra:
        gaps.append(f"items: {items.extra.count} extra, expected {len(stream_only_items)}")
    if mine.events.gaps():
        gaps.append(f"events: {mine.events.to_dict()}")
    if mine.catalog.gaps():
        gaps.append(f"catalog: {mine.catalog.to_dict()}")
    if report.catalog_dlq_messages:
        gaps.append(f"{report.catalog_dlq_messages} catalog dead letters")
    by_source = Counter(mine.quarantine.by_source) + Counter(
        report.unattributed_quarantine.by_source
    )
    expected = {lake.CONSUMER_ERRORS: bad_records}
    if firehose:
        expected[lake.FIREHOSE_ERRORS] = bad_records
    if {k: v for k, v in by_source.items() if v} != {k: v for k, v in expected.items() if v}:
        gaps.append(f"quarantine by source {dict(by_source)}, expected {expected}")
    if "" in mine.quarantine.by_reason or "" in report.unattributed_quarantine.by_reason:
        gaps.append("a quarantined record without a reason")
    return gaps


def reconcile(
    table: str = TABLE,
    *,
    views: bool = True,
    stream_only_items: frozenset[str] = frozenset(),
    firehose: bool = True,
    rows_twice_ok: bool = False,
    erased_items: frozenset[str] = frozenset(),
) -> Reconciliation:
    """Compare the stream with the lake, the quarantine and (``views``) the catalog's views,
    then (``views``) run ``changelake reconcile``: the one oracle of the fault tests.

    The lake is read as readers see it (:func:`lake_rows`): in a partition a rewrite replaced
    (compaction keeps one row per event id), a record is stored when its event id is.
    ``erased_items`` (item keys) were erased (``changelake erase``): their records must have
    no row left.
    """
    records = stream_records()
    rewritten = rewritten_partitions(table)
    rows = lake_rows(table, rewritten)
    result = Reconciliation(stream_records=len(records), lake_rows=len(rows))
    events = {(r.shard_id, r.sequence_number): r.event for r in records if r.event is not None}
    valid = set(events)
    bad = {(r.shard_id, r.sequence_number): r for r in records if r.event is None}
    result.valid_records = len(valid)
    result.distinct_events = len({r.event.event_id for r in records if r.event is not None})
    result.bad_records = len(bad)
    stored = Counter((str(r["shard_id"]), str(r["sequence_number"])) for r in rows)
    stored_events = {r["event_id"] for r in rows}
    result.lake_events = len(stored_events)
    erased = {p for p, e in events.items() if e.item_key in erased_items}
    result.not_erased = sorted(erased & stored.keys())
    result.lost = sorted(
        p
        for p in valid - stored.keys() - erased
        if not (  # another copy of the event kept by a rewrite
            layout.partition_for_us(events[p].event_time_us) in rewritten
            and events[p].event_id in stored_events
        )
    )
    result.rows_twice = sum(n - 1 for p, n in stored.items() if n > 1 and p in valid)
    result.duplicated = sorted(
        p for p, n in stored.items() if p not in valid or (n > 1 and not rows_twice_ok)
    )
    quarantined: Counter[tuple[str, str]] = Counter()
    for line in quarantine_lines():
        pos = (str(line.get("shard_id")), str(line.get("sequence_number")))
        quarantined[pos] += 1
        reason = str(line.get("reason") or "")
        original = bad.get(pos)
        if not reason or (
            original is not None and base64.b64decode(line["data_base64"]) != original.data
        ):
            result.quarantine_without_reason.append(pos)
        result.reasons[pos] = reason
    result.quarantined = sum(quarantined.values())
    result.quarantine_missing = sorted(bad.keys() - quarantined.keys())
    result.quarantine_extra = sorted(p for p, n in quarantined.items() if n > 1 or p not in bad)
    if views:
        result.view_items, result.view_problems = _view_problems(records, table, erased_items)
        if not result.view_problems:
            result.reconcile_gaps = changelake_reconcile(
                table,
                len(bad),
                stream_only_items=stream_only_items,
                firehose=firehose,
            )
    return result


def wait_reconciled(
    timeout: float = 90,
    *,
    views: bool = True,
    settle_s: float = 1.0,
    table: str = TABLE,
    stream_only_items: frozenset[str] = frozenset(),
    firehose: bool = True,
    rows_twice_ok: bool = False,
    erased_items: frozenset[str] = frozenset(),
) -> tuple[Reconciliation, float]:
    """Poll :func:`reconcile` until clean; then wait ``settle_s`` (a late duplicate would show)
    and reconcile once more. Returns the final verdict and the seconds it took to get clean.

    Raises AssertionError with the last verdict when it does not get clean within ``timeout``.
    """
    started = time.monotonic()
    while True:
        verdict = reconcile(  # cheap first
            table, views=False, rows_twice_ok=rows_twice_ok, erased_items=erased_items
        )
        if verdict.clean and views:
            verdict = reconcile(
                table,
                views=True,
                stream_only_items=stream_only_items,
                firehose=firehose,
                rows_twice_ok=rows_twice_ok,
                erased_items=erased_items,
            )
        if verdict.clean:
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not reconciled after {timeout:.0f} s: {verdict.summary()}")
        time.sleep(0.5)
    took = time.monotonic() - started
    time.sleep(settle_s)
    final = reconcile(
        table,
        views=views,
        stream_only_items=stream_only_items,
        firehose=firehose,
        rows_twice_ok=rows_twice_ok,
        erased_items=erased_items,
    )
    assert final.clean, final.summary()
    return final, took


# -- the pipeline ------------------------------------------------------------------------


class Pipeline(StartStop):
    """The emulator + catalog (+ in-process local runner) with an optional fault proxy.

    ``proxied`` names the services whose clients go through the proxy (``s3``, ``glue``,
    ``sqs``, ``dynamodb``): their ``AWS_ENDPOINT_URL_<SERVICE>`` is set before the services are
    built. The emulator's own integrations always talk to it directly.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *,
        shards: int = 2,
        faults: FaultConfig | None = None,
        proxied: tuple[str, ...] = (),
        consumer: bool = True,
        catalog: bool = True,
        seed: int = 0,
    ) -> None:
        self._mp = monkeypatch
        self.emulator = Emulator(0, settings=SETTINGS, faults=faults, shards=shards)
        self._proxied = proxied
        self._seed = seed
        self._want_consumer = consumer
        self._want_catalog = catalog
        self.proxy: FaultProxy | None = None
        self.consumer: Any = None
        self.catalog: Any = None

    @property
    def endpoint(self) -> str:
        """The emulator's endpoint."""
        return self.emulator.endpoint

    def fault_proxy(self) -> FaultProxy:
        """The running fault proxy (the pipeline was built with ``proxied`` services)."""
        assert self.proxy is not None, "no fault proxy: pass proxied=(...) services"
        return self.proxy

    def start(self) -> Self:
        """Emulator, proxy, environment, then catalog and consumer (undone on failure)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Self:
        for name, value in FAST_ENV.items():
            self._mp.setenv(name, os.environ.get(name, value))
        self.emulator.start()
        self._mp.setenv("AWS_ENDPOINT_URL", self.emulator.endpoint)
        if self._proxied:
            self.proxy = FaultProxy(self.emulator.endpoint, seed=self._seed).start()
            for service in self._proxied:
                self._mp.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", self.proxy.url)
        if self._want_catalog:
            from changelake_catalog.bootstrap import local_service

            self.catalog = local_service()
            self.catalog.start()
        if self._want_consumer:
            self.start_consumer()
        return self

    def start_consumer(self) -> Any:
        """A fresh in-process local runner (a new worker id: what a restarted task is)."""
        from changelake_consumer.bootstrap import build_local

        self.consumer = build_local()
        self.consumer.start()
        return self.consumer

    def stop(self) -> None:
        """Stop everything started, in reverse order."""
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        if self.catalog is not None:
            self.catalog.stop()
            self.catalog = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        self.emulator.stop()

    def put_raw(self, records: list[bytes], key_prefix: str = "raw") -> None:
        """Put records straight on the stream (what only a broken or hostile writer sends)."""
        kinesis = boto3.client("kinesis")
        for i, data in enumerate(records):
            kinesis.put_record(
                StreamName=SETTINGS.stream_name, Data=data, PartitionKey=f"{key_prefix}-{i}"
            )


class ProduceLoop(StartStop):
    """A produce run that lasts until stopped: chunks of ``chunk`` changes at ``rate``/s."""

    def __init__(self, chunk: int = 20, rate: float = 20) -> None:
        self.chunk, self.rate = chunk, rate
        self.produced = 0
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name="produce-loop", daemon=True)

    def _run(self) -> None:
        from changelake_producer.bootstrap import produce

        seed = 0
        while self._running.is_set():
            seed += 1
            summary = produce(count=self.chunk, rate=self.rate, seed=seed, settings=SETTINGS)
            self.produced += summary.total

    def start(self) -> Self:
        """Start writing in a background thread."""
        self._running.set()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the chunk in flight and stop (idempotent)."""
        self._running.clear()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


def lake_high(table: str = TABLE) -> dict[str, int]:
    """Shard → the highest sequence number in the lake, from the object keys alone.

    A LIST, no object read (``<shard>-<first>-<last>.parquet``, ADR 0006): cheap enough to
    poll while a long run's lake grows to thousands of objects.
    """
    s3 = boto3.client("s3")
    high: dict[str, int] = {}
    prefix = layout.changes_prefix(table)
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=SETTINGS.lake_bucket, Prefix=prefix
    ):
        for obj in page.get("Contents", []):
            parsed = layout.parse_change_object_key(obj["Key"])
            if parsed is None:
                continue
            shard, _first, last = parsed.name.removesuffix(".parquet").rsplit("-", 2)
            high[shard] = max(high.get(shard, 0), int(last))
    return high


def throttled(contains: str, probability: float = 0.3) -> FaultRule:
    """A rule throttling DynamoDB calls that name ``contains`` (a table), as AWS answers it."""
    return FaultRule(
        "error",
        "dynamodb",
        probability=probability,
        status=400,
        code="ProvisionedThroughputExceededException",
        contains=contains,
    )


def lease_owners() -> dict[str, str]:
    """Shard → owner in the local runner's lease table (``{}`` before it exists)."""
    from changelake_consumer.settings import ConsumerSettings

    table = ConsumerSettings().checkpoint_table
    ddb = boto3.client("dynamodb")
    try:
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return {}
    return {
        i["lease_key"]["S"]: i["owner"]["S"]
        for i in items
        if "owner" in i and "#worker/" not in i["lease_key"]["S"]
    }


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held (exceptions count as not yet); fails naming ``what``."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # a table or object that does not exist yet
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
