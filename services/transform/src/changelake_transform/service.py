"""The Firehose data-transformation contract, as a pure function over the event's records.

docs/aws-behaviour.md (Firehose): each output record keeps its input ``recordId``; ``result`` is
``Ok``, ``Dropped`` or ``ProcessingFailed``; ``data`` is base64; ``metadata.partitionKeys``
feeds dynamic partitioning (``!{partitionKeyFromLambda:…}``); the response is at most 6 MB.

Decisions (docs/adr/0004-transform-lambda-contract.md):

* Ok data is the original record with trailing whitespace removed and exactly one ``\\n``
  appended, so a record that already ends in a newline never gains an empty line. A record
  spread over several lines (valid, but pretty-printed) is re-encoded compactly, because one
  record must be one line of the JSON-lines raw table.
* Anything :func:`changelake.events.decode_record` rejects (and data that is not base64) is
  ``ProcessingFailed`` with its original bytes echoed; it is never ``Ok`` and never ``Dropped``.
* Partition keys are ``table``, ``dt`` and ``hour`` of the *event* time (UTC).
* With a privacy policy (docs/adr/0027), the Ok data is the record with the policy applied
  (compact JSON carrying ``changelakePrivacy``: the policy version), and partition keys come
  from that record. A bad record whose bytes the policy covers is ``Dropped``, not
  ``ProcessingFailed``: Firehose would write its *original* bytes to ``errors/``. The
  consumer quarantines the same record, redacted, with its position for re-drive.
* If the response would exceed the limit, the records that no longer fit are returned as
  ``ProcessingFailed`` with empty data: Firehose then writes their original bytes to the
  error prefix (nothing is lost, nothing is silently dropped) and the response stays valid.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from changelake.events import DecodeFailure, Position, decode_record
from changelake.privacy import PrivacyPolicy, decode_redacted
from changelake_lake.layout import partition_for_us

# Lambda's synchronous response payload limit: 6 MB (6 * 2**20 bytes).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# `{"records":[` + `]}`: the envelope around the entries.
_ENVELOPE_BYTES = len(b'{"records":[]}')

OK = "Ok"
PROCESSING_FAILED = "ProcessingFailed"
DROPPED = "Dropped"
OVERSIZE_REASON = "response size limit: returned as ProcessingFailed to keep the response valid"


@dataclass(slots=True)
class TransformResult:
    """The Firehose response records plus per-record failure reasons (for logs and metrics)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    oversize: int = 0

    def response(self) -> dict[str, Any]:
        """The Lambda return value Firehose expects."""
        return {"records": self.records}


def one_line(data: bytes) -> bytes:
    """The record as exactly one line: trailing whitespace stripped, one ``\\n`` appended."""
    body = data.rstrip(b" \t\r\n")
    if b"\n" in body or b"\r" in body:
        # Pretty-printed JSON would span lines of the JSON-lines raw table: compact it.
        body = orjson.dumps(orjson.loads(body))
    return body + b"\n"


def _entry_size(entry: Mapping[str, Any]) -> int:
    return len(orjson.dumps(entry)) + 1  # + the separating comma


def _position(record: Mapping[str, Any]) -> Position:
    # Firehose's own fields, but read defensively: they only label the record, so a shape
    # Firehose never sends must not fail the whole batch (found by fuzzing, docs/adr/0037).
    meta = record.get("kinesisRecordMetadata")
    if not isinstance(meta, Mapping):
        meta = {}
    arrival = record.get("approximateArrivalTimestamp")
    return Position(
        shard_id=str(meta.get("shardId", "")),
        sequence_number=str(meta.get("sequenceNumber", "")),
        arrival_time_us=(
            arrival * 1000 if isinstance(arrival, int) and not isinstance(arrival, bool) else None
        ),
    )


def _transform_one(
    record: Mapping[str, Any], privacy: PrivacyPolicy | None
) -> tuple[dict[str, Any], str | None]:
    """One output entry and, if it failed, the reason."""
    record_id = record["recordId"]
    encoded = record.get("data")
    if not isinstance(encoded, str):
        return {"recordId": record_id, "result": PROCESSING_FAILED, "data": ""}, "no data"
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        return (
            {"recordId": record_id, "result": PROCESSING_FAILED, "data": encoded},
            f"data is not base64: {exc}",
        )
    if privacy is None:
        decoded = decode_record(raw, _position(record))
    else:
        original = raw
        raw, redaction = privacy.redact_bytes(raw)
        decoded = decode_redacted(raw, redaction, _position(record))
        if isinstance(decoded, DecodeFailure) and raw is not original:
            return {"recordId": record_id, "result": DROPPED, "data": ""}, decoded.reason
    if isinstance(decoded, DecodeFailure):
        return (
            {"recordId": record_id, "result": PROCESSING_FAILED, "data": encoded},
            decoded.reason,
        )
    partition = partition_for_us(decoded.event_time_us)
    entry = {
        "recordId": record_id,
        "result": OK,
        "data": base64.b64encode(one_line(raw)).decode("ascii"),
        "metadata": {
            "partitionKeys": {"table": decoded.table, "dt": partition.dt, "hour": partition.hour}
        },
    }
    return entry, None


def _overflow_entry(record_id: str) -> dict[str, Any]:
    return {"recordId": record_id, "result": PROCESSING_FAILED, "data": ""}


def transform_records(
    records: Sequence[Mapping[str, Any]],
    *,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    privacy: PrivacyPolicy | None = None,
) -> TransformResult:
    """Transform Firehose input records into output records, in order, one per input.

    Raises ``ValueError`` (a function error: Firehose retries the whole batch) only when the
    event itself is malformed, i.e. a record has no string ``recordId``; bad *data* is a
    per-record ``ProcessingFailed``.
    """
    ids: list[str] = []
    for i, record in enumerate(records):
        record_id = record.get("recordId") if isinstance(record, Mapping) else None
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"records[{i}] has no recordId: not a Firehose event")
        ids.append(record_id)
    # Reserve room for every record as a minimal failed entry: whatever happens, they all fit.
    reserve = sum(_entry_size(_overflow_entry(rid)) for rid in ids)
    if _ENVELOPE_BYTES + reserve > max_response_bytes:
        raise ValueError("too many records for one response: the event exceeds the Lambda limit")
    result = TransformResult()
    used = _ENVELOPE_BYTES
    for record, record_id in zip(records, ids, strict=True):
        minimal = _entry_size(_overflow_entry(record_id))
        reserve -= minimal
        entry, reason = _transform_one(record, privacy)
        size = _entry_size(entry)
        if used + size + reserve > max_response_bytes:
            entry, reason, size = _overflow_entry(record_id), OVERSIZE_REASON, minimal
            result.oversize += 1
        used += size
        result.records.append(entry)
        if entry["result"] == OK:
            result.ok += 1
        elif entry["result"] == DROPPED:
            result.dropped += 1
            result.failures[record_id] = reason or DROPPED
        else:
            result.failed += 1
            result.failures[record_id] = reason or "ProcessingFailed"
    return result
