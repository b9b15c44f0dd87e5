"""A loopback HTTP proxy in front of the emulator: counts AWS calls and injects faults.

Point one service's clients at it with the standard per-service endpoint variable
(``AWS_ENDPOINT_URL_S3=<proxy>``, ``AWS_ENDPOINT_URL_GLUE``, ``_SQS``, ``_DYNAMODB``) and every
call is forwarded unchanged to the emulator, counted by ``(service, operation)``, and — when a
:class:`FaultRule` matches — answered with a fault instead, without touching the service's code
(ADR 0038). The service is read from the SigV4 credential scope, the operation from
``X-Amz-Target`` (JSON protocols: DynamoDB, Glue, SQS, Kinesis, Firehose), ``Action=`` (query
protocol) or the S3 REST shape (``PUT /bucket/key`` = ``PutObject`` …).

Faults (:data:`FaultKind`):

* ``error``: an AWS error response (status and code as AWS sends them: S3 ``503 SlowDown``,
  ``500 InternalError``, Glue ``ThrottlingException``, DynamoDB
  ``ProvisionedThroughputExceededException`` …), in the protocol's shape so the SDK parses the
  code and applies its retry rules; the request never reaches the emulator.
* ``drop``: the connection is closed without an answer after ``delay_s`` (a timeout as the
  client sees it); the request never reaches the emulator.
* ``drop_after``: the request *is* applied by the emulator, then the answer is lost — the
  client cannot know that its write happened (the hard case for exactly-once).
* ``delay``: forwarded after ``delay_s``.
* ``pass``: forwarded unchanged (with a callback: an observation point).

A rule's ``callback`` runs before any of these: a test SIGKILLs a process there, and with
``drop`` the process dies exactly before that call (its checkpoint write, say) takes effect.

Only HTTP/1.1: the KCL's Kinesis client speaks HTTP/2 (ADR 0015) and stays on the emulator's
own port; its DynamoDB client, boto3 and the JVM's other clients use HTTP/1.1.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal, Self
from urllib.parse import parse_qs, urlsplit

import orjson
from changelake.lifecycle import StartStop

log = logging.getLogger(__name__)

FaultKind = Literal["error", "drop", "drop_after", "delay", "pass"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "expect",
    "proxy-connection",
    "te",
    "upgrade",
}
_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_UPSTREAM_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the proxy sees it (what a rule matches on)."""

    service: str
    operation: str
    path: str
    body: bytes


@dataclass(slots=True)
class FaultRule:
    """Inject ``kind`` into calls of ``service``/``operation`` (``None``: any) that match.

    ``probability`` draws from the proxy's seeded generator; ``after`` lets that many matching
    calls through first; ``times`` caps the injections (``None``: no cap); ``contains`` must
    occur in the path or the body (an S3 key prefix, a DynamoDB table name).
    """

    kind: FaultKind
    service: str | None = None
    operation: str | None = None
    probability: float = 1.0
    status: int = 503
    code: str = "ServiceUnavailable"
    delay_s: float = 0.0
    after: int = 0
    times: int | None = None
    contains: str | None = None
    callback: Callable[[], None] | None = None
    matched: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")

    def matches(self, call: Call) -> bool:
        """Whether the rule applies to ``call`` at all (before counting and probability)."""
        if self.service is not None and call.service != self.service:
            return False
        if self.operation is not None and call.operation != self.operation:
            return False
        if self.contains is not None:
            needle = self.contains
            return needle in call.path or needle.encode() in call.body
        return True


def aws_service(headers: Mapping[str, str]) -> str:
    """The signing name of the service a request is for (``s3``, ``glue`` …), from SigV4."""
    match = _SCOPE_RE.search(headers.get("Authorization", ""))
    return match[1] if match else "unknown"


def aws_operation(
    service: str, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> str:
    """The API operation of a request: JSON target, query ``Action`` or the S3 REST shape."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    split = urlsplit(path)
    query = parse_qs(split.query, keep_blank_values=True)
    if service == "s3":
        return _s3_operation(method, split.path, query)
    if "Action" in query:
        return query["Action"][0]
    if body and headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return f"{method} {split.path}"


def _s3_operation(method: str, path: str, query: Mapping[str, list[str]]) -> str:
    has_key = len([p for p in path.split("/") if p]) >= 2  # path-style: /bucket/key
    if method == "PUT":
        return "PutObject" if has_key else "CreateBucket"
    if method == "GET":
        if has_key:
            return "GetObject"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return f"{method} {path}"


def error_response(service: str, json_protocol: bool, status: int, code: str) -> tuple[bytes, str]:
    """The body and content type AWS answers an error with, in the request's protocol."""
    message = f"injected by the changelake fault proxy: {code}"
    if json_protocol:
        return orjson.dumps({"__type": code, "message": message}), "application/x-amz-json-1.0"
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode(), "application/xml"


class FaultProxy(StartStop):
    """Forwards every request to ``upstream``, counts it, injects faults; a context manager."""

    def __init__(self, upstream: str, *, seed: int = 0, name: str = "fault-proxy") -> None:
        split = urlsplit(upstream)
        self._host = split.hostname or "127.0.0.1"
        self._port = split.port or 80
        self.calls: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[tuple[str, str, str]] = Counter()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    # -- control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, rule: FaultRule) -> FaultRule:
        """Start injecting ``rule`` (rules are tried in the order added; the first one wins)."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Stop injecting anything (the rules keep their counters)."""
        with self._lock:
            self._rules = []

    def snapshot(self) -> dict[str, int]:
        """Calls so far by operation (all services together), e.g. ``{"CreatePartition": 3}``."""
        with self._lock:
            out: Counter[str] = Counter()
            for (_, operation), n in self.calls.items():
                out[operation] += n
            return dict(out)

    def count(self, service: str, operation: str | None = None) -> int:
        """Calls so far to ``service`` (and ``operation``)."""
        with self._lock:
            return sum(
                n for (s, o), n in self.calls.items() if s == service and operation in (None, o)
            )

    def _decide(self, call: Call) -> FaultRule | None:
        with self._lock:
            self.calls[(call.service, call.operation)] += 1
            for rule in self._rules:
                if not rule.matches(call):
                    continue
                rule.matched += 1
                if rule.matched <= rule.after:
                    continue
                if rule.times is not None and rule.injected >= rule.times:
                    continue
                if self._random.random() >= rule.probability:
                    continue
                rule.injected += 1
                self.injected[(call.service, call.operation, rule.kind)] += 1
                return rule
        return None

    # -- serving -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                headers = dict(self.headers.items())
                service = aws_service(headers)
                call = Call(
                    service,
                    aws_operation(service, self.command, self.path, headers, body),
                    self.path,
                    body,
                )
                rule = proxy._decide(call)
                if rule is not None:
                    if rule.callback is not None:
                        rule.callback()
                    log.info(
                        "fault injected",
                        extra={"service": service, "operation": call.operation, "fault": rule.kind},
                    )
                    if rule.kind == "error":
                        json_protocol = "json" in headers.get("Content-Type", "")
                        data, ctype = error_response(service, json_protocol, rule.status, rule.code)
                        self._answer(rule.status, [("Content-Type", ctype)], data)
                        return
                    if rule.kind == "drop":
                        time.sleep(rule.delay_s)
                        self._drop()
                        return
                    if rule.kind == "delay":
                        time.sleep(rule.delay_s)
                status, resp_headers, data = self._forward(body)
                if rule is not None and rule.kind == "drop_after":
                    self._drop()
                    return
                self._answer(status, resp_headers, data)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(
                    proxy._host, proxy._port, timeout=_UPSTREAM_TIMEOUT_S
                )
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    return resp.status, resp.getheaders(), data
                finally:
                    conn.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                length = str(len(data))
                for k, v in headers:
                    if k.lower() == "content-length" and self.command == "HEAD":
                        length = v  # the object's size, not the empty body's
                    elif k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                """Silence the per-request log (stderr would flood)."""

        return Handler

    def start(self) -> Self:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
