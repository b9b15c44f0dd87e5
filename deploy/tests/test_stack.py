"""The synthesized template: resources, wiring, the contract with the code, least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest
from changelake_deploy import contract
from changelake_lake.layout import glue_name

from conftest import REPO_ROOT, Synth, synthesize

# The SQL files in the source tree; the stack reads them as changelake_lake's package data.
NAMED_QUERY_FILES = REPO_ROOT / "libs" / "lake" / "src" / "changelake_lake" / "query" / "named"

pytestmark = pytest.mark.unit


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The single (logical id, resource) of a mapping that must hold exactly one."""
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def getatt(logical_id: str, attr: str = "Arn") -> dict[str, Any]:
    """A CloudFormation ``Fn::GetAtt``."""
    return {"Fn::GetAtt": [logical_id, attr]}


def statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    """Every IAM statement attached (inline policies) to one role."""
    found: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in [synth.template["Resources"][role_id]]:
        for policy in role["Properties"].get("Policies", []):
            found += policy["PolicyDocument"]["Statement"]
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    """A statement's actions as a list."""
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def resources_of(statement: dict[str, Any]) -> list[Any]:
    """A statement's resources as a list."""
    resource = statement["Resource"]
    return [resource] if not isinstance(resource, list) else list(resource)


def allowed(synth: Synth, role_id: str) -> dict[str, list[Any]]:
    """Action → every resource the role is allowed it on."""
    table: dict[str, list[Any]] = {}
    for st in statements(synth, role_id):
        assert st["Effect"] == "Allow"
        for action in actions_of(st):
            table.setdefault(action, []).extend(resources_of(st))
    return table


def object_suffixes(resources: list[Any], bucket_id: str) -> list[str]:
    """The ``/prefix/*`` parts of S3 object ARNs built as Join(bucket ARN, suffix)."""
    suffixes = []
    for res in resources:
        join = res["Fn::Join"][1]
        assert join[0] == getatt(bucket_id), res
        suffixes.append(join[1])
    return suffixes


def task_role(synth: Synth, family_prefix: str) -> str:
    """The task role of the task definition whose logical id starts with ``family_prefix``."""
    _, task = only(
        {
            k: r
            for k, r in synth.resources("AWS::ECS::TaskDefinition").items()
            if k.startswith(family_prefix)
        }
    )
    return str(task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0])


def container(synth: Synth, family_prefix: str) -> dict[str, Any]:
    """The one container definition of a task definition."""
    tasks = synth.resources("AWS::ECS::TaskDefinition")
    _, task = only({k: r for k, r in tasks.items() if k.startswith(family_prefix)})
    (definition,) = task["Properties"]["ContainerDefinitions"]
    return dict(definition)


def image_function(synth: Synth, prefix: str) -> tuple[str, dict[str, Any]]:
    """The container-image Lambda whose logical id starts with ``prefix``."""
    return only(
        {
            k: r
            for k, r in synth.resources("AWS::Lambda::Function").items()
            if k.startswith(prefix) and r["Properties"].get("PackageType") == "Image"
        }
    )


# ---- resources and wiring ----------------------------------------------------------------------


def test_stack_resource_counts_whole_pipeline(template: Any) -> None:
    """One of each pipeline resource, two ECS services, two image Lambdas, a queue and its DLQ."""
    for cfn_type, count in {
        "AWS::DynamoDB::Table": 1,
        "AWS::Kinesis::Stream": 1,
        "AWS::KinesisFirehose::DeliveryStream": 1,
        "AWS::ECS::Cluster": 1,
        "AWS::ECS::Service": 2,
        # consumer, catalog, the producer's run-task, and the scheduled compaction
        "AWS::ECS::TaskDefinition": 4,
        "AWS::Events::Rule": 1,
        "AWS::SQS::Queue": 2,
        "AWS::Glue::Database": 1,
        "AWS::Athena::WorkGroup": 1,
        "AWS::KMS::Key": 1,
        "AWS::EC2::VPC": 1,
        "AWS::EC2::FlowLog": 1,
    }.items():
        template.resource_count_is(cfn_type, count)


def test_table_streams_changes_to_kinesis_with_microsecond_precision(synth: Synth) -> None:
    """The table's Kinesis streaming destination is the stack's stream, µs timestamps."""
    stream_id, _ = only(synth.resources("AWS::Kinesis::Stream"))
    _, table = only(synth.resources("AWS::DynamoDB::Table"))
    props = table["Properties"]
    assert props["KinesisStreamSpecification"] == {
        "StreamArn": getatt(stream_id),
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
    }
    assert props["KeySchema"] == [
        {"AttributeName": contract.TABLE_PARTITION_KEY, "KeyType": "HASH"}
    ]
    assert props["TableName"] == "Changelake-persons"  # derived from the stack name
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def lake_bucket(synth: Synth) -> tuple[str, dict[str, Any]]:
    """The lake bucket (the one encrypted with KMS)."""
    return only(
        {
            k: r
            for k, r in synth.resources("AWS::S3::Bucket").items()
            if r["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                "ServerSideEncryptionByDefault"
            ]["SSEAlgorithm"]
            == "aws:kms"
        }
    )


def test_lake_bucket_encrypted_private_versioned_with_raw_lifecycle(synth: Synth) -> None:
    """KMS, all public access blocked, versioned, raw/ tiered then expired, TLS enforced."""
    bucket_id, bucket = lake_bucket(synth)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Prefix"]: r for r in props["LifecycleConfiguration"]["Rules"] if "Prefix" in r}
    raw = rules[contract.RAW_PREFIX]
    assert [t["StorageClass"] for t in raw["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert raw["ExpirationInDays"] == 365
    assert rules[contract.ERRORS_PREFIX]["ExpirationInDays"] == 90
    # The curated changes are never expired by a lifecycle rule.
    assert "ExpirationInDays" not in rules[contract.CHANGES_PREFIX]
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "lake/"
    policies = [
        p
        for p in synth.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    denies = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
    ]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_firehose_partitions_raw_by_lambda_keys_with_the_layout_prefix(synth: Synth) -> None:
    """Firehose reads the stream, runs the transform, writes raw/ with the layout's prefix."""
    _, delivery = only(synth.resources("AWS::KinesisFirehose::DeliveryStream"))
    stream_id, _ = only(synth.resources("AWS::Kinesis::Stream"))
    bucket_id, _ = lake_bucket(synth)
    transform_id, _ = image_function(synth, "Transform")
    props = delivery["Properties"]
    assert props["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert props["KinesisStreamSourceConfiguration"]["KinesisStreamARN"] == getatt(stream_id)
    dest = props["ExtendedS3DestinationConfiguration"]
    assert dest["BucketARN"] == getatt(bucket_id)
    assert dest["Prefix"] == contract.FIREHOSE_RAW_PREFIX
    assert dest["ErrorOutputPrefix"] == contract.FIREHOSE_ERROR_PREFIX
    assert dest["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert dest["BufferingHints"]["SizeInMBs"] >= 64  # dynamic partitioning's minimum
    assert dest["CompressionFormat"] == "UNCOMPRESSED"
    (processor,) = dest["ProcessingConfiguration"]["Processors"]
    assert processor["Type"] == "Lambda"
    params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert params["LambdaArn"] == getatt(transform_id)
    assert dest["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"] == getatt(
        only(synth.resources("AWS::KMS::Key"))[0]
    )


def test_lake_notifies_catalog_queue_on_new_parquet_under_changes(synth: Synth) -> None:
    """ObjectCreated under changes/*.parquet → the catalog queue, which redrives to its DLQ."""
    _, notifications = only(synth.resources("Custom::S3BucketNotifications"))
    bucket_id, _ = lake_bucket(synth)
    config = notifications["Properties"]["NotificationConfiguration"]
    (queue_config,) = config["QueueConfigurations"]
    queues = synth.resources("AWS::SQS::Queue")
    queue_id = queue_config["QueueArn"]["Fn::GetAtt"][0]
    assert notifications["Properties"]["BucketName"] == {"Ref": bucket_id}
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in queue_config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": contract.CHANGES_PREFIX, "suffix": ".parquet"}
    redrive = queues[queue_id]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dlq_id in queues
    assert dlq_id != queue_id
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_glue_database_and_athena_workgroup_enforce_encrypted_results(synth: Synth) -> None:
    """The Glue database is named as configured; the workgroup enforces KMS-encrypted results."""
    _, database = only(synth.resources("AWS::Glue::Database"))
    assert database["Properties"]["DatabaseInput"]["Name"] == "changelake"  # the stack's name
    _, workgroup = only(synth.resources("AWS::Athena::WorkGroup"))
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 100 * 1024**3
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert result["OutputLocation"]["Fn::Join"][1][-1].endswith(contract.ATHENA_RESULTS_PREFIX)


def test_named_queries_one_per_shipped_sql_file_with_table_substituted(synth: Synth) -> None:
    """Every SQL file of the query command is an Athena named query over ``persons_*``."""
    files = sorted(NAMED_QUERY_FILES.glob("*.sql"))
    assert files, "the query command ships named queries"
    queries = {
        q["Properties"]["Name"]: q["Properties"]
        for q in synth.resources("AWS::Athena::NamedQuery").values()
    }
    assert sorted(queries) == [f.stem for f in files]
    for path in files:
        query = queries[path.stem]
        assert "${table}" not in query["QueryString"]
        assert "changelake_persons_" in query["QueryString"]
        assert query["Database"] == "changelake"
        assert query["Description"]
        assert not query["Description"].startswith("--")
        assert query["QueryString"] == path.read_text(encoding="utf-8").replace(
            "${table}", "changelake_persons"
        )


# ---- compute: ECS and Lambda ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "prefix", "command"),
    [
        ("consumer", "ConsumerTask", list(contract.CONSUMER_COMMAND)),
        ("catalog", "CatalogTask", list(contract.CATALOG_COMMAND)),
    ],
)
def test_ecs_task_runs_contract_command_with_contract_environment(
    synth: Synth, service: str, prefix: str, command: list[str]
) -> None:
    """The container runs the agreed command, with exactly the contract's CHANGELAKE_* names."""
    definition = container(synth, prefix)
    assert definition["Command"] == command
    names = sorted(e["Name"] for e in definition["Environment"])
    assert names == sorted(contract.ENVIRONMENT[service])
    assert definition["ReadonlyRootFilesystem"] is True
    assert [m["ContainerPath"] for m in definition["MountPoints"]] == list(
        contract.WRITABLE_PATHS[service]
    )
    assert definition["LogConfiguration"]["LogDriver"] == "awslogs"


def test_producer_task_runs_the_cli_on_demand_without_a_service(synth: Synth) -> None:
    """The producer's task definition runs its CLI image; no ECS service keeps it running."""
    definition = container(synth, "ProducerTaskTask")
    assert definition["Command"] == list(contract.PRODUCER_COMMAND)
    env = {e["Name"]: e["Value"] for e in definition["Environment"]}
    assert env["CHANGELAKE_PRODUCER_DURATION_S"] == "600"
    task_ids = {
        s["Properties"]["TaskDefinition"]["Ref"]
        for s in synth.resources("AWS::ECS::Service").values()
    }
    assert not any(t.startswith("ProducerTask") for t in task_ids)
    assert "ProducerTaskDefinitionArn" in synth.template["Outputs"]


def test_ecs_services_private_without_public_ip(synth: Synth) -> None:
    """Both services run in private subnets, no public IP, with rollback on failed deploys."""
    for service in synth.resources("AWS::ECS::Service").values():
        props = service["Properties"]
        network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert all("private" in s["Ref"].lower() for s in network["Subnets"])
        assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True,
            "Rollback": True,
        }
        assert props["LaunchType"] == "FARGATE"


def test_consumer_environment_names_stream_bucket_and_kcl_application(synth: Synth) -> None:
    """The consumer is told the stack's stream, lake bucket and its KCL application name."""
    env = {e["Name"]: e["Value"] for e in container(synth, "ConsumerTask")["Environment"]}
    stream_id, _ = only(synth.resources("AWS::Kinesis::Stream"))
    bucket_id, _ = lake_bucket(synth)
    assert env["CHANGELAKE_STREAM_NAME"] == {"Ref": stream_id}
    assert env["CHANGELAKE_LAKE_BUCKET"] == {"Ref": bucket_id}
    assert env["CHANGELAKE_APPLICATION_NAME"] == "changelake-consumer"
    assert env["CHANGELAKE_METRICS"] == "emf"


@pytest.mark.parametrize(
    ("service", "prefix"), [("transform", "Transform"), ("producer", "Producer")]
)
def test_lambda_image_runs_contract_handler_with_contract_environment(
    synth: Synth, service: str, prefix: str
) -> None:
    """Each Lambda is an image whose command is the agreed handler, env from the contract."""
    _, function = image_function(synth, prefix)
    props = function["Properties"]
    assert props["ImageConfig"]["Command"] == [contract.LAMBDA_HANDLERS[service]]
    assert sorted(props["Environment"]["Variables"]) == sorted(contract.ENVIRONMENT[service])
    assert "KmsKeyArn" in props
    assert props["LoggingConfig"]["LogGroup"]["Ref"].startswith(f"{prefix}Logs")


def test_image_assets_build_each_service_dockerfile_from_the_repo_root(synth: Synth) -> None:
    """Four images, each from its service's Dockerfile and stage, context holding its COPYs."""
    sources = {
        (a["source"]["dockerFile"], a["source"].get("dockerBuildTarget"))
        for a in synth.assets["dockerImages"].values()
    }
    assert sources == set(contract.IMAGES.values())
    for asset in synth.assets["dockerImages"].values():
        staged = synth.outdir / asset["source"]["directory"]
        dockerfile = staged / asset["source"]["dockerFile"]
        # CDK stages the context through .dockerignore: the Dockerfile and lock must survive.
        assert dockerfile.is_file(), dockerfile
        assert (staged / "uv.lock").is_file()
        assert (staged / "libs/lake/src/changelake_lake/layout.py").is_file()
        assert not (staged / "deploy").exists()
        assert not (staged / ".venv").exists()
        assert not list(staged.rglob("__pycache__"))
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                parts = [p for p in line.split()[1:] if not p.startswith("--")]
                for src in parts[:-1]:
                    assert (staged / src).exists(), f"{dockerfile}: COPY {src} not in the context"


def test_log_groups_all_encrypted_with_retention(synth: Synth) -> None:
    """Every log group has a retention and the stack key."""
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) >= 6
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]


# ---- least privilege ---------------------------------------------------------------------------

# Actions AWS offers no resource-level scope for, each used by a known principal.
RESOURCE_STAR_OK = {
    "ecr:GetAuthorizationToken",  # ECS execution roles pulling the images
    "cloudwatch:PutMetricData",  # scoped by a cloudwatch:namespace condition instead
    "xray:PutTraceSegments",  # Lambda active tracing
    "xray:PutTelemetryRecords",
}


def test_iam_no_wildcard_actions_and_resource_star_only_where_unscopable(synth: Synth) -> None:
    """No ``*`` or ``service:*`` actions anywhere; ``Resource: *`` only for unscopable actions."""
    for policy_id, policy in synth.resources("AWS::IAM::Policy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in actions_of(st):
                assert action != "*", policy_id
                assert not action.endswith(":*"), (policy_id, action)
            if "*" in resources_of(st):
                assert set(actions_of(st)) <= RESOURCE_STAR_OK, (policy_id, st)
            if "cloudwatch:PutMetricData" in actions_of(st):
                assert "cloudwatch:namespace" in st["Condition"]["StringEquals"]


def test_iam_no_managed_admin_policies(synth: Synth) -> None:
    """No role carries an AWS managed policy (everything is an inline, scoped statement)."""
    for role_id, role in synth.resources("AWS::IAM::Role").items():
        managed = json.dumps(role["Properties"].get("ManagedPolicyArns", []))
        assert "AdministratorAccess" not in managed, role_id
        assert "FullAccess" not in managed, role_id


def test_consumer_role_writes_only_changes_and_its_errors(synth: Synth) -> None:
    """The consumer puts objects under changes/ and errors/consumer/ only; no reads, no deletes."""
    role = task_role(synth, "ConsumerTask")
    bucket_id, _ = lake_bucket(synth)
    table = allowed(synth, role)
    assert sorted(object_suffixes(table["s3:PutObject"], bucket_id)) == [
        "/changes/*",
        "/errors/consumer/*",
    ]
    assert not {"s3:DeleteObject", "s3:GetObject", "dynamodb:DeleteTable"} & set(table)
    (listing,) = [s for s in statements(synth, role) if "s3:ListBucket" in actions_of(s)]
    assert listing["Resource"] == getatt(bucket_id)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["changes/*", "errors/consumer/*"]}}
    lease_tables = json.dumps(table["dynamodb:CreateTable"])
    assert "table/changelake-consumer" in lease_tables
    assert "kinesis:GetRecords" in table
    assert "kinesis:PutRecord" not in table
    assert not any(a.startswith("glue:") or a.startswith("sqs:") for a in table)


def test_catalog_role_reads_changes_registers_glue_and_writes_only_generations(
    synth: Synth,
) -> None:
    """The catalog reads changes/ objects and the queue, writes Glue only in its database and
    S3 only where late objects are copied into compacted partitions (ADR 0034)."""
    role = task_role(synth, "CatalogTask")
    bucket_id, _ = lake_bucket(synth)
    table = allowed(synth, role)
    assert object_suffixes(table["s3:GetObject"], bucket_id) == ["/changes/*"]
    assert object_suffixes(table["s3:PutObject"], bucket_id) == ["/changes/*/compacted/*"]
    assert not any(a.startswith("s3:Delete") for a in table)
    assert not any(a.startswith("glue:Delete") for a in table)
    glue_resources = json.dumps(table["glue:BatchCreatePartition"])
    assert ":table/changelake/*" in glue_resources
    assert ":database/changelake" in glue_resources
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(table)
    assert not any(a.startswith("kinesis:") or a.startswith("dynamodb:") for a in table)
    assert "cloudwatch:PutMetricData" not in table


def test_firehose_role_writes_only_raw_and_firehose_errors(synth: Synth) -> None:
    """Firehose puts objects under raw/ and errors/firehose/ only; invokes only the transform."""
    _, delivery = only(synth.resources("AWS::KinesisFirehose::DeliveryStream"))
    role = delivery["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
    bucket_id, _ = lake_bucket(synth)
    transform_id, _ = image_function(synth, "Transform")
    table = allowed(synth, role)
    assert sorted(object_suffixes(table["s3:PutObject"], bucket_id)) == [
        "/errors/firehose/*",
        "/raw/*",
    ]
    assert getatt(transform_id) in table["lambda:InvokeFunction"]
    assert "s3:DeleteObject" not in table


def test_transform_role_touches_no_data_store(synth: Synth) -> None:
    """The transform Lambda only logs and traces: no S3, DynamoDB, Kinesis or Glue access."""
    _, function = image_function(synth, "Transform")
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    table = allowed(synth, role)
    assert set(table) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


@pytest.mark.parametrize("kind", ["lambda", "task"])
def test_producer_role_writes_only_the_table(synth: Synth, kind: str) -> None:
    """The producer (Lambda or ECS task) may write items of the one table, nothing else."""
    table_id, _ = only(synth.resources("AWS::DynamoDB::Table"))
    if kind == "lambda":
        role = image_function(synth, "Producer")[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    else:
        role = task_role(synth, "ProducerTaskTask")
    table = allowed(synth, role)
    assert table["dynamodb:BatchWriteItem"] == [getatt(table_id)]
    assert table["dynamodb:UpdateItem"] == [getatt(table_id)]
    assert not {"dynamodb:DeleteTable", "dynamodb:Scan", "dynamodb:PutItem"} & set(table)
    assert not any(a.startswith("s3:") for a in table)


def test_kms_use_is_bound_to_the_calling_service(synth: Synth) -> None:
    """Every role's use of the stack key is conditioned on kms:ViaService."""
    key_id, _ = only(synth.resources("AWS::KMS::Key"))
    for policy_id, policy in synth.resources("AWS::IAM::Policy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(a in ("kms:Decrypt", "kms:GenerateDataKey") for a in actions_of(st)):
                assert resources_of(st) == [getatt(key_id)], policy_id
                assert "kms:ViaService" in st["Condition"]["StringEquals"], policy_id


# ---- configuration through context ---------------------------------------------------------------


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: Any) -> Synth:
    """A second synth: an existing VPC, two other tables, no producer; other retention days,
    no compaction schedule, --expire switched on, no scheduled snapshot (lake maintenance)."""
    monkeypatch_module.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch_module.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    return synthesize(
        tmp_path_factory.mktemp("cdk.variant"),
        {
            "vpc_id": "vpc-0123456789abcdef0",
            "tables": "Orders,Line-Items.v2",
            "with_producer": "false",
            "raw_retention_days": 60,
            "errors_retention_days": 14,
            "compact_schedule": "",
            "compact_expire": "true",
            "compact_expire_after": "400d",
            "snapshot_scheduled": "false",
            # Offline, the VPC lookup yields CDK's dummy subnets ("p-12345"), which CDK's own
            # template validation rejects; `cdk synth` does the real lookup instead.
            "@aws-cdk/core:validateAgainstDefaultRules": False,
        },
    )


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    """A module-scoped monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_context_existing_vpc_other_tables_without_producer(variant: Synth) -> None:
    """``-c vpc_id=…`` imports the VPC; ``tables`` and ``with_producer`` are honoured."""
    assert not variant.resources("AWS::EC2::VPC")
    assert not variant.resources("AWS::EC2::NatGateway")
    tables = variant.resources("AWS::DynamoDB::Table")
    # The first table keeps the logical id a one-table stack has (no replacement on upgrade).
    assert {k: t["Properties"]["TableName"] for k, t in tables.items()} == {
        "TableCD117FA1": "Orders",
        "TableLineItemsV218F5ED8D": "Line-Items.v2",
    }
    images = [
        r
        for r in variant.resources("AWS::Lambda::Function").values()
        if r["Properties"].get("PackageType") == "Image"
    ]
    assert len(images) == 1
    assert len(variant.resources("AWS::ECS::TaskDefinition")) == 3  # + the compaction
    sqls = [
        q["Properties"]["QueryString"]
        for q in variant.resources("AWS::Athena::NamedQuery").values()
    ]
    assert sqls
    assert all("orders_" in s or "line_items_v2_" in s for s in sqls)


def test_every_table_streams_to_the_one_stream_with_its_own_queries_and_alarms(
    variant: Synth,
) -> None:
    """Several tables (ADR 0032): one Kinesis stream for all, named queries and alarms each."""
    stream_id, _ = only(variant.resources("AWS::Kinesis::Stream"))
    for table in variant.resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["KinesisStreamSpecification"]["StreamArn"] == getatt(stream_id)
    files = sorted(p.stem for p in NAMED_QUERY_FILES.glob("*.sql"))
    names = sorted(
        q["Properties"]["Name"] for q in variant.resources("AWS::Athena::NamedQuery").values()
    )
    assert names == sorted(
        f"{base}.{stem}" for base in ("orders", "line_items_v2") for stem in files
    )
    for query in variant.resources("AWS::Athena::NamedQuery").values():
        base = query["Properties"]["Name"].split(".")[0]
        sql = query["Properties"]["QueryString"]
        assert any(f"{base}_{kind}" in sql for kind in ("changes", "current", "history"))
    replication = [
        a["Properties"]
        for a in variant.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/DynamoDB"
    ]
    assert sorted(
        (p["MetricName"], next(d["Value"] for d in p["Dimensions"] if d["Name"] == "TableName"))
        for p in replication
    ) == [
        ("AgeOfOldestUnreplicatedRecord", "Line-Items.v2"),
        ("AgeOfOldestUnreplicatedRecord", "Orders"),
        ("FailedToReplicateRecordCount", "Line-Items.v2"),
        ("FailedToReplicateRecordCount", "Orders"),
    ]
    (consumer,) = [
        r
        for k, r in variant.resources("AWS::ECS::TaskDefinition").items()
        if k.startswith("ConsumerTask")
    ]
    env = {
        e["Name"]: e["Value"]
        for e in consumer["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    # Every table by reference, in context order (the services start after the tables exist).
    assert env["CHANGELAKE_TABLES"] == {
        "Fn::Join": ["", [{"Ref": "TableCD117FA1"}, ",", {"Ref": "TableLineItemsV218F5ED8D"}]]
    }


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"table_name": "Orders"}, "table_name context was replaced by tables"),
        ({"tables": "Orders,a/b"}, "invalid DynamoDB table name 'a/b'"),
        ({"tables": ["Orders", "Orders"]}, "must name distinct tables"),
        ({"tables": "Line-Items,Line.Items"}, "differ only in punctuation"),
    ],
)
def test_bad_tables_context_fails_the_synth_with_its_reason(
    tmp_path: Any, context: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, context)


def test_contract_environment_matches_stack_for_every_service(synth: Synth) -> None:
    """Every service the contract lists is deployed with exactly its declared names."""
    seen = {
        "consumer": {e["Name"] for e in container(synth, "ConsumerTask")["Environment"]},
        "catalog": {e["Name"] for e in container(synth, "CatalogTask")["Environment"]},
        "transform": set(
            image_function(synth, "Transform")[1]["Properties"]["Environment"]["Variables"]
        ),
        "producer": set(
            image_function(synth, "Producer")[1]["Properties"]["Environment"]["Variables"]
        ),
        "producer-task": {e["Name"] for e in container(synth, "ProducerTaskTask")["Environment"]},
        "catalog-compact": {
            e["Name"] for e in container(synth, "CatalogCompactTask")["Environment"]
        },
    }
    assert seen == {k: set(v) for k, v in contract.ENVIRONMENT.items()}
    assert set(contract.SETTINGS_CLASSES) == set(contract.ENVIRONMENT)


def test_app_py_synthesizes_into_cdk_out_layout() -> None:
    """cdk.json's app command points at app.py, which builds the same stack."""
    cdk_json = json.loads((REPO_ROOT / "deploy" / "cdk.json").read_text())
    assert cdk_json["app"].endswith("python app.py")
    assert (REPO_ROOT / "deploy" / "app.py").is_file()
    assert cdk_json["context"]["@aws-cdk/core:validateAgainstDefaultRules"] is True


def test_assertions_api_sees_the_same_wiring(template: Any) -> None:
    """The CDK assertions API agrees: dynamic partitioning, µs destination, encrypted queues."""
    from aws_cdk.assertions import Match

    template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {
                    "Prefix": contract.FIREHOSE_RAW_PREFIX,
                    "DynamicPartitioningConfiguration": Match.object_like({"Enabled": True}),
                }
            )
        },
    )
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KinesisStreamSpecification": Match.object_like(
                {"ApproximateCreationDateTimePrecision": "MICROSECOND"}
            )
        },
    )
    template.all_resources_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})
    template.all_resources_properties(
        "AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 30}
    )


# ---- lake maintenance (ADR 0033): the scheduled compaction task, retention ----------------------


def test_compaction_runs_the_catalog_image_on_an_eventbridge_schedule(synth: Synth) -> None:
    """An EventBridge rule runs the compaction task on Fargate, privately, every hour."""
    definition = container(synth, "CatalogCompactTask")
    assert definition["Command"] == list(contract.COMPACT_COMMAND)
    env = {e["Name"]: e["Value"] for e in definition["Environment"]}
    assert sorted(env) == sorted(contract.ENVIRONMENT["catalog-compact"])
    assert env["CHANGELAKE_COMPACT_EXPIRE"] == "false"  # history is kept unless asked
    assert env["CHANGELAKE_COMPACT_OLDER_THAN"] == "2h"
    assert env["CHANGELAKE_SNAPSHOT_SCHEDULED"] == "true"  # compact, snapshot, (expire)
    [rule] = synth.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    [target] = rule["Properties"]["Targets"]
    ecs_params = target["EcsParameters"]
    assert ecs_params["LaunchType"] == "FARGATE"
    assert ecs_params["TaskDefinitionArn"]["Ref"].startswith("CatalogCompactTask")
    network = ecs_params["NetworkConfiguration"]["AwsVpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    task_ids = {
        s["Properties"]["TaskDefinition"]["Ref"]
        for s in synth.resources("AWS::ECS::Service").values()
    }
    assert not any(t.startswith("CatalogCompact") for t in task_ids)  # no service: a schedule


def _table_arns(resources: list[Any]) -> list[str]:
    """The ``table/<db>/<name>`` parts of Glue table ARNs (built as Join(arn:…:glue:…, part))."""
    found = []
    for res in resources:
        text = (
            res
            if isinstance(res, str)
            else "".join(p for p in res["Fn::Join"][1] if isinstance(p, str))
        )
        if ":table/" in text:
            found.append(text[text.index(":table/") + 1 :])
    return sorted(found)


def test_compaction_role_rewrites_changes_and_the_snapshot_only(synth: Synth) -> None:
    """The task reads, writes and deletes under changes/ and snapshots/ only; Glue: swap and
    drop partitions of every table, create/update only `<t>_snapshot` and `<t>_current`."""
    role = task_role(synth, "CatalogCompactTask")
    bucket_id, _ = lake_bucket(synth)
    table = allowed(synth, role)
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert sorted(object_suffixes(table[action], bucket_id)) == ["/changes/*", "/snapshots/*"]
    [listing] = [s for s in statements(synth, role) if "s3:ListBucket" in actions_of(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["changes/*", "snapshots/*"]}}
    assert {"glue:UpdatePartition", "glue:BatchDeletePartition", "glue:GetPartitions"} <= set(table)
    assert ":table/changelake/*" in json.dumps(table["glue:UpdatePartition"])
    [name] = [
        glue_name(t["Properties"]["TableName"])
        for t in synth.resources("AWS::DynamoDB::Table").values()
    ]
    snapshot_tables = [f"table/changelake/{name}_current", f"table/changelake/{name}_snapshot"]
    for action in ("glue:CreateTable", "glue:UpdateTable", "glue:CreatePartition"):
        assert _table_arns(table[action]) == snapshot_tables, action
    assert _table_arns(table["glue:DeletePartition"]) == snapshot_tables
    assert not any(a in table for a in ("glue:DeleteTable", "glue:CreateDatabase"))
    assert not any(a.startswith(("kinesis:", "dynamodb:", "sqs:", "athena:")) for a in table)


def test_retention_and_schedule_come_from_context(variant: Synth) -> None:
    """raw/ and errors/ expire after the context's days (tiering only before the expiry);
    compact_schedule="" leaves the task to run by hand; --expire can be switched on."""
    _, bucket = lake_bucket(variant)
    rules = {
        r["Prefix"]: r
        for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if "Prefix" in r
    }
    assert rules[contract.RAW_PREFIX]["ExpirationInDays"] == 60
    assert [t["StorageClass"] for t in rules[contract.RAW_PREFIX]["Transitions"]] == ["STANDARD_IA"]
    assert rules[contract.ERRORS_PREFIX]["ExpirationInDays"] == 14
    assert "ExpirationInDays" not in rules[contract.CHANGES_PREFIX]
    assert variant.resources("AWS::Events::Rule") == {}
    env = {e["Name"]: e["Value"] for e in container(variant, "CatalogCompactTask")["Environment"]}
    assert env["CHANGELAKE_COMPACT_EXPIRE"] == "true"
    assert env["CHANGELAKE_COMPACT_EXPIRE_AFTER"] == "400d"
    assert env["CHANGELAKE_SNAPSHOT_SCHEDULED"] == "false"
    # the role still allows `changelake snapshot`'s tables of every configured table
    grants = allowed(variant, task_role(variant, "CatalogCompactTask"))
    assert [a.rsplit("/", 1)[1] for a in _table_arns(grants["glue:CreateTable"])] == [
        "line_items_v2_current",
        "line_items_v2_snapshot",
        "orders_current",
        "orders_snapshot",
    ]
