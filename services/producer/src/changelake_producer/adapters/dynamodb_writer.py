"""DynamoDB adapter of the producer's :class:`~changelake_producer.service.ItemWriter`.

BatchWriteItem can return ``UnprocessedItems`` (throttling, partition limits) with HTTP 200:
they are retried with exponential backoff and full jitter until every item is applied. A
throttling error that outlasts botocore's own retries is backed off the same way.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from changelake import ddb_json
from changelake.adapters import aws

from changelake_producer.generator import Operation
from changelake_producer.service import TableMissingError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
    }
)


class WriteError(RuntimeError):
    """Items still unprocessed, or throttled, after every retry."""


class DynamoDBWriter:
    """Writes operations to one table through the low-level client (exact numbers, no floats)."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        region: str | None = None,
        max_attempts: int = 10,
        base_delay_s: float = 0.05,
        max_delay_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self._ddb = client or aws.dynamodb(region)
        self._max_attempts = max_attempts
        self._base = base_delay_s
        self._cap = max_delay_s
        self._sleep = sleep
        self._jitter = random.Random()  # backoff jitter must not disturb the seeded data
        self.unprocessed_retries = 0
        self.throttled = 0

    def _backoff(self, attempt: int) -> None:
        # Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
        # And Jitter"): spreads retries of competing writers.
        self._sleep(self._jitter.uniform(0, min(self._cap, self._base * 2**attempt)))

    def check(self) -> None:
        """Raise :class:`TableMissingError` if the table does not exist."""
        try:
            self._ddb.describe_table(TableName=self.table)
        except ClientError as exc:
            if aws.error_code(exc) == "ResourceNotFoundException":
                endpoint = self._ddb.meta.endpoint_url
                raise TableMissingError(
                    f"DynamoDB table {self.table!r} does not exist at {endpoint}. "
                    "Start the local stack with `changelake local up` (and export the "
                    "AWS_ENDPOINT_URL it prints), or set CHANGELAKE_TABLES."
                ) from exc
            raise

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        for attempt in range(self._max_attempts):
            try:
                return fn(**kwargs)
            except ClientError as exc:
                if aws.error_code(exc) not in THROTTLING_CODES:
                    raise
                self.throttled += 1
                if attempt == self._max_attempts - 1:
                    raise WriteError(
                        f"still throttled after {self._max_attempts} attempts"
                    ) from exc
                self._backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def write_batch(self, operations: Sequence[Operation]) -> None:
        """BatchWriteItem the inserts (PutRequest) and deletes (DeleteRequest); retry leftovers."""
        requests: list[Any] = []
        for op in operations:
            if op.kind == "insert" and op.item is not None:
                requests.append({"PutRequest": {"Item": ddb_json.serialize_image(op.item)}})
            elif op.kind == "delete":
                requests.append({"DeleteRequest": {"Key": ddb_json.serialize_image(op.key)}})
            else:
                raise ValueError(f"{op.kind} does not belong in a batch write")
        for attempt in range(self._max_attempts):
            resp = self._call(self._ddb.batch_write_item, RequestItems={self.table: requests})
            requests = list(resp.get("UnprocessedItems", {}).get(self.table, []))
            if not requests:
                return
            self.unprocessed_retries += 1
            log.debug("unprocessed items", extra={"count": len(requests), "attempt": attempt})
            self._backoff(attempt)
        raise WriteError(f"{len(requests)} items unprocessed after {self._max_attempts} attempts")

    def update(self, operation: Operation) -> None:
        """UpdateItem setting the changed attributes; the item must exist."""
        if operation.changes is None:
            raise ValueError("an update needs changes")
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        for i, (name, value) in enumerate(sorted(operation.changes.items())):
            names[f"#a{i}"] = name
            values[f":v{i}"] = ddb_json.serialize_value(value)
            sets.append(f"#a{i} = :v{i}")
        self._call(
            self._ddb.update_item,
            TableName=self.table,
            Key=ddb_json.serialize_image(operation.key),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
