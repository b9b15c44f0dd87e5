"""Decoded rows → Parquet bytes (zstd): the one path the processor and the benchmark share."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from changelake.events import DecodeFailure, Position

from changelake_consumer.columns import ChangeColumns
from changelake_consumer.rows import prepare

COMPRESSION = "zstd"
SCHEMA_VERSION = b"1"


def table_to_parquet(table: pa.Table) -> bytes:
    """Serialize one Arrow table as a single Parquet file (zstd, one row group)."""
    table = table.replace_schema_metadata({b"changelake.schema_version": SCHEMA_VERSION})
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        row_group_size=max(table.num_rows, 1),
        write_statistics=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def decode_into(
    records: Sequence[tuple[bytes, Position]], table: str | None = None
) -> tuple[ChangeColumns, list[DecodeFailure]]:
    """Decode raw Kinesis records straight into columns; failures come back as values."""
    columns = ChangeColumns()
    failures: list[DecodeFailure] = []
    for raw, position in records:
        row = prepare(raw, position, table)
        if isinstance(row, DecodeFailure):
            failures.append(row)
        else:
            columns.add(row)
    return columns, failures


def records_to_parquet(records: Sequence[tuple[bytes, Position]], table: str) -> bytes:
    """Raw records of one table → one Parquet file (bad records are left out, see decode_into)."""
    columns, _ = decode_into(records, table)
    return table_to_parquet(columns.to_table())
