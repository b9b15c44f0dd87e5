"""moto's WSGI app served over HTTP/1.1 *and* cleartext HTTP/2 on one port (ADR 0015).

The KCL's AWS SDK for Java v2 talks to Kinesis through its Netty client, which always speaks
HTTP/2; on an ``http://`` endpoint that is h2c with prior knowledge (the connection starts with
the ``PRI * HTTP/2.0`` preface). moto's own werkzeug server speaks only HTTP/1.1, so the KCL
fails with "First received frame was not SETTINGS". hypercorn serves a WSGI app over HTTP/1.1
and switches a connection to HTTP/2 when it sees that preface (or an ``Upgrade: h2c``), so boto3
(HTTP/1.1) and the KCL (h2c) share one endpoint.

Each WSGI call runs in the event loop's executor; the loop gets its own thread pool
(the default one has only ``cpu + 4`` threads, too few for several KCL workers polling shards
while the emulator's integrations poll too).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from changelake_emulator.kinesis_shard_end import KinesisShardEnd

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Largest request body (an S3 PUT of one Parquet object); hypercorn's default is 16 MiB.
MAX_BODY_BYTES = 1024 * 1024 * 1024
EXECUTOR_THREADS = 64
START_TIMEOUT_S = 10.0
BACKLOG = 128


class WsgiOnAsgi:
    """moto's WSGI app as an ASGI app: the whole request body in, the whole response out.

    Written here instead of hypercorn's WSGI mode for one reason: moto's werkzeug server keeps
    the original spelling of header names with underscores (S3 metadata keys may contain them,
    and WSGI folds ``a_b`` and ``a-b`` into one environ key); this builds the same extra environ
    entry from the raw ASGI headers. Each call runs in the loop's executor.
    """

    def __init__(self, app: WSGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._app = app
        self._max_body = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > self._max_body:
                await _respond(send, 413, [], b"request body too large")
                return
            if not message.get("more_body"):
                break
        environ = _environ(scope, bytes(body))
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(None, self._call, environ)
        await _respond(send, status, headers, payload)

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            del exc_info
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return chunks.append

        chunks: list[bytes] = []
        result = self._app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI app did not call start_response")
        status, headers = started
        encoded = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        return status, encoded, b"".join(chunks)


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf8").decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("ascii"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    raw = [(n.decode("latin1"), v.decode("latin1")) for n, v in scope.get("headers", [])]
    for name, value in raw:
        if "_" in name:  # werkzeug drops these; the loop below restores S3 metadata ones
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    # moto's MotoRequestHandler.make_environ: keep underscored names' original spelling.
    dashed = {environ_key_for_header(name) for name, _ in raw if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in raw:
        key = environ_key_for_header(name)
        if not should_preserve_original_header_name(name) or key in dashed:
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value)
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
    return environ


class H2cMotoServer:
    """moto on ``host:port`` (0: a free port) over HTTP/1.1 and h2c, in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._bound: tuple[str, int] | None = None

    def get_host_and_port(self) -> tuple[str, int]:
        """The bound address (after :meth:`start`)."""
        if self._bound is None:
            raise RuntimeError("server not started")
        return self._bound

    def start(self) -> None:
        """Bind (fails fast if the port is taken), then serve in a daemon thread."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            # Listening now means a client may connect as soon as start() returns: the kernel
            # queues the connection until hypercorn's loop accepts it.
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        host, port = sock.getsockname()[:2]
        self._bound = (str(host), int(port))
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn takes the bound socket over
        config.backlog = BACKLOG
        config.accesslog = None
        config.errorlog = logging.getLogger("changelake_emulator.hypercorn")
        config.keep_alive_timeout = 75  # the SDKs keep pooled connections open for a while
        self._thread = threading.Thread(
            target=self._run, args=(config,), name="emulator-http", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the emulator's HTTP server did not start")
        if self._error is not None:
            raise RuntimeError(f"the emulator's HTTP server failed: {self._error}")

    def _run(self, config: Config) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        executor = ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="emulator-wsgi")
        loop.set_default_executor(executor)
        try:
            loop.run_until_complete(self._serve(config))
        except BaseException as exc:  # surfaced to start(); logged for a failure after start
            self._error = exc
            log.exception("emulator HTTP server stopped with an error")
        finally:
            self._ready.set()
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()

    async def _serve(self, config: Config) -> None:
        self._stopping = asyncio.Event()
        app = WsgiOnAsgi(KinesisShardEnd(DomainDispatcherApplication(create_backend_app)))
        asyncio.get_running_loop().call_soon(self._ready.set)
        await serve(app, config, shutdown_trigger=self._stopping.wait, mode="asgi")  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, join the thread; idempotent."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout=30)
            if thread.is_alive():
                print("emulator HTTP server did not stop within 30 s", file=sys.stderr)
        self._thread = None
