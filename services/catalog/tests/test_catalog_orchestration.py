"""The service's orchestration over the in-memory catalog: coalescing, failure isolation, acks."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.parquet as pq
import pytest
from changelake_catalog.ports import QueueMessage
from changelake_catalog.service import CatalogService
from changelake_lake.catalog import InMemoryCatalog, PartitionResult, TableState, UnavailableError
from changelake_lake.columns import Column
from changelake_lake.layout import Partition, changes_table_name
from changelake_lake.rewrite import generation_prefix, s3_url
from changelake_testsupport.fakes import InMemoryObjectStore, RecordingMetrics

pytestmark = pytest.mark.unit


class FakeQueue:
    """Hands out queued messages once; records deletes and retries."""

    def __init__(self, messages: Sequence[QueueMessage]) -> None:
        self.pending = list(messages)
        self.deleted: list[str] = []
        self.retried: list[tuple[str, int]] = []

    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]:
        """Pop up to ``max_messages``."""
        out, self.pending = self.pending[:max_messages], self.pending[max_messages:]
        return out

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Record deletes."""
        self.deleted += [m.message_id for m in messages]

    def retry_later(self, messages: Sequence[QueueMessage], delay_seconds: int) -> None:
        """Record retries."""
        self.retried += [(m.message_id, delay_seconds) for m in messages]


class RecordingCatalog(InMemoryCatalog):
    """The in-memory catalog, recording the calls these tests look at; ``fail_tables`` raise
    :class:`UnavailableError` (Glue throttling past the budget)."""

    def __init__(self, fail_tables: Sequence[str] = ()) -> None:
        super().__init__("lake")
        self.ensure_database()
        self.calls: list[tuple[str, str]] = []
        self.partition_batches: list[list[Partition]] = []
        self.fail_tables = set(fail_tables)

    def merge_changes_table(self, table: str, incoming: Sequence[Column]) -> TableState:
        """Record, fail if asked, then merge."""
        self.calls.append(("merge", table))
        if table in self.fail_tables:
            raise UnavailableError("injected", "InternalServiceException")
        return super().merge_changes_table(table, incoming)

    def ensure_raw_table(self, table: str) -> bool:
        """Record, then create."""
        self.calls.append(("raw", table))
        return super().ensure_raw_table(table)

    def ensure_current_view(self, table: str) -> bool:
        """Record, then write."""
        self.calls.append(("view", table))
        return super().ensure_current_view(table)

    def add_partitions(
        self, table: str, partitions: Sequence[Partition], *more: Any, **kw: Any
    ) -> PartitionResult:
        """Record one batch, then register (a missing table raises NotFoundError)."""
        result = super().add_partitions(table, partitions, *more, **kw)
        self.partition_batches.append(list(partitions))
        return result

    def registered(self) -> dict[str, set[Partition]]:
        """Registered partitions by table (tables with none left out)."""
        found = {t: set(self.locations(t)) for t in ("persons", "orders")}
        return {t: p for t, p in found.items() if p}

    def vanish(self, table: str) -> None:
        """The table is deleted behind the service's back (with its partitions)."""
        del self._tables[changes_table_name(table)]
        del self._partitions[changes_table_name(table)]


def _message(mid: str, *keys: str) -> QueueMessage:
    records = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "lake"}, "object": {"key": k}},
        }
        for k in keys
    ]
    return QueueMessage(mid, f"rh-{mid}", json.dumps({"Records": records}))


def _service(
    queue: FakeQueue, store: InMemoryObjectStore, catalog: RecordingCatalog
) -> CatalogService:
    return CatalogService(queue, store, catalog, RecordingMetrics(), workers=4)


def _k(table: str, hour: str, name: str) -> str:
    return f"changes/{table}/dt=2024-05-01/hour={hour}/{name}.parquet"


def test_handle_coalesces_objects_of_one_partition_into_one_registration(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    store = InMemoryObjectStore()
    data = make_parquet([make_row("a")])
    keys = [_k("persons", "10", f"s-{i}") for i in range(5)] + [_k("persons", "11", "s-9")]
    for key in keys:
        store.objects[key] = data
    queue = FakeQueue([_message(str(i), k) for i, k in enumerate(keys)])
    registry = RecordingCatalog()

    outcome = _service(queue, store, registry).poll_once()

    assert registry.partition_batches == [
        [Partition("2024-05-01", "10"), Partition("2024-05-01", "11")]
    ]
    assert registry.calls[0] == ("merge", "persons")  # then the siblings, side by side:
    assert sorted(registry.calls[1:]) == [("raw", "persons"), ("view", "persons")]
    assert sorted(queue.deleted) == [str(i) for i in range(6)]
    assert (outcome.deleted, outcome.failed, outcome.partitions_added) == (6, 0, 2)


def test_handle_skips_glue_when_columns_and_partitions_are_known(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    store = InMemoryObjectStore()
    store.objects[_k("persons", "10", "a")] = make_parquet([make_row("a")])
    store.objects[_k("persons", "10", "b")] = make_parquet([make_row("b")])
    queue = FakeQueue([_message("1", _k("persons", "10", "a"))])
    registry = RecordingCatalog()
    service = _service(queue, store, registry)
    service.poll_once()
    calls = list(registry.calls)

    queue.pending.append(_message("2", _k("persons", "10", "b")))
    service.poll_once()

    assert registry.calls == calls
    assert len(registry.partition_batches) == 1
    assert queue.deleted == ["1", "2"]


def test_handle_fails_only_messages_of_a_bad_object_or_failing_table(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    store = InMemoryObjectStore()
    good = make_parquet([make_row("a")])
    store.objects[_k("persons", "10", "ok")] = good
    store.objects[_k("persons", "10", "bad")] = b"not parquet"
    store.objects[_k("orders", "10", "ok")] = good
    queue = FakeQueue(
        [
            _message("ok", _k("persons", "10", "ok")),
            _message("bad", _k("persons", "10", "bad")),
            _message("orders", _k("orders", "10", "ok")),
            QueueMessage("garbage", "rh-garbage", "{not json"),
            _message("gone", _k("persons", "10", "deleted-meanwhile")),
            QueueMessage("test", "rh", json.dumps({"Event": "s3:TestEvent"})),
        ]
    )
    registry = RecordingCatalog(fail_tables=["orders"])

    outcome = CatalogService(
        queue, store, registry, RecordingMetrics(), retry_delay_seconds=7
    ).poll_once()

    # the non-Parquet object is quarantined (not retried into the DLQ): its message is done
    assert sorted(queue.deleted) == ["bad", "gone", "ok", "test"]
    assert sorted(queue.retried) == [("garbage", 7), ("orders", 7)]
    assert (outcome.deleted, outcome.failed) == (4, 2)
    assert registry.registered() == {"persons": {Partition("2024-05-01", "10")}}
    assert _k("persons", "10", "bad") not in store.objects


def test_handle_quarantines_stray_objects_and_keeps_the_table_queryable(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # issue 18, finding 6: one 0-byte or non-Parquet object under a partition broke every query
    store = InMemoryObjectStore()
    good = _k("persons", "10", "ok")
    store.objects[good] = make_parquet([make_row("a"), make_row("b")])
    empty = _k("persons", "10", "empty")
    store.objects[empty] = b""
    stray = "changes/persons/dt=2024-05-01/hour=10/notes.txt"
    store.objects[stray] = b"hello"
    hidden = "changes/persons/dt=2024-05-01/hour=10/_SUCCESS"
    store.objects[hidden] = b""
    queue = FakeQueue([_message(k, k) for k in (good, empty, stray, hidden)])
    metrics = RecordingMetrics()

    outcome = CatalogService(queue, store, RecordingCatalog(), metrics).poll_once()

    assert (outcome.deleted, outcome.failed) == (4, 0)
    # THEN only readable Parquet is left where a query engine reads the table
    left = [k for k in store.list("changes/persons/") if not k.rsplit("/", 1)[1].startswith("_")]
    assert left == [good]
    assert sum(pq.read_table(io.BytesIO(store.objects[k])).num_rows for k in left) == 2
    # AND each moved object is kept with a record of what was moved and why
    for key, data, reason in (
        (empty, b"", "too small for Parquet"),
        (stray, b"hello", "not a change object name"),
    ):
        assert store.objects[f"quarantine/{key}"] == data
        record = json.loads(store.objects[f"quarantine/{key}.reason.json"])
        assert record["original_key"] == key
        assert record["size"] == len(data)
        assert reason in record["reason"]
    assert store.objects[hidden] == b""  # names engines skip (_SUCCESS, .x) are left alone
    assert metrics.counters["objects_quarantined"] == 2


def test_handle_rereads_glue_on_retry_when_a_table_update_failed(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    store = InMemoryObjectStore()
    store.objects[_k("persons", "10", "a")] = make_parquet([make_row("a")])
    store.objects[_k("persons", "11", "b")] = make_parquet([make_row("b")])
    queue = FakeQueue([_message("1", _k("persons", "10", "a"))])
    registry = RecordingCatalog()
    service = _service(queue, store, registry)
    service.poll_once()
    registry.vanish("persons")  # the table vanished behind the worker's back
    queue.pending.append(_message("2", _k("persons", "11", "b")))
    failed = service.poll_once()  # the cache says the columns are known, Glue says otherwise

    queue.pending.append(_message("2", _k("persons", "11", "b")))
    service.poll_once()

    assert failed.failed == 1
    assert queue.deleted == ["1", "2"]
    assert registry.table_columns("persons") is not None
    # hour 10 went with the table; the process cache still counts it registered (repair's job)
    assert registry.registered()["persons"] == {Partition("2024-05-01", "11")}


def test_poll_once_drains_a_burst_into_one_registration_when_more_than_ten_messages_wait(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # GIVEN 25 objects over 25 partitions, one message each (SQS hands out at most 10 a call)
    store = InMemoryObjectStore()
    data = make_parquet([make_row("a")])
    keys = [_k("persons", f"{h:02d}", f"s-{h}") for h in range(24)]
    keys.append(_k("persons", "00", "s-extra"))
    for key in keys:
        store.objects[key] = data
    queue = FakeQueue([_message(str(i), k) for i, k in enumerate(keys)])
    registry = RecordingCatalog()
    service = CatalogService(queue, store, registry, RecordingMetrics(), workers=4, max_batch=20)
    # WHEN one poll runs
    outcome = service.poll_once()
    # THEN it drained up to max_batch (20) and registered them in one call; the rest waits
    assert outcome.deleted == 20
    assert len(registry.partition_batches) == 1
    assert len(registry.partition_batches[0]) == 20
    assert len(queue.pending) == 5
    assert service.poll_once().deleted == 5


class GlueCallCountingCatalog(InMemoryCatalog):
    """The in-memory catalog counting its storage primitives under the Glue operation each one
    is in :class:`~changelake_lake.adapters.glue_catalog.GlueCatalog` (one call each, for up to
    100 partitions): the port's rules are shared code, so these are the service's Glue calls."""

    def __init__(self) -> None:
        super().__init__("lake")
        self.ensure_database()
        self.glue: Counter[str] = Counter()
        self.looked_up: list[list[str]] = []  # BatchGetPartition's partitions, by call

    def take(self) -> dict[str, int]:
        """The calls counted since the last take."""
        counted, self.glue = dict(self.glue), Counter()
        return counted

    def _get_table(self, name: str, database: str | None = None) -> dict[str, Any] | None:
        self.glue["GetTable"] += 1
        return super()._get_table(name, database)

    def _create_table(self, table_input: dict[str, Any]) -> bool:
        self.glue["CreateTable"] += 1
        return super()._create_table(table_input)

    def _update_table(self, table_input: dict[str, Any], version: str | None) -> bool:
        self.glue["UpdateTable"] += 1
        return super()._update_table(table_input, version)

    def _create_partitions(self, name: str, inputs: Sequence[dict[str, Any]]) -> PartitionResult:
        self.glue["BatchCreatePartition"] += 1
        return super()._create_partitions(name, inputs)

    def _get_partitions(
        self, name: str, values: Sequence[Sequence[str]] | None = None, db: str | None = None
    ) -> list[dict[str, Any]]:
        self.glue["GetPartitions" if values is None else "BatchGetPartition"] += 1
        if values is not None:
            self.looked_up.append(["/".join(v) for v in values])
        return super()._get_partitions(name, values, db)

    def _get_partition(self, name: str, values: Sequence[str]) -> dict[str, Any]:
        self.glue["GetPartition"] += 1
        return super()._get_partition(name, values)


def _objects(store: InMemoryObjectStore, data: bytes, *keys: str) -> list[QueueMessage]:
    for key in keys:
        store.objects[key] = data
    return [_message(key, key) for key in keys]  # the key is the message id


def test_each_batch_makes_only_the_glue_calls_it_needs(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # issue 12 / ADR 0045: the catalog bench regressed from 0.9-1.1 to 1.3-1.45 Glue calls per
    # partition; these counts pin where each call goes, batch by batch.
    store, catalog, queue = InMemoryObjectStore(), GlueCallCountingCatalog(), FakeQueue([])
    service = CatalogService(
        queue, store, catalog, RecordingMetrics(), workers=2, snapshot_state_ttl_s=3600
    )
    data = make_parquet([make_row("a")])

    def batch(*keys: str) -> dict[str, int]:
        queue.pending += _objects(store, data, *keys)
        service.poll_once()
        assert not queue.pending
        assert not queue.retried
        return catalog.take()

    # First sight of a new table: the table (read, create), its partitions in one call, then
    # the view's snapshot state, the sibling tables and both views (read view, read columns,
    # create); the merge's read already told the privacy version, the batch's partitions are
    # new (nothing to look up), and the merge's columns are the partitions' columns.
    assert batch(_k("persons", "10", "a"), _k("persons", "11", "a")) == {
        "GetTable": 1 + 1 + 2 + 2,
        "CreateTable": 6,  # _changes, _errors, firehose_error_records, _raw, _current, _history
        "BatchCreatePartition": 1,
    }
    # New partitions of a known table: read the columns, register; no late-data lookup.
    assert batch(_k("persons", "12", "a"), _k("persons", "12", "b")) == {
        "GetTable": 1,
        "BatchCreatePartition": 1,
    }
    # Only known partitions: nothing to register; one lookup for late data (ADR 0034).
    assert batch(_k("persons", "12", "c"), _k("persons", "10", "b")) == {"BatchGetPartition": 1}
    # A new and a known partition: the lookup asks for the known one only.
    assert batch(_k("persons", "13", "a"), _k("persons", "11", "b")) == {
        "GetTable": 1,
        "BatchCreatePartition": 1,
        "BatchGetPartition": 1,
    }
    assert catalog.looked_up == [
        ["2024-05-01/10", "2024-05-01/12"],
        ["2024-05-01/11"],
    ]
    assert set(catalog.locations("persons")) == {
        Partition("2024-05-01", h) for h in ("10", "11", "12", "13")
    }


def test_late_objects_of_a_rewritten_partition_are_still_copied_in(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # Skipping the lookup for partitions a batch created must not skip one that existed: a
    # restarted service does not know the partition, but Glue answers "already exists".
    store, catalog = InMemoryObjectStore(), GlueCallCountingCatalog()
    data = make_parquet([make_row("a")])
    hour = Partition("2024-05-01", "10")
    generation = generation_prefix("persons", hour, "000001-0badcafe")

    queue = FakeQueue(_objects(store, data, _k("persons", "10", "a")))
    running = CatalogService(queue, store, catalog, RecordingMetrics(), workers=2)
    running.poll_once()
    catalog.set_location("persons", hour, s3_url("lake", generation))  # a rewrite swapped it
    restarted = CatalogService(queue, store, catalog, RecordingMetrics(), workers=2)

    for name, service in (("b", restarted), ("c", running)):
        queue.pending += _objects(store, data, _k("persons", "10", name))
        catalog.take()
        service.poll_once()
        assert catalog.take().get("BatchGetPartition") == 2  # read, copy, read again

    assert sorted(k for k in store.objects if k.startswith(generation)) == [
        generation + "b.parquet",
        generation + "c.parquet",
    ]
    assert queue.deleted == [_k("persons", "10", name) for name in "abc"]


def test_a_failing_view_write_fails_the_tables_messages_though_it_runs_beside_registration(
    make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    class FailingViews(RecordingCatalog):
        def ensure_current_view(self, table: str) -> bool:
            raise UnavailableError("injected", "ThrottlingException")

    store, catalog = InMemoryObjectStore(), FailingViews()
    queue = FakeQueue(_objects(store, make_parquet([make_row("a")]), _k("persons", "10", "a")))
    service = CatalogService(queue, store, catalog, RecordingMetrics(), retry_delay_seconds=3)

    outcome = service.poll_once()

    assert (outcome.deleted, outcome.failed) == (0, 1)
    assert queue.retried == [(_k("persons", "10", "a"), 3)]
    # what the other thread did stays (idempotent): the partition and the sibling tables
    assert catalog.registered() == {"persons": {Partition("2024-05-01", "10")}}
    assert catalog.describe("persons_raw").name == "persons_raw"
