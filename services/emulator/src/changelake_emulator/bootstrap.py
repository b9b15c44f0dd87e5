"""Create every resource the pipeline needs on the emulator; safe to run again (idempotent)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import orjson
from changelake.adapters.aws import error_code
from changelake.settings import ChangelakeSettings
from changelake_lake import layout

from changelake_emulator.adapters.clients import emulator_client

log = logging.getLogger(__name__)

# moto's default account; ARNs that only need to be well-formed (roles, the Lambda) use it.
ACCOUNT_ID = "123456789012"
DLQ_SUFFIX = "-dlq"
MAX_RECEIVE_COUNT = 5
TRANSFORM_FUNCTION = "changelake-transform"


def transform_lambda_arn(region: str) -> str:
    """The ARN the delivery stream names as its processor (the emulator calls it in process)."""
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{TRANSFORM_FUNCTION}"


def _require_endpoint(endpoint_url: str | None) -> None:
    # Bootstrap creates resources: never against real AWS by accident.
    if endpoint_url is None and not any(k.startswith("AWS_ENDPOINT_URL") for k in os.environ):
        raise RuntimeError(
            "bootstrap targets the local emulator: pass endpoint_url or set AWS_ENDPOINT_URL"
        )


def bootstrap(
    settings: ChangelakeSettings,
    *,
    shards: int = 2,
    endpoint_url: str | None = None,
    firehose_buffer_seconds: float = 1.0,
    firehose_buffer_mb: float = 1.0,
) -> None:
    """Create the tables, stream, bucket, queues + notification, Glue database and delivery
    stream. Every table of ``settings.tables`` streams to the one Kinesis stream (ADR 0032).

    Idempotent: existing resources are kept as they are. Endpoint: ``endpoint_url`` if given,
    else the standard ``AWS_ENDPOINT_URL`` (required, so this never touches real AWS).
    """
    _require_endpoint(endpoint_url)
    region = settings.region

    def client(service: str) -> Any:
        return emulator_client(service, endpoint_url, region)

    ddb = client("dynamodb")
    for table in settings.tables:
        _table(ddb, table)
    stream_arn = _stream(client("kinesis"), settings.stream_name, shards)
    s3 = client("s3")
    _bucket(s3, settings.lake_bucket, region)
    queue_arn = _queues(client("sqs"), settings.catalog_queue, settings.lake_bucket)
    _notification(s3, settings.lake_bucket, queue_arn)
    _database(client("glue"), settings.database)
    _delivery_stream(
        client("firehose"),
        settings,
        stream_arn,
        buffer_seconds=firehose_buffer_seconds,
        buffer_mb=firehose_buffer_mb,
    )
    log.info(
        "resources ready",
        extra={"tables": list(settings.tables), "stream": settings.stream_name, "shards": shards},
    )


def _table(ddb: Any, name: str) -> None:
    try:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    except ddb.exceptions.ResourceInUseException:
        return
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    # As the CDK stack: point-in-time recovery on (DynamoDB exports need it, ADR 0030).
    ddb.update_continuous_backups(
        TableName=name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )


def _stream(kinesis: Any, name: str, shards: int) -> str:
    with contextlib.suppress(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    return str(
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    )


def _bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # S3 rejects a LocationConstraint of us-east-1
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except s3.exceptions.ClientError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _queue_arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attrs["QueueArn"])


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.ClientError as exc:
        if error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def _queues(sqs: Any, name: str, bucket: str) -> str:
    dlq_arn = _queue_arn(sqs, _ensure_queue(sqs, name + DLQ_SUFFIX, {}))
    url = _ensure_queue(sqs, name, {})
    arn = _queue_arn(sqs, url)
    # S3 may only send to a queue whose policy allows it (real AWS rejects the notification
    # configuration otherwise); redrive sends poison messages to the DLQ after 5 receives.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "s3-object-created",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "Policy": orjson.dumps(policy).decode(),
            "RedrivePolicy": orjson.dumps(redrive).decode(),
        },
    )
    return arn


def _notification(s3: Any, bucket: str, queue_arn: str) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "changelake-catalog",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": layout.CHANGES + "/"}]}
                    },
                }
            ]
        },
    )


def _database(glue: Any, name: str) -> None:
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(
            DatabaseInput={"Name": name, "Description": "changelake: DynamoDB changes as tables"}
        )


def _delivery_stream(
    firehose: Any,
    settings: ChangelakeSettings,
    stream_arn: str,
    *,
    buffer_seconds: float,
    buffer_mb: float,
) -> None:
    try:
        firehose.describe_delivery_stream(DeliveryStreamName=settings.firehose_name)
        return
    except firehose.exceptions.ResourceNotFoundException:
        pass
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/changelake-firehose"
    # The declaration follows real Firehose's bounds (whole seconds 0..900; with dynamic
    # partitioning at least 64 MB; processor interval 60..900 s). The emulator's own buffering
    # is finer (tests flush within a second), so these numbers document, they do not drive.
    interval = min(900, max(0, round(buffer_seconds)))
    size = min(128, max(1, round(buffer_mb)))
    firehose.create_delivery_stream(
        DeliveryStreamName=settings.firehose_name,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": role},
        ExtendedS3DestinationConfiguration={
            "RoleARN": role,
            "BucketARN": f"arn:aws:s3:::{settings.lake_bucket}",
            "Prefix": layout.firehose_raw_prefix_expression(),
            "ErrorOutputPrefix": layout.firehose_error_prefix_expression(),
            "BufferingHints": {"SizeInMBs": max(64, size), "IntervalInSeconds": interval},
            "CompressionFormat": "UNCOMPRESSED",
            "DynamicPartitioningConfiguration": {"Enabled": True},
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "Lambda",
                        "Parameters": [
                            {
                                "ParameterName": "LambdaArn",
                                "ParameterValue": transform_lambda_arn(settings.region),
                            },
                            {"ParameterName": "BufferSizeInMBs", "ParameterValue": str(size)},
                            {
                                "ParameterName": "BufferIntervalInSeconds",
                                "ParameterValue": str(max(60, interval)),
                            },
                        ],
                    }
                ],
            },
        },
    )
