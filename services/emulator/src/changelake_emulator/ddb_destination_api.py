"""DynamoDB's Kinesis streaming destination API and an AWS-shaped table export, on moto.

moto has no ``EnableKinesisStreamingDestination`` / ``DescribeKinesisStreamingDestination`` /
``DisableKinesisStreamingDestination`` (docs/aws-behaviour.md); the emulator answers them from
:data:`DESTINATIONS`, which the :class:`~changelake_emulator.streaming_destination.
StreamingDestination` follower reads: it starts forwarding a table's changes when the table's
destination is enabled, taking a ``LATEST`` iterator at that moment, and only then reports
``ACTIVE`` (``ENABLING`` until then), as DynamoDB does. So "the destination is ACTIVE" means
every later change reaches the stream, here as on AWS (docs/adr/0030).

moto's ``ExportTableToPointInTime`` writes one data file under a random folder and no
manifest. The emulator makes it write what DynamoDB writes (docs: "DynamoDB table export output
format"): ``<prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json`` (``exportTime``,
``itemCount``, ``manifestFilesS3Key``), ``manifest-files.json`` (one JSON line per data file:
``dataFileS3Key``, ``itemCount``) and ``data/<name>.json.gz`` (one ``{"Item": {…}}`` per line,
DynamoDB JSON), and ``DescribeExport`` returns ``ExportTime``, ``StartTime``, ``EndTime`` and
``ExportManifest`` like DynamoDB. The export time is when the copy is taken (moto copies at
once: a point-in-time copy).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from moto.core.responses import ActionResult
from moto.dynamodb.models.table_export import TableExport
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler

ENABLING = "ENABLING"
ACTIVE = "ACTIVE"
DISABLED = "DISABLED"
EXPORT_FORMAT = "DYNAMODB_JSON"
ITEMS_PER_DATA_FILE = 5000


@dataclass(slots=True)
class Destination:
    """One table's streaming destination."""

    stream_arn: str
    status: str
    precision: str = "MILLISECOND"


DESTINATIONS: dict[str, Destination] = {}
"""Table name → its destination (process-wide, like moto's own state)."""

_lock = threading.Lock()
_done = False


def reset() -> None:
    """Forget every destination (the emulator resets moto on start)."""
    with _lock:
        DESTINATIONS.clear()


def destination(table: str) -> Destination | None:
    """The table's destination, if one was enabled."""
    with _lock:
        return DESTINATIONS.get(table)


def set_status(table: str, status: str) -> None:
    """Move a table's destination to ``status`` (the follower reports ``ACTIVE``)."""
    with _lock:
        if table in DESTINATIONS:
            DESTINATIONS[table].status = status


def _table_name(handler: DynamoHandler) -> str:
    name = str(handler.body["TableName"])
    handler.dynamodb_backend.get_table(name)  # ResourceNotFoundException, as DynamoDB answers
    return name.rsplit("/", 1)[-1] if name.startswith("arn:") else name


def _enable(self: DynamoHandler) -> ActionResult:
    table = _table_name(self)
    stream_arn = str(self.body["StreamArn"])
    precision = str(
        (self.body.get("EnableKinesisStreamingConfiguration") or {}).get(
            "ApproximateCreationDateTimePrecision", "MILLISECOND"
        )
    )
    with _lock:
        current = DESTINATIONS.get(table)
        if current is None or current.status == DISABLED:
            DESTINATIONS[table] = Destination(stream_arn, ENABLING, precision)
    return ActionResult(
        {
            "TableName": table,
            "StreamArn": stream_arn,
            "DestinationStatus": ENABLING,
            "EnableKinesisStreamingConfiguration": {
                "ApproximateCreationDateTimePrecision": precision
            },
        }
    )


def _describe(self: DynamoHandler) -> ActionResult:
    table = _table_name(self)
    found = destination(table)
    items = []
    if found is not None:
        items.append(
            {
                "StreamArn": found.stream_arn,
                "DestinationStatus": found.status,
                "ApproximateCreationDateTimePrecision": found.precision,
            }
        )
    return ActionResult({"TableName": table, "KinesisDataStreamDestinations": items})


def _disable(self: DynamoHandler) -> ActionResult:
    table = _table_name(self)
    set_status(table, DISABLED)
    return ActionResult(
        {"TableName": table, "StreamArn": self.body["StreamArn"], "DestinationStatus": DISABLED}
    )


def _export_id() -> str:
    millis = int(datetime.now(UTC).timestamp() * 1000)
    return f"{millis:014d}-{uuid.uuid4().hex[:8]}"


_original_init = TableExport.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.export_id = _export_id()
    self.arn = f"{self.table.table_arn}/export/{self.export_id}"
    self.start_time = datetime.now(UTC)
    self.export_time = None
    self.end_time = None
    self.manifest_key = None


def _items(table: Any) -> list[dict[str, Any]]:
    # A consistent copy: writers may change the table while it is read (retry on change).
    for _ in range(100):
        try:
            return [
                orjson.loads(dynamo_json_dump(item.to_json()))["Attributes"]
                for item in list(table.all_items())
            ]
        except RuntimeError:  # dictionary changed size during iteration
            continue
    raise RuntimeError("table kept changing during the export copy")


def _backup(self: Any, s3_backend: Any) -> None:
    self.export_time = datetime.now(UTC)
    items = _items(self.table)
    prefix = self.s3_prefix.strip("/")
    base = f"{prefix}/AWSDynamoDB/{self.export_id}" if prefix else f"AWSDynamoDB/{self.export_id}"
    files = []
    for start in range(0, max(len(items), 1), ITEMS_PER_DATA_FILE):
        chunk = items[start : start + ITEMS_PER_DATA_FILE]
        body = b"".join(orjson.dumps({"Item": item}) + b"\n" for item in chunk)
        data = gzip.compress(body, mtime=0)
        key = f"{base}/data/{uuid.uuid4().hex}.json.gz"
        s3_backend.put_object(bucket_name=self.s3_bucket, key_name=key, value=data)
        self.processed_bytes += len(body)
        self.item_count += len(chunk)
        files.append(
            {
                "itemCount": len(chunk),
                "md5Checksum": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "dataFileS3Key": key,
            }
        )
    manifest_files = f"{base}/manifest-files.json"
    s3_backend.put_object(
        bucket_name=self.s3_bucket,
        key_name=manifest_files,
        value=b"".join(orjson.dumps(f) + b"\n" for f in files),
    )
    self.end_time = datetime.now(UTC)
    summary = {
        "version": "2020-06-30",
        "exportArn": self.arn,
        "startTime": self.start_time.isoformat(),
        "endTime": self.end_time.isoformat(),
        "tableArn": self.table.table_arn,
        "exportTime": self.export_time.isoformat(),
        "s3Bucket": self.s3_bucket,
        "s3Prefix": self.s3_prefix,
        "manifestFilesS3Key": manifest_files,
        "billedSizeBytes": self.processed_bytes,
        "itemCount": self.item_count,
        "outputFormat": EXPORT_FORMAT,
        "exportType": "FULL_EXPORT",
    }
    self.manifest_key = f"{base}/manifest-summary.json"
    s3_backend.put_object(
        bucket_name=self.s3_bucket, key_name=self.manifest_key, value=orjson.dumps(summary)
    )
    self.status = "COMPLETED"


_original_response = TableExport.response


def _response(self: Any) -> dict[str, Any]:
    out: dict[str, Any] = _original_response(self)
    out["ExportFormat"] = EXPORT_FORMAT
    out["StartTime"] = self.start_time.timestamp()
    if self.export_time is not None:
        out["ExportTime"] = self.export_time.timestamp()
    if self.end_time is not None:
        out["EndTime"] = self.end_time.timestamp()
    if self.manifest_key is not None:
        out["ExportManifest"] = self.manifest_key
    return out


def install() -> None:
    """Add the three destination actions and the AWS-shaped export (idempotent)."""
    global _done
    with _lock:
        if _done:
            return
        DynamoHandler.enable_kinesis_streaming_destination = _enable  # type: ignore[attr-defined]
        DynamoHandler.describe_kinesis_streaming_destination = _describe  # type: ignore[attr-defined]
        DynamoHandler.disable_kinesis_streaming_destination = _disable  # type: ignore[attr-defined]
        TableExport.__init__ = _init  # type: ignore[method-assign]
        TableExport._backup_to_s3_file = _backup  # type: ignore[method-assign]
        TableExport.response = _response  # type: ignore[method-assign]
        _done = True
