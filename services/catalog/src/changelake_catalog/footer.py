"""Read a Parquet object's schema from its footer alone, with ranged GETs (no full download).

A Parquet file ends with ``<footer><4-byte little-endian footer length>PAR1``. One ranged GET
of the tail (``catalog_footer_bytes``) usually holds the whole footer; a larger footer costs
one more ranged GET of exactly its size. The footer bytes behind a leading ``PAR1`` form a
file that pyarrow can read the schema of (row-group offsets are never dereferenced).
"""

from __future__ import annotations

import struct

import pyarrow as pa
import pyarrow.parquet as pq
from changelake.ports import ObjectStore

from changelake_catalog.exceptions import InvalidParquetError

MAGIC = b"PAR1"
_TRAILER = 8  # footer length (4) + magic (4)


def read_parquet_schema(
    store: ObjectStore, key: str, size: int | None = None, tail_bytes: int = 65536
) -> pa.Schema:
    """The Arrow schema of the Parquet object ``key``; ``size`` saves a HEAD when known.

    Raises ``KeyError`` if the object is missing and :class:`InvalidParquetError` if its bytes
    are not Parquet. A stale ``size`` (the object was overwritten since the event) is detected
    by the magic check and retried once with a fresh HEAD.
    """
    try:
        return _read(store, key, store.size(key) if size is None else size, tail_bytes)
    except InvalidParquetError:
        if size is None:
            raise
        return _read(store, key, store.size(key), tail_bytes)


def _read(store: ObjectStore, key: str, size: int, tail_bytes: int) -> pa.Schema:
    if size < len(MAGIC) + _TRAILER:
        raise InvalidParquetError(f"{key}: {size} bytes is too small for Parquet")
    start = max(0, size - tail_bytes)
    tail = store.get(key, (start, size - 1))
    if len(tail) != size - start or tail[-4:] != MAGIC:
        raise InvalidParquetError(f"{key}: no Parquet magic at the end")
    (footer_len,) = struct.unpack("<I", tail[-_TRAILER:-4])
    needed = footer_len + _TRAILER
    if needed > size - len(MAGIC):
        raise InvalidParquetError(f"{key}: footer length {footer_len} exceeds the object")
    if needed > len(tail):
        tail = store.get(key, (size - needed, size - 1))
    try:
        return pq.read_schema(pa.BufferReader(MAGIC + tail[-needed:]))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidParquetError(f"{key}: unreadable Parquet footer: {exc}") from exc
