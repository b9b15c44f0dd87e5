"""Smoke test of a deployed stack: produce, wait until Athena sees it, compare, clean up.

``make -C deploy smoke`` (= ``python -m changelake_cli.smoke --stack Changelake``) needs AWS
credentials for the stack's account. It reads the stack's outputs (CloudFormation), invokes the
producer Lambda (inserts only), waits until ``<table>_current`` queried through Athena equals a
consistent Scan of the table item by item (the same check the demo makes locally,
:mod:`changelake_lake.query.current_check`), prints a summary, then deletes what it created: the
items it wrote (their REMOVE changes flow into the lake: the lake is the history, and
``_current`` is back to what it was) and its Athena result files. A stack deployed with a privacy
policy is compared through the same policy: export the ``CHANGELAKE_PRIVACY_POLICY`` and
``CHANGELAKE_PRIVACY_KEY_SECRET`` it was deployed with (ADR 0027).

Every step takes its AWS client or engine as an argument, so the tests run the same code against
the local emulator (the local engine stands in for Athena, the producer's handler for the Lambda).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from changelake.adapters import aws
from changelake.events import item_key
from changelake.privacy import PrivacyPolicy
from changelake.settings import ChangelakeSettings
from changelake_lake.query.current_check import (
    CurrentCheck,
    SqlEngine,
    boto_to_ddb_json,
    compare,
    scan_images,
)
from changelake_lake.query.model import QueryError, QueryResult

log = logging.getLogger(__name__)

# The stack outputs the smoke test needs (deploy/changelake_deploy/stack.py writes them).
REQUIRED_OUTPUTS = ("TableName", "ProducerFunctionName", "AthenaWorkGroup", "GlueDatabase")

Invoke = Callable[[str, Mapping[str, Any]], dict[str, Any]]


class SmokeError(RuntimeError):
    """The deployed stack failed the smoke test (the message says where)."""


@dataclass(frozen=True, slots=True)
class StackOutputs:
    """The deployed names the smoke test works with."""

    table: str
    producer_function: str
    workgroup: str
    database: str


@dataclass(slots=True)
class SmokeSummary:
    """What the run did and saw."""

    stack: str
    table: str
    items_written: int = 0
    seconds_to_visible: float | None = None
    polls: int = 0
    table_items: int = 0
    view_items: int = 0
    equal: bool = False
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    bytes_scanned: int = 0
    items_deleted: int = 0
    result_files_deleted: int = 0


def stack_outputs(stack: str, client: Any | None = None) -> StackOutputs:
    """The stack's outputs from CloudFormation; a clear error when one is missing."""
    cfn = client or aws.client("cloudformation")
    stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
    if missing:
        raise SmokeError(
            f"stack {stack} has no output {', '.join(missing)}"
            + (
                " (deployed with -c with_producer=false?)"
                if "ProducerFunctionName" in missing
                else ""
            )
        )
    return StackOutputs(
        table=outputs["TableName"],
        producer_function=outputs["ProducerFunctionName"],
        workgroup=outputs["AthenaWorkGroup"],
        database=outputs["GlueDatabase"],
    )


def lambda_invoker(client: Any | None = None) -> Invoke:
    """Invoke a Lambda synchronously; a function error becomes a :class:`SmokeError`."""
    lam = client or aws.lambda_()

    def invoke(function: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        response = lam.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
        body = response["Payload"].read().decode("utf-8", "replace")
        if response.get("FunctionError"):
            raise SmokeError(f"{function} failed ({response['FunctionError']}): {body[:2000]}")
        result = json.loads(body)
        if not isinstance(result, dict):
            raise SmokeError(f"{function} returned {body[:200]!r}, not a JSON object")
        return result

    return invoke


class _Recording:
    """An engine wrapper that remembers the query ids and bytes scanned (for the summary)."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self.query_ids: list[str] = []
        self.bytes_scanned = 0

    def run(self, sql: str, params: Sequence[str] = ()) -> QueryResult:
        result = self.engine.run(sql, params)
        if result.query_id:
            self.query_ids.append(result.query_id)
        self.bytes_scanned += result.stats.bytes_read
        return result


def _table_key_names(ddb: Any, table: str) -> list[str]:
    schema = ddb.describe_table(TableName=table)["Table"]["KeySchema"]
    return [k["AttributeName"] for k in schema]


def delete_items(ddb: Any, table: str, keys: Sequence[Mapping[str, Any]]) -> int:
    """Delete items by their wire-format keys (batches of 25, unprocessed ones retried)."""
    deleted = 0
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": dict(k)}} for k in keys[start : start + 25]]
        pending: dict[str, Any] = {table: requests}
        for attempt in range(8):
            response = ddb.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(min(0.1 * 2**attempt, 2.0))
        else:
            raise SmokeError(f"could not delete {len(pending[table])} smoke items from {table}")
        deleted += len(requests)
    return deleted


def _wire_keys(ddb: Any, table: str, wanted: set[str]) -> list[dict[str, Any]]:
    """Wire-format keys of the items whose ``item_key`` text is in ``wanted``."""
    from changelake import ddb_json

    names = _table_key_names(ddb, table)
    found: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression=", ".join(f"#k{i}" for i in range(len(names))),
        ExpressionAttributeNames={f"#k{i}": n for i, n in enumerate(names)},
        ConsistentRead=True,
    ):
        for raw in page.get("Items", []):
            image = ddb_json.deserialize_image({k: boto_to_ddb_json(v) for k, v in raw.items()})
            if item_key({k: image[k] for k in names}) in wanted:
                found.append({k: raw[k] for k in names})
    return found


def delete_result_files(athena: Any, s3: Any, query_ids: Sequence[str]) -> int:
    """Delete the result file and its metadata of each Athena query the smoke ran."""
    deleted = 0
    for query_id in query_ids:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        location = execution.get("ResultConfiguration", {}).get("OutputLocation")
        if not location:
            continue
        url = urlparse(location)
        for key in (url.path.lstrip("/"), url.path.lstrip("/") + ".metadata"):
            s3.delete_object(Bucket=url.netloc, Key=key)
            deleted += 1
    return deleted


def run_smoke(
    stack: str,
    outputs: StackOutputs,
    *,
    invoke: Invoke,
    engine: SqlEngine,
    ddb: Any,
    count: int = 200,
    timeout_s: float = 900.0,
    poll_s: float = 15.0,
    cleanup: bool = True,
    privacy: PrivacyPolicy | None = None,
    athena: Any | None = None,
    s3: Any | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SmokeSummary:
    """Write ``count`` new items through the producer, wait for ``_current`` = Scan, clean up.

    ``privacy``: the policy the deployed writers apply (the Scan goes through it before the
    comparison). ``athena``/``s3`` clients are needed only to delete Athena's result files.
    """
    summary = SmokeSummary(stack=stack, table=outputs.table)
    recording = _Recording(engine)
    before = set(scan_images(outputs.table, ddb))
    created: set[str] = set()
    try:
        result = invoke(outputs.producer_function, {"batchSize": count, "mix": "insert=1"})
        after = set(scan_images(outputs.table, ddb))
        created = after - before
        summary.items_written = len(created)
        if int(result.get("inserts", -1)) != count or len(created) != count:
            raise SmokeError(
                f"the producer reported {result.get('inserts')} inserts and the table gained "
                f"{len(created)} items; {count} were asked"
            )
        started = clock()
        check: CurrentCheck | None = None
        while True:
            summary.polls += 1
            try:
                check = compare(recording, outputs.table, ddb, privacy)
            except QueryError as exc:  # the view does not exist until the first objects land
                log.info("not queryable yet", extra={"reason": str(exc)[:300]})
                check = None
            if check is not None and check.equal:
                summary.seconds_to_visible = round(clock() - started, 1)
                break
            if clock() - started >= timeout_s:
                break
            sleep(poll_s)
        if check is not None:
            summary.table_items, summary.view_items = check.table_items, check.view_items
            summary.missing, summary.extra = check.missing[:20], check.extra[:20]
            summary.different = check.different[:20]
            summary.equal = check.equal
    finally:
        summary.bytes_scanned = recording.bytes_scanned
        if cleanup and created:
            summary.items_deleted = delete_items(
                ddb, outputs.table, _wire_keys(ddb, outputs.table, created)
            )
        if cleanup and athena is not None and s3 is not None:
            summary.result_files_deleted = delete_result_files(athena, s3, recording.query_ids)
    return summary


def render(summary: SmokeSummary) -> str:
    """The summary as aligned text lines."""
    visible = (
        f"{summary.seconds_to_visible} s ({summary.polls} polls)"
        if summary.seconds_to_visible is not None
        else f"not within the timeout ({summary.polls} polls)"
    )
    rows = [
        ("stack / table", f"{summary.stack} / {summary.table}"),
        ("items written by the producer", f"{summary.items_written:,}"),
        ("_current = Scan after", visible),
        ("table items / view items", f"{summary.table_items:,} / {summary.view_items:,}"),
        ("result", "PASS" if summary.equal else "FAIL"),
        ("Athena bytes scanned", f"{summary.bytes_scanned:,}"),
        (
            "cleaned up",
            f"{summary.items_deleted:,} items, {summary.result_files_deleted} result files",
        ),
    ]
    if not summary.equal:
        rows += [
            ("missing in the view", ", ".join(summary.missing) or "-"),
            ("extra in the view", ", ".join(summary.extra) or "-"),
            ("different", ", ".join(summary.different) or "-"),
        ]
    return "\n".join(f"{label:<32}{value}" for label, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m changelake_cli.smoke --stack NAME``: exit 0 on PASS, 1 on FAIL, 2 on error."""
    parser = argparse.ArgumentParser(
        prog="python -m changelake_cli.smoke", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stack", default="Changelake", help="CloudFormation stack name")
    parser.add_argument("--count", type=int, default=200, help="items the producer writes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait")
    parser.add_argument("--poll", type=float, default=15.0, help="seconds between checks")
    parser.add_argument("--keep", action="store_true", help="do not delete what was created")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from changelake_lake.adapters.athena_engine import AthenaEngine

    try:
        privacy = aws.privacy_policy(ChangelakeSettings())
        outputs = stack_outputs(args.stack)
        summary = run_smoke(
            args.stack,
            outputs,
            invoke=lambda_invoker(),
            engine=AthenaEngine(outputs.database, workgroup=outputs.workgroup),
            ddb=aws.dynamodb(),
            count=args.count,
            timeout_s=args.timeout,
            poll_s=args.poll,
            cleanup=not args.keep,
            privacy=privacy,
            athena=aws.athena(),
            s3=aws.s3(),
        )
    except (SmokeError, QueryError) as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(summary)) if args.json else render(summary))
    return 0 if summary.equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
