"""The consumer's one composition root: settings → logging → adapters → the chosen runner.

``python -m changelake_consumer local|kcl|record-processor`` enters here:

* ``local``: every shard in this process (:class:`~.local_runner.LocalConsumer`) over the
  Kinesis, DynamoDB and S3 adapters;
* ``kcl``: the Java MultiLangDaemon in the foreground (:class:`~.kcl_daemon.KclDaemon`);
* ``record-processor``: what that daemon starts once per leased shard, the amazon-kclpy
  record processor (:mod:`~.adapters.kcl_processor`) speaking the protocol on stdout.

Nothing else in the service builds an adapter (ADR 0029). amazon_kclpy is the optional ``kcl``
extra, so it is imported only by the record-processor entry.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from types import FrameType

from changelake.adapters import aws
from changelake.adapters.s3_store import S3ObjectStore, write_client
from changelake.logs import configure_logging
from changelake.metrics import PeriodicFlush, make_metrics

from changelake_consumer.adapters.dynamodb_checkpoints import DynamoDBCheckpointStore
from changelake_consumer.adapters.kcl_lease import KclLeaseFence
from changelake_consumer.adapters.kinesis_shards import KinesisShardReader
from changelake_consumer.kcl_daemon import KclDaemon
from changelake_consumer.local_runner import LocalConsumer
from changelake_consumer.service import BatchPolicy, ShardProcessor
from changelake_consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)

RUNNERS = ("local", "kcl")
RECORD_PROCESSOR = "record-processor"  # the KCL child's entry (kcl_properties.PROCESSOR_ARGS)


def run_local(settings: ConsumerSettings) -> int:
    """Run every shard in this process until SIGINT/SIGTERM; non-zero if the consumer failed."""
    consumer = build_local(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        consumer.start()
        while not stop.is_set() and not consumer.wait(0.5):
            pass
    finally:
        consumer.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if consumer.failure is not None else 0


def run_kcl(settings: ConsumerSettings) -> int:
    """Run the Java MultiLangDaemon in the foreground until it exits or we are stopped.

    SIGINT/SIGTERM are passed on to the daemon as one SIGTERM (graceful shutdown: every record
    processor flushes and checkpoints); a stop we asked for exits 0.
    """
    daemon = KclDaemon(settings)
    daemon.start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping the KCL MultiLangDaemon", extra={"signal": signum})
        daemon.terminate()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = daemon.exit_code()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        daemon.kill()  # the JVM has exited: this only reaps record processors left behind
    if code != 0:
        log.error("the KCL MultiLangDaemon exited", extra={"exit_code": code})
    return code


def run(runner: str = "local", settings: ConsumerSettings | None = None) -> int:
    """Composition root: settings → logging → the chosen runner; returns the exit code."""
    if runner == RECORD_PROCESSOR:
        run_record_processor()
        return 0
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r} (use one of {', '.join(RUNNERS)})")
    settings = settings or ConsumerSettings()
    configure_logging(settings.log_level)
    if runner == "kcl":
        return run_kcl(settings)
    return run_local(settings)


def build_local(settings: ConsumerSettings | None = None) -> LocalConsumer:
    """The local runner wired to S3, Kinesis and DynamoDB from settings (composition)."""
    settings = settings or ConsumerSettings()
    checkpoints = DynamoDBCheckpointStore(
        settings.checkpoint_table, settings.stream_name, worker_id=worker_id()
    )
    return LocalConsumer(
        settings,
        KinesisShardReader(settings.stream_name),
        checkpoints,
        S3ObjectStore(settings.lake_bucket, put_client=write_client()),
        make_metrics(settings.metrics, namespace="changelake/consumer"),
        ensure_checkpoints=checkpoints.ensure_table,
        leases=checkpoints,
        privacy=aws.privacy_policy(settings),
    )


def worker_id() -> str:
    """This runner's identity in the lease table: host, process and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def local_service() -> LocalConsumer:
    """Factory registered in ``changelake_cli.services.default_factories`` (env settings)."""
    return build_local()


def run_record_processor() -> None:
    """Composition root of the KCL child process: settings → logging → adapters → protocol loop."""
    from changelake_consumer.adapters import kcl_processor  # amazon_kclpy: the `kcl` extra

    protocol_out = sys.stdout
    sys.stdout = sys.stderr  # anything printed by accident goes to stderr, not the protocol
    settings = ConsumerSettings()
    configure_logging(settings.log_level)
    metrics = make_metrics(settings.metrics, namespace="changelake/consumer")
    store = S3ObjectStore(settings.lake_bucket, put_client=write_client())
    policy = BatchPolicy.from_settings(settings)
    privacy = aws.privacy_policy(settings)

    def factory(shard_id: str, start_after: str | None) -> ShardProcessor:
        # Write fencing (ADR 0043): the daemon names its worker (CHANGELAKE_KCL_WORKER_ID).
        worker = settings.kcl_worker_id
        fence = KclLeaseFence(settings.application_name, shard_id, worker) if worker else None
        return ShardProcessor(
            shard_id, store, metrics, policy, privacy=privacy, start_after=start_after, fence=fence
        )

    if not settings.kcl_worker_id:
        log.warning("no CHANGELAKE_KCL_WORKER_ID: S3 writes are not fenced by the KCL lease")

    flusher = PeriodicFlush(metrics, settings.metrics_flush_s).start()
    try:
        kcl_processor.serve(kcl_processor.ChangeRecordProcessor(factory, metrics), protocol_out)
    finally:
        flusher.stop()
