"""Decoded rows → Parquet bytes (zstd): the one path the processor and the benchmark share."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq
from changelake.events import DecodeFailure, Position
from changelake.privacy import PrivacyPolicy
from changelake_lake.column_policy import ChangeColumns

from changelake_consumer.rows import prepare

COMPRESSION = "zstd"
SCHEMA_VERSION = b"1"


def table_to_parquet(table: pa.Table, metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize one Arrow table as a single Parquet file (zstd, one row group).

    ``metadata`` (the privacy policy's version and rules) joins the file's key-value metadata.
    """
    extra = {k.encode(): v.encode() for k, v in (metadata or {}).items()}
    table = table.replace_schema_metadata({b"changelake.schema_version": SCHEMA_VERSION, **extra})
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        row_group_size=max(table.num_rows, 1),
        write_statistics=True,
    )
    return bytes(sink.getvalue().to_pybytes())


_gc_lock = threading.Lock()
_gc_pausers = [0, False]  # [threads inside gc_paused, whether gc was enabled at the first]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is decoded (docs/adr/0014).

    Decoding allocates several container objects per record and keeps the batch's cells alive,
    so generational collections keep rescanning everything the batch holds (and whatever the
    caller holds) for cycles the decoder never makes; plain reference counting still frees
    everything. Nestable and thread-safe: the collector comes back on when the last thread
    leaves, and only if it was on when the first entered.
    """
    with _gc_lock:
        if _gc_pausers[0] == 0:
            _gc_pausers[1] = gc.isenabled()
            gc.disable()
        _gc_pausers[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers[0] -= 1
            if _gc_pausers[0] == 0 and _gc_pausers[1]:
                gc.enable()


def decode_into(
    records: Sequence[tuple[bytes, Position]],
    table: str | None = None,
    privacy: PrivacyPolicy | None = None,
) -> tuple[ChangeColumns, list[DecodeFailure]]:
    """Decode raw Kinesis records straight into columns; failures come back as values."""
    columns = ChangeColumns()
    failures: list[DecodeFailure] = []
    add = columns.add
    with gc_paused():
        for raw, position in records:
            row = prepare(raw, position, table, privacy)
            if isinstance(row, DecodeFailure):
                failures.append(row)
            else:
                add(row)
    return columns, failures


def records_to_parquet(
    records: Sequence[tuple[bytes, Position]], table: str, privacy: PrivacyPolicy | None = None
) -> bytes:
    """Raw records of one table → one Parquet file (bad records are left out, see decode_into)."""
    columns, _ = decode_into(records, table, privacy)
    with gc_paused():
        arrow_table = columns.to_table()
    return table_to_parquet(arrow_table, privacy.metadata(table) if privacy is not None else None)
