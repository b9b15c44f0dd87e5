"""The Glue adapter against moto over HTTP: tables, chunked partitions, races, throttling."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.catalog import UnavailableError
from changelake_lake.columns import Column
from changelake_lake.layout import Partition

pytestmark = pytest.mark.aws

BUCKET, DB = "lake", "changelake"
BASE = [Column("event_id", "string"), Column("item_key", "string"), Column("name", "string")]


def _no_sleep(_: float) -> None:
    return None


def _calls(client: Any, operation: str) -> list[int]:
    """Count API calls of ``operation`` with a botocore event hook."""
    counter: list[int] = []
    client.meta.events.register(f"before-call.glue.{operation}", lambda **_: counter.append(1))
    return counter


def _hours(n: int) -> list[Partition]:
    return [Partition(f"2024-01-{1 + i // 24:02d}", f"{i % 24:02d}") for i in range(n)]


def test_add_partitions_uses_three_calls_when_250_partitions_are_new(glue: Any) -> None:
    registry = GlueCatalog(BUCKET, DB, glue, sleep=_no_sleep)
    registry.merge_changes_table("persons", BASE)
    calls = _calls(glue, "BatchCreatePartition")

    result = registry.add_partitions("persons", _hours(250))

    assert len(calls) == 3
    assert (result.added, result.existing, result.calls) == (250, 0, 3)
    parts = glue.get_partitions(DatabaseName=DB, TableName="persons_changes")["Partitions"]
    assert len(parts) == 250
    table_columns = glue.get_table(DatabaseName=DB, Name="persons_changes")["Table"][
        "StorageDescriptor"
    ]["Columns"]
    assert all(p["StorageDescriptor"]["Columns"] == table_columns for p in parts)
    assert parts[0]["StorageDescriptor"]["Location"].startswith("s3://lake/changes/persons/dt=")


def test_add_partitions_counts_existing_as_success_when_registered_twice(glue: Any) -> None:
    registry = GlueCatalog(BUCKET, DB, glue, sleep=_no_sleep)
    registry.merge_changes_table("persons", BASE)
    registry.add_partitions("persons", _hours(120))

    again = registry.add_partitions("persons", _hours(130))

    assert (again.added, again.existing) == (10, 120)
    assert len(registry.locations("persons")) == 130


def test_merge_changes_table_adds_new_column_and_view_follows(glue: Any) -> None:
    registry = GlueCatalog(BUCKET, DB, glue, sleep=_no_sleep)
    first = registry.merge_changes_table("persons", BASE)
    registry.ensure_current_view("persons")
    version = glue.get_table(DatabaseName=DB, Name="persons_changes")["Table"]["VersionId"]

    again = registry.merge_changes_table("persons", BASE[:2])
    second = registry.merge_changes_table("persons", [*BASE, Column("email", "string")])
    rewritten = registry.ensure_current_view("persons")

    assert first.created
    assert not again.created
    assert again.added == ()
    assert glue.get_table(DatabaseName=DB, Name="persons_changes")["Table"]["VersionId"] != version
    assert second.added == (Column("email", "string"),)
    assert [c.name for c in second.columns] == ["event_id", "item_key", "name", "email"]
    assert rewritten
    view = glue.get_table(DatabaseName=DB, Name="persons_current")["Table"]
    assert view["TableType"] == "VIRTUAL_VIEW"
    assert [n for n, _ in decode_presto_view(view["ViewOriginalText"]).columns][-1] == "email"
    assert not registry.ensure_current_view("persons")  # unchanged: nothing written


def test_view_written_with_a_description_is_rewritten_without_it(glue: Any) -> None:
    """A view from before the fix carried a Glue Description, which Trino and Athena copy over
    its "Presto View" comment and so do not see it as a view: the catalog rewrites it."""
    registry = GlueCatalog(BUCKET, DB, glue, sleep=_no_sleep)
    registry.merge_changes_table("persons", BASE)
    registry.ensure_current_view("persons")
    old = glue.get_table(DatabaseName=DB, Name="persons_current")["Table"]
    assert "Description" not in old
    legacy = {k: old[k] for k in ("Name", "TableType", "Parameters", "StorageDescriptor")}
    legacy |= {k: old[k] for k in ("ViewOriginalText", "ViewExpandedText", "PartitionKeys")}
    glue.update_table(DatabaseName=DB, TableInput={**legacy, "Description": "old style"})

    assert registry.ensure_current_view("persons")

    view = glue.get_table(DatabaseName=DB, Name="persons_current")["Table"]
    assert "Description" not in view
    assert view["Parameters"]["comment"] == "Presto View"
    assert view["ViewOriginalText"] == old["ViewOriginalText"]
    assert not registry.ensure_current_view("persons")


def test_merge_changes_table_keeps_table_type_when_object_type_conflicts(glue: Any) -> None:
    registry = GlueCatalog(BUCKET, DB, glue, sleep=_no_sleep)
    registry.merge_changes_table("persons", [Column("age", "decimal(38,0)")])

    state = registry.merge_changes_table("persons", [Column("age", "string")])

    assert state.columns == (Column("age", "decimal(38,0)"),)
    assert state.conflicts == ((Column("age", "decimal(38,0)"), Column("age", "string")),)


class _Delegate:
    """Wraps a boto3 Glue client; subclasses override operations."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _VersionCheckingGlue(_Delegate):
    """Real Glue's UpdateTable semantics (moto ignores VersionId), plus a barrier that makes
    two workers pass their pre-update read together, so their updates truly collide."""

    lock = threading.Lock()

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        super().__init__(inner)
        self._barrier = barrier
        self._gets = 0
        self.conflicts = 0

    def get_table(self, **kwargs: Any) -> Any:
        result = self._inner.get_table(**kwargs)
        self._gets += 1
        if self._gets == 2:  # the pre-update re-read of the first attempt
            self._barrier.wait(timeout=10)
        return result

    def update_table(self, **kwargs: Any) -> Any:
        with self.lock:
            name = kwargs["TableInput"]["Name"]
            current = self._inner.get_table(DatabaseName=kwargs["DatabaseName"], Name=name)
            if current["Table"]["VersionId"] != kwargs.get("VersionId"):
                self.conflicts += 1
                raise ClientError(
                    {"Error": {"Code": "ConcurrentModificationException", "Message": "v"}},
                    "UpdateTable",
                )
            return self._inner.update_table(**kwargs)


def test_merge_changes_table_keeps_both_columns_when_two_workers_race_glue_versions(
    glue: Any,
) -> None:
    GlueCatalog(BUCKET, DB, glue).merge_changes_table("persons", BASE)
    barrier = threading.Barrier(2)
    clients = [_VersionCheckingGlue(glue, barrier), _VersionCheckingGlue(glue, barrier)]
    workers = [GlueCatalog(BUCKET, DB, c, sleep=_no_sleep) for c in clients]
    new = [Column("email", "string"), Column("phone", "string")]

    _merge_concurrently(zip(workers, new, strict=True))

    assert _column_names(glue)[3:] in (["email", "phone"], ["phone", "email"])
    assert sum(c.conflicts for c in clients) == 1  # one lost the race and retried


class _InterleavedGlue(_Delegate):
    """Plain moto (no VersionId check): worker ``second`` reads the table, then waits for the
    other worker's update before its own pre-update read — the classic lost-update schedule."""

    def __init__(
        self, inner: Any, read: threading.Event, written: threading.Event, *, second: bool
    ) -> None:
        super().__init__(inner)
        self._read, self._written, self._second = read, written, second
        self._gets = 0

    def get_table(self, **kwargs: Any) -> Any:
        self._gets += 1
        if not self._second and self._gets == 2:
            self._read.wait(timeout=10)  # let the other worker read the old version first
        if self._second and self._gets == 2:
            self._written.wait(timeout=10)
        result = self._inner.get_table(**kwargs)
        if self._second and self._gets == 1:
            self._read.set()
        return result

    def update_table(self, **kwargs: Any) -> Any:
        result = self._inner.update_table(**kwargs)
        if not self._second:
            self._written.set()
        return result


def test_merge_changes_table_keeps_both_columns_when_emulator_ignores_version_id(
    glue: Any,
) -> None:
    GlueCatalog(BUCKET, DB, glue).merge_changes_table("persons", BASE)
    read, written = threading.Event(), threading.Event()
    first = GlueCatalog(
        BUCKET, DB, _InterleavedGlue(glue, read, written, second=False), sleep=_no_sleep
    )
    second = GlueCatalog(
        BUCKET, DB, _InterleavedGlue(glue, read, written, second=True), sleep=_no_sleep
    )
    _merge_concurrently([(first, Column("email", "string")), (second, Column("phone", "string"))])

    assert _column_names(glue)[3:] == ["email", "phone"]


def _merge_concurrently(merges: Iterable[tuple[GlueCatalog, Column]]) -> None:
    """Each registry adds its column to BASE at the same time, in its own thread."""
    threads = [
        threading.Thread(target=registry.merge_changes_table, args=("persons", [*BASE, column]))
        for registry, column in merges
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def _column_names(glue: Any) -> list[str]:
    table = glue.get_table(DatabaseName=DB, Name="persons_changes")["Table"]
    return [c["Name"] for c in table["StorageDescriptor"]["Columns"]]


class _FlakyGlue(_Delegate):
    """Throttles the first calls, then fails some partitions of the next batch response."""

    def __init__(self, inner: Any, throttles: int, failing: int) -> None:
        super().__init__(inner)
        self.throttles, self.failing = throttles, failing
        self.batch_calls = 0

    def batch_create_partition(self, **kwargs: Any) -> Any:
        self.batch_calls += 1
        if self.throttles > 0:
            self.throttles -= 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "BatchCreatePartition",
            )
        if self.failing > 0:
            inputs = kwargs["PartitionInputList"]
            failed, ok = inputs[: self.failing], inputs[self.failing :]
            self.failing = 0
            response = self._inner.batch_create_partition(**{**kwargs, "PartitionInputList": ok})
            errors = list(response.get("Errors", []))
            errors += [
                {
                    "PartitionValues": p["Values"],
                    "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "x"},
                }
                for p in failed
            ]
            return {"Errors": errors}
        return self._inner.batch_create_partition(**kwargs)


def test_add_partitions_retries_when_glue_throttles_and_partitions_fail(glue: Any) -> None:
    flaky = _FlakyGlue(glue, throttles=2, failing=7)
    slept: list[float] = []
    registry = GlueCatalog(BUCKET, DB, flaky, sleep=slept.append, backoff_seconds=0.01)
    registry.merge_changes_table("persons", BASE)

    result = registry.add_partitions("persons", _hours(30))

    assert result.added == 30
    assert len(registry.locations("persons")) == 30
    assert flaky.batch_calls == 4  # 2 throttled + 1 partial + 1 retry of the 7 failed
    assert len(slept) == 3


def test_add_partitions_raises_unavailable_when_throttling_persists(glue: Any) -> None:
    registry = GlueCatalog(
        BUCKET, DB, _FlakyGlue(glue, throttles=99, failing=0), sleep=_no_sleep, attempts=3
    )
    registry.merge_changes_table("persons", BASE)

    with pytest.raises(UnavailableError) as caught:
        registry.add_partitions("persons", _hours(2))

    assert caught.value.code == "ThrottlingException"
    assert isinstance(caught.value.__cause__, ClientError)


def test_ensure_raw_table_creates_once_when_called_twice(glue: Any) -> None:
    registry = GlueCatalog(BUCKET, DB, glue)
    assert registry.ensure_raw_table("persons")
    assert not registry.ensure_raw_table("persons")
    raw = glue.get_table(DatabaseName=DB, Name="persons_raw")["Table"]
    assert raw["Parameters"]["projection.enabled"] == "true"
    assert raw["StorageDescriptor"]["Location"] == "s3://lake/raw/persons/"


def test_ensure_database_only_reads_when_database_exists(glue: Any) -> None:
    creates = _calls(glue, "CreateDatabase")
    GlueCatalog(BUCKET, DB, glue).ensure_database()
    GlueCatalog(BUCKET, "other", glue).ensure_database()
    assert len(creates) == 1
    assert {d["Name"] for d in glue.get_databases()["DatabaseList"]} == {DB, "other"}


class _AlwaysFailingPartitions(_Delegate):
    """Every partition of every BatchCreatePartition fails with a retryable error."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.batch_calls = 0

    def batch_create_partition(self, **kwargs: Any) -> Any:
        self.batch_calls += 1
        return {
            "Errors": [
                {
                    "PartitionValues": p["Values"],
                    "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "x"},
                }
                for p in kwargs["PartitionInputList"]
            ]
        }


def test_add_partitions_raises_after_attempts_when_partitions_keep_failing(glue: Any) -> None:
    failing = _AlwaysFailingPartitions(glue)
    registry = GlueCatalog(BUCKET, DB, failing, sleep=_no_sleep, attempts=4)
    registry.merge_changes_table("persons", BASE)

    with pytest.raises(UnavailableError) as caught:
        registry.add_partitions("persons", _hours(3))

    assert caught.value.code == "InternalServiceException"
    assert failing.batch_calls == 4
    assert registry.locations("persons") == {}
