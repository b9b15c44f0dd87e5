"""The KCL adapter over the real MultiLang protocol: this test plays the Java daemon.

``python -m changelake_consumer record-processor`` runs as a subprocess with amazon-kclpy's own
Python package; the test writes the daemon's JSON lines to its stdin and reads its stdout, which
must carry protocol lines only. S3 is the moto server (real HTTP).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from changelake.events import Position
from changelake_testsupport.person_changes import SHARD, change, event_id_of

pytestmark = [pytest.mark.kcl, pytest.mark.aws]
BUCKET = "lake-kcl"
TIMEOUT_S = 20


class Daemon:
    """The MultiLangDaemon's side of one record-processor child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "changelake_consumer", "record-processor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any] | None:
        """The next protocol message (kclpy pads messages with blank lines); None at EOF."""
        while True:
            line = self.lines.get(timeout=TIMEOUT_S)
            if line is None:
                return None
            if line.strip():
                message: dict[str, Any] = json.loads(line)  # anything else on stdout fails here
                assert "action" in message, line
                return message

    def expect_status(self, action: str) -> None:
        assert self.receive() == {"action": "status", "responseFor": action}, self.stderr

    def expect_checkpoint(self) -> str | None:
        message = self.receive()
        assert message is not None, self.stderr
        assert message["action"] == "checkpoint", message
        sequence: str | None = message["sequenceNumber"]
        return sequence

    def reply_checkpoint(self, sequence: str | None, error: str | None = None) -> None:
        reply: dict[str, Any] = {
            "action": "checkpoint",
            "sequenceNumber": sequence,
            "subSequenceNumber": None,
        }
        if error is not None:
            reply["error"] = error
        self.send(reply)

    def initialize(self, sequence: str = "TRIM_HORIZON") -> None:
        self.send(
            {
                "action": "initialize",
                "shardId": SHARD,
                "sequenceNumber": sequence,
                "subSequenceNumber": 0,
            }
        )
        self.expect_status("initialize")

    def process(self, records: list[tuple[bytes, Position]]) -> None:
        self.send(
            {
                "action": "processRecords",
                "millisBehindLatest": 1234,
                "records": [
                    {
                        "action": "record",
                        "data": base64.b64encode(data).decode(),
                        "partitionKey": "pk",
                        "sequenceNumber": pos.sequence_number,
                        "subSequenceNumber": 0,
                        "approximateArrivalTimestamp": (pos.arrival_time_us or 0) // 1000,
                    }
                    for data, pos in records
                ],
            }
        )

    def close(self) -> int:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemon_env(aws_endpoint: str) -> dict[str, str]:
    """Child environment: moto endpoint, lake bucket, small row threshold (3 rows flush)."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    env = dict(os.environ)
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "CHANGELAKE_LAKE_BUCKET": BUCKET,
            "CHANGELAKE_FLUSH_ROWS": "3",
            "CHANGELAKE_FLUSH_AGE_S": "600",
            "CHANGELAKE_WRITE_TIMEOUT_S": "0",
        }
    )
    return env


@pytest.fixture
def daemon(daemon_env: dict[str, str]) -> Iterator[Daemon]:
    """A running record-processor child, initialized for the test shard."""
    d = Daemon(daemon_env)
    try:
        d.initialize()
        yield d
    finally:
        d.close()


def _event_ids() -> set[str]:
    import io

    import pyarrow.parquet as pq

    s3 = boto3.client("s3")
    ids: set[str] = set()
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="changes/").get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        ids.update(pq.read_table(io.BytesIO(body)).column("event_id").to_pylist())
    return ids


def test_kcl_process_records_checkpoints_after_durable_write(daemon: Daemon) -> None:
    records = [change(i) for i in range(4)]
    daemon.process(records)
    # 3 rows reach the threshold and are written; the 4th stays buffered
    assert daemon.expect_checkpoint() == records[2][1].sequence_number
    assert _event_ids() == {event_id_of(i) for i in range(3)}
    daemon.reply_checkpoint(records[2][1].sequence_number)
    daemon.expect_status("processRecords")
    # an empty batch (callProcessRecordsEvenForEmptyRecordList) checkpoints nothing new
    daemon.process([])
    daemon.expect_status("processRecords")
    # shutdownRequested flushes the 4th row and checkpoints it
    daemon.send({"action": "shutdownRequested"})
    assert daemon.expect_checkpoint() == records[3][1].sequence_number
    daemon.reply_checkpoint(records[3][1].sequence_number)
    daemon.expect_status("shutdownRequested")
    assert _event_ids() == {event_id_of(i) for i in range(4)}
    assert daemon.close() == 0


def test_kcl_shard_ended_flushes_and_checkpoints_shard_end(daemon: Daemon) -> None:
    daemon.process([change(0)])
    daemon.expect_status("processRecords")
    daemon.send({"action": "shardEnded"})
    assert daemon.expect_checkpoint() is None  # checkpoint() without a number = SHARD_END
    daemon.reply_checkpoint(None)
    daemon.expect_status("shardEnded")
    assert _event_ids() == {event_id_of(0)}
    assert daemon.close() == 0


def test_kcl_lease_lost_drops_buffers_without_checkpoint(daemon: Daemon) -> None:
    daemon.process([change(0), change(1)])
    daemon.expect_status("processRecords")
    daemon.send({"action": "leaseLost"})
    daemon.expect_status("leaseLost")  # no checkpoint message in between
    assert _event_ids() == set()
    assert daemon.close() == 0


def test_kcl_checkpoint_throttling_is_retried(daemon_env: dict[str, str]) -> None:
    daemon = Daemon({**daemon_env, "CHANGELAKE_FLUSH_ROWS": "1"})
    try:
        daemon.initialize()
        record = change(0)
        daemon.process([record])
        assert daemon.expect_checkpoint() == record[1].sequence_number
        daemon.reply_checkpoint(record[1].sequence_number, error="ThrottlingException")
        assert daemon.expect_checkpoint() == record[1].sequence_number  # retried
        daemon.reply_checkpoint(record[1].sequence_number)
        daemon.expect_status("processRecords")
    finally:
        assert daemon.close() == 0


def test_kcl_checkpoint_shutdown_exception_stops_processing(daemon_env: dict[str, str]) -> None:
    daemon = Daemon({**daemon_env, "CHANGELAKE_FLUSH_ROWS": "1"})
    try:
        daemon.initialize()
        daemon.process([change(0)])
        daemon.expect_checkpoint()
        daemon.reply_checkpoint(None, error="ShutdownException")
        daemon.expect_status("processRecords")
        # stopped: further records are ignored, nothing more is written or checkpointed
        daemon.process([change(1)])
        daemon.expect_status("processRecords")
        assert _event_ids() == {event_id_of(0)}
    finally:
        assert daemon.close() == 0


def test_kcl_checkpoint_invalid_state_exits_non_zero(daemon_env: dict[str, str]) -> None:
    daemon = Daemon({**daemon_env, "CHANGELAKE_FLUSH_ROWS": "1"})
    try:
        daemon.initialize()
        daemon.process([change(0)])
        daemon.expect_checkpoint()
        daemon.reply_checkpoint(None, error="InvalidStateException")
        assert daemon.receive() is None  # no status: the process ended
    finally:
        code = daemon.close()
    assert code != 0


def test_kcl_unexpected_exception_exits_non_zero(daemon_env: dict[str, str]) -> None:
    # GIVEN a bucket that does not exist: the S3 write fails (an infrastructure error)
    daemon = Daemon({**daemon_env, "CHANGELAKE_LAKE_BUCKET": "missing-bucket"})
    try:
        daemon.initialize()
        daemon.process([change(i) for i in range(3)])
        assert daemon.receive() is None  # neither checkpoint nor status: the batch is not skipped
    finally:
        code = daemon.close()
    assert code != 0
    assert any("record processor failed" in line for line in daemon.stderr)


def test_kcl_resumes_after_checkpoint_given_by_initialize(daemon_env: dict[str, str]) -> None:
    records = [change(i) for i in range(6)]
    first = Daemon(daemon_env)
    try:
        first.initialize()
        first.process(records[:3])
        first.reply_checkpoint(first.expect_checkpoint())
        first.expect_status("processRecords")
    finally:
        first.close()
    # a new worker resumes after the checkpoint and the KCL redelivers from there
    second = Daemon(daemon_env)
    try:
        second.initialize(sequence=records[2][1].sequence_number)
        second.process(records[3:])
        assert second.expect_checkpoint() == records[5][1].sequence_number
        second.reply_checkpoint(records[5][1].sequence_number)
        second.expect_status("processRecords")
    finally:
        second.close()
    assert _event_ids() == {event_id_of(i) for i in range(6)}


@pytest.mark.parametrize("owner", ["worker-a", "worker-b"])
def test_kcl_writes_are_fenced_by_the_kcl_lease(
    daemon_env: dict[str, str], kcl_lease_table: Any, owner: str
) -> None:
    # the processor runs as worker-a (the daemon exports CHANGELAKE_KCL_WORKER_ID); the KCL's
    # lease table says who owns the shard: worker-b means this worker stalled and lost it
    kcl_lease_table.put(SHARD, leaseOwner=owner)
    env = {
        **daemon_env,
        "CHANGELAKE_KCL_WORKER_ID": "worker-a",
        "CHANGELAKE_APPLICATION_NAME": kcl_lease_table.name,
    }
    d = Daemon(env)
    try:
        d.initialize()
        records = [change(i) for i in range(4)]
        d.process(records[:3])  # 3 rows: a flush is due
        if owner == "worker-a":
            assert d.expect_checkpoint() == records[2][1].sequence_number
            d.reply_checkpoint(records[2][1].sequence_number)
            d.expect_status("processRecords")
            assert _event_ids() == {event_id_of(i) for i in range(3)}
        else:
            d.expect_status("processRecords")  # no write, no checkpoint, the process lives on
            d.process(records[3:])
            d.expect_status("processRecords")
            d.send({"action": "shutdownRequested"})
            d.expect_status("shutdownRequested")  # nothing to flush, nothing to checkpoint
            assert _event_ids() == set()
            assert any("lease lost: writes fenced" in line for line in d.stderr), d.stderr
        assert d.close() == 0
    finally:
        d.close()
