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
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

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
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            del exc_info
            captured[:] = [status, headers]
            return lambda _data: None

        request = environ["wsgi.input"].read()
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
            region = _region(environ)
            rewritten = _with_child_shards(request, body, region)
            if rewritten is not None:
                body = rewritten
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]


def _region(environ: dict[str, Any]) -> str:
    match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "us-east-1"


def _with_child_shards(request: bytes, body: bytes, region: str) -> bytes | None:
    """The response with ``ChildShards`` if it ends a closed shard (no NextShardIterator)."""
    try:
        response = json.loads(body)
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
    return json.dumps(response).encode()
