"""The Glue implementation of the lake's :class:`~changelake_lake.catalog.Catalog` (boto3).

The port's rules are :class:`~changelake_lake.catalog.Catalog`'s; this module only
stores tables and partitions in Glue, and is the one place that makes Glue calls:

* every call goes through :meth:`GlueCatalog._call`: throttling is retried with jittered
  exponential backoff on top of the client's own retries (botocore gives up after its budget;
  a burst of catalog work must not drop a batch); botocore errors become the port's errors
  (``raise … from e``): ``EntityNotFoundException`` → :class:`NotFoundError`,
  ``AlreadyExistsException``/``ConcurrentModificationException`` → :class:`ConflictError`,
  throttling past the budget and unreachable endpoints → :class:`UnavailableError`, anything
  else → :class:`CatalogError` carrying the AWS error code;
* ``BatchCreatePartition`` takes at most 100 partitions per call, ``BatchGetPartition`` 1000,
  ``BatchDeletePartition`` 25 (docs/aws-behaviour.md); ``AlreadyExistsException`` per partition
  counts as success; other per-partition errors are retried for those partitions only;
  non-retryable ones raise;
* ``UpdateTable`` is given the ``VersionId`` read before: Glue rejects it with
  ``ConcurrentModificationException`` if another writer got in between (ADR 0008);
* ``UpdatePartition`` replaces a partition's input as a whole, so readers resolving the
  partition get the old location or the new one, never a mix (ADR 0033).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from changelake.adapters import aws

from changelake_lake.catalog import (
    Catalog,
    CatalogError,
    ConflictError,
    Entries,
    NotFoundError,
    PartitionResult,
    UnavailableError,
    Wanted,
)

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

log = logging.getLogger(__name__)

MAX_PARTITIONS_PER_CALL = 100  # BatchCreatePartition limit (docs/aws-behaviour.md)
MAX_BATCH_GET = 1000  # BatchGetPartition's limit
MAX_BATCH_DELETE = 25  # BatchDeletePartition's limit
THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "OperationTimeoutException",
        "InternalServiceException",
        "ServiceUnavailableException",
    }
)
# Per-partition errors that retrying cannot fix; anything else is retried.
FATAL_PARTITION_CODES = frozenset(
    {
        "InvalidInputException",
        "EntityNotFoundException",
        "AccessDeniedException",
        "ResourceNumberLimitExceededException",
        "GlueEncryptionException",
    }
)
ALREADY_EXISTS = "AlreadyExistsException"
NOT_FOUND = "EntityNotFoundException"
CONCURRENT = "ConcurrentModificationException"
_MAX_DELAY_S = 5.0


def error_of(operation: str, code: str, message: str) -> CatalogError:
    """The port's error for a Glue error code."""
    text = f"Glue {operation} failed: {code}: {message}"
    if code == NOT_FOUND:
        return NotFoundError(text, code)
    if code in (ALREADY_EXISTS, CONCURRENT):
        return ConflictError(text, code)
    if code in THROTTLE_CODES:
        return UnavailableError(text, code)
    return CatalogError(text, code)


class GlueCatalog(Catalog):
    """The lake's Glue database: tables, partitions and views of each DynamoDB table.

    ``bucket`` is where the lake's tables point (needed to create them; the query engine, which
    only reads, may leave it empty).
    """

    def __init__(
        self,
        bucket: str,
        database: str,
        client: GlueClient | None = None,
        *,
        attempts: int = 6,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        region: str | None = None,
    ) -> None:
        super().__init__(bucket, database, attempts=attempts)
        self._glue = client or aws.glue(region)
        self._backoff = backoff_seconds
        self._sleep = sleep

    # -- plumbing ---------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        base = min(_MAX_DELAY_S, self._backoff * (2**attempt))
        return float(base * (0.5 + random.random() / 2))

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Call a Glue operation; retry throttling; map botocore errors to the port's."""
        for attempt in range(self._attempts):
            try:
                return getattr(self._glue, operation)(**kwargs)
            except ClientError as exc:
                code = aws.error_code(exc) or ""
                if code in THROTTLE_CODES and attempt + 1 < self._attempts:
                    log.warning(
                        "glue throttled, backing off",
                        extra={"operation": operation, "code": code, "attempt": attempt + 1},
                    )
                    self._sleep(self._delay(attempt))
                    continue
                if code in THROTTLE_CODES:
                    raise UnavailableError(f"Glue {operation}: {code} persisted", code) from exc
                raise error_of(operation, code, str(exc)) from exc
            except BotoCoreError as exc:
                raise UnavailableError(f"Glue {operation} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing (``NextToken``), each page through :meth:`_call`."""
        token: str | None = None
        while True:
            page = self._call(operation, **kwargs, **({"NextToken": token} if token else {}))
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return

    def _conflict(self, name: str, attempt: int) -> None:
        super()._conflict(name, attempt)
        self._sleep(self._delay(min(attempt, 3)) / 4)

    # -- primitives -------------------------------------------------------------------------

    def _create_database(self) -> bool:
        """GetDatabase first: the deployed role may read but not create it."""
        try:
            self._call("get_database", Name=self.database)
            return False
        except NotFoundError:
            pass
        try:
            self._call("create_database", DatabaseInput={"Name": self.database})
        except ConflictError:
            return False
        return True

    def _get_table(self, name: str, database: str | None = None) -> dict[str, Any] | None:
        try:
            return dict(
                self._call("get_table", DatabaseName=database or self.database, Name=name)["Table"]
            )
        except NotFoundError:
            return None

    def _create_table(self, table_input: dict[str, Any]) -> bool:
        try:
            self._call("create_table", DatabaseName=self.database, TableInput=table_input)
        except ConflictError as exc:
            if exc.code == ALREADY_EXISTS:
                return False
            raise
        return True

    def _update_table(self, table_input: dict[str, Any], version: str | None) -> bool:
        kwargs: dict[str, Any] = {"DatabaseName": self.database, "TableInput": table_input}
        if version is not None:
            kwargs["VersionId"] = version
        try:
            self._call("update_table", **kwargs)
        except ConflictError as exc:
            if exc.code == CONCURRENT:
                return False
            raise
        return True

    def _create_partitions(self, name: str, inputs: Sequence[dict[str, Any]]) -> PartitionResult:
        """BatchCreatePartition in chunks of ≤100; failing partitions are retried alone."""
        existing = calls = 0
        created: set[tuple[str, ...]] = set()
        for start in range(0, len(inputs), MAX_PARTITIONS_PER_CALL):
            chunk = inputs[start : start + MAX_PARTITIONS_PER_CALL]
            todo = {tuple(p["Values"]): p for p in chunk}
            for attempt in range(self._attempts):
                calls += 1
                response = self._call(
                    "batch_create_partition",
                    DatabaseName=self.database,
                    TableName=name,
                    PartitionInputList=list(todo.values()),
                )
                retry: dict[tuple[str, ...], dict[str, Any]] = {}
                last_code = ""
                failed: set[tuple[str, ...]] = set()
                for error in response.get("Errors", []):
                    values = tuple(error.get("PartitionValues", []))
                    failed.add(values)
                    code = error.get("ErrorDetail", {}).get("ErrorCode", "")
                    if code == ALREADY_EXISTS:
                        existing += 1
                    elif code in FATAL_PARTITION_CODES or values not in todo:
                        raise error_of(
                            f"BatchCreatePartition {values}",
                            code,
                            error.get("ErrorDetail", {}).get("ErrorMessage", ""),
                        )
                    else:
                        retry[values] = todo[values]
                        last_code = code
                created.update(set(todo) - failed)
                if not retry:
                    break
                if attempt + 1 == self._attempts:
                    raise UnavailableError(
                        f"BatchCreatePartition: {len(retry)} partitions kept failing ({last_code})",
                        last_code,
                    )
                log.warning(
                    "partitions failed, retrying them",
                    extra={"count": len(retry), "attempt": attempt + 1},
                )
                self._sleep(self._delay(attempt))
                todo = retry
        return PartitionResult(len(created), existing, calls, frozenset(created))

    def _get_partitions(
        self, name: str, values: Wanted | None = None, db: str | None = None
    ) -> Entries:
        """All: paginated GetPartitions (no column schemas); some: BatchGetPartition."""
        db = db or self.database
        try:
            if values is None:
                return list(
                    self._pages(
                        "get_partitions",
                        "Partitions",
                        DatabaseName=db,
                        TableName=name,
                        ExcludeColumnSchema=True,
                    )
                )
            found: list[dict[str, Any]] = []
            for start in range(0, len(values), MAX_BATCH_GET):
                resp = self._call(
                    "batch_get_partition",
                    DatabaseName=db,
                    TableName=name,
                    PartitionsToGet=[
                        {"Values": list(v)} for v in values[start : start + MAX_BATCH_GET]
                    ],
                )
                for key in resp.get("UnprocessedKeys", []):
                    try:
                        found.append(self._get_partition(name, key["Values"], db))
                    except NotFoundError:
                        continue
                found.extend(resp.get("Partitions", []))
            return found
        except NotFoundError:
            return []

    def _get_partition(
        self, name: str, values: Sequence[str], database: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self._call(
                "get_partition",
                DatabaseName=database or self.database,
                TableName=name,
                PartitionValues=list(values),
            )["Partition"]
        )

    def _create_partition(self, name: str, partition: dict[str, Any]) -> bool:
        try:
            self._call(
                "create_partition",
                DatabaseName=self.database,
                TableName=name,
                PartitionInput=partition,
            )
        except ConflictError as exc:
            if exc.code == ALREADY_EXISTS:
                return False
            raise
        return True

    def _update_partition(
        self, name: str, values: Sequence[str], partition: dict[str, Any]
    ) -> None:
        self._call(
            "update_partition",
            DatabaseName=self.database,
            TableName=name,
            PartitionValueList=list(values),
            PartitionInput=partition,
        )

    def _delete_partitions(self, name: str, values: Sequence[Sequence[str]]) -> None:
        """BatchDeletePartition in chunks of 25 (missing partitions are no error)."""
        for start in range(0, len(values), MAX_BATCH_DELETE):
            resp = self._call(
                "batch_delete_partition",
                DatabaseName=self.database,
                TableName=name,
                PartitionsToDelete=[
                    {"Values": list(v)} for v in values[start : start + MAX_BATCH_DELETE]
                ],
            )
            for error in resp.get("Errors", []):
                code = error.get("ErrorDetail", {}).get("ErrorCode", "")
                if code != NOT_FOUND:
                    raise error_of(
                        f"BatchDeletePartition {error.get('PartitionValues')}",
                        code,
                        error.get("ErrorDetail", {}).get("ErrorMessage", ""),
                    )
