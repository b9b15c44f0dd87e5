"""The loader Lambda handler against the emulator: {"batchSize": N} writes N persons."""

from __future__ import annotations

import boto3
import pytest
from changelake_producer.lambda_handler import handler

pytestmark = pytest.mark.aws


def test_lambda_handler_inserts_batch_size_persons_when_invoked(emulator: object) -> None:
    result = handler({"batchSize": 30, "seed": 4}, None)
    assert result["batchSize"] == 30
    assert result["inserts"] == 30
    assert result["live"] == 30
    count = boto3.client("dynamodb").scan(TableName="persons", Select="COUNT")["Count"]
    assert count == 30


@pytest.mark.parametrize("event", [{}, {"batchSize": 0}, {"batchSize": "10"}, {"batchSize": True}])
def test_lambda_handler_rejects_bad_batch_size(event: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="batchSize"):
        handler(event, None)
