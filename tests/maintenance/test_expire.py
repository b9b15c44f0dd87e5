"""Retention of changes/: `changelake compact --expire` drops only what a snapshot holds."""

from __future__ import annotations

import boto3
import orjson
import pytest
from changelake_cli.main import app
from changelake_lake.compaction import ExpireRefusedError
from changelake_lake.layout import DATABASE, Partition, changes_partition_prefix, current_view_name
from maintenance_lake import BUCKET, TABLE, LakeFixture
from typer.testing import CliRunner

pytestmark = pytest.mark.aws

HOUR_10, HOUR_11 = Partition("2026-11-27", "10"), Partition("2026-11-27", "11")


def _compact(*args: str) -> object:
    result = CliRunner().invoke(
        app,
        ["compact", "--older-than", "2h", "--grace", "0", "--json", *args],
        env={"CHANGELAKE_LAKE_BUCKET": BUCKET, "CHANGELAKE_TABLES": TABLE},
    )
    if result.exception is not None:
        raise result.exception
    return orjson.loads(result.stdout)


def _snapshot(cut: Partition, late: list[Partition]) -> None:
    """What the snapshot job records on the view (ADR 0035): its cut and late partitions."""
    glue = boto3.client("glue")
    view = glue.get_table(DatabaseName=DATABASE, Name=current_view_name(TABLE))["Table"]
    keep = {"Name", "TableType", "Parameters", "PartitionKeys", "StorageDescriptor"}
    keep |= {"ViewOriginalText", "ViewExpandedText"}
    wanted = {k: v for k, v in view.items() if k in keep}
    wanted["Parameters"] = {
        **wanted.get("Parameters", {}),
        "changelake.snapshot": orjson.dumps(
            {"at": "x", "cut": cut.values, "columns": [], "late": [p.values for p in late]}
        ).decode(),
    }
    glue.update_table(DatabaseName=DATABASE, TableInput=wanted)


def _keys(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_expire_is_refused_without_a_snapshot_and_changes_nothing(written: LakeFixture) -> None:
    before = written.catalog.locations(TABLE)
    with pytest.raises(ExpireRefusedError, match="no current-state snapshot"):
        _compact("--expire", "--expire-after", "1d", "--dry-run")
    assert written.catalog.locations(TABLE) == before


def test_expire_drops_only_partitions_the_snapshot_folded(written: LakeFixture) -> None:
    # The snapshot folded everything before hour 12, but hour 11 received late objects since.
    _snapshot(Partition("2026-11-27", "12"), [HOUR_11])
    [summary] = _compact("--expire", "--expire-after", "1d")
    assert summary["partitions_compacted"] == 2
    assert summary["expire"]["partitions_expired"] == [HOUR_10.path]
    assert summary["expire"]["partitions_kept_not_in_snapshot"] == [HOUR_11.path]
    assert set(written.catalog.locations(TABLE)) == {HOUR_11}
    assert _keys(changes_partition_prefix(TABLE, HOUR_10)) == []
    assert _keys(f"changes/{TABLE}/compacted/{HOUR_10.path}") == []
    assert summary["expire"]["objects_deleted"] == 2  # its generation: part + manifest
    assert written.rows().num_rows == len(set(written.rows().column("event_id").to_pylist()))
