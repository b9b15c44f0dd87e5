"""Glue ``GetPartitions`` segments and pages, which moto ignores and Trino's Glue client uses.

Trino (Athena's engine) lists a table's partitions with ``TotalSegments`` parallel
``GetPartitions`` calls (``hive.metastore.glue.partitions-segments``, default 5), each paged
with ``MaxResults``/``NextToken``. moto answers every segment with *all* partitions in one
page, so a client that does not deduplicate would read each partition once per segment. The
emulator makes ``GetPartitions`` honour both, as Glue does: segment *n* of *N* holds the
partitions whose position in the table's (stable, sorted) partition order is *n* modulo *N*;
the segments are disjoint and together hold every partition matching the ``Expression``.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.glue.exceptions import InvalidInputException
from moto.glue.responses import GlueResponse

MAX_TOTAL_SEGMENTS = 10  # Glue's limit
_installed = threading.Lock()
_done = False


def segment_of(partitions: list[Any], segment: dict[str, Any] | None) -> list[Any]:
    """The partitions of one segment (all of them without a ``Segment``)."""
    if not segment:
        return partitions
    total = int(segment.get("TotalSegments", 1))
    number = int(segment.get("SegmentNumber", 0))
    if not 1 <= total <= MAX_TOTAL_SEGMENTS or not 0 <= number < total:
        raise InvalidInputException(
            "GetPartitions",
            f"Segment must have 1 <= TotalSegments <= {MAX_TOTAL_SEGMENTS} and "
            f"0 <= SegmentNumber < TotalSegments, got {segment}",
        )
    ordered = sorted(partitions, key=lambda p: [str(v) for v in p.values])
    return [p for index, p in enumerate(ordered) if index % total == number]


def _get_partitions(self: GlueResponse) -> ActionResult:
    database_name = str(self.parameters.get("DatabaseName"))
    table_name = str(self.parameters.get("TableName"))
    # moto's own handler passes a missing Expression as None (no filter) despite its hint.
    expression: Any = self.parameters.get("Expression")
    partitions = segment_of(
        self.glue_backend.get_partitions(database_name, table_name, expression),
        self.parameters.get("Segment"),
    )
    start = int(self.parameters.get("NextToken") or 0)
    size = int(self.parameters.get("MaxResults") or 1000)
    page = partitions[start : start + size]
    result: dict[str, Any] = {"Partitions": [p.as_dict() for p in page]}
    if start + size < len(partitions):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def install() -> None:
    """Replace moto's ``GetPartitions`` handler (idempotent; process-wide like moto itself)."""
    global _done
    with _installed:
        if not _done:
            GlueResponse.get_partitions = _get_partitions  # type: ignore[method-assign]
            _done = True
