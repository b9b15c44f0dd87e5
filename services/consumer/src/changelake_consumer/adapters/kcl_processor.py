"""KCL adapter: an amazon-kclpy v3 record processor feeding the pure core.

Run by the KCL MultiLangDaemon as ``python -m changelake_consumer record-processor`` (one
process per shard, wired by :func:`changelake_consumer.bootstrap.run_record_processor`). stdout
is the MultiLang protocol channel: the bootstrap hands the real stdout to kclpy and points
``sys.stdout`` at stderr, so a stray ``print`` can never corrupt the protocol; logs go to stderr
as JSON lines.

Lifecycle (docs/aws-behaviour.md "KCL and amazon-kclpy"):

* ``process_records`` feeds the core and checkpoints the sequence number the core says is safe
  (never past a row that is not durable in S3);
* ``shard_ended`` flushes and checkpoints the shard end; ``shutdown_requested`` flushes and
  checkpoints; ``lease_lost`` drops the buffers without checkpointing (another worker owns the
  shard and will re-read from the last checkpoint);
* checkpoint errors: ``ThrottlingException`` → retry with backoff; ``ShutdownException`` → stop
  (drop buffers, no more checkpoints); ``InvalidStateException`` → exit non-zero;
* any unexpected exception exits the process non-zero: kclpy would otherwise log it and go on,
  and the KCL would never redeliver the batch.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor
from changelake.events import Position
from changelake.ports import Metrics

from changelake_consumer.ports import LeaseLostError
from changelake_consumer.service import ShardProcessor

log = logging.getLogger(__name__)

ProcessorFactory = Callable[[str, str | None], ShardProcessor]

EXIT_FAILURE = 1
CHECKPOINT_ATTEMPTS = 5
CHECKPOINT_BACKOFF_S = 1.0


class ChangeRecordProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """One shard's KCL record processor around a :class:`ShardProcessor`."""

    def __init__(
        self,
        factory: ProcessorFactory,
        metrics: Metrics,
        *,
        checkpoint_attempts: int = CHECKPOINT_ATTEMPTS,
        checkpoint_backoff_s: float = CHECKPOINT_BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._factory = factory
        self._metrics = metrics
        self._attempts = checkpoint_attempts
        self._backoff = checkpoint_backoff_s
        self._sleep = sleep
        self._core: ShardProcessor | None = None
        self._shard_id = "?"
        self._checkpointed: str | None = None
        self._stopped = False

    # -- kclpy v3 interface ---------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        """Build the core for the shard, starting after the KCL's checkpoint."""
        self._guard(self._initialize, initialize_input)

    def process_records(self, process_records_input: Any) -> None:
        """Feed the batch (possibly empty) to the core; checkpoint what it says is durable."""
        self._guard(self._process, process_records_input)

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Drop the buffers; checkpointing is no longer possible."""
        self._guard(self._lease_lost, lease_lost_input)

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Flush everything, then checkpoint the shard end so the children can start."""
        self._guard(self._shard_ended, shard_ended_input)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """Flush everything and checkpoint before the worker shuts down."""
        self._guard(self._shutdown_requested, shutdown_requested_input)

    # -- implementation -------------------------------------------------------------------

    def _guard(self, handler: Callable[[Any], None], message: Any) -> None:
        try:
            handler(message)
        except LeaseLostError:
            # The write fence found another owner (ADR 0043): write and checkpoint nothing more;
            # the KCL ends this processor (lease lost) and the owner reads from the checkpoint.
            if self._core is not None:
                self._core.drop()
            self._stopped = True
            log.warning("lease lost: writes fenced", extra={"shard_id": self._shard_id})
        except SystemExit:
            raise
        except BaseException:
            # kclpy swallows exceptions from handlers and the KCL does not redeliver the batch:
            # end the process instead, so the lease moves on from the last durable checkpoint.
            log.exception("record processor failed; exiting", extra={"shard_id": self._shard_id})
            self._metrics.flush()
            sys.exit(EXIT_FAILURE)

    def _initialize(self, message: Any) -> None:
        self._shard_id = str(message.shard_id)
        start = message.sequence_number
        # The KCL passes sentinels (TRIM_HORIZON, LATEST, AT_TIMESTAMP) before a first checkpoint.
        start_after = start if isinstance(start, str) and start.isdigit() else None
        self._checkpointed = start_after
        self._core = self._factory(self._shard_id, start_after)
        log.info("initialized", extra={"shard_id": self._shard_id, "start_after": start_after})

    def _require_core(self) -> ShardProcessor:
        if self._core is None:
            raise RuntimeError("processRecords before initialize")
        return self._core

    def _process(self, message: Any) -> None:
        if self._stopped:
            return
        core = self._require_core()
        shard = self._shard_id
        records = [
            (r.binary_data, Position(shard, str(r.sequence_number), int(r.timestamp_millis) * 1000))
            for r in message.records
        ]
        self._metrics.gauge("lag_ms", float(message.millis_behind_latest or 0), {"shard": shard})
        checkpoint = core.process(records)
        if checkpoint is not None and checkpoint != self._checkpointed:
            self._checkpoint(message.checkpointer, checkpoint)

    def _lease_lost(self, _message: Any) -> None:
        if self._core is not None:
            self._core.drop()
        self._stopped = True
        log.info("lease lost", extra={"shard_id": self._shard_id})

    def _shard_ended(self, message: Any) -> None:
        if self._stopped:
            return
        self._require_core().flush_all()
        # No sequence number: the KCL records SHARD_END, which lets the children start.
        self._checkpoint(message.checkpointer, None)
        log.info("shard ended", extra={"shard_id": self._shard_id})

    def _shutdown_requested(self, message: Any) -> None:
        if self._stopped:
            return
        checkpoint = self._require_core().flush_all()
        if checkpoint is not None and checkpoint != self._checkpointed:
            self._checkpoint(message.checkpointer, checkpoint)
        self._metrics.flush()

    def _checkpoint(self, checkpointer: Any, sequence_number: str | None) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                checkpointer.checkpoint(sequence_number)
            except CheckpointError as exc:
                error = str(exc.value)
                if error == "ThrottlingException" and attempt < self._attempts:
                    log.warning("checkpoint throttled, retrying", extra={"attempt": attempt})
                    self._sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                if error == "ShutdownException":
                    # The worker is shutting this processor down: stop, keep nothing.
                    log.info(
                        "checkpoint refused: shutting down", extra={"shard_id": self._shard_id}
                    )
                    if self._core is not None:
                        self._core.drop()
                    self._stopped = True
                    return
                # InvalidStateException (or throttled too often): nothing safe to do but exit.
                raise RuntimeError(f"checkpoint failed: {error}") from exc
            self._checkpointed = sequence_number
            self._metrics.count("checkpoints", 1)
            return


def serve(record_processor: ChangeRecordProcessor, protocol_out: TextIO) -> None:
    """Speak the MultiLang protocol (stdin → ``protocol_out``) until the daemon ends the shard."""
    kcl.KCLProcess(
        record_processor, input_file=sys.stdin, output_file=protocol_out, error_file=sys.stderr
    ).run()
