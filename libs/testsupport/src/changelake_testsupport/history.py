"""The ``<table>_history`` view computed in Python: the oracle its tests compare against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

Interval = tuple[Any, Any, bool]


def history_oracle(rows: Iterable[Mapping[str, Any]]) -> dict[str, Interval]:
    """``event_id`` → ``(valid_from, valid_to, is_removed)`` of change-table rows.

    Copies of one event collapse to the one with the smallest sequence number (then shard);
    each item's versions are ordered by event time, sequence number (as a number), event id;
    a version lasts until the next one's event time (``None`` for the latest). Rows need
    ``event_id``, ``item_key``, ``event_name``, ``event_time``, ``sequence_number`` and
    ``shard_id``.
    """
    once: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        best = once.get(row["event_id"])
        if best is None or _copy_order(row) < _copy_order(best):
            once[row["event_id"]] = row
    versions: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in once.values():
        versions[row["item_key"]].append(row)
    out: dict[str, Interval] = {}
    for item in versions.values():
        item.sort(key=lambda r: (r["event_time"], int(r["sequence_number"]), r["event_id"]))
        for this, after in zip(item, [*item[1:], None], strict=True):
            out[str(this["event_id"])] = (
                this["event_time"],
                None if after is None else after["event_time"],
                this["event_name"] == "REMOVE",
            )
    return out


def _copy_order(row: Mapping[str, Any]) -> tuple[int, str]:
    return int(row["sequence_number"]), str(row["shard_id"])
