"""Kinesis shard end as AWS signals it: a closed shard's last GetRecords has ``ChildShards``.

On AWS, once a consumer has read past the last record of a closed (split or merged) shard,
``GetRecords`` returns no ``NextShardIterator`` and lists the shard's children in
``ChildShards`` (each with its ``ParentShards`` and ``HashKeyRange``). The emulator's patched
moto model ends the shard (``kinesis_resharding``, ADR 0017) but moto's response has no
``ChildShards`` field. The KCL 3 polling fetcher rejects a shard end without children
(``DataRetrievalUtil.isValidResult``: "Will retry GetRecords with the same nextIterator") and
needs them to create the child leases at ``SHARD_END``, so without this a reshard would stall
the KCL on the parent forever. This WSGI middleware adds them to exactly that response
(ADR 0015); every other request passes through untouched.

It also answers GetRecords itself, with the JSON moto's handler would send but without moto's
generic serializer (``get_records_response``, ADR 0041): the KCL's and the Firehose bridge's
polls were 16 % of the emulator's GIL time under sustained load. Whatever it cannot answer
(errors) goes to moto's handler.
"""

from __future__ import annotations

import calendar
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.kinesis.models import kinesis_backends
from moto.kinesis.utils import decompose_shard_iterator

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
GET_RECORDS_TARGET = "Kinesis_20131202.GetRecords"
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")


class KinesisShardEnd:
    """Adds AWS's shard-end signal to moto's GetRecords responses (see the module doc)."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET") != GET_RECORDS_TARGET:
            return self._app(environ, start_response)
        request = environ["wsgi.input"].read()
        region = _region(environ)
        fast = get_records_response(request, region)
        if fast is not None:
            body = orjson.dumps(_with_child_shards(request, fast, region) or fast)
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )
            return [body]
        # Anything the fast path does not answer (an expired or malformed iterator, an
        # unknown stream): moto's own handler, for its exact error response.
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            del exc_info
            captured[:] = [status, headers]
            return lambda _data: None

        environ["wsgi.input"] = io.BytesIO(request)
        result = self._app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = captured
        if status.startswith("200"):
            rewritten = _with_child_shards(request, json.loads(body), region)
            if rewritten is not None:
                body = json.dumps(rewritten).encode()
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]


def get_records_response(request: bytes, region: str) -> dict[str, Any] | None:
    """moto's ``GetRecords`` response, built without moto's shape serializer; None: let moto.

    moto answers GetRecords through its generic serializer, which walks botocore's shape model
    for every record (base64 of ``Data`` decoded and encoded again, each timestamp converted):
    16 % of the emulator's GIL time under ``changelake bench load``, for the KCL's and the
    Firehose bridge's polls (ADR 0041). This calls the same backend method (with the emulator's
    patches: reads by bisection, shard end) and writes the same JSON: ``Data`` as the base64
    text moto stores, ``ApproximateArrivalTimestamp`` as epoch seconds truncated to the ms.
    A differential test compares both answers.
    """
    try:
        params = json.loads(request)
        iterator, limit, arn = params["ShardIterator"], params.get("Limit"), params.get("StreamARN")
    except Exception:
        return None
    return get_records_page(region, iterator, limit, arn)


def get_records_page(
    region: str, shard_iterator: str, limit: int | None, stream_arn: str | None = None
) -> dict[str, Any] | None:
    """One ``GetRecords`` page from moto's Kinesis backend of this process, as its JSON answer.

    The body of :func:`get_records_response`; the Firehose bridge calls it directly (it runs
    in the emulator's process, ADR 0047). None: the backend call raised (an expired or
    malformed iterator, an unknown stream): ask moto's handler for its exact error.
    """
    try:
        backend = kinesis_backends[DEFAULT_ACCOUNT_ID][region]
        next_iterator, records, millis_behind = backend.get_records(
            stream_arn, shard_iterator, limit
        )
    except Exception:
        return None
    response: dict[str, Any] = {}
    if next_iterator is not None:
        response["NextShardIterator"] = next_iterator
    response["Records"] = [
        {
            "Data": record.data,
            "PartitionKey": record.partition_key,
            "SequenceNumber": str(record.sequence_number),
            "ApproximateArrivalTimestamp": _epoch_seconds_ms(record.created_at_datetime),
        }
        for record in records
    ]
    response["MillisBehindLatest"] = millis_behind
    return response


def _epoch_seconds_ms(value: datetime) -> int | float:
    """moto's serializer's unix timestamp: whole seconds, or seconds with ms (truncated)."""
    base = calendar.timegm(value.timetuple())
    if value.microsecond:
        return base + (value.microsecond // 1000) / 1000.0
    return base


def _region(environ: dict[str, Any]) -> str:
    match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "us-east-1"


def _with_child_shards(
    request: bytes, response: dict[str, Any], region: str
) -> dict[str, Any] | None:
    """The response with ``ChildShards`` if it ends a closed shard (no NextShardIterator)."""
    try:
        if response.get("NextShardIterator"):
            return None
        stream_name, shard_id, _ = decompose_shard_iterator(json.loads(request)["ShardIterator"])
        stream = kinesis_backends[DEFAULT_ACCOUNT_ID][region].streams.get(stream_name)
        shard = None if stream is None else stream.shards.get(shard_id)
    except (ValueError, KeyError, TypeError, AttributeError):  # not ours to judge: leave it
        return None
    if stream is None or shard is None or shard.is_open:
        return None
    children = [
        {
            "ShardId": child.shard_id,
            "ParentShards": [p for p in (child.parent, child.adjacent_parent) if p],
            "HashKeyRange": child.to_json()["HashKeyRange"],
        }
        for child in stream.shards.values()
        if shard_id in (child.parent, child.adjacent_parent)
    ]
    if not children:
        return None
    response.pop("NextShardIterator", None)
    response["ChildShards"] = children
    response["MillisBehindLatest"] = 0
    log.debug("shard end", extra={"shard_id": shard_id, "children": len(children)})
    return response
