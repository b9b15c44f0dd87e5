"""The DynamoDB writer: retries of unprocessed items and throttling (stub), real writes (moto)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from changelake import ddb_json
from changelake_producer.adapters.dynamodb_writer import DynamoDBWriter, WriteError
from changelake_producer.generator import Mix, PersonGenerator
from changelake_producer.service import TableMissingError


def _throttle() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        "BatchWriteItem",
    )


class StubClient:
    """Returns scripted responses to batch_write_item / update_item."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.requests: list[list[Any]] = []
        self.updates = 0

    def batch_write_item(
        self,
        RequestItems: dict[str, list[Any]],  # noqa: N803 - boto3's parameter name
    ) -> dict[str, Any]:
        self.requests.append(RequestItems["persons"])
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.updates += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _writer(stub: StubClient, sleeps: list[float], attempts: int = 10) -> DynamoDBWriter:
    return DynamoDBWriter("persons", stub, max_attempts=attempts, sleep=sleeps.append)  # type: ignore[arg-type]


def _inserts(n: int) -> list[Any]:
    gen = PersonGenerator(1, Mix(1, 0, 0))
    return [gen.next() for _ in range(n)]


@pytest.mark.unit
def test_writer_retries_unprocessed_items_with_backoff_when_batch_partially_applied() -> None:
    ops = _inserts(3)
    leftover = [{"PutRequest": {"Item": ddb_json.serialize_image(ops[2].item or {})}}]
    stub = StubClient([{"UnprocessedItems": {"persons": leftover}}, {"UnprocessedItems": {}}])
    sleeps: list[float] = []
    writer = _writer(stub, sleeps)
    writer.write_batch(ops)
    assert len(stub.requests[0]) == 3
    assert stub.requests[1] == leftover  # only the leftovers go again
    assert len(sleeps) == 1
    assert writer.unprocessed_retries == 1


@pytest.mark.unit
def test_writer_backs_off_exponentially_when_throttled() -> None:
    stub = StubClient([_throttle(), _throttle(), _throttle(), {}])
    sleeps: list[float] = []
    writer = _writer(stub, sleeps)
    writer.write_batch(_inserts(1))
    assert writer.throttled == 3
    assert len(sleeps) == 3
    # Full jitter: each delay is within its exponentially growing cap.
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= 0.05 * 2**attempt


@pytest.mark.unit
def test_writer_raises_when_throttling_outlasts_attempts() -> None:
    stub = StubClient([_throttle()] * 3)
    with pytest.raises(WriteError, match="throttled"):
        _writer(stub, [], attempts=3).write_batch(_inserts(1))


@pytest.mark.unit
def test_writer_raises_when_items_stay_unprocessed() -> None:
    ops = _inserts(1)
    left = {"UnprocessedItems": {"persons": [{"PutRequest": {"Item": {}}}]}}
    with pytest.raises(WriteError, match="unprocessed"):
        _writer(StubClient([left] * 3), [], attempts=3).write_batch(ops)


@pytest.mark.unit
def test_writer_reraises_other_errors_at_once() -> None:
    error = ClientError(
        {"Error": {"Code": "ValidationException", "Message": "bad"}}, "BatchWriteItem"
    )
    stub = StubClient([error])
    with pytest.raises(ClientError):
        _writer(stub, []).write_batch(_inserts(1))


def _create_table() -> None:
    boto3.client("dynamodb").create_table(
        TableName="persons",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.mark.aws
def test_writer_applies_inserts_updates_deletes_exactly_when_table_exists(
    aws_endpoint: str,
) -> None:
    _create_table()
    writer = DynamoDBWriter("persons")
    writer.check()
    gen = PersonGenerator(21, Mix(0.5, 0.3, 0.2))
    for _ in range(80):
        op = gen.next()
        if op.kind == "update":
            writer.update(op)
        else:
            writer.write_batch([op])
    items = boto3.client("dynamodb").scan(TableName="persons")["Items"]
    table = {i["pk"]["S"]: ddb_json.deserialize_image(i) for i in items}
    assert table == {pk: dict(item) for pk, item in gen.live.items()}


@pytest.mark.aws
def test_writer_check_raises_clear_error_when_table_missing(aws_endpoint: str) -> None:
    with pytest.raises(TableMissingError, match=r"'persons' does not exist .*changelake local up"):
        DynamoDBWriter("persons").check()


@pytest.mark.aws
def test_producer_task_honours_batch_size_setting(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from changelake_producer import __main__ as task
    from changelake_producer import bootstrap

    _create_table()
    sizes: list[int] = []

    class RecordingWriter(DynamoDBWriter):
        def write_batch(self, operations: Any) -> None:
            sizes.append(len(operations))
            super().write_batch(operations)

    monkeypatch.setattr(bootstrap, "DynamoDBWriter", RecordingWriter)
    for name, value in {
        "CHANGELAKE_TABLES": "persons",
        "CHANGELAKE_PRODUCER_COUNT": "40",
        "CHANGELAKE_PRODUCER_MIX": "insert=1,update=0,delete=0",
        "CHANGELAKE_PRODUCER_SEED": "7",
        "CHANGELAKE_PRODUCER_BATCH_SIZE": "4",
    }.items():
        monkeypatch.setenv(name, value)

    assert task.main() == 0

    assert max(sizes, default=0) == 4
    assert sum(sizes) == 40
    assert boto3.client("dynamodb").scan(TableName="persons", Select="COUNT")["Count"] == 40
