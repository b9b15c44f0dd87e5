"""The Catalog port (changelake_lake.catalog): in memory and on Glue (moto over HTTP) alike.

The same calls run on :class:`InMemoryCatalog` and on :class:`GlueCatalog` (a real boto3 Glue
client on the moto server): every answer, every error type and what a reader then sees
(``describe``, ``partition_defs``) must be equal, and the answers are asserted too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.catalog import (
    Catalog,
    CatalogError,
    ConflictError,
    InMemoryCatalog,
    NotFoundError,
    PartitionResult,
    TableState,
)
from changelake_lake.columns import Column
from changelake_lake.layout import Partition
from changelake_lake.snapshot_view import SnapshotState

BUCKET, DB, TABLE = "lake", "changelake", "My-Table.v2"
BASE = [Column("event_id", "string"), Column("item_key", "string"), Column("name", "string")]
P1, P2, P3 = (
    Partition("2024-03-01", "00"),
    Partition("2024-03-01", "01"),
    Partition("2024-03-02", "23"),
)
GONE = Partition("1999-01-01", "00")


def _outcome(call: Callable[[], Any]) -> Any:
    """A call's answer, or the port error it raised (type only: messages may differ)."""
    try:
        return ("ok", call())
    except CatalogError as exc:
        return ("raised", type(exc).__name__)


def _script(catalog: Catalog) -> dict[str, Any]:
    """Every port call once, in the order a pipeline, a compaction and a snapshot make them."""
    out: dict[str, Any] = {}
    # before the database exists: reads see nothing, writes are refused
    out["columns_no_db"] = _outcome(lambda: catalog.table_columns(TABLE))
    out["locations_no_db"] = _outcome(lambda: catalog.locations(TABLE))
    out["merge_no_db"] = _outcome(lambda: catalog.merge_changes_table(TABLE, BASE))
    catalog.ensure_database()
    catalog.ensure_database()
    # the changes table and its partitions
    out["add_no_table"] = _outcome(lambda: catalog.add_partitions(TABLE, [P1]))
    out["describe_no_table"] = _outcome(lambda: catalog.describe("my_table_v2_changes"))
    out["view_no_table"] = catalog.ensure_current_view(TABLE)
    created = catalog.merge_changes_table(TABLE, BASE)
    out["created"] = (created.columns, created.created, created.added, created.conflicts)
    first = catalog.add_partitions(TABLE, [P1, P2])
    again = catalog.add_partitions(TABLE, [P2, P3, P3])
    out["added"] = tuple((r.added, r.existing, sorted(r.created)) for r in (first, again))
    grown = catalog.merge_changes_table(
        TABLE, [Column("EMAIL", "string"), Column("name", "bigint"), Column("email", "int")]
    )
    out["grown"] = (grown.columns, grown.created, grown.added, grown.conflicts)
    out["columns"] = catalog.table_columns(TABLE)
    out["locations"] = catalog.locations(TABLE)
    out["some_locations"] = catalog.locations(TABLE, [P3, GONE])
    out["switch_missing"] = _outcome(lambda: catalog.set_location(TABLE, GONE, "s3://lake/x/"))
    catalog.set_location(TABLE, P1, "s3://lake/compacted/my_table_v2/dt=2024-03-01/hour=00/v1/")
    out["switched"] = catalog.locations(TABLE, [P1])
    catalog.drop(TABLE, [P2, GONE])
    out["after_drop"] = sorted(catalog.locations(TABLE).items())
    out["drop_no_table"] = _outcome(lambda: catalog.drop("Absent", [P1]))
    # raw/errors tables, views, privacy
    out["raw"] = (catalog.ensure_raw_table(TABLE), catalog.ensure_raw_table(TABLE))
    for name in ("my_table_v2_raw", "my_table_v2_errors", "firehose_error_records"):
        out[f"describe {name}"] = catalog.describe(name)
    out["views"] = (catalog.ensure_current_view(TABLE), catalog.ensure_current_view(TABLE))
    out["history_again"] = catalog.ensure_history_view(TABLE)
    out["privacy"] = (
        catalog.record_privacy(TABLE, "v1", '{"rules": 1}'),
        catalog.record_privacy(TABLE, "v1", '{"rules": 1}'),
        catalog.record_privacy(TABLE, "v2", None),
    )
    out["merge_reads_privacy"] = (
        created.privacy_version,
        catalog.merge_changes_table(TABLE, BASE).privacy_version,
    )
    changes = catalog.describe("MY_TABLE_V2_CHANGES")
    out["describe changes"] = changes
    out["partition_defs"] = catalog.partition_defs(changes)
    out["other_database"] = _outcome(lambda: catalog.describe("my_table_v2_changes", "elsewhere"))
    # the current-state snapshot and late data
    out["no_snapshot"] = (catalog.snapshot_state(TABLE), catalog.mark_late(TABLE, [P1]))
    state = SnapshotState(
        at="20240303T000000000000Z",
        cut=Partition("2024-03-02", "00"),
        columns=("event_id", "item_key", "name"),
        max_event_time="2024-03-01T01:59:00+00:00",
        max_sequence_number="42",
        rows=7,
    )
    catalog.publish_snapshot(TABLE, state, BASE, set())
    out["published"] = (catalog.snapshot_state(TABLE), catalog.snapshot_ids(TABLE))
    out["late"] = (
        catalog.mark_late(TABLE, [P1]),
        catalog.mark_late(TABLE, [P1]),  # already late
        catalog.mark_late(TABLE, [P3]),  # after the cut: the view reads it anyway
    )
    newer = dataclasses.replace(state, at="20240304T000000000000Z")
    catalog.publish_snapshot(TABLE, newer, BASE, set())  # P1 stays late: not folded by it
    out["republished"] = (catalog.snapshot_state(TABLE), catalog.snapshot_ids(TABLE))
    catalog.drop_snapshot(TABLE, state.at)
    catalog.drop_snapshot(TABLE, state.at)
    out["snapshots_left"] = catalog.snapshot_ids(TABLE)
    for name in ("my_table_v2_current", "my_table_v2_history", "my_table_v2_snapshot"):
        out[f"describe {name}"] = catalog.describe(name)
    return out


@pytest.mark.aws
def test_in_memory_and_glue_catalogs_answer_the_same_calls_alike(aws_endpoint: str) -> None:
    del aws_endpoint
    memory = InMemoryCatalog(BUCKET, DB)
    on_glue = GlueCatalog(BUCKET, DB, boto3.client("glue"), sleep=lambda _: None)

    expected = _script(memory)
    got = _script(on_glue)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], key

    # And the answers are the port's rules, not just equal.
    assert expected["columns_no_db"] == ("ok", None)
    assert expected["locations_no_db"] == ("ok", {})
    assert expected["merge_no_db"] == ("raised", "NotFoundError")
    assert expected["add_no_table"] == ("raised", "NotFoundError")
    assert expected["describe_no_table"] == ("raised", "NotFoundError")
    assert expected["switch_missing"] == ("raised", "NotFoundError")
    assert expected["drop_no_table"] == ("raised", "NotFoundError")
    assert expected["other_database"] == ("raised", "NotFoundError")
    assert expected["view_no_table"] is False
    assert expected["created"] == (tuple(BASE), True, tuple(BASE), ())
    assert expected["added"] == (
        (2, 0, [tuple(P1.values), tuple(P2.values)]),
        (1, 1, [tuple(P3.values)]),  # P2 existed: created by the first call only
    )
    email = Column("EMAIL", "string")
    assert expected["grown"] == (
        (*BASE, email),
        False,
        (email,),
        (
            (Column("name", "string"), Column("name", "bigint")),
            (email, Column("email", "int")),
        ),
    )
    assert expected["columns"] == (*BASE, email)
    base = "s3://lake/changes/My-Table.v2"
    compacted = "s3://lake/compacted/my_table_v2/dt=2024-03-01/hour=00/v1/"
    assert expected["locations"] == {
        P1: f"{base}/dt=2024-03-01/hour=00/",
        P2: f"{base}/dt=2024-03-01/hour=01/",
        P3: f"{base}/dt=2024-03-02/hour=23/",
    }
    assert expected["some_locations"] == {P3: f"{base}/dt=2024-03-02/hour=23/"}
    assert expected["switched"] == {P1: compacted}
    assert expected["after_drop"] == [(P1, compacted), (P3, f"{base}/dt=2024-03-02/hour=23/")]
    assert expected["raw"] == (True, False)
    raw = expected["describe my_table_v2_raw"]
    assert (raw.location, raw.is_json, raw.projection_enabled) == (
        "s3://lake/raw/My-Table.v2/",
        True,
        True,
    )
    assert expected["describe my_table_v2_errors"].is_json
    assert expected["views"] == (True, False)
    assert expected["history_again"] is False
    assert expected["privacy"] == (True, False, True)
    params = expected["describe changes"].parameters
    assert params["changelake.privacy.version"] == "v2"
    assert params["changelake.privacy.versions"] == "v1,v2"
    assert "changelake.privacy.rules" not in params
    assert expected["merge_reads_privacy"] == ("none", "v2")
    assert [(d.values, d.location) for d in expected["partition_defs"]] == [
        (tuple(P1.values), compacted),
        (tuple(P3.values), f"{base}/dt=2024-03-02/hour=23/"),
    ]
    assert expected["no_snapshot"] == (None, False)
    published, ids = expected["published"]
    assert (published.at, published.late, ids) == ("20240303T000000000000Z", (), [published.at])
    assert expected["late"] == (True, False, False)
    republished, ids = expected["republished"]
    assert (republished.at, republished.late) == ("20240304T000000000000Z", (P1,))
    assert ids == ["20240303T000000000000Z", "20240304T000000000000Z"]
    assert expected["snapshots_left"] == ["20240304T000000000000Z"]
    current = expected["describe my_table_v2_current"]
    assert current.is_view
    view_sql = decode_presto_view(current.view_original_text).sql
    assert "my_table_v2_snapshot" in view_sql
    assert "2024-03-01" in view_sql  # P1, late, is read whole
    assert expected["describe my_table_v2_history"].is_view


@pytest.mark.aws
def test_partitions_take_the_tables_columns_when_registered_and_when_switched(glue: Any) -> None:
    memory = InMemoryCatalog(BUCKET, DB)
    on_glue = GlueCatalog(BUCKET, DB, glue, sleep=lambda _: None)
    memory.ensure_database()
    for catalog in (memory, on_glue):
        catalog.merge_changes_table(TABLE, BASE)
        catalog.add_partitions(TABLE, [P1, P2])
        catalog.merge_changes_table(TABLE, [Column("email", "string")])
        catalog.set_location(TABLE, P1, "s3://lake/compacted/p1/")

    def glue_columns(partition: Partition) -> list[str]:
        part = glue.get_partition(
            DatabaseName=DB, TableName="my_table_v2_changes", PartitionValues=partition.values
        )["Partition"]
        return [c["Name"] for c in part["StorageDescriptor"]["Columns"]]

    def memory_columns(partition: Partition) -> list[str]:
        part = memory._get_partition("my_table_v2_changes", partition.values)
        return [c["Name"] for c in part["StorageDescriptor"]["Columns"]]

    names = [c.name for c in BASE]
    # P2 keeps the columns it was registered with; the switch gives P1 the table's current ones.
    assert memory_columns(P2) == glue_columns(P2) == names
    assert memory_columns(P1) == glue_columns(P1) == [*names, "email"]


class _ConflictingGlue:
    """A Glue client whose every UpdateTable loses the optimistic-concurrency race."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update_table(self, **kwargs: Any) -> Any:
        del kwargs
        raise self._inner.exceptions.ConcurrentModificationException(
            {"Error": {"Code": "ConcurrentModificationException", "Message": "raced"}},
            "UpdateTable",
        )


class _ConflictingMemory(InMemoryCatalog):
    """The in-memory catalog where every update loses the race."""

    def _update_table(self, table_input: dict[str, Any], version: str | None) -> bool:
        del table_input, version
        return False


@pytest.mark.aws
def test_both_catalogs_raise_conflict_when_writers_keep_racing(glue: Any) -> None:
    memory = _ConflictingMemory(BUCKET, DB, attempts=2)
    memory.ensure_database()
    on_glue = GlueCatalog(BUCKET, DB, _ConflictingGlue(glue), attempts=2, sleep=lambda _: None)
    for catalog in (memory, on_glue):
        catalog.merge_changes_table(TABLE, BASE)  # a create: no race
        with pytest.raises(ConflictError, match="gave up after repeated concurrent updates"):
            catalog.merge_changes_table(TABLE, [Column("email", "string")])
        assert catalog.table_columns(TABLE) == tuple(BASE)


@pytest.mark.unit
def test_in_memory_catalog_refuses_partitions_of_a_missing_table() -> None:
    catalog = InMemoryCatalog(BUCKET)
    catalog.ensure_database()
    with pytest.raises(NotFoundError, match="my_table_v2_changes does not exist") as caught:
        catalog.add_partitions(TABLE, [P1])
    assert isinstance(caught.value, LookupError)
    assert catalog.add_partitions(TABLE, []) == PartitionResult(0, 0, 0)
    assert catalog.merge_changes_table(TABLE, BASE) == TableState(tuple(BASE), True, tuple(BASE))
