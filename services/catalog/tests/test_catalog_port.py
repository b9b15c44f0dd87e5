"""The Catalog port (changelake_lake.catalog): in memory and on Glue (moto over HTTP) alike.

The same calls run on :class:`InMemoryCatalog` and on :class:`GlueRegistry` (a real boto3 Glue
client on the moto server); every answer and the resulting partitions must be equal.
"""

from __future__ import annotations

from typing import Any

import pytest
from changelake_catalog.adapters.glue_registry import GlueRegistry
from changelake_lake.catalog import Catalog, InMemoryCatalog, PartitionResult, TableState
from changelake_lake.columns import Column
from changelake_lake.layout import Partition

BUCKET, DB, TABLE = "lake", "changelake", "My-Table.v2"
BASE = [Column("event_id", "string"), Column("item_key", "string"), Column("name", "string")]
P1, P2, P3 = (
    Partition("2024-03-01", "00"),
    Partition("2024-03-01", "01"),
    Partition("2024-03-02", "23"),
)


def _script(catalog: Catalog) -> list[Any]:
    """Every port call once, in the order a pipeline and a compaction make them."""
    out: list[Any] = [catalog.table_columns(TABLE), catalog.locations(TABLE)]
    created = catalog.merge_changes_table(TABLE, BASE)
    out.append((created.columns, created.created, created.added, created.conflicts))
    first = catalog.add_partitions(TABLE, [P1, P2])
    again = catalog.add_partitions(TABLE, [P2, P3, P3])
    out.append(((first.added, first.existing), (again.added, again.existing)))
    grown = catalog.merge_changes_table(
        TABLE, [Column("EMAIL", "string"), Column("name", "bigint"), Column("email", "int")]
    )
    out.append((grown.columns, grown.created, grown.added, grown.conflicts))
    out.append(catalog.table_columns(TABLE))
    out.append(catalog.locations(TABLE))
    out.append(catalog.locations(TABLE, [P3, Partition("1999-01-01", "00")]))
    catalog.set_location(TABLE, P1, "s3://lake/compacted/my_table_v2/dt=2024-03-01/hour=00/v1/")
    out.append(catalog.locations(TABLE, [P1]))
    catalog.drop(TABLE, [P2, Partition("1999-01-01", "00")])
    out.append(sorted(catalog.locations(TABLE).items()))
    return out


@pytest.mark.aws
def test_in_memory_and_glue_catalogs_answer_the_same_calls_alike(glue: Any) -> None:
    memory = InMemoryCatalog(BUCKET)
    on_glue = GlueRegistry(BUCKET, DB, glue, sleep=lambda _: None)

    expected = _script(memory)
    assert _script(on_glue) == expected

    # And the answers are the port's rules, not just equal.
    assert expected[0] is None
    assert expected[1] == {}
    assert expected[2] == (tuple(BASE), True, tuple(BASE), ())
    assert expected[3] == ((2, 0), (1, 1))
    email = Column("EMAIL", "string")
    assert expected[4] == (
        (*BASE, email),
        False,
        (email,),
        (
            (Column("name", "string"), Column("name", "bigint")),
            (email, Column("email", "int")),
        ),
    )
    assert expected[5] == (*BASE, email)
    base = "s3://lake/changes/My-Table.v2"
    assert expected[6] == {
        P1: f"{base}/dt=2024-03-01/hour=00/",
        P2: f"{base}/dt=2024-03-01/hour=01/",
        P3: f"{base}/dt=2024-03-02/hour=23/",
    }
    assert expected[7] == {P3: f"{base}/dt=2024-03-02/hour=23/"}
    assert expected[8] == {P1: "s3://lake/compacted/my_table_v2/dt=2024-03-01/hour=00/v1/"}
    assert expected[9] == [
        (P1, "s3://lake/compacted/my_table_v2/dt=2024-03-01/hour=00/v1/"),
        (P3, f"{base}/dt=2024-03-02/hour=23/"),
    ]


@pytest.mark.aws
def test_partitions_take_the_tables_columns_when_registered_and_when_switched(glue: Any) -> None:
    memory = InMemoryCatalog(BUCKET)
    on_glue = GlueRegistry(BUCKET, DB, glue, sleep=lambda _: None)
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
        return [c["Name"] for c in memory.partition_columns(TABLE, partition)]

    names = [c.name for c in BASE]
    # P2 keeps the columns it was registered with; the switch gives P1 the table's current ones.
    assert memory_columns(P2) == glue_columns(P2) == names
    assert memory_columns(P1) == glue_columns(P1) == [*names, "email"]


@pytest.mark.unit
def test_in_memory_catalog_refuses_partitions_of_a_missing_table() -> None:
    catalog = InMemoryCatalog(BUCKET)
    with pytest.raises(LookupError, match="my_table_v2_changes does not exist"):
        catalog.add_partitions(TABLE, [P1])
    assert catalog.add_partitions(TABLE, []) == PartitionResult(0, 0, 0)
    assert catalog.merge_changes_table(TABLE, BASE) == TableState(tuple(BASE), True, tuple(BASE))
