"""GetPartitions over HTTP on the emulator: segments are disjoint and complete, pages chain."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.aws

DB, TABLE = "segments_db", "events"


def _all(glue: Any, **kwargs: Any) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    token = None
    while True:
        page = glue.get_partitions(
            DatabaseName=DB, TableName=TABLE, **kwargs, **({"NextToken": token} if token else {})
        )
        found.extend(tuple(p["Values"]) for p in page["Partitions"])
        token = page.get("NextToken")
        if not token:
            return found


def test_get_partitions_honours_segments_pages_and_expressions(emulator: Any) -> None:
    glue = boto3.client("glue", endpoint_url=emulator.endpoint)
    glue.create_database(DatabaseInput={"Name": DB})
    glue.create_table(
        DatabaseName=DB,
        TableInput={
            "Name": TABLE,
            "PartitionKeys": [{"Name": "dt", "Type": "string"}, {"Name": "hour", "Type": "string"}],
            "StorageDescriptor": {
                "Columns": [{"Name": "x", "Type": "string"}],
                "Location": "s3://b/",
            },
        },
    )
    wanted = {(f"2026-11-{d:02d}", f"{h:02d}") for d in (28, 29) for h in range(12)}
    glue.batch_create_partition(
        DatabaseName=DB,
        TableName=TABLE,
        PartitionInputList=[
            {"Values": list(v), "StorageDescriptor": {"Location": f"s3://b/{v[0]}/{v[1]}/"}}
            for v in sorted(wanted)
        ],
    )

    segments = [
        _all(glue, Segment={"SegmentNumber": n, "TotalSegments": 5}, MaxResults=2) for n in range(5)
    ]
    first_page = glue.get_partitions(DatabaseName=DB, TableName=TABLE, MaxResults=7)
    filtered = _all(
        glue, Expression="dt = '2026-11-29'", Segment={"SegmentNumber": 1, "TotalSegments": 2}
    )

    # Trino asks 5 segments: together they are every partition exactly once (moto alone
    # returned all 24 to each segment).
    assert sorted(v for s in segments for v in s) == sorted(wanted)
    assert all(4 <= len(s) <= 5 for s in segments)
    assert len(first_page["Partitions"]) == 7
    assert first_page["NextToken"]
    assert len(filtered) == 6
    assert {v[0] for v in filtered} == {"2026-11-29"}
    assert sorted(_all(glue)) == sorted(wanted)
    with pytest.raises(ClientError, match="InvalidInputException"):
        glue.get_partitions(
            DatabaseName=DB, TableName=TABLE, Segment={"SegmentNumber": 5, "TotalSegments": 5}
        )
