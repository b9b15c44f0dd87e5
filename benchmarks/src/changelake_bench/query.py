"""Query bench: the same lake in our layout and in the Firehose-to-JSON layout, on DuckDB.

Two questions analysts ask every day:

* **current** — current state of the items changed in the last 3 days (latest change per
  item, duplicates removed by event id, REMOVE hides the item);
* **per_hour** — changes per hour on one day.

Ours reads only the partitions the predicate selects (as Athena does with registered
partitions). The Firehose layout has no Hive partitions, so the table over its prefix reads
every object, as Athena would. Bytes read are the sizes of the files a query touches; for ours
the Parquet column chunks it needs (footer + referenced columns, what Athena bills) are
reported too. Both layouts must return the same answer: the bench checks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from changelake.timeutil import datetime_to_us, us_to_datetime
from changelake_lake.layout import Partition

from changelake_bench import snapshot_query
from changelake_bench.lake import Lake, LakeSpec, build
from changelake_bench.report import BenchResult, Progress, Row, Target, ratio

_US_PER_HOUR = 3_600_000_000

# A raw record's event time in the Firehose layout: ms, or µs where the precision says so.
_RAW_EVENT_TIME = """make_timestamp(
           CASE WHEN dynamodb->>'$.ApproximateCreationDateTimePrecision' = 'MICROSECOND'
                THEN CAST(dynamodb->>'$.ApproximateCreationDateTime' AS BIGINT)
                ELSE CAST(dynamodb->>'$.ApproximateCreationDateTime' AS BIGINT) * 1000
           END) AS event_time"""

CURRENT_OURS = """
WITH c AS (
  SELECT pk, item_key, event_name, new_image, event_time, sequence_number, event_id
  FROM read_parquet({files}, hive_partitioning = true, union_by_name = true)
  WHERE event_time >= TIMESTAMPTZ '{cutoff}'
), d AS (
  SELECT * FROM c QUALIFY row_number() OVER (PARTITION BY event_id) = 1
), l AS (
  SELECT *, row_number() OVER (
    PARTITION BY item_key
    ORDER BY event_time DESC, length(sequence_number) DESC, sequence_number DESC) AS rn
  FROM d
)
SELECT pk, new_image FROM l WHERE rn = 1 AND event_name <> 'REMOVE'
"""

CURRENT_FIREHOSE = """
WITH raw AS (
  SELECT eventID, eventName, dynamodb
  FROM read_json({files}, format = 'newline_delimited',
                 columns = {{eventID: 'VARCHAR', eventName: 'VARCHAR', dynamodb: 'JSON'}})
), c AS (
  SELECT eventID AS event_id, eventName AS event_name,
         dynamodb->'$.Keys'->'$.pk'->>'$.S' AS pk,
         dynamodb->'$.NewImage' AS new_image,
         <event_time>
  FROM raw
), d AS (
  SELECT * FROM c WHERE event_time >= TIMESTAMP '{cutoff_naive}'
  QUALIFY row_number() OVER (PARTITION BY event_id) = 1
), l AS (
  SELECT *, row_number() OVER (PARTITION BY pk ORDER BY event_time DESC) AS rn FROM d
)
SELECT pk, new_image FROM l WHERE rn = 1 AND event_name <> 'REMOVE'
""".replace("<event_time>", _RAW_EVENT_TIME)

PER_HOUR_OURS = """
SELECT hour(event_time AT TIME ZONE 'UTC') AS h, count(DISTINCT event_id) AS changes
FROM read_parquet({files}, hive_partitioning = true, union_by_name = true)
WHERE event_time >= TIMESTAMPTZ '{day_start}' AND event_time < TIMESTAMPTZ '{day_end}'
GROUP BY 1 ORDER BY 1
"""

PER_HOUR_FIREHOSE = """
WITH raw AS (
  SELECT eventID, dynamodb
  FROM read_json({files}, format = 'newline_delimited',
                 columns = {{eventID: 'VARCHAR', dynamodb: 'JSON'}})
), c AS (
  SELECT eventID,
         <event_time>
  FROM raw
)
SELECT hour(event_time) AS h, count(DISTINCT eventID) AS changes FROM c
WHERE event_time >= TIMESTAMP '{day_start_naive}' AND event_time < TIMESTAMP '{day_end_naive}'
GROUP BY 1 ORDER BY 1
""".replace("<event_time>", _RAW_EVENT_TIME)


@dataclass(frozen=True, slots=True)
class Measured:
    """One query on one layout: best seconds, bytes read and the rows it returned."""

    seconds: float
    seconds_all: list[float]
    files: int
    bytes_files: int
    rows: list[tuple[Any, ...]]

    def summary(self) -> dict[str, Any]:
        """The figures of the JSON result (the rows counted, not listed)."""
        return {
            "seconds": self.seconds,
            "seconds_all": self.seconds_all,
            "files": self.files,
            "bytes_read": self.bytes_files,
            "rows": len(self.rows),
        }


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _partitions(lake: Lake) -> dict[Partition, list[Path]]:
    # The registered partitions: every dt=/hour= directory of the table (what the catalog
    # service registers in Glue), with their objects.
    out: dict[Partition, list[Path]] = {}
    for dt_dir in sorted(lake.ours.glob("dt=*")):
        for hour_dir in sorted(dt_dir.glob("hour=*")):
            part = Partition(dt_dir.name[3:], hour_dir.name[5:])
            out[part] = sorted(hour_dir.glob("*.parquet"))
    return out


def _compacted(lake: Lake, parts: dict[Partition, list[Path]]) -> dict[Partition, list[Path]]:
    """The same partitions after ``changelake compact``: each one rewritten by the product's
    compaction (one row per event, sorted, :func:`changelake_lake.compaction.dedupe_and_sort`) into
    one file (cached next to the lake)."""
    from changelake_lake.compaction import dedupe_and_sort
    from changelake_lake.rewrite import read_tables, write_parts

    root = lake.root / "compacted"
    done = root / "done"
    out: dict[Partition, list[Path]] = {}
    for part, paths in parts.items():
        target = root / part.path / "part-00000.parquet"
        out[part] = [target]
        if done.exists():
            continue
        rows, _ = read_tables(lambda key: Path(key).read_bytes(), [str(p) for p in paths])
        [blob] = write_parts(dedupe_and_sort(rows), rows.num_rows, 65_536)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    root.mkdir(parents=True, exist_ok=True)
    done.touch()
    return out


def _prune(parts: dict[Partition, list[Path]], start_us: int, end_us: int) -> list[Path]:
    files: list[Path] = []
    for part, paths in parts.items():
        p_start = datetime_to_us(part.start())
        if p_start < end_us and p_start + _US_PER_HOUR > start_us:
            files.extend(paths)
    return files


def _run(con: duckdb.DuckDBPyConnection, sql: str, files: list[Path], reps: int) -> Measured:
    times = []
    rows: list[tuple[Any, ...]] = []
    for _ in range(reps):
        start = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - start)
    return Measured(
        seconds=round(min(times), 4),
        seconds_all=[round(t, 4) for t in times],
        files=len(files),
        bytes_files=sum(p.stat().st_size for p in files),
        rows=rows,
    )


def _unescape(template: str) -> str:
    # The SQL texts double their literal braces for str.format; only placeholders are replaced.
    return template.replace("{{", "\x00").replace("}}", "\x01")


def _braces(text: str) -> str:
    return text.replace("\x00", "{").replace("\x01", "}")


def _prune_arrival(files: list[Path], lake: Lake, start_us: int, end_us: int) -> list[Path]:
    out = []
    for path in files:
        y, m, d, h = path.relative_to(lake.firehose).parts[:4]
        hour_start = datetime_to_us(datetime.fromisoformat(f"{y}-{m}-{d}T{h}:00:00+00:00"))
        if hour_start < end_us and hour_start + _US_PER_HOUR > start_us:
            out.append(path)
    return out


def _column_bytes(files: list[Path], columns: set[str]) -> int:
    """Footer plus compressed chunks of ``columns``: what a columnar engine must read."""
    import pyarrow.parquet as pq

    total = 0
    for path in files:
        meta = pq.ParquetFile(path).metadata
        total += meta.serialized_size + 8
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                if col.path_in_schema.split(".")[0] in columns:
                    total += col.total_compressed_size
    return total


def run(
    *,
    changes: int = 1_000_000,
    days: int = 30,
    seed: int = 7,
    file_minutes: int = 15,
    reps: int = 3,
    threads: int = 2,
    cache_dir: Path = Path(".cache/bench"),
    progress: Progress | None = None,
    snapshot: bool = True,
) -> BenchResult:
    """Build (or reuse) the lake and time both questions on both layouts."""
    say: Callable[[str], None] = progress or (lambda _m: None)
    spec = LakeSpec(changes=changes, days=days, seed=seed, file_minutes=file_minutes)
    lake = build(spec, cache_dir, say)
    parts = _partitions(lake)
    say("query: compacting the lake (one sorted file per partition-hour)")
    compacted = _compacted(lake, parts)
    fh_files = sorted(p for p in lake.firehose.rglob("*") if p.is_file())

    cutoff_us = spec.end_us - 3 * 86_400 * 1_000_000
    day_start_us = spec.end_us - (min(days, 2)) * 86_400 * 1_000_000  # a full day inside the window
    day_end_us = day_start_us + 86_400 * 1_000_000
    cutoff, day_start, day_end = (us_to_datetime(x) for x in (cutoff_us, day_start_us, day_end_us))

    ours_files = {
        "current": _prune(parts, cutoff_us, spec.end_us),
        "per_hour": _prune(parts, day_start_us, day_end_us),
    }
    compacted_files = {
        "current": _prune(compacted, cutoff_us, spec.end_us),
        "per_hour": _prune(compacted, day_start_us, day_end_us),
    }
    # What an expert would do with the Firehose layout: Athena partition projection with a
    # storage.location.template over the arrival-time YYYY/MM/DD/HH/ prefixes, one hour of
    # slack each side for late arrivals. Informational: not the design the targets compare to.
    pruned_files = {
        "current": _prune_arrival(fh_files, lake, cutoff_us - _US_PER_HOUR, spec.end_us),
        "per_hour": _prune_arrival(
            fh_files, lake, day_start_us - _US_PER_HOUR, day_end_us + _US_PER_HOUR
        ),
    }
    sql = {
        "current": {
            "ours": CURRENT_OURS.replace("{cutoff}", cutoff.isoformat()),
            "firehose": CURRENT_FIREHOSE.replace(
                "{cutoff_naive}", cutoff.replace(tzinfo=None).isoformat()
            ),
        },
        "per_hour": {
            "ours": PER_HOUR_OURS.replace("{day_start}", day_start.isoformat()).replace(
                "{day_end}", day_end.isoformat()
            ),
            "firehose": PER_HOUR_FIREHOSE.replace(
                "{day_start_naive}", day_start.replace(tzinfo=None).isoformat()
            ).replace("{day_end_naive}", day_end.replace(tzinfo=None).isoformat()),
        },
    }
    con = duckdb.connect(config={"threads": threads})
    results: dict[str, dict[str, Measured]] = {"current": {}, "per_hour": {}}
    for q in ("current", "per_hour"):
        for layout_name, files, text in (
            ("ours", ours_files[q], sql[q]["ours"]),
            ("firehose", fh_files, sql[q]["firehose"]),
            ("firehose_pruned", pruned_files[q], sql[q]["firehose"]),
            ("compacted", compacted_files[q], sql[q]["ours"]),
        ):
            say(f"query: {q}, {layout_name} ({len(files)} files)")
            statement = _braces(_unescape(text).replace("{files}", _sql_list(files)))
            results[q][layout_name] = _run(con, statement, files, reps)
    con.close()
    ours_current, ours_hourly = ours_files["current"], ours_files["per_hour"]

    col_bytes = {
        "current": _column_bytes(
            ours_current,
            {
                "pk",
                "item_key",
                "event_name",
                "new_image",
                "event_time",
                "sequence_number",
                "event_id",
            },
        ),
        "per_hour": _column_bytes(ours_hourly, {"event_time", "event_id"}),
    }
    notes: list[str] = []
    same_current = _same_current(
        results["current"]["ours"].rows, results["current"]["firehose"].rows
    )
    same_hourly = results["per_hour"]["ours"].rows == results["per_hour"]["firehose"].rows
    for q in ("current", "per_hour"):
        full, cut = results[q]["firehose"].rows, results[q]["firehose_pruned"].rows
        if (q == "current" and not _same_current(full, cut)) or (q == "per_hour" and full != cut):
            notes.append(f"MISMATCH: '{q}' differs between full and prefix-pruned Firehose scans")
    if not same_current:
        notes.append("MISMATCH: 'current' returned different items on the two layouts")
    for q in ("current", "per_hour"):
        if sorted(results[q]["compacted"].rows) != sorted(results[q]["ours"].rows):
            notes.append(f"MISMATCH: '{q}' differs after compaction")
    if not same_hourly:
        notes.append("MISMATCH: 'per_hour' returned different counts on the two layouts")
    if not str(lake.manifest.get("writer", "")).startswith("consumer"):
        notes.append("our layout written by the pyarrow fallback (consumer writer not available)")

    ours: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    rows: list[Row] = []
    for q in ("current", "per_hour"):
        o, b = results[q]["ours"], results[q]["firehose"]
        ours[q] = {**o.summary(), "bytes_columns": col_bytes[q]}
        pr = results[q]["firehose_pruned"]
        baseline[q] = {**b.summary(), "prefix_pruned": pr.summary()}
        ratios[f"{q}_fewer_bytes_vs_prefix_pruned"] = ratio(pr.bytes_files, o.bytes_files)
        ratios[f"{q}_faster_vs_prefix_pruned"] = ratio(pr.seconds, o.seconds)
        ratios[f"{q}_fewer_bytes"] = ratio(b.bytes_files, o.bytes_files)
        ratios[f"{q}_fewer_bytes_columns"] = ratio(b.bytes_files, col_bytes[q])
        ratios[f"{q}_faster"] = ratio(b.seconds, o.seconds)
        c = results[q]["compacted"]
        ours[q]["after_compaction"] = c.summary()
        ratios[f"{q}_fewer_files_after_compaction"] = ratio(o.files, c.files)
        ratios[f"{q}_faster_after_compaction"] = ratio(o.seconds, c.seconds)
        rows += [
            Row(
                f"{q}: after compaction vs before, files read",
                c.files,
                o.files,
                ratios[f"{q}_fewer_files_after_compaction"],
            ),
            Row(
                f"{q}: after compaction vs before, bytes read",
                c.bytes_files,
                o.bytes_files,
                ratio(o.bytes_files, c.bytes_files),
            ),
            Row(
                f"{q}: after compaction vs before, seconds (best of {reps})",
                c.seconds,
                o.seconds,
                ratios[f"{q}_faster_after_compaction"],
            ),
        ]
        rows += [
            Row(
                f"{q}: bytes read (files touched)",
                o.bytes_files,
                b.bytes_files,
                ratios[f"{q}_fewer_bytes"],
                Target(f"{q}_fewer_bytes", ">=", 50, "x"),
                ratios[f"{q}_fewer_bytes"],
            ),
            Row(
                f"{q}: bytes read (Parquet columns needed)",
                col_bytes[q],
                b.bytes_files,
                ratios[f"{q}_fewer_bytes_columns"],
            ),
            Row(
                f"{q}: seconds (best of {reps})",
                o.seconds,
                b.seconds,
                ratios[f"{q}_faster"],
                Target(f"{q}_faster", ">=", 10, "x"),
                ratios[f"{q}_faster"],
            ),
            Row(
                f"{q}: bytes vs Firehose pruned by arrival prefix",
                o.bytes_files,
                pr.bytes_files,
                ratios[f"{q}_fewer_bytes_vs_prefix_pruned"],
            ),
            Row(
                f"{q}: seconds vs Firehose pruned by arrival prefix",
                o.seconds,
                pr.seconds,
                ratios[f"{q}_faster_vs_prefix_pruned"],
            ),
            Row(
                f"{q}: rows returned (same answer: "
                f"{same_current if q == 'current' else same_hourly})",
                len(o.rows),
                len(b.rows),
            ),
        ]
    if snapshot:
        say("query: current with snapshot, 1x and 10x history (moto S3 + Glue, local engine)")
        snap_ours, snap_rows, snap_notes = snapshot_query.run(**snapshot_query.sizes_for(changes))
        ours.update(snap_ours)
        ratios["current_snapshot_bytes_10x_vs_1x"] = snap_ours["current_with_snapshot"][
            "bytes_10x_vs_1x"
        ]
        rows += snap_rows
        notes += snap_notes
    m = lake.manifest
    return BenchResult(
        bench="query",
        params={
            "changes": changes,
            "days": days,
            "seed": seed,
            "file_minutes": file_minutes,
            "reps": reps,
            "duckdb_threads": threads,
            "duckdb": duckdb.__version__,
            "lake": str(lake.root),
            "lake_build_seconds": m.get("seconds_to_build"),
            "ours_files": m.get("ours_files"),
            "ours_bytes": m.get("ours_bytes"),
            "firehose_files": m.get("firehose_files"),
            "firehose_bytes": m.get("firehose_bytes"),
            "writer": m.get("writer"),
            "cutoff": cutoff.isoformat(),
            "day": day_start.date().isoformat(),
        },
        ours=ours,
        baseline=baseline,
        ratio=ratios,
        rows=rows,
        notes=notes,
    )


def _same_current(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    # Images are the same item in two JSON spellings (plain vs DynamoDB JSON): compare keys.
    return sorted(str(r[0]) for r in a) == sorted(str(r[0]) for r in b)


__all__ = ["LakeSpec", "run"]
