"""The transform Lambda in a process of its own (ADR 0047): same answers, environment, recovery."""

from __future__ import annotations

import base64
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson
import pytest
from changelake_emulator.firehose_bridge import TransformProcess, run_transform
from changelake_testsupport.records import kinesis_dynamodb_record
from changelake_transform.handler import handler

pytestmark = pytest.mark.unit

CONTEXT = None


def _event(*payloads: bytes) -> dict[str, Any]:
    return {
        "invocationId": "inv-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/d",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"r{i}",
                "approximateArrivalTimestamp": 1_795_774_530_500,
                "data": base64.b64encode(data).decode(),
                "kinesisRecordMetadata": {
                    "sequenceNumber": str(i),
                    "subsequenceNumber": 0,
                    "partitionKey": "k",
                    "shardId": "shardId-000000000000",
                    "approximateArrivalTimestamp": 1_795_774_530_500,
                },
            }
            for i, data in enumerate(payloads)
        ],
    }


def _change(pk: str) -> bytes:
    record = kinesis_dynamodb_record(
        event_name="INSERT",
        keys={"pk": pk},
        new_image={"pk": pk, "ver": 1},
        event_time_us=1_795_774_530_500_000,
    )
    return orjson.dumps(record)


@pytest.fixture
def transform() -> Any:
    process = TransformProcess(handler)
    process.start()
    yield process
    process.stop()


def test_the_transform_process_answers_like_the_handler_in_process(transform: Any) -> None:
    # GIVEN a batch with two changes and a poison record
    event = _event(_change("a"), b"not json", _change("b"))
    # WHEN it is invoked in the transform's process and in this one
    response, reasons = transform(event, CONTEXT)
    local_response, local_reasons = run_transform(handler, event, CONTEXT)
    # THEN the response and the logged reasons are the same
    assert response == local_response
    assert [r["result"] for r in response["records"]] == ["Ok", "ProcessingFailed", "Ok"]
    assert reasons == local_reasons
    assert set(reasons) == {"r1"}
    assert reasons["r1"]


def test_the_transform_process_sees_the_environment_of_each_invocation(
    transform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker started before the setting below existed (start() spawned it)
    # WHEN the response limit is lowered before its first invocation
    monkeypatch.setenv("CHANGELAKE_TRANSFORM_MAX_RESPONSE_BYTES", "200")
    response, reasons = transform(_event(_change("a"), _change("b")), CONTEXT)
    # THEN the handler read it: the records did not fit and came back ProcessingFailed
    assert [r["result"] for r in response["records"]] == ["ProcessingFailed"] * 2
    assert all("response size limit" in reason for reason in reasons.values())


def test_a_killed_transform_process_fails_one_invocation_then_is_replaced(
    transform: Any,
) -> None:
    event = _event(_change("a"))
    first, _ = transform(event, CONTEXT)
    # WHEN the worker is killed between two invocations
    (pid,) = transform._pool._processes  # the one worker of the pool
    os.kill(pid, signal.SIGKILL)
    # THEN the next invocation fails (a function error: the bridge retries it) ...
    with pytest.raises(BrokenProcessPool):
        transform(event, CONTEXT)
    # ... and the one after runs in a new worker, with the same answer
    again, _ = transform(event, CONTEXT)
    assert again == first


def test_a_handler_that_cannot_cross_processes_is_refused() -> None:
    with pytest.raises(ValueError, match="picklable"):
        TransformProcess(lambda event, context: event)
