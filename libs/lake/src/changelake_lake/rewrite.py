"""Rewrite one change-table partition and switch readers to it atomically (ADR 0033, 0034).

The reusable primitive behind ``changelake compact`` and ``changelake erase``::

    rewrite_partition(store, catalog, bucket, table, partition, transform, reason=…)

A partition ``(dt, hour)`` of ``<table>_changes`` has a *base prefix* where the consumer always
writes (``changes/<t>/dt=…/hour=…/``, ADR 0006) and, once rewritten, a *generation*: a folder
``changes/<t>/compacted/dt=…/hour=…/g=<n>-<digest>/`` holding the rewritten parts and a
``_manifest.json``. The Glue partition's location names what readers read: the base prefix
until the first rewrite, the current generation after it. A generation lives *outside* the base
prefix on purpose: Athena reads every object under a location, sub-folders included, so a
generation nested in the base prefix would be read twice by a query planned before the swap.

Steps (each one idempotent; ``crash`` is called after each so tests can stop at any point):

1. **inputs**: the files of the current generation (its parts and late copies) plus the base
   prefix's change objects not already folded into it (the manifest's ``folded``);
2. **parts**: ``transform`` (dedupe + sort, or drop one item's rows) over all input rows,
   written as ``part-NNNNN.parquet`` into a new generation named by the input keys and the
   reason (a crashed run rerun on the same inputs writes the same keys);
3. **manifest**: ``_manifest.json`` last — a generation without one is never swapped to;
4. **swap**: one ``UpdatePartition`` moves the location: readers see the old files or the new
   ones, never both nor neither;
5. **trash record**: ``changes/<t>/compacted/_trash/…json`` lists what the swap made garbage
   (the old generation, the folded base objects, crashed runs' generations) and when it may go
   (``not_before`` = now + ``grace``, longer than the longest query);
6. **carry-over**: change objects that reached the *old* location after step 1 (late data the
   catalog copied there, or consumer objects in the base prefix) are copied into the new one.

:func:`collect_trash` deletes what due trash records list, never anything under a partition's
current location. :func:`make_visible` is the catalog's half of late data (ADR 0034): a change
object landing in the base prefix of a partition whose location is a generation is copied into
that generation, then the location is re-read and the copy repeated if it moved meanwhile.

One rewriter per table at a time (the scheduled task is the only one); readers and the
consumer and catalog run concurrently without coordination.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from changelake.ports import ObjectStore

from changelake_lake.layout import (
    Partition,
    changes_partition_prefix,
    changes_prefix,
    parse_change_object_key,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

COMPACTED = "compacted"
MANIFEST = "_manifest.json"
TRASH = "_trash"
PART_RE = re.compile(r"part-\d{5}\.parquet\Z")
_GENERATION_RE = re.compile(r"g=(?P<number>\d{6})-(?P<digest>[0-9a-f]{8})/\Z")
FORMAT = 1

Transform = Callable[["pa.Table"], "pa.Table"]
Crash = Callable[[str], None]


def _no_crash(step: str) -> None:
    del step


class PartitionCatalog(Protocol):
    """The partitions of ``<table>_changes`` and where each one's files are (Glue).

    ``set_location`` is ONE catalog write (Glue ``UpdatePartition``): the atomic switch.
    Locations are ``s3://bucket/prefix/`` URLs.
    """

    def locations(
        self, table: str, partitions: Sequence[Partition] | None = None
    ) -> dict[Partition, str]:
        """Registered partitions (all, or those of ``partitions`` that exist) → location."""
        ...

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """Point the partition at ``location`` (and the table's current columns)."""
        ...

    def drop(self, table: str, partitions: Sequence[Partition]) -> None:
        """Deregister partitions (missing ones are no error)."""
        ...


@dataclass(frozen=True, slots=True)
class Lake:
    """The lake a rewrite works on: its objects, its partition catalog and its bucket."""

    store: ObjectStore
    catalog: PartitionCatalog
    bucket: str


# -- layout ------------------------------------------------------------------------------------


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def key_of(bucket: str, url: str) -> str:
    """The key (prefix) of an ``s3://bucket/…`` URL of this bucket."""
    head = f"s3://{bucket}/"
    if not url.startswith(head):
        raise ValueError(f"{url!r} is not in bucket {bucket!r}")
    key = url[len(head) :]
    return key if key.endswith("/") or not key else key + "/"


def compacted_prefix(table: str) -> str:
    """``changes/<t>/compacted/``: every generation and trash record of the table."""
    return changes_prefix(table) + COMPACTED + "/"


def generations_prefix(table: str, partition: Partition) -> str:
    """``changes/<t>/compacted/dt=…/hour=…/``: the generations of one partition."""
    return compacted_prefix(table) + partition.path


def generation_prefix(table: str, partition: Partition, generation: str) -> str:
    """``changes/<t>/compacted/dt=…/hour=…/g=<generation>/``."""
    return generations_prefix(table, partition) + f"g={generation}/"


def generation_of(table: str, partition: Partition, prefix: str) -> str | None:
    """The generation a location prefix names, ``None`` for the base prefix (or anything else)."""
    head = generations_prefix(table, partition)
    if not prefix.startswith(head):
        return None
    match = _GENERATION_RE.match(prefix[len(head) :])
    return f"{match['number']}-{match['digest']}" if match else None


def trash_prefix(table: str) -> str:
    """``changes/<t>/compacted/_trash/``: pending deletions (engines skip ``_`` names)."""
    return compacted_prefix(table) + TRASH + "/"


def trash_key(table: str, partition: Partition, generation: str) -> str:
    """The trash record written when ``generation`` became the partition's location."""
    return trash_prefix(table) + f"dt={partition.dt}-hour={partition.hour}-g={generation}.json"


def expire_trash_key(table: str, partition: Partition) -> str:
    """The trash record of an expired (deregistered) partition."""
    return trash_prefix(table) + f"dt={partition.dt}-hour={partition.hour}-expire.json"


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\n")
    return h.hexdigest()[:8]


def _dump(table: str, partition: Partition, fields: dict[str, object]) -> bytes:
    """A maintenance document: format, table, partition, then ``fields``."""
    head = {"format": FORMAT, "table": table, "dt": partition.dt, "hour": partition.hour}
    return orjson.dumps({**head, **fields}, option=orjson.OPT_INDENT_2)


def _load(data: bytes, what: str) -> tuple[dict[str, Any], str, Partition]:
    """Parse a maintenance document: (document, table, partition); ``ValueError`` if not one."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a changelake {what}")
    return doc, str(doc["table"]), Partition(str(doc["dt"]), str(doc["hour"]))


# -- manifests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a generation holds and what it was made from (``_manifest.json``)."""

    table: str
    partition: Partition
    generation: str
    reason: str
    parts: tuple[str, ...]
    rows: int
    inputs: tuple[str, ...]
    folded: tuple[str, ...]
    """Base-prefix objects whose rows are in this generation (cumulative over generations)."""
    previous_location: str
    created_at: str

    def to_json(self) -> bytes:
        """The manifest document."""
        return _dump(
            self.table,
            self.partition,
            {
                "generation": self.generation,
                "reason": self.reason,
                "parts": list(self.parts),
                "rows": self.rows,
                "inputs": list(self.inputs),
                "folded": list(self.folded),
                "previous_location": self.previous_location,
                "created_at": self.created_at,
            },
        )

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest document (``ValueError`` if it is not one)."""
        doc, table, partition = _load(data, "generation manifest")
        return cls(
            table=table,
            partition=partition,
            generation=str(doc["generation"]),
            reason=str(doc["reason"]),
            parts=tuple(doc["parts"]),
            rows=int(doc["rows"]),
            inputs=tuple(doc["inputs"]),
            folded=tuple(doc["folded"]),
            previous_location=str(doc["previous_location"]),
            created_at=str(doc["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class TrashRecord:
    """Objects that became garbage when ``location`` became current; deletable after a time."""

    table: str
    partition: Partition
    location: str
    """The location that made these objects garbage; empty when the partition was expired."""
    not_before: datetime
    keys: tuple[str, ...]
    prefixes: tuple[str, ...]

    def to_json(self) -> bytes:
        """The trash record document."""
        return _dump(
            self.table,
            self.partition,
            {
                "location": self.location,
                "not_before": self.not_before.isoformat(),
                "keys": list(self.keys),
                "prefixes": list(self.prefixes),
            },
        )

    @classmethod
    def from_json(cls, data: bytes) -> TrashRecord:
        """Parse a trash record (``ValueError`` if it is not one)."""
        doc, table, partition = _load(data, "trash record")
        return cls(
            table=table,
            partition=partition,
            location=str(doc["location"]),
            not_before=datetime.fromisoformat(str(doc["not_before"])),
            keys=tuple(doc["keys"]),
            prefixes=tuple(doc["prefixes"]),
        )


# -- reading a partition's state ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionFiles:
    """Where a partition stands: its location, generation, and the files that hold its rows."""

    table: str
    partition: Partition
    location: str
    generation: str | None
    manifest: Manifest | None
    base_objects: tuple[str, ...]
    """Change objects directly in the base prefix (the consumer's)."""
    generation_files: tuple[str, ...]
    """Change objects in the current generation (its parts and late copies)."""

    @property
    def folded(self) -> frozenset[str]:
        """Base objects already in the current generation."""
        return frozenset(self.manifest.folded) if self.manifest else frozenset()

    @property
    def pending_base(self) -> tuple[str, ...]:
        """Base objects not yet in what readers read (late data, or all before a rewrite)."""
        if self.generation is None:
            return self.base_objects
        return tuple(k for k in self.base_objects if k not in self.folded)

    @property
    def late_copies(self) -> tuple[str, ...]:
        """Files of the generation that are not its own parts (late data copied in)."""
        parts = set(self.manifest.parts) if self.manifest else set()
        return tuple(k for k in self.generation_files if k not in parts)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every object whose rows a rewrite must read (deduplicated by the transform)."""
        if self.generation is None:
            return self.base_objects
        return self.generation_files + self.pending_base

    @property
    def settled(self) -> bool:
        """Rewritten, and nothing arrived since (a rewrite would change nothing)."""
        return self.generation is not None and not self.late_copies and not self.pending_base


def _change_objects(store: ObjectStore, prefix: str) -> list[str]:
    """``*.parquet`` directly under ``prefix`` (names engines skip, ``_``/``.``, left out)."""
    found = []
    for key in store.list(prefix):
        name = key[len(prefix) :]
        if "/" in name or not name.endswith(".parquet") or name.startswith(("_", ".")):
            continue
        found.append(key)
    return found


def read_partition(lake: Lake, table: str, partition: Partition, location: str) -> PartitionFiles:
    """The partition's files as they are now, given its catalog location."""
    store, bucket = lake.store, lake.bucket
    base = changes_partition_prefix(table, partition)
    base_objects = [k for k in _change_objects(store, base) if parse_change_object_key(k)]
    prefix = key_of(bucket, location)
    generation = generation_of(table, partition, prefix)
    manifest = None
    files: list[str] = []
    if generation is not None:
        manifest = Manifest.from_json(store.get(prefix + MANIFEST))
        files = _change_objects(store, prefix)
    elif prefix != base:
        raise ValueError(
            f"{table} {partition.path}: location {location} is neither the base prefix "
            "nor a generation"
        )
    return PartitionFiles(
        table,
        partition,
        location,
        generation,
        manifest,
        tuple(base_objects),
        tuple(files),
    )


# -- the rewrite -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewriteResult:
    """What one rewrite did."""

    table: str
    partition: Partition
    generation: str
    location: str
    previous_location: str
    inputs: int
    input_bytes: int
    rows_in: int
    rows_out: int
    parts: tuple[str, ...]
    part_bytes: tuple[int, ...]
    carried_over: tuple[str, ...] = ()
    trash: tuple[str, ...] = field(default_factory=tuple)


def read_tables(get: Callable[[str], bytes], keys: Sequence[str]) -> tuple[pa.Table, int]:
    """All rows of ``keys`` (read with ``get``) as one table, columns unified by name, and the
    bytes read; the files' key-value metadata (privacy policy version) is kept, last wins."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    size = 0
    metadata: dict[bytes, bytes] = {}
    for key in keys:
        data = get(key)
        size += len(data)
        table = pq.read_table(io.BytesIO(data))
        metadata.update(table.schema.metadata or {})
        tables.append(table.replace_schema_metadata(None))
    if not tables:
        return pa.table({}), 0
    merged = pa.concat_tables(tables, promote_options="default")
    return merged.replace_schema_metadata(metadata or None), size


def write_parts(table: pa.Table, part_rows: int, row_group_rows: int) -> list[bytes]:
    """Parquet bytes of ``table`` cut into parts of ``part_rows`` rows (zstd, statistics on)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: list[bytes] = []
    for start in range(0, table.num_rows, max(part_rows, 1)):
        chunk = table.slice(start, part_rows)
        sink = pa.BufferOutputStream()
        pq.write_table(
            chunk,
            sink,
            compression="zstd",
            row_group_size=max(1, row_group_rows),
            write_statistics=True,
        )
        out.append(bytes(sink.getvalue().to_pybytes()))
    return out


SAMPLE_ROWS = 50_000


def part_count(table: pa.Table, input_bytes: int, target_bytes: int, row_group_rows: int) -> int:
    """How many parts of at least ``target_bytes`` the rewritten rows make (0 for no rows).

    One unless the inputs exceed the target; then the output size is estimated from a written
    sample of the (sorted) rows and rounded *down* to whole targets, so every part is at least
    the target even when the estimate is off by the sample's error.
    """
    if table.num_rows == 0:
        return 0
    if input_bytes <= target_bytes:
        return 1
    sample = min(table.num_rows, SAMPLE_ROWS)
    [blob] = write_parts(table.slice(0, sample), sample, row_group_rows)
    estimate = len(blob) * table.num_rows // sample
    return int(max(1, estimate // max(target_bytes, 1)))


def rewrite_partition(
    lake: Lake,
    table: str,
    partition: Partition,
    transform: Transform,
    *,
    reason: str,
    grace: timedelta,
    target_file_bytes: int = 128 * 1024 * 1024,
    row_group_rows: int = 65_536,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    crash: Crash = _no_crash,
) -> RewriteResult | None:
    """Rewrite the partition's rows through ``transform`` into a new generation and swap to it.

    ``reason`` names the rewrite (``compact``, ``erase:<digest>``): with the input keys it
    names the generation, so a rerun after a crash writes the same keys. Returns ``None``
    when the partition is not registered. See the module doc for the steps.
    """
    store, bucket = lake.store, lake.bucket
    location = lake.catalog.locations(table, [partition]).get(partition)
    if location is None:
        return None
    state = read_partition(lake, table, partition, location)
    inputs = state.inputs
    rows, input_bytes = read_tables(store.get, inputs)
    crash("inputs-read")
    out = transform(rows)
    number = int(state.generation.split("-")[0]) + 1 if state.generation else 1
    generation = f"{number:06d}-{_digest([reason, *sorted(inputs)])}"
    prefix = generation_prefix(table, partition, generation)
    new_location = s3_url(bucket, prefix)
    n_parts = part_count(out, input_bytes, target_file_bytes, row_group_rows)
    part_rows = -(-out.num_rows // n_parts) if n_parts else 0
    blobs = write_parts(out, part_rows, row_group_rows) if n_parts else []
    parts = []
    for i, blob in enumerate(blobs):
        key = prefix + f"part-{i:05d}.parquet"
        store.put(key, blob, "application/vnd.apache.parquet")
        parts.append(key)
        crash("part-written")
    folded = sorted((state.folded | set(state.pending_base)) & set(state.base_objects))
    manifest = Manifest(
        table=table,
        partition=partition,
        generation=generation,
        reason=reason,
        parts=tuple(parts),
        rows=out.num_rows,
        inputs=tuple(inputs),
        folded=tuple(folded),
        previous_location=location,
        created_at=now().isoformat(),
    )
    store.put(prefix + MANIFEST, manifest.to_json(), "application/json")
    crash("manifest-written")
    lake.catalog.set_location(table, partition, new_location)
    log.info(
        "partition swapped",
        extra={
            "table": table,
            "partition": partition.path,
            "from": location,
            "to": new_location,
            "rows_in": rows.num_rows,
            "rows_out": out.num_rows,
        },
    )
    crash("swapped")
    trash = record_trash(lake, manifest, new_location, now() + grace)
    crash("trash-recorded")
    carried = carry_over(lake, manifest, seen=set(inputs))
    crash("carried-over")
    return RewriteResult(
        table=table,
        partition=partition,
        generation=generation,
        location=new_location,
        previous_location=location,
        inputs=len(inputs),
        input_bytes=input_bytes,
        rows_in=rows.num_rows,
        rows_out=out.num_rows,
        parts=tuple(parts),
        part_bytes=tuple(len(b) for b in blobs),
        carried_over=tuple(carried),
        trash=trash.keys + trash.prefixes,
    )


def record_trash(
    lake: Lake, manifest: Manifest, location: str, not_before: datetime
) -> TrashRecord:
    """Write the trash record of a swap to ``manifest``'s generation (idempotent: kept if there).

    Garbage: the base objects newly folded, the previous generation, and generations of the
    partition that were never swapped to (crashed runs) — never the current location.
    """
    store, bucket = lake.store, lake.bucket
    table, partition = manifest.table, manifest.partition
    key = trash_key(table, partition, manifest.generation)
    try:
        return TrashRecord.from_json(store.get(key))
    except KeyError:
        pass
    current = key_of(bucket, location)
    previous = key_of(bucket, manifest.previous_location)
    prefixes = set()
    if generation_of(table, partition, previous) is not None:
        prefixes.add(previous)
    head = generations_prefix(table, partition)
    for key_ in store.list(head):
        gen_dir = key_[: len(head)] + key_[len(head) :].split("/", 1)[0] + "/"
        if gen_dir != current and generation_of(table, partition, gen_dir) is not None:
            prefixes.add(gen_dir)
    previous_folded: set[str] = set()
    if generation_of(table, partition, previous) is not None:
        try:
            previous_folded = set(Manifest.from_json(store.get(previous + MANIFEST)).folded)
        except KeyError:
            previous_folded = set()
    record = TrashRecord(
        table=table,
        partition=partition,
        location=location,
        not_before=not_before,
        keys=tuple(sorted(set(manifest.folded) - previous_folded)),
        prefixes=tuple(sorted(prefixes)),
    )
    store.put(key, record.to_json(), "application/json")
    return record


def ensure_trash(lake: Lake, state: PartitionFiles, not_before: datetime) -> TrashRecord | None:
    """Record garbage a crash left unrecorded (a swap without its trash record, a rewrite that
    never swapped): folded base objects still there, or generations other than the current."""
    if state.manifest is None:
        return None
    record = trash_key(state.table, state.partition, state.manifest.generation)
    if record in set(lake.store.list(record)):
        return None
    current = key_of(lake.bucket, state.location)
    head = generations_prefix(state.table, state.partition)
    stale_generation = any(not key.startswith(current) for key in lake.store.list(head))
    if not stale_generation and not state.folded & set(state.base_objects):
        return None
    return record_trash(lake, state.manifest, state.location, not_before)


def carry_over(lake: Lake, manifest: Manifest, *, seen: set[str]) -> list[str]:
    """Copy change objects that reached the previous location after the inputs were listed."""
    store = lake.store
    table, partition = manifest.table, manifest.partition
    new_prefix = generation_prefix(table, partition, manifest.generation)
    old = key_of(lake.bucket, manifest.previous_location)
    carried = []
    for key in _change_objects(store, old):
        if key in seen or PART_RE.match(key.rsplit("/", 1)[-1]):
            continue
        target = new_prefix + key.rsplit("/", 1)[-1]
        try:
            store.put(target, store.get(key), "application/vnd.apache.parquet")
        except KeyError:
            continue  # deleted meanwhile (a later run collected it): nothing to carry
        carried.append(target)
    if carried:
        log.info(
            "late objects carried over",
            extra={"table": table, "partition": partition.path, "count": len(carried)},
        )
    return carried


@dataclass(frozen=True, slots=True)
class TrashOutcome:
    """What :func:`collect_trash` did."""

    records: int
    deleted: int
    pending: int


def collect_trash(
    lake: Lake,
    table: str,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    crash: Crash = _no_crash,
) -> TrashOutcome:
    """Delete what every due trash record lists, then the record (idempotent, resumable).

    A key under a partition's *current* location is never deleted, whatever a record says.
    """
    store, bucket = lake.store, lake.bucket
    records = deleted = pending = 0
    current = {
        p: key_of(bucket, loc)
        for p, loc in lake.catalog.locations(table).items()
        if loc.startswith(f"s3://{bucket}/")
    }
    for record_key in list(store.list(trash_prefix(table))):
        record = TrashRecord.from_json(store.get(record_key))
        keep = current.get(record.partition)
        expiring = not record.location
        if record.not_before > now() or (expiring and record.partition in current):
            pending += 1  # not yet; or an expire that crashed before deregistering
            continue
        keys = list(record.keys)
        for prefix in record.prefixes:
            if prefix == keep:
                continue
            keys.extend(store.list(prefix))
        for key in keys:
            if keep is not None and key.startswith(keep):
                continue
            store.delete(key)
            deleted += 1
            crash("trash-deleted")
        store.delete(record_key)
        records += 1
        crash("trash-record-removed")
    return TrashOutcome(records, deleted, pending)


# -- late data (the catalog's half) ------------------------------------------------------------


def make_visible(
    lake: Lake, table: str, objects: dict[Partition, list[str]], *, attempts: int = 5
) -> list[str]:
    """Copy late change objects into their partition's generation until the location is stable.

    ``objects`` are new base-prefix objects by partition. A partition still at its base prefix
    needs nothing (readers list it). For one at a generation, each object is copied under the
    same name into it (unless the generation already folded it), then the location is read
    again: if a rewrite swapped meanwhile, the copy is repeated into the new generation (the
    rewrite's carry-over covers copies made before its own listing). Returns the copies made.
    """
    store, bucket = lake.store, lake.bucket
    copies: list[str] = []
    todo = {p: keys for p, keys in objects.items() if keys}
    seen: dict[Partition, str] = {}
    for _ in range(attempts):
        if not todo:
            return copies
        locations = lake.catalog.locations(table, sorted(todo))
        nxt: dict[Partition, list[str]] = {}
        for partition, keys in todo.items():
            location = locations.get(partition)
            if location is None or location == seen.get(partition):
                continue
            prefix = key_of(bucket, location)
            if generation_of(table, partition, prefix) is None:
                continue
            try:
                folded = set(Manifest.from_json(store.get(prefix + MANIFEST)).folded)
            except KeyError:
                folded = set()
            for key in keys:
                if key in folded:
                    continue
                try:
                    data = store.get(key)
                except KeyError:
                    continue
                target = prefix + key.rsplit("/", 1)[-1]
                store.put(target, data, "application/vnd.apache.parquet")
                copies.append(target)
            seen[partition] = location
            nxt[partition] = keys
        todo = nxt
    if todo:
        log.warning(
            "partition location kept moving; late objects left to the next rewrite",
            extra={"table": table, "partitions": [p.path for p in todo]},
        )
    return copies
