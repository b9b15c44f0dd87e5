"""The changelake stack: DynamoDB → Kinesis → (Firehose raw | KCL consumer Parquet) → S3 → Glue.

One stack holds the whole pipeline (ADR 0013). Every image is built from the same Dockerfile
that ``docker compose`` uses (build context: the repository root). IAM is written statement by
statement, scoped to prefixes and named resources, instead of CDK's broad ``grant*`` helpers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_athena as athena
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_s3 as s3_refs
from changelake_lake.layout import glue_name
from changelake_lake.query import named
from constructs import Construct, IConstruct

from changelake_deploy import contract
from changelake_deploy.monitoring import Monitoring

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# Firehose polls each shard about once a second; the KCL consumer reads with its own budget.
FIREHOSE_BUFFER_SECONDS = 60
# Dynamic partitioning requires a buffer of at least 64 MB.
FIREHOSE_BUFFER_MB = 64
CATALOG_VISIBILITY_TIMEOUT = cdk.Duration.minutes(2)
CATALOG_MAX_RECEIVE_COUNT = 5


def default_table_name(stack_name: str) -> str:
    """The DynamoDB table's name when context gives none: the stack's name + ``-persons``."""
    return f"{stack_name}-persons"


def table_construct_id(tables: list[str] | tuple[str, ...], table: str) -> str:
    """Construct id of one captured table: ``Table`` for the first (the id stacks deployed
    before several tables had, so they keep their table), ``Table<Name>`` for the others."""
    if table == tables[0]:
        return "Table"
    return "Table" + contract.construct_name(table)


def _tables_context(value: object) -> tuple[str, ...] | None:
    """The ``tables`` context: a JSON list (cdk.json) or comma-separated text (``-c``)."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple):
        raise ValueError(f"tables context must be a list or comma-separated text, got {value!r}")
    names = tuple(str(p).strip() for p in parts)
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name):
            raise ValueError(f"tables context: invalid DynamoDB table name {name!r}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"tables context must name distinct tables, got {list(names)}")
    return names


def default_database(stack_name: str) -> str:
    """The Glue database's name when context gives none: the stack's name, Glue-safe."""
    return glue_name(stack_name)


@dataclass(frozen=True)
class ChangelakeConfig:
    """Knobs read from CDK context (``cdk synth -c key=value``); defaults suit a demo account.

    ``tables`` and ``database`` default to names derived from the stack's name (None here),
    so two stacks in one account never collide (ADR 0024). Every table streams to the one
    Kinesis stream (ADR 0032).
    """

    tables: tuple[str, ...] | None = None
    database: str | None = None
    vpc_id: str | None = None
    shard_count: int = 2
    consumer_count: int = 1
    with_producer: bool = True
    log_level: str = "INFO"
    alarm_topic_arn: str | None = None
    # One NAT gateway for both AZs (cost); 2 = one per AZ, no single point of egress (ADR 0026).
    nat_gateways: int = 1
    # Privacy policy JSON and the ARN of the secret holding its hashing key (ADR 0027).
    privacy_policy: str | None = None
    privacy_key_secret: str | None = None
    # Retention (README "Lake maintenance"): raw/ and errors/ by lifecycle; changes/ only by
    # the compaction task's --expire, off by default (history is the product).
    raw_retention_days: int = 365
    errors_retention_days: int = 90
    # The compaction task (ADR 0033): an EventBridge schedule expression ("" = no schedule)
    # and the task's CHANGELAKE_COMPACT_* settings.
    compact_schedule: str = "rate(1 hour)"
    compact_older_than: str = "2h"
    compact_grace: str = "1h"
    compact_expire: bool = False
    compact_expire_after: str = "365d"
    # The same task takes the current-state snapshot between compaction and expiry (ADR 0035).
    snapshot_scheduled: bool = True

    @classmethod
    def from_context(cls, scope: Construct) -> ChangelakeConfig:
        """Read the config from the app's context, falling back to the defaults."""
        node = scope.node

        def get(key: str, default: object) -> object:
            value = node.try_get_context(key)
            return default if value is None else value

        def optional(key: str) -> str | None:
            value = node.try_get_context(key)
            return str(value) if value else None

        if node.try_get_context("table_name"):
            raise ValueError(
                "the table_name context was replaced by tables (a list, or comma-separated"
                " text): -c tables=" + str(node.try_get_context("table_name"))
            )
        return cls(
            tables=_tables_context(node.try_get_context("tables")),
            database=optional("database"),
            vpc_id=optional("vpc_id"),
            shard_count=int(str(get("shard_count", cls.shard_count))),
            consumer_count=int(str(get("consumer_count", cls.consumer_count))),
            with_producer=str(get("with_producer", cls.with_producer)).lower()
            in ("1", "true", "yes"),
            log_level=str(get("log_level", cls.log_level)),
            alarm_topic_arn=optional("alarm_topic_arn"),
            nat_gateways=int(str(get("nat_gateways", cls.nat_gateways))),
            privacy_policy=_privacy_policy(node.try_get_context("privacy_policy")),
            privacy_key_secret=optional("privacy_key_secret"),
            raw_retention_days=int(str(get("raw_retention_days", cls.raw_retention_days))),
            errors_retention_days=int(str(get("errors_retention_days", cls.errors_retention_days))),
            compact_schedule=str(get("compact_schedule", cls.compact_schedule)),
            compact_older_than=str(get("compact_older_than", cls.compact_older_than)),
            compact_grace=str(get("compact_grace", cls.compact_grace)),
            compact_expire=str(get("compact_expire", cls.compact_expire)).lower()
            in ("1", "true", "yes"),
            compact_expire_after=str(get("compact_expire_after", cls.compact_expire_after)),
            snapshot_scheduled=str(get("snapshot_scheduled", cls.snapshot_scheduled)).lower()
            in ("1", "true", "yes"),
        )


def _privacy_policy(value: object) -> str | None:
    """The ``privacy_policy`` context as JSON text (``-c`` gives a string, cdk.json an object)."""
    if not value:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if not isinstance(json.loads(text), dict):
        raise ValueError('privacy_policy context must be a JSON object {"<table>": {...}}')
    return text


@jsii.implements(s3.IBucketNotificationDestination)
class _QueueFromThisAccount:
    """S3 → SQS destination whose queue-policy statement also pins ``aws:SourceAccount``.

    CDK's ``SqsDestination`` grants ``s3.amazonaws.com`` with ``aws:SourceArn`` only; AWS
    recommends both conditions against the confused deputy (ADR 0024).
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, scope: Construct, bucket: s3_refs.IBucketRef
    ) -> s3.BucketNotificationDestinationConfig:
        """Add the queue-policy statement and name the queue as the destination."""
        del scope
        result = self._queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ObjectCreatedFromTheLake",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                resources=[self._queue.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": bucket.bucket_ref.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": cdk.Stack.of(bucket).account},
                },
            )
        )
        assert result.policy_dependable is not None
        return s3.BucketNotificationDestinationConfig(
            arn=self._queue.queue_arn,
            type=s3.BucketNotificationDestinationType.QUEUE,
            dependencies=[result.policy_dependable],
        )


def _checkov_skip(resource: cdk.CfnResource, *skips: tuple[str, str]) -> None:
    """Record justified checkov suppressions (the reason travels with the template)."""
    existing = resource.get_metadata("checkov") or {"skip": []}
    existing["skip"].extend({"id": check, "comment": reason} for check, reason in skips)
    resource.add_metadata("checkov", existing)


def _cfn(construct: IConstruct) -> cdk.CfnResource:
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnResource)
    return child


class ChangelakeStack(cdk.Stack):
    """Every AWS resource of one changelake deployment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ChangelakeConfig | None = None,
        **kwargs: object,
    ) -> None:
        """Build the stack; ``config`` defaults to the app's CDK context."""
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config or ChangelakeConfig.from_context(self)
        cfg = self.config
        if not 1 <= cfg.consumer_count <= cfg.shard_count:
            raise ValueError(
                f"consumer_count={cfg.consumer_count} must be within 1..shard_count="
                f"{cfg.shard_count}: a KCL worker beyond one per shard holds no lease"
            )
        self.table_names = cfg.tables or (default_table_name(self.stack_name),)
        ids = {contract.construct_name(t) for t in self.table_names}
        if len(ids) != len(self.table_names):
            raise ValueError(f"tables {list(self.table_names)} differ only in punctuation")
        self.database_name = cfg.database or default_database(self.stack_name)
        self.app_name = f"{construct_id.lower()}-consumer"

        self.key = self._key()
        self.vpc = self._vpc()
        self.stream = self._stream()
        self.tables = {name: self._table(name) for name in self.table_names}
        self.bucket = self._bucket()
        self.queue, self.dlq = self._queue()
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            _QueueFromThisAccount(self.queue),
            s3.NotificationKeyFilter(prefix=contract.CHANGES_PREFIX, suffix=".parquet"),
        )
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=self.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="changelake: every DynamoDB change as a table",
                location_uri=self.bucket.s3_url_for_object(),
            ),
        )
        self.workgroup = self._athena()
        self.transform = self._transform_lambda()
        self.delivery_stream = self._firehose()
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.consumer_service = self._consumer_service()
        self.catalog_service = self._catalog_service()
        self.compact_task, self.compact_rule = self._compact_task()
        self.producer = self._producer_lambda() if cfg.with_producer else None
        self.producer_task = self._producer_task() if cfg.with_producer else None
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            shard_count=cfg.shard_count,
            kcl_application=self.app_name,
            alarm_topic_arn=cfg.alarm_topic_arn,
            dlq=self.dlq,
            queue=self.queue,
            stream=self.stream,
            tables=self.table_names,
            delivery_stream_name=self.delivery_stream.ref,
            functions=[f for f in (self.transform, self.producer) if f is not None],
            cluster=self.cluster,
            services={"consumer": self.consumer_service, "catalog": self.catalog_service},
        )
        self._harden_cdk_internals()

        for name, value in {
            "LakeBucketName": self.bucket.bucket_name,
            # The first table (what `make smoke` checks), then every captured table.
            "TableName": self.tables[self.table_names[0]].table_name,
            "TableNames": ",".join(t.table_name for t in self.tables.values()),
            "StreamName": self.stream.stream_name,
            "CatalogQueueUrl": self.queue.queue_url,
            "GlueDatabase": self.database_name,
            "AthenaWorkGroup": self.workgroup.name,
            "DeliveryStreamName": self.delivery_stream.ref,
            "ClusterName": self.cluster.cluster_name,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            # The principal to grant Lake Formation permissions in an LF-enabled account.
            "CatalogRoleArn": self.catalog_service.task_definition.task_role.role_arn,
            **({"ProducerFunctionName": self.producer.function_name} if self.producer else {}),
        }.items():
            cdk.CfnOutput(self, name, value=value)

    # ---- shared building blocks -------------------------------------------------------------

    def _key(self) -> kms.Key:
        key = kms.Key(
            self,
            "LakeKey",
            description="changelake: lake objects, queue messages, table, logs, query results",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs encrypts with the key only when the key policy names the service.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )
        return key

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            construct_id,
            retention=LOG_RETENTION,
            encryption_key=self.key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def _vpc(self) -> ec2.IVpc:
        if self.config.vpc_id:
            # An existing VPC (needs account and region at synth for the lookup).
            return ec2.Vpc.from_lookup(self, "Vpc", vpc_id=self.config.vpc_id)
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=self.config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
            ],
            restrict_default_security_group=True,
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        self._log_group("FlowLogs")
                    ),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
            gateway_endpoints={
                # S3 and DynamoDB traffic (Parquet writes, KCL leases) skips the NAT gateway.
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        for subnet in vpc.public_subnets:
            _checkov_skip(
                _cfn(subnet),
                ("CKV_AWS_130", "public subnets only hold the NAT gateway; tasks run private"),
            )
        return vpc

    def _stream(self) -> kinesis.Stream:
        stream = kinesis.Stream(
            self,
            "ChangeStream",
            shard_count=self.config.shard_count,
            retention_period=cdk.Duration.hours(48),
            # AWS-managed key: DynamoDB's streaming destination, Firehose and the KCL all read
            # it without a key-policy dance; the lake itself uses the stack's CMK (ADR 0013).
            encryption=kinesis.StreamEncryption.MANAGED,
        )
        _checkov_skip(
            _cfn(stream),
            ("CKV_AWS_185", "encrypted with the AWS-managed aws/kinesis key (ADR 0013)"),
        )
        return stream

    def _table(self, name: str) -> dynamodb.Table:
        """One captured table; its streaming destination is the stack's one stream."""
        return dynamodb.Table(
            self,
            table_construct_id(self.table_names, name),
            table_name=name,
            partition_key=dynamodb.Attribute(
                name=contract.TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            kinesis_stream=self.stream,
            kinesis_precision_timestamp=dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND,
            # Kept on `cdk destroy` (data), but deleted when the create that made it rolls back,
            # so a failed first deploy never blocks the next one with "already exists".
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )

    def _bucket(self) -> s3.Bucket:
        cfg = self.config
        if cfg.raw_retention_days < 1 or cfg.errors_retention_days < 1:
            raise ValueError("raw_retention_days and errors_retention_days must be >= 1")
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # Server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire", expiration=cdk.Duration.days(90))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        _checkov_skip(
            _cfn(access_logs),
            ("CKV_AWS_18", "this is the access-log bucket; logging it to itself would loop"),
            ("CKV_AWS_145", "S3 server access logging only delivers to SSE-S3 buckets"),
        )
        bucket = s3.Bucket(
            self,
            "Lake",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="lake/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="raw-to-infrequent-access-then-expire",
                    prefix=contract.RAW_PREFIX,
                    # Tiering only where it comes before the expiry (S3 rejects the rest).
                    transitions=[
                        s3.Transition(
                            storage_class=storage_class,
                            transition_after=cdk.Duration.days(days),
                        )
                        for storage_class, days in (
                            (s3.StorageClass.INFREQUENT_ACCESS, 30),
                            (s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, 90),
                        )
                        if days < cfg.raw_retention_days
                    ],
                    expiration=cdk.Duration.days(cfg.raw_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="expire-errors",
                    prefix=contract.ERRORS_PREFIX,
                    expiration=cdk.Duration.days(cfg.errors_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="expire-query-results",
                    prefix=contract.ATHENA_RESULTS_PREFIX,
                    expiration=cdk.Duration.days(30),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="changes-noncurrent",
                    prefix=contract.CHANGES_PREFIX,
                    # A replay overwrites a Parquet object with identical content: old versions
                    # are redundant after a week.
                    noncurrent_version_expiration=cdk.Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        return bucket

    def _queue(self) -> tuple[sqs.Queue, sqs.Queue]:
        dlq = sqs.Queue(
            self,
            "CatalogDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=cdk.Duration.days(14),
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            "CatalogQueue",
            # SSE-SQS: the messages are object keys only, and S3 can send to it without a
            # key policy that would tie the lake key to the bucket (a dependency cycle).
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            visibility_timeout=CATALOG_VISIBILITY_TIMEOUT,
            retention_period=cdk.Duration.days(4),
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=CATALOG_MAX_RECEIVE_COUNT
            ),
        )
        for q in (queue, dlq):
            _checkov_skip(
                _cfn(q),
                ("CKV_AWS_27", "encrypted with SSE-SQS (SqsManagedSseEnabled), not a KMS key"),
            )
        return queue, dlq

    def _athena(self) -> athena.CfnWorkGroup:
        workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=f"{self.stack_name}-analysts",
            description="changelake: the change tables, raw tables and current-state views",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                # Athena bills per TB scanned: stop a runaway query at 100 GB.
                bytes_scanned_cutoff_per_query=100 * 1024**3,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.bucket.s3_url_for_object(contract.ATHENA_RESULTS_PREFIX),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self.key.key_arn
                    ),
                ),
            ),
        )
        # The query command's own files, read as package data of changelake_lake.
        queries = named.load_all()
        several = len(self.table_names) > 1
        for table in self.table_names:
            # The first table's queries keep the ids (and, alone, the names) they always had.
            suffix = table_construct_id(self.table_names, table).removeprefix("Table")
            for stem, query_file in queries.items():
                query = athena.CfnNamedQuery(
                    self,
                    f"Query{stem.title().replace('_', '')}{suffix}",
                    name=f"{glue_name(table)}.{stem}" if several else stem,
                    description=query_file.description[:1024] or stem,
                    database=self.database_name,
                    query_string=query_file.sql(table),
                    work_group=workgroup.ref,
                )
                del query
        return workgroup

    # ---- Lambda functions --------------------------------------------------------------------

    def _image_code(self, service: str) -> lambda_.DockerImageCode:
        dockerfile, target = contract.IMAGES[service]
        return lambda_.DockerImageCode.from_image_asset(
            str(REPO_ROOT),
            file=dockerfile,
            target=target,
            platform=ecr_assets.Platform.LINUX_AMD64,
            cmd=[contract.LAMBDA_HANDLERS[service]],
        )

    def _function(
        self,
        construct_id: str,
        service: str,
        environment: Mapping[str, str],
        *,
        timeout: cdk.Duration,
        memory: int,
        description: str,
    ) -> lambda_.DockerImageFunction:
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"changelake {service} Lambda",
        )
        log_group = self._log_group(f"{construct_id}Logs")
        function = lambda_.DockerImageFunction(
            self,
            construct_id,
            code=self._image_code(service),
            architecture=lambda_.Architecture.X86_64,
            description=description,
            role=role,
            timeout=timeout,
            memory_size=memory,
            environment=dict(environment),
            environment_encryption=self.key,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
        )
        # Only what the function writes: its own log group (no managed policy, no logs:*).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        _checkov_skip(
            _cfn(function),
            ("CKV_AWS_115", "no reserved concurrency: new accounts' limit of 10 forbids it"),
            ("CKV_AWS_117", "reaches only AWS APIs; no VPC resource to protect"),
            ("CKV_AWS_116", "invoked synchronously (Firehose / on demand): a DLQ never fires"),
        )
        return function

    def _transform_lambda(self) -> lambda_.DockerImageFunction:
        env = self._environment(
            "transform",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_LOG_LEVEL": self.config.log_level,
            },
        )
        function = self._function(
            "Transform",
            "transform",
            env,
            # Firehose waits for the processor up to 5 minutes; a batch takes well under one.
            timeout=cdk.Duration.minutes(1),
            memory=512,
            description="changelake: Firehose transform (newline, bad records, partition keys)",
        )
        if function.role is not None:
            self._grant_privacy_key(function.role)
        return function

    def _producer_lambda(self) -> lambda_.DockerImageFunction:
        env = self._environment(
            "producer",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_TABLES": self._tables_setting(),
                "CHANGELAKE_LOG_LEVEL": self.config.log_level,
            },
        )
        function = self._function(
            "Producer",
            "producer",
            env,
            timeout=cdk.Duration.minutes(5),
            memory=512,
            description='changelake: writes fake persons; event {"batchSize": N}',
        )
        for statement in self._producer_statements():
            function.add_to_role_policy(statement)
        return function

    def _tables_setting(self) -> str:
        """``CHANGELAKE_TABLES``: every captured table, comma-separated."""
        return ",".join(t.table_name for t in self.tables.values())

    def _producer_statements(self) -> list[iam.PolicyStatement]:
        """The producer's calls only: BatchWriteItem (puts, deletes), UpdateItem, DescribeTable."""
        return [
            iam.PolicyStatement(
                sid="WriteTheCapturedTables",
                actions=[
                    "dynamodb:DescribeTable",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[t.table_arn for t in self.tables.values()],
            ),
            self._kms_via("dynamodb", decrypt=True, encrypt=True),
        ]

    def _producer_task(self) -> ecs.FargateTaskDefinition:
        """The producer CLI as a task definition (no service): run it with `aws ecs run-task`."""
        env = self._environment(
            "producer-task",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_TABLES": self._tables_setting(),
                "CHANGELAKE_LOG_LEVEL": self.config.log_level,
                # Defaults of one run; `run-task --overrides` changes them per run.
                "CHANGELAKE_PRODUCER_DURATION_S": "600",
                "CHANGELAKE_PRODUCER_RATE": "50",
            },
        )
        task, _ = self._task("producer-task", contract.PRODUCER_COMMAND, env, cpu=256, memory=512)
        for statement in self._producer_statements():
            task.task_role.add_to_principal_policy(statement)
        cdk.CfnOutput(self, "ProducerTaskDefinitionArn", value=task.task_definition_arn)
        return task

    # ---- Firehose ------------------------------------------------------------------------------

    def _firehose(self) -> firehose.CfnDeliveryStream:
        log_group = self._log_group("FirehoseLogs")
        log_stream = logs.LogStream(
            self, "FirehoseLogStream", log_group=log_group, log_stream_name="S3Delivery"
        )
        role = iam.Role(
            self,
            "FirehoseRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description="changelake raw delivery: read the stream, run the transform, write raw/",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheChangeStream",
                actions=[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetShardIterator",
                    "kinesis:GetRecords",
                    "kinesis:ListShards",
                ],
                resources=[self.stream.stream_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeTheTransform",
                actions=["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                resources=[self.transform.function_arn, f"{self.transform.function_arn}:*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LocateTheLake",
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[self.bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRawAndErrors",
                actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                resources=[
                    self.bucket.arn_for_objects(f"{contract.RAW_PREFIX}*"),
                    self.bucket.arn_for_objects(
                        f"{contract.ERRORS_PREFIX}{contract.FIREHOSE_ERROR_SOURCE}/*"
                    ),
                ],
            )
        )
        role.add_to_policy(self._kms_via("s3", decrypt=True, encrypt=True))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeliveryLogs",
                actions=["logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        stream = firehose.CfnDeliveryStream(
            self,
            "RawDelivery",
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration=(
                firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                    kinesis_stream_arn=self.stream.stream_arn, role_arn=role.role_arn
                )
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=contract.FIREHOSE_RAW_PREFIX,
                error_output_prefix=contract.FIREHOSE_ERROR_PREFIX,
                # JSON lines exactly as the emulator writes them locally (same raw table DDL).
                compression_format="UNCOMPRESSED",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=FIREHOSE_BUFFER_SECONDS, size_in_m_bs=FIREHOSE_BUFFER_MB
                ),
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.key.key_arn
                    )
                ),
                dynamic_partitioning_configuration=firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                    enabled=True,
                    retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(
                        duration_in_seconds=300
                    ),
                ),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        firehose.CfnDeliveryStream.ProcessorProperty(
                            type="Lambda",
                            parameters=[
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="LambdaArn",
                                    parameter_value=self.transform.function_arn,
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="BufferSizeInMBs", parameter_value="1"
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="BufferIntervalInSeconds",
                                    parameter_value="60",
                                ),
                            ],
                        )
                    ],
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        # The role's policy must exist before Firehose validates its access to the stream.
        stream.node.add_dependency(role)
        return stream

    # ---- ECS services -------------------------------------------------------------------------

    def _task(
        self,
        service: str,
        command: tuple[str, ...],
        environment: Mapping[str, str],
        *,
        cpu: int,
        memory: int,
    ) -> tuple[ecs.FargateTaskDefinition, ecs.ContainerDefinition]:
        title = service.title()
        task = ecs.FargateTaskDefinition(
            self,
            f"{title}Task",
            cpu=cpu,
            memory_limit_mib=memory,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        dockerfile, target = contract.IMAGES[service]
        container = task.add_container(
            service,
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file=dockerfile,
                target=target,
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            command=list(command),
            environment=dict(environment),
            logging=ecs.LogDriver.aws_logs(
                stream_prefix=service, log_group=self._log_group(f"{title}Logs")
            ),
            readonly_root_filesystem=True,
            # The images' USER, restated: never root, even if an image lost its USER line.
            user=contract.RUNTIME_USER,
            essential=True,
            stop_timeout=cdk.Duration.seconds(60),
        )
        # A read-only root file system; only the contract's writable paths are Fargate bind
        # volumes (task-scoped scratch). The image declares each as a VOLUME owned by the
        # runtime user, so ECS copies that owner and mode into the volume (ADR 0024).
        for index, path in enumerate(contract.WRITABLE_PATHS[service]):
            volume = f"scratch{index}"
            task.add_volume(name=volume)
            container.add_mount_points(
                ecs.MountPoint(container_path=path, source_volume=volume, read_only=False)
            )
        return task, container

    def _service(
        self, service: str, task: ecs.FargateTaskDefinition, desired: int
    ) -> ecs.FargateService:
        group = ec2.SecurityGroup(
            self,
            f"{service.title()}Sg",
            vpc=self.vpc,
            description=f"changelake {service}: no inbound, outbound to AWS APIs",
            allow_all_outbound=True,
        )
        fargate = ecs.FargateService(
            self,
            f"{service.title()}Service",
            cluster=self.cluster,
            task_definition=task,
            desired_count=desired,
            assign_public_ip=False,
            security_groups=[group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            # Two KCL workers briefly share leases during a deployment; that is the KCL's
            # normal lease hand-over, and checkpoints keep it exactly-once.
            min_healthy_percent=100 if desired > 1 else 0,
            max_healthy_percent=200,
        )
        # The first image pull goes through the NAT gateway: start no task before the private
        # subnets' default routes via NAT exist (else the circuit breaker rolls back).
        for subnet in self.vpc.private_subnets:
            fargate.node.add_dependency(subnet.internet_connectivity_established)
        return fargate

    def _consumer_service(self) -> ecs.FargateService:
        env = self._environment(
            "consumer",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_TABLES": self._tables_setting(),
                "CHANGELAKE_STREAM_NAME": self.stream.stream_name,
                "CHANGELAKE_LAKE_BUCKET": self.bucket.bucket_name,
                "CHANGELAKE_APPLICATION_NAME": self.app_name,
                "CHANGELAKE_INITIAL_POSITION": "TRIM_HORIZON",
                "CHANGELAKE_LOG_LEVEL": self.config.log_level,
                "CHANGELAKE_METRICS": "emf",
            },
        )
        task, _ = self._task("consumer", contract.CONSUMER_COMMAND, env, cpu=1024, memory=2048)
        role = task.task_role
        self._grant_privacy_key(role)
        stream_arn = self.stream.stream_arn
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadTheChangeStream",
                actions=[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetShardIterator",
                    "kinesis:GetRecords",
                    "kinesis:ListShards",
                ],
                resources=[stream_arn],
            )
        )
        lease_tables = [
            f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{self.app_name}",
            f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{self.app_name}-*",
        ]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="KclLeaseTables",
                actions=[
                    "dynamodb:CreateTable",
                    "dynamodb:DescribeTable",
                    "dynamodb:UpdateTable",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Scan",
                    "dynamodb:Query",
                ],
                resources=[*lease_tables, *(f"{t}/index/*" for t in lease_tables)],
            )
        )
        consumer_prefixes = [
            contract.CHANGES_PREFIX,
            f"{contract.ERRORS_PREFIX}{contract.CONSUMER_ERROR_SOURCE}/",
        ]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Before writing a file the consumer lists its shard's objects in the partition
                # (a replay must not duplicate rows already written).
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in consumer_prefixes]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteChangesAndErrors",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[
                    self.bucket.arn_for_objects(f"{contract.CHANGES_PREFIX}*"),
                    self.bucket.arn_for_objects(
                        f"{contract.ERRORS_PREFIX}{contract.CONSUMER_ERROR_SOURCE}/*"
                    ),
                ],
            )
        )
        # Decrypt too: multipart uploads of SSE-KMS objects read back their data keys.
        role.add_to_principal_policy(self._kms_via("s3", decrypt=True, encrypt=True))
        # The KCL publishes its own metrics to the namespace named after the application.
        role.add_to_principal_policy(self._put_metrics(self.app_name))
        # Polling, not enhanced fan-out (ADR 0026): no RegisterStreamConsumer/SubscribeToShard.
        return self._service("consumer", task, self.config.consumer_count)

    def _catalog_service(self) -> ecs.FargateService:
        cfg = self.config
        env = self._environment(
            "catalog",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_TABLES": self._tables_setting(),
                "CHANGELAKE_LAKE_BUCKET": self.bucket.bucket_name,
                "CHANGELAKE_DATABASE": self.database_name,
                "CHANGELAKE_CATALOG_QUEUE": self.queue.queue_name,
                "CHANGELAKE_LOG_LEVEL": cfg.log_level,
                "CHANGELAKE_METRICS": "emf",
            },
        )
        task, _ = self._task("catalog", contract.CATALOG_COMMAND, env, cpu=512, memory=1024)
        role = task.task_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ConsumeObjectCreatedEvents",
                actions=[
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                ],
                resources=[self.queue.queue_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListTheLake",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{contract.CHANGES_PREFIX}*"]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadParquetFooters",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.CHANGES_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Late data (ADR 0034): an object landing in a compacted partition is copied
                # into the partition's current generation, under changes/<table>/compacted/.
                sid="CopyLateObjectsIntoGenerations",
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.CHANGES_PREFIX}*/compacted/*")],
            )
        )
        role.add_to_principal_policy(self._kms_via("s3", decrypt=True, encrypt=True))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="MaintainTheGlueTables",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                resources=self._glue_table_arns("*"),
            )
        )
        # No PutMetricData: the catalog's metrics are EMF log lines (CHANGELAKE_METRICS=emf).
        return self._service("catalog", task, 1)

    def _compact_task(self) -> tuple[ecs.FargateTaskDefinition, events.Rule | None]:
        """The catalog image running `python -m changelake_catalog.maintenance` on a schedule:
        compaction, the current-state snapshot, expiry (ADR 0033, 0035)."""
        cfg = self.config
        env = self._environment(
            "catalog-compact",
            {
                "CHANGELAKE_REGION": self.region,
                "CHANGELAKE_TABLES": self._tables_setting(),
                "CHANGELAKE_LAKE_BUCKET": self.bucket.bucket_name,
                "CHANGELAKE_DATABASE": self.database_name,
                "CHANGELAKE_LOG_LEVEL": cfg.log_level,
                "CHANGELAKE_COMPACT_OLDER_THAN": cfg.compact_older_than,
                "CHANGELAKE_COMPACT_GRACE": cfg.compact_grace,
                "CHANGELAKE_COMPACT_EXPIRE": str(cfg.compact_expire).lower(),
                "CHANGELAKE_COMPACT_EXPIRE_AFTER": cfg.compact_expire_after,
                "CHANGELAKE_SNAPSHOT_SCHEDULED": str(cfg.snapshot_scheduled).lower(),
            },
        )
        # A partition-hour is read into memory whole (ADR 0033): 2 vCPU, 8 GiB.
        task, _ = self._task(
            "catalog-compact", contract.COMPACT_COMMAND, env, cpu=2048, memory=8192
        )
        role = task.task_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListTheChanges",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{contract.CHANGES_PREFIX}*",
                            f"{contract.SNAPSHOTS_PREFIX}*",
                        ]
                    }
                },
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # The snapshot reads the previous one, writes the new one, deletes older ones.
                sid="WriteTheSnapshots",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.SNAPSHOTS_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Read the partitions, write generations and trash records, delete what a swap
                # replaced (after the grace period) or what --expire dropped.
                sid="RewriteTheChanges",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.CHANGES_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(self._kms_via("s3", decrypt=True, encrypt=True))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SwapAndDropPartitions",
                actions=[
                    "glue:GetTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:UpdatePartition",
                    "glue:BatchDeletePartition",
                ],
                resources=self._glue_table_arns("*"),
            )
        )
        # The snapshot: create/update `<t>_snapshot` and its partitions, switch `<t>_current`
        # (reads and partition updates are granted above, on every table of the database).
        glue_names = [glue_name(t) for t in self.table_names]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PublishTheSnapshot",
                actions=[
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:CreatePartition",
                    "glue:DeletePartition",
                ],
                resources=self._glue_table_arns(
                    *(f"{name}_{kind}" for name in glue_names for kind in ("snapshot", "current"))
                ),
            )
        )
        cdk.CfnOutput(self, "CompactTaskDefinitionArn", value=task.task_definition_arn)
        if not cfg.compact_schedule:
            return task, None
        group = ec2.SecurityGroup(
            self,
            "CompactSg",
            vpc=self.vpc,
            description="changelake compaction task: no inbound, outbound to AWS APIs",
            allow_all_outbound=True,
        )
        rule = events.Rule(
            self,
            "CompactSchedule",
            description="changelake: compact sealed partition-hours (ADR 0033)",
            schedule=events.Schedule.expression(cfg.compact_schedule),
            targets=[
                events_targets.EcsTask(
                    cluster=self.cluster,
                    task_definition=task,
                    launch_type=ecs.LaunchType.FARGATE,
                    subnet_selection=ec2.SubnetSelection(
                        subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                    ),
                    security_groups=[group],
                    assign_public_ip=False,
                    task_count=1,
                )
            ],
        )
        return task, rule

    # ---- helpers --------------------------------------------------------------------------------

    def _environment(self, service: str, values: Mapping[str, str]) -> dict[str, str]:
        """The service's CHANGELAKE_* variables; exactly the names the contract declares."""
        expected = set(contract.ENVIRONMENT[service])
        if set(values) != expected:
            raise ValueError(
                f"{service}: environment {sorted(values)} differs from the contract "
                f"{sorted(expected)}"
            )
        env = dict(values)
        if service in contract.PRIVACY_SERVICES and self.config.privacy_policy:
            env["CHANGELAKE_PRIVACY_POLICY"] = self.config.privacy_policy
            if self.config.privacy_key_secret:
                env["CHANGELAKE_PRIVACY_KEY_SECRET"] = self.config.privacy_key_secret
        return env

    def _glue_table_arns(self, *tables: str) -> list[str]:
        """What a Glue table call is authorised on: the catalog, the database, the tables."""
        glue_arn = f"arn:{self.partition}:glue:{self.region}:{self.account}"
        return [
            f"{glue_arn}:catalog",
            f"{glue_arn}:database/{self.database_name}",
            *(f"{glue_arn}:table/{self.database_name}/{table}" for table in tables),
        ]

    def _grant_privacy_key(self, role: iam.IRole) -> None:
        """Read access to the privacy key's secret (only when the context names one)."""
        if self.config.privacy_policy and self.config.privacy_key_secret:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="ReadThePrivacyKey",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.config.privacy_key_secret],
                )
            )

    def _kms_via(self, service: str, *, decrypt: bool, encrypt: bool) -> iam.PolicyStatement:
        """Use of the stack key, only through ``service`` in this region (kms:ViaService)."""
        actions = ["kms:DescribeKey"]
        if decrypt:
            actions.append("kms:Decrypt")
        if encrypt:
            actions += ["kms:Encrypt", "kms:GenerateDataKey"]
        return iam.PolicyStatement(
            actions=actions,
            resources=[self.key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"{service}.{self.region}.amazonaws.com"}
            },
        )

    @staticmethod
    def _put_metrics(namespace: str) -> iam.PolicyStatement:
        """PutMetricData has no resource ARN; the namespace condition is its only scope."""
        return iam.PolicyStatement(
            sid=f"PutMetrics{namespace.title().replace('-', '')}",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
        )

    def _harden_cdk_internals(self) -> None:
        """Record why CDK's own helper functions deviate from the Lambda checks."""
        for child in self.node.find_all():
            if (
                isinstance(child, cdk.CfnResource)
                and child.cfn_resource_type == "AWS::Lambda::Function"
                and not child.get_metadata("checkov")
            ):
                _checkov_skip(
                    child,
                    ("CKV_AWS_115", "CDK-provided custom-resource handler (deploy time only)"),
                    ("CKV_AWS_116", "CDK-provided custom-resource handler (deploy time only)"),
                    ("CKV_AWS_117", "CDK-provided custom-resource handler (deploy time only)"),
                    ("CKV_AWS_173", "CDK-provided custom-resource handler (deploy time only)"),
                )
