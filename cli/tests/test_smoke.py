"""The deployed-stack smoke test (``make -C deploy smoke``), run against the local emulator.

The same ``run_smoke`` code as on AWS: stack outputs from CloudFormation (moto), the producer's
real Lambda handler in process instead of ``lambda:Invoke`` (moto cannot run the image), the
local engine instead of Athena (same SQL, same Glue catalog), real boto3 DynamoDB and S3.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from changelake.adapters import aws
from changelake_cli import smoke
from changelake_cli.local_stack import LocalStack
from changelake_lake.query.current_check import scan_images
from changelake_lake.query.local_engine import LocalEngine
from changelake_producer import lambda_handler

STACK = "SmokeStack"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The embedded pipeline (emulator, consumer, catalog) with a CloudFormation stack's outputs."""
    with LocalStack(0) as local:
        cfn = aws.client("cloudformation")
        template = {
            "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "TableName": {"Value": "persons"},
                "ProducerFunctionName": {"Value": "smoke-producer"},
                "AthenaWorkGroup": {"Value": "primary"},
                "GlueDatabase": {"Value": "changelake"},
            },
        }
        cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template))
        yield local


def smoke_run(count: int, invoke: smoke.Invoke, **options: Any) -> smoke.SmokeSummary:
    """``run_smoke`` against the local stack: local engine, the emulator's DynamoDB."""
    return smoke.run_smoke(
        STACK,
        smoke.stack_outputs(STACK),
        invoke=invoke,
        engine=LocalEngine("changelake"),
        ddb=aws.dynamodb(),
        count=count,
        **options,
    )


def in_process_producer(function: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What ``lambda:Invoke`` runs on AWS: the producer image's handler, with this payload."""
    assert function == "smoke-producer"
    return lambda_handler.handler(dict(payload))


@pytest.mark.aws
def test_stack_outputs_names_what_is_missing(aws_endpoint: str) -> None:
    """A stack deployed without the producer: a one-line error naming the output."""
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": "x"} for k in ("TableName", "AthenaWorkGroup", "GlueDatabase")},
    }
    cfn.create_stack(StackName="NoProducer", TemplateBody=json.dumps(template))
    with pytest.raises(smoke.SmokeError, match=r"no output ProducerFunctionName .*with_producer"):
        smoke.stack_outputs("NoProducer", cfn)


@pytest.mark.unit
def test_lambda_invoker_turns_a_function_error_into_a_smoke_error() -> None:
    """``FunctionError`` in the Invoke response fails the smoke test with the function's message."""
    client = boto3.client("lambda", region_name="us-east-1")
    payload = b'{"errorMessage": "batchSize must be an integer", "errorType": "ValueError"}'
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(payload)},
            {
                "FunctionName": "producer",
                "InvocationType": "RequestResponse",
                "Payload": b'{"batchSize": 0}',
            },
        )
        with pytest.raises(smoke.SmokeError, match=r"producer failed \(Unhandled\): .*batchSize"):
            smoke.lambda_invoker(client)("producer", {"batchSize": 0})


@pytest.mark.aws
def test_delete_result_files_removes_each_querys_csv_and_metadata(aws_endpoint: str) -> None:
    """The result object Athena names for a query, and its .metadata, are deleted."""
    s3 = boto3.client("s3", region_name="us-east-1")
    athena = boto3.client("athena", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    query_id = athena.start_query_execution(
        QueryString="SELECT 1",
        ResultConfiguration={"OutputLocation": "s3://lake/athena-results/"},
    )["QueryExecutionId"]
    location = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"][
        "ResultConfiguration"
    ]["OutputLocation"]
    key = location.removeprefix("s3://lake/")
    for name in (key, key + ".metadata", "athena-results/other.csv"):
        s3.put_object(Bucket="lake", Key=name, Body=b"x")
    assert smoke.delete_result_files(athena, s3, [query_id]) == 2
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
    assert left == ["athena-results/other.csv"]


@pytest.mark.e2e
def test_smoke_passes_on_a_healthy_pipeline_and_removes_its_items(stack: LocalStack) -> None:
    """Produce 40 items, see them in persons_current (= Scan), then delete exactly those."""
    ddb = aws.dynamodb()
    before = scan_images("persons", ddb)
    outputs = smoke.stack_outputs(STACK)
    assert outputs == smoke.StackOutputs("persons", "smoke-producer", "primary", "changelake")
    summary = smoke.run_smoke(
        STACK,
        outputs,
        invoke=in_process_producer,
        engine=LocalEngine("changelake"),
        ddb=ddb,
        count=40,
        timeout_s=90,
        poll_s=0.5,
    )
    assert summary.equal, smoke.render(summary)
    assert summary.items_written == 40
    assert summary.table_items == summary.view_items == len(before) + 40
    assert summary.seconds_to_visible is not None
    assert summary.seconds_to_visible < 90
    assert summary.items_deleted == 40
    assert scan_images("persons", ddb) == before  # the table is back as it was
    text = smoke.render(summary)
    assert "PASS" in text
    assert "40 items" in text


@pytest.mark.e2e
def test_smoke_fails_when_the_view_never_matches_and_still_cleans_up(stack: LocalStack) -> None:
    """A timeout is a FAIL with the differences listed; the items written are deleted anyway."""
    ddb = aws.dynamodb()
    before = scan_images("persons", ddb)
    # One look, right after the writes: the lake cannot have them yet.
    summary = smoke_run(5, in_process_producer, timeout_s=0, poll_s=0)
    assert not summary.equal
    assert summary.polls == 1
    assert summary.seconds_to_visible is None
    assert len(summary.missing) == 5
    assert summary.items_deleted == 5
    assert scan_images("persons", ddb) == before
    assert "FAIL" in smoke.render(summary)


@pytest.mark.e2e
def test_smoke_refuses_a_producer_that_wrote_something_else(stack: LocalStack) -> None:
    """The producer's report and the table's growth must both equal the count asked."""

    def writes_three(function: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return lambda_handler.handler({**payload, "batchSize": 3})

    ddb = aws.dynamodb()
    before = scan_images("persons", ddb)
    with pytest.raises(smoke.SmokeError, match="reported 3 inserts and the table gained 3"):
        smoke_run(7, writes_three)
    assert scan_images("persons", ddb) == before  # cleaned up on the error path too
