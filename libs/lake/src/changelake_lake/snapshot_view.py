"""The current-state snapshot as ``<table>_current`` reads it (ADR 0035).

A snapshot holds, for every item, its last change (tombstones included: a ``REMOVE`` kept as the
item's last change) over every change in the partitions *before* its ``cut``; it lives in the Glue
table ``<table>_snapshot`` (partitioned by ``snapshot_at``, one partition per snapshot). The
view reads the snapshot's rows + the changes of the partitions from the cut on + the changes of
the *late* partitions (partitions before the cut that received objects after the snapshot read
them), and ranks them exactly as the full-history view does. Any superset of the not-folded
changes gives the same answer (a change present twice is the same row; the snapshot's tombstones
keep older late changes from winning), so every step that publishes or extends the state may
err on the side of reading more.

:class:`SnapshotState` is what the view needs; it is stored as JSON in the view's Glue parameter
``changelake.snapshot``, so whoever rewrites the view (the catalog on new columns, the snapshot
job, late-data marking) renders the same SQL from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import orjson
from changelake.table_name import check_table_name

from changelake_lake.layout import Partition, glue_name

SNAPSHOT_PARAMETER = "changelake.snapshot"
SNAPSHOT_KEY = "snapshot_at"
SNAPSHOTS = "snapshots"


def snapshot_table_name(table: str) -> str:
    """Glue table of the current-state snapshots: ``<table>_snapshot``."""
    return glue_name(table) + "_snapshot"


def snapshots_prefix(table: str) -> str:
    """``snapshots/<table>/``: the location of ``<table>_snapshot``."""
    return f"{SNAPSHOTS}/{check_table_name(table)}/"


def snapshot_prefix(table: str, at: str) -> str:
    """``snapshots/<table>/snapshot_at=<at>/``: one snapshot's objects."""
    return f"{snapshots_prefix(table)}{SNAPSHOT_KEY}={at}/"


@dataclass(frozen=True, slots=True)
class SnapshotState:
    """The snapshot ``<table>_current`` reads and what it must add to it.

    ``cut`` is the first partition *not* folded: the snapshot covers exactly the changes whose
    event time is before ``cut.start()`` (every sequence number), as they were when it was read.
    ``columns`` are the snapshot's own columns (others read as NULL from it). ``late`` are the
    partitions before the cut that gained objects after the snapshot read them.
    """

    at: str
    cut: Partition
    columns: tuple[str, ...]
    late: tuple[Partition, ...] = ()
    max_event_time: str = ""
    max_sequence_number: str = ""
    rows: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    def needs(self, partition: Partition) -> bool:
        """Whether the view must be told about new objects in ``partition`` (late data)."""
        return partition < self.cut and partition not in self.late

    def with_late(self, partitions: Iterable[Partition]) -> SnapshotState:
        """The state with ``partitions`` (those before the cut) added to the late list."""
        late = set(self.late) | {p for p in partitions if p < self.cut}
        return replace(self, late=tuple(sorted(late)))

    def to_json(self) -> str:
        """The JSON stored in the view's ``changelake.snapshot`` parameter."""
        return orjson.dumps(
            {
                "at": self.at,
                "cut": self.cut.values,
                "columns": list(self.columns),
                "late": [p.values for p in self.late],
                "max_event_time": self.max_event_time,
                "max_sequence_number": self.max_sequence_number,
                "rows": self.rows,
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> SnapshotState:
        """Parse :meth:`to_json` (``ValueError`` on anything else)."""
        try:
            raw = orjson.loads(text)
            return cls(
                at=str(raw["at"]),
                cut=Partition(*map(str, raw["cut"])),
                columns=tuple(str(c) for c in raw["columns"]),
                late=tuple(sorted(Partition(*map(str, p)) for p in raw.get("late", []))),
                max_event_time=str(raw.get("max_event_time", "")),
                max_sequence_number=str(raw.get("max_sequence_number", "")),
                rows=int(raw.get("rows", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid {SNAPSHOT_PARAMETER} parameter: {exc}") from exc


def state_of(parameters: Mapping[str, str] | None) -> SnapshotState | None:
    """The snapshot state stored in a view's Glue parameters, if any."""
    text = (parameters or {}).get(SNAPSHOT_PARAMETER)
    return SnapshotState.from_json(text) if text else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def partition_filter(state: SnapshotState, alias: str = "c") -> str:
    """Partition-only predicate: the cut's partition and later ones, plus the late ones.

    Only ``dt``/``hour`` literals: Athena and Trino prune partitions on it (the Hive connector
    evaluates a predicate over partition columns alone on each partition's values), and so
    does the local engine.
    """
    dt, hour = f"{alias}.{_q('dt')}", f"{alias}.{_q('hour')}"
    terms = [
        f"{dt} > {_lit(state.cut.dt)}",
        f"({dt} = {_lit(state.cut.dt)} AND {hour} >= {_lit(state.cut.hour)})",
    ]
    terms += [f"({dt} = {_lit(p.dt)} AND {hour} = {_lit(p.hour)})" for p in state.late]
    return "\n      OR ".join(terms)


def union_source(
    state: SnapshotState,
    columns: Sequence[str],
    types: Mapping[str, str],
    changes: str,
    snapshot: str,
) -> str:
    """``snapshot rows + not-folded changes`` with exactly ``columns`` on both sides.

    ``types`` gives the Presto type of each column the snapshot lacks (read as a typed NULL).
    """
    have = set(state.columns)
    snap_cols = ",\n      ".join(
        f"s.{_q(c)}" if c in have else f"CAST(NULL AS {types[c]}) AS {_q(c)}" for c in columns
    )
    change_cols = ",\n      ".join(f"c.{_q(c)}" for c in columns)
    return (
        "(\n"
        f"    SELECT\n      {snap_cols}\n"
        f"    FROM {snapshot} s\n"
        f"    WHERE s.{_q(SNAPSHOT_KEY)} = {_lit(state.at)}\n"
        "    UNION ALL\n"
        f"    SELECT\n      {change_cols}\n"
        f"    FROM {changes} c\n"
        f"    WHERE {partition_filter(state)}\n"
        "  )"
    )
