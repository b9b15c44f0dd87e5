"""The peer implementations the consumer is measured against (records → Parquet bytes).

Both are written the way the common tutorials and AWS samples do it, with the same output
contract as ours (envelope columns, images as JSON text, flattened typed attribute columns),
zstd-compressed, so only the implementation differs:

* naive: ``json.loads`` + boto3 ``TypeDeserializer`` + flatten + ``pa.Table.from_pylist``.
* awswrangler: the same decode, then a pandas DataFrame (``pd.json_normalize``) written with
  awswrangler's own DataFrame→Arrow conversion and Parquet writer settings, in memory.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from boto3.dynamodb.types import Binary, TypeDeserializer
from changelake.events import Position


class _WireDeserializer(TypeDeserializer):
    """boto3's deserializer for JSON off the wire: ``B`` arrives base64-encoded there.

    ``TypeDeserializer`` expects what botocore hands it (bytes already decoded); every
    Kinesis/Lambda sample that reuses it on raw records adds this one override.
    """

    def _deserialize_b(self, value: str) -> Binary:
        return Binary(base64.b64decode(value))


_DESERIALIZER = _WireDeserializer()


def _plain(value: Any) -> Any:
    # TypeDeserializer yields Decimal, Binary and sets: Arrow needs lists and bytes.
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Binary):
        return bytes(cast(Any, value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def _deserialize(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in image.items()}


def _envelope(raw: bytes, position: Position) -> tuple[dict[str, Any], dict[str, Any]]:
    record = json.loads(raw)
    ddb = record["dynamodb"]
    new = _deserialize(ddb.get("NewImage"))
    old = _deserialize(ddb.get("OldImage"))
    keys = _deserialize(ddb["Keys"]) or {}
    stamp = ddb["ApproximateCreationDateTime"]
    micros = (
        stamp if ddb.get("ApproximateCreationDateTimePrecision") == "MICROSECOND" else stamp * 1000
    )
    identity = record.get("userIdentity") or {}
    changed = sorted(
        k
        for k in (new or {}).keys() | (old or {}).keys()
        if (new or {}).get(k) != (old or {}).get(k)
    )
    row: dict[str, Any] = {
        "event_id": record["eventID"],
        "event_name": record["eventName"],
        "event_time": micros,
        "item_key": json.dumps(keys, sort_keys=True, default=_json_default),
        "new_image": None if new is None else json.dumps(new, default=_json_default),
        "old_image": None if old is None else json.dumps(old, default=_json_default),
        "changed_attributes": changed,
        "is_ttl_delete": identity.get("principalId") == "dynamodb.amazonaws.com",
        "size_bytes": ddb["SizeBytes"],
        "shard_id": position.shard_id,
        "sequence_number": position.sequence_number,
        "arrival_time": position.arrival_time_us,
    }
    return row, (new if new is not None else old) or {}


def naive_records_to_parquet(records: Sequence[tuple[bytes, Position]]) -> bytes:
    """The naive path: json + TypeDeserializer + flatten + ``Table.from_pylist``."""
    rows = []
    for raw, position in records:
        row, image = _envelope(raw, position)
        _flatten("", image, row)
        rows.append(row)
    # from_pylist takes its column names from the first row only: give that row every key so
    # attributes first seen later are not dropped silently.
    if rows:
        for row in rows[1:]:
            for key in row.keys() - rows[0].keys():
                rows[0][key] = None
    table = pa.Table.from_pylist(rows)
    table = table.set_column(
        table.schema.get_field_index("event_time"),
        "event_time",
        table.column("event_time").cast(pa.timestamp("us", tz="UTC")),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def awswrangler_records_to_parquet(records: Sequence[tuple[bytes, Position]]) -> bytes:
    """The awswrangler path: decode, ``pd.json_normalize``, awswrangler's Arrow/Parquet writer."""
    import pandas as pd  # type: ignore[import-untyped]
    from awswrangler._arrow import _df_to_table

    flat = []
    for raw, position in records:
        row, image = _envelope(raw, position)
        row.update(image)
        flat.append(row)
    df = pd.json_normalize(flat, sep="_")
    df["event_time"] = pd.to_datetime(df["event_time"], unit="us", utc=True)
    table = _df_to_table(df, None, False, None)
    sink = io.BytesIO()
    # awswrangler.s3.to_parquet's writer defaults (see awswrangler/s3/_write_parquet.py).
    with pq.ParquetWriter(
        sink,
        schema=table.schema,
        compression="zstd",
        coerce_timestamps="ms",
        flavor="spark",
        version="1.0",
        use_dictionary=True,
        write_statistics=True,
    ) as writer:
        writer.write_table(table)
    return sink.getvalue()
