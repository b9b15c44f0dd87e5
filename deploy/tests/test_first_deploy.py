"""Findings of the deploy review (issue 14, ADR 0024/0026): each fix, asserted on the template.

A first ``cdk deploy`` must not crash-loop, collide with another stack's names, start tasks
before their NAT route exists, or depend on ``uv`` being on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from changelake_deploy import contract
from changelake_deploy.stack import default_database, default_table_name
from test_stack import allowed, task_role

from conftest import DEPLOY_DIR, OTHER_STACK, Synth, synthesize

pytestmark = pytest.mark.unit


def task_definitions(synth: Synth) -> dict[str, dict[str, Any]]:
    """Service name (contract key) → its task definition's properties."""
    prefixes = {
        "consumer": "ConsumerTask",
        "catalog": "CatalogTask",
        "producer-task": "ProducerTask",
        "catalog-compact": "CatalogCompactTask",
    }
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in synth.resources("AWS::ECS::TaskDefinition").items():
        for service, prefix in prefixes.items():
            if logical_id.startswith(prefix) and not (
                service == "producer-task" and not logical_id.startswith("ProducerTaskTask")
            ):
                found[service] = resource["Properties"]
    return found


# ---- 1. read-only root file system: only the contract's paths are writable -------------------


def test_every_task_writes_only_its_contract_paths_as_the_runtime_user(synth: Synth) -> None:
    """Read-only root fs; one Fargate bind volume per writable path; uid 10001, never root."""
    tasks = task_definitions(synth)
    assert sorted(tasks) == sorted(contract.WRITABLE_PATHS)
    for service, props in tasks.items():
        (container,) = props["ContainerDefinitions"]
        assert container["ReadonlyRootFilesystem"] is True, service
        assert container["User"] == contract.RUNTIME_USER, service
        assert not container["User"].startswith("0"), service
        mounts = container["MountPoints"]
        assert [m["ContainerPath"] for m in mounts] == list(contract.WRITABLE_PATHS[service])
        assert all(m["ReadOnly"] is False for m in mounts)
        volumes = {v["Name"]: v for v in props["Volumes"]}
        # Fargate bind mounts: a name only (no host path, no Docker volume driver, no EFS).
        assert sorted(volumes) == sorted(m["SourceVolume"] for m in mounts)
        assert all(set(v) == {"Name"} for v in volumes.values()), volumes


def test_consumer_writable_paths_hold_the_kcl_properties_and_temp_dir() -> None:
    """The consumer may write /tmp (rendered .properties, tempfile, java.io.tmpdir)."""
    assert "/tmp" in contract.WRITABLE_PATHS["consumer"]
    assert contract.RUNTIME_USER == "10001:10001"


# ---- 2. physical names from the stack name, unless context sets them -------------------------

# Properties that set a resource's account-unique physical name.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Athena::WorkGroup": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::KMS::Key": "KeyAlias",
}


def physical_names(synth: Synth) -> dict[str, Any]:
    """Logical id → every fixed physical name the template sets (literal or not)."""
    names: dict[str, Any] = {}
    for logical_id, resource in synth.template["Resources"].items():
        props = resource.get("Properties", {})
        key = NAME_PROPERTIES.get(resource["Type"])
        if key and key in props:
            names[logical_id] = props[key]
        if resource["Type"] == "AWS::Glue::Database":
            names[logical_id] = props["DatabaseInput"]["Name"]
    return names


def test_no_fixed_physical_name_that_is_not_derived_from_the_stack_name(synth: Synth) -> None:
    """Only the table, the Glue database and the workgroup are named, all from the stack name."""
    names = physical_names(synth)
    assert sorted(synth.template["Resources"][k]["Type"] for k in names) == [
        "AWS::Athena::WorkGroup",
        "AWS::DynamoDB::Table",
        "AWS::Glue::Database",
    ]
    for logical_id, name in names.items():
        assert isinstance(name, str), (logical_id, name)
        assert name.lower().startswith("changelake"), (logical_id, name)


def test_a_second_stack_in_the_account_shares_no_physical_name(synth: Synth, other: Synth) -> None:
    """Another stack name → other table, database, workgroup and KCL application names."""
    ours, theirs = physical_names(synth), physical_names(other)
    assert set(ours.values()).isdisjoint(theirs.values())
    assert sorted(theirs.values()) == sorted(
        [
            default_table_name(OTHER_STACK),
            default_database(OTHER_STACK),
            f"{OTHER_STACK}-analysts",
        ]
    )
    assert default_database(OTHER_STACK) == "changelakestaging"
    (consumer,) = task_definitions(other)["consumer"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in consumer["Environment"]}
    assert env["CHANGELAKE_APPLICATION_NAME"] == "changelakestaging-consumer"
    queries = other.resources("AWS::Athena::NamedQuery").values()
    assert {q["Properties"]["Database"] for q in queries} == {"changelakestaging"}
    assert all("changelakestaging_persons_" in q["Properties"]["QueryString"] for q in queries)


def test_the_table_is_deleted_when_its_create_rolls_back_and_kept_on_destroy(synth: Synth) -> None:
    """RetainExceptOnCreate: a failed first deploy leaves no named table behind to collide."""
    (table,) = synth.resources("AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "RetainExceptOnCreate"
    # Generated names, so retaining them never blocks a redeploy: bucket, key, stream.
    for cfn_type in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Kinesis::Stream"):
        for resource in synth.resources(cfn_type).values():
            assert resource["DeletionPolicy"] == "Retain", cfn_type


# ---- 3. the CDK CLI runs the app without uv on PATH ------------------------------------------


def _path_without_uv() -> str:
    """PATH with every directory that holds a ``uv`` removed."""
    kept = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "uv").exists()]
    path = os.pathsep.join(kept)
    assert shutil.which("uv", path=path) is None
    return path


def test_cdk_json_app_command_synthesizes_without_uv_on_path(tmp_path: Path) -> None:
    """Run cdk.json's ``app`` exactly as the CDK CLI does (shell, CDK_OUTDIR), no uv on PATH."""
    app = json.loads((DEPLOY_DIR / "cdk.json").read_text())["app"]
    assert app.split()[0] != "uv"
    env = {**os.environ, "PATH": _path_without_uv(), "CDK_OUTDIR": str(tmp_path)}
    proc = subprocess.run(
        app,
        shell=True,
        cwd=DEPLOY_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    template = json.loads((tmp_path / "Changelake.template.json").read_text())
    assert "AWS::DynamoDB::Table" in {r["Type"] for r in template["Resources"].values()}


@pytest.mark.parametrize("target", ["deploy", "diff", "cdk-synth", "smoke"])
def test_make_targets_call_no_bare_uv(target: str) -> None:
    """``make -n`` without uv on PATH: every uv call is by absolute path (bootstrapped)."""
    env = {**os.environ, "PATH": _path_without_uv()}
    env.pop("UV", None)
    proc = subprocess.run(
        ["make", "-n", "-C", str(DEPLOY_DIR), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    tokens = [token for line in proc.stdout.splitlines() for token in line.split()]
    assert "uv" not in tokens, proc.stdout
    uv_calls = [token for token in tokens if token.endswith("/uv")]
    assert all(token.startswith("/") for token in uv_calls), uv_calls
    if target != "smoke":  # the CDK CLI runs cdk.json's app: the venv's python, no uv
        assert any(token.startswith("aws-cdk@") for token in tokens), proc.stdout


# ---- 4. ECS services start after the NAT routes ----------------------------------------------


def test_services_depend_on_every_private_subnet_nat_route(synth: Synth) -> None:
    """No task starts (and pulls its image) before its subnet's default route via NAT exists."""
    routes = {
        logical_id
        for logical_id, route in synth.resources("AWS::EC2::Route").items()
        if "NatGatewayId" in route["Properties"]
    }
    assert len(routes) == 2  # one per private subnet (2 AZs)
    for logical_id, service in synth.resources("AWS::ECS::Service").items():
        assert routes <= set(service.get("DependsOn", [])), logical_id


def test_nat_gateways_one_by_default_one_per_az_by_context(synth: Synth, other: Synth) -> None:
    """One NAT gateway by default (cost), ``-c nat_gateways=2`` for one per AZ (ADR 0026)."""
    assert len(synth.resources("AWS::EC2::NatGateway")) == 1
    assert len(other.resources("AWS::EC2::NatGateway")) == 2


# ---- 6. the KCL daemon's logging is the image's --------------------------------------------


def test_consumer_task_leaves_the_images_kcl_logging_alone(synth: Synth) -> None:
    """The image ships the KCL's logback configuration; the task overrides nothing of it."""
    (container,) = task_definitions(synth)["consumer"]["ContainerDefinitions"]
    assert "EntryPoint" not in container
    assert container["Command"] == list(contract.CONSUMER_COMMAND)
    names = {e["Name"] for e in container["Environment"]}
    assert names == set(contract.ENVIRONMENT["consumer"])  # no JAVA_TOOL_OPTIONS, no -D…
    assert "logback" not in json.dumps(container).lower()
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


# ---- 7. smaller findings ---------------------------------------------------------------------


def test_queue_policy_admits_s3_only_from_the_lake_in_this_account(synth: Synth) -> None:
    """S3 → SQS statement carries both aws:SourceArn (the lake) and aws:SourceAccount."""
    (lake_id,) = [
        k
        for k, r in synth.resources("AWS::S3::Bucket").items()
        if "LoggingConfiguration" in r["Properties"]
    ]
    grants = [
        st
        for policy in synth.resources("AWS::SQS::QueuePolicy").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow"
    ]
    assert len(grants) == 1
    (grant,) = grants
    assert grant["Principal"] == {"Service": "s3.amazonaws.com"}
    assert grant["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [lake_id, "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


def test_catalog_role_is_an_output_for_lake_formation_grants(synth: Synth) -> None:
    """ADR 0024: in a Lake Formation account the catalog role is the grantee; it is an output."""
    role_id = task_role(synth, "CatalogTask")
    outputs = synth.template["Outputs"]
    assert outputs["CatalogRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert "ProducerFunctionName" in outputs  # the smoke test invokes it
    assert "DashboardName" in outputs


def test_lambdas_that_emit_no_metrics_get_no_metrics_sink(synth: Synth) -> None:
    """CHANGELAKE_METRICS only where a metrics sink is used (consumer, catalog)."""
    for function in synth.resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "CHANGELAKE_METRICS" not in variables
    with_metrics = {s for s, names in contract.ENVIRONMENT.items() if "CHANGELAKE_METRICS" in names}
    assert with_metrics == set(contract.METRICS)


def test_consumer_reads_by_polling_so_its_role_has_no_fan_out(synth: Synth) -> None:
    """ADR 0026: polling (GetRecords), so no RegisterStreamConsumer / SubscribeToShard."""
    actions = set(allowed(synth, task_role(synth, "ConsumerTask")))
    assert {"kinesis:GetRecords", "kinesis:GetShardIterator"} <= actions
    assert not {"kinesis:SubscribeToShard", "kinesis:RegisterStreamConsumer"} & actions


def test_more_consumers_than_shards_is_refused(tmp_path: Path) -> None:
    """A KCL worker beyond one per shard holds no lease: the synth fails, naming both values."""
    with pytest.raises(ValueError, match=r"consumer_count=3 must be within 1\.\.shard_count=2"):
        synthesize(tmp_path, {"consumer_count": 3, "shard_count": 2})
