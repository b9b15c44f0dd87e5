"""The local AWS: a moto server on loopback plus the two integrations moto lacks.

One :class:`Emulator` per process: moto keeps its state in process-wide backends, so
:meth:`Emulator.start` resets them (the emulator always begins empty) and two emulators in one
process would share tables. The emulator never touches ``os.environ``; its integrations use
their own clients built with ``endpoint_url=self.endpoint``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal, Self

from changelake.lifecycle import StartStop
from changelake.settings import ChangelakeSettings
from changelake_lake import layout

from changelake_emulator.adapters.clients import emulator_client
from changelake_emulator.bootstrap import bootstrap, transform_lambda_arn
from changelake_emulator.ddb_destination_api import install as install_destination_api
from changelake_emulator.ddb_destination_api import reset as reset_destinations
from changelake_emulator.faults import FaultConfig
from changelake_emulator.firehose_bridge import FirehoseBridge, Handler
from changelake_emulator.glue_partitions import install as install_glue_partitions
from changelake_emulator.http_server import H2cMotoServer
from changelake_emulator.kinesis_reads import install as install_kinesis_reads
from changelake_emulator.kinesis_resharding import install as install_kinesis_resharding
from changelake_emulator.moto_direct import MotoKinesisReads
from changelake_emulator.moto_direct import install as install_moto_direct
from changelake_emulator.moto_routing import install as install_moto_routing
from changelake_emulator.streaming_destination import StreamingDestination

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

# moto's backends are process-wide: a second running emulator would share (and reset) them.
_running: set[int] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """Counters of the integrations, for tests and the demo's summary."""

    stream_records_read: int
    records_forwarded: int
    duplicates_injected: int
    ttl_marked: int
    out_of_order: int
    firehose_records_read: int
    firehose_ok: int
    firehose_failed: int
    firehose_dropped: int
    firehose_invocations: int
    firehose_objects: int
    firehose_get_records_calls: int
    errors: int


class Emulator(StartStop):
    """moto server + DynamoDB→Kinesis streaming destination + Kinesis→Firehose→S3 bridge."""

    def __init__(
        self,
        port: int = 0,
        *,
        settings: ChangelakeSettings | None = None,
        faults: FaultConfig | None = None,
        precision: Literal["MILLISECOND", "MICROSECOND"] = "MILLISECOND",
        firehose_buffer_seconds: float = 1.0,
        firehose_buffer_mb: float = 1.0,
        shards: int = 2,
        host: str = LOOPBACK,
        firehose_poll_seconds: float = 1.0,
        transform_handler: Handler | None = None,
        stream_enabled: bool = True,
        transform_process: bool = False,
    ) -> None:
        if precision not in ("MILLISECOND", "MICROSECOND"):
            raise ValueError(f"precision must be MILLISECOND or MICROSECOND, got {precision!r}")
        self.port = port
        self.host = host
        self.settings = settings or ChangelakeSettings()
        self.faults = faults
        self.precision: Literal["MILLISECOND", "MICROSECOND"] = precision
        self.firehose_buffer_seconds = firehose_buffer_seconds
        self.firehose_buffer_mb = firehose_buffer_mb
        self.firehose_poll_seconds = firehose_poll_seconds
        self.shards = shards
        self._transform_handler = transform_handler
        # False: the table's Kinesis streaming destination starts disabled (as a table that
        # existed before changelake); EnableKinesisStreamingDestination switches it on.
        self.stream_enabled = stream_enabled
        # True: the transform Lambda runs in a process of its own, off this process' GIL
        # (ADR 0047; the load bench). Off by default: a process start per emulator.
        self.transform_process = transform_process
        self._server: H2cMotoServer | None = None
        self._endpoint: str | None = None
        # One streaming destination per table, all into the one Kinesis stream (ADR 0032).
        self.streaming: dict[str, StreamingDestination] = {}
        self.firehose: FirehoseBridge | None = None
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the running server."""
        if self._endpoint is None:
            raise RuntimeError("emulator not started")
        return self._endpoint

    def _client(self, service: str) -> Any:
        client = emulator_client(service, self.endpoint, self.settings.region)
        self._clients.append(client)
        return client

    def start(self) -> Self:
        """Start moto, reset its state, create the resources, start both integrations."""
        with self._lock:
            if self._server is not None:
                return self
            with _running_lock:
                if _running:
                    raise RuntimeError(
                        "another Emulator is running in this process (moto state is "
                        "process-wide): stop it first"
                    )
                _running.add(id(self))
            install_kinesis_resharding()  # moto's split/merge routing loses records
            install_kinesis_reads()  # moto scans a whole shard per GetRecords (ADR 0037)
            install_moto_routing()  # moto lists its package per request to route it (ADR 0037)
            install_moto_direct()  # moto sizes each stream record with a slow JSON dump
            install_glue_partitions()  # GetPartitions segments and pages, as Trino uses them
            install_destination_api()  # Enable/DescribeKinesisStreamingDestination, exports
            # HTTP/1.1 for boto3 and cleartext HTTP/2 for the KCL's Java SDK, on one port.
            server = H2cMotoServer(self.host, self.port)
            try:
                server.start()
            except BaseException:
                _release(self)
                raise
            self._server = server
            _, port = server.get_host_and_port()
            connect_host = LOOPBACK if self.host in ("0.0.0.0", "") else self.host
            self._endpoint = f"http://{connect_host}:{port}"
            self.port = port
        try:
            self._reset()
            bootstrap(
                self.settings,
                shards=self.shards,
                endpoint_url=self.endpoint,
                firehose_buffer_seconds=self.firehose_buffer_seconds,
                firehose_buffer_mb=self.firehose_buffer_mb,
            )
            self._start_integrations()
            if self.stream_enabled:
                self.enable_stream()
        except BaseException:
            self.stop()
            raise
        log.info("emulator ready", extra={"endpoint": self.endpoint})
        return self

    def enable_stream(self, table: str | None = None, timeout_s: float = 30.0) -> None:
        """Enable the Kinesis streaming destination of ``table`` (default: every configured
        table) into the one stream; return once each is ACTIVE."""
        ddb = self._client("dynamodb")
        s = self.settings
        stream_arn = self._client("kinesis").describe_stream_summary(StreamName=s.stream_name)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        tables = s.tables if table is None else (table,)
        for name in tables:
            ddb.enable_kinesis_streaming_destination(
                TableName=name,
                StreamArn=stream_arn,
                EnableKinesisStreamingConfiguration={
                    "ApproximateCreationDateTimePrecision": self.precision
                },
            )
        deadline = time.monotonic() + timeout_s
        for name in tables:
            while True:
                found = ddb.describe_kinesis_streaming_destination(TableName=name)
                statuses = [d["DestinationStatus"] for d in found["KinesisDataStreamDestinations"]]
                if statuses == ["ACTIVE"]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"streaming destination of {name} not ACTIVE after {timeout_s} s"
                    )
                time.sleep(0.02)

    def _reset(self) -> None:
        reset_destinations()
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()

    def _start_integrations(self) -> None:
        s = self.settings
        self.streaming = {
            table: StreamingDestination(
                table=table,
                stream_name=s.stream_name,
                region=s.region,
                precision=self.precision,
                faults=_faults_for(self.faults, index),
                follow_api=True,
            )
            for index, table in enumerate(s.tables)
        }
        handler = self._transform_handler
        if handler is None:
            from changelake_transform.handler import handler as transform_handler

            handler = transform_handler
        self.firehose = FirehoseBridge(
            kinesis=MotoKinesisReads(self._client("kinesis"), s.region),
            s3=self._client("s3"),
            handler=handler,
            stream_name=s.stream_name,
            delivery_stream=s.firehose_name,
            bucket=s.lake_bucket,
            region=s.region,
            prefix=layout.firehose_raw_prefix_expression(),
            error_prefix=layout.firehose_error_prefix_expression(),
            lambda_arn=transform_lambda_arn(s.region),
            buffer_seconds=self.firehose_buffer_seconds,
            buffer_mb=self.firehose_buffer_mb,
            poll_seconds=self.firehose_poll_seconds,
            transform_process=self.transform_process,
        )
        for destination in self.streaming.values():
            destination.start()
        self.firehose.start()

    def stats(self) -> EmulatorStats:
        """A snapshot of the integration counters."""
        sds, fh = list(self.streaming.values()), self.firehose
        return EmulatorStats(
            stream_records_read=sum(sd.records_read for sd in sds),
            records_forwarded=sum(sd.records_forwarded for sd in sds),
            duplicates_injected=sum(sd.injector.duplicates for sd in sds),
            ttl_marked=sum(sd.injector.ttl_marked for sd in sds),
            out_of_order=sum(sd.injector.out_of_order for sd in sds),
            firehose_records_read=fh.records_read if fh else 0,
            firehose_ok=fh.records_ok if fh else 0,
            firehose_failed=fh.records_failed if fh else 0,
            firehose_dropped=fh.records_dropped if fh else 0,
            firehose_invocations=fh.invocations if fh else 0,
            firehose_objects=fh.objects_written if fh else 0,
            firehose_get_records_calls=fh.get_records_calls if fh else 0,
            errors=sum(sd.errors for sd in sds) + (fh.errors if fh else 0),
        )

    def stop(self) -> None:
        """Drain and stop the integrations (stream first), then the server; idempotent."""
        with self._lock:
            server, self._server = self._server, None
            clients, self._clients = self._clients, []
        # The integrations stay referenced so their counters remain readable after stop.
        for destination in self.streaming.values():
            destination.stop()
        if self.firehose is not None:
            self.firehose.stop()
        for client in clients:
            client.close()
        if server is not None:
            server.stop()
        _release(self)


def _faults_for(faults: FaultConfig | None, index: int) -> FaultConfig | None:
    """Each table's destination injects its own seeded faults (seed + table index)."""
    if faults is None or index == 0:
        return faults
    return dataclasses.replace(faults, seed=faults.seed + index)


def _release(emulator: Emulator) -> None:
    with _running_lock:
        _running.discard(id(emulator))
