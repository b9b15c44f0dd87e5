"""deploy/'s contract with the code, checked without the CDK.

deploy/changelake_deploy/contract.py is pure data (no aws_cdk import): the names the stack sets
and the layout strings it copies. deploy/tests checks the template uses exactly these; this
module checks they are true of the code (settings fields, layout, handlers, commands).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import changelake_dockerspec
import pytest
from changelake_lake import layout


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ROOT = Path(__file__).resolve().parents[1]
ds = changelake_dockerspec
contract: Any = _load(
    "changelake_deploy_contract", ROOT / "deploy" / "changelake_deploy" / "contract.py"
)


@pytest.mark.unit
def test_deploy_contract_imports_no_cdk() -> None:
    """The contract stays plain data, so this suite runs without aws-cdk-lib."""
    source = (ROOT / "deploy" / "changelake_deploy" / "contract.py").read_text()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.M)
    assert sorted(set(imports)) == ["__future__", "re"]


@pytest.mark.unit
@pytest.mark.parametrize("service", sorted(contract.ENVIRONMENT))
def test_deploy_environment_names_are_settings_fields(service: str) -> None:
    """Every CHANGELAKE_* name the stack sets is a field of the service's settings class."""
    module_name, _, class_name = contract.SETTINGS_CLASSES[service].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert cls is ds.settings_class(service.partition("-")[0])  # producer-task: producer
    fields = ds.env_names(cls)
    names = set(contract.ENVIRONMENT[service])
    if service in contract.PRIVACY_SERVICES:  # set only with the privacy_policy context
        assert sorted(set(contract.PRIVACY_ENVIRONMENT) - set(fields)) == []
    assert sorted(names - set(fields)) == []
    assert ds.required_env_names(cls) <= names
    assert all(n.startswith(contract.ENV_PREFIX) for n in names)


@pytest.mark.unit
def test_deploy_layout_strings_equal_the_shared_layout() -> None:
    """The prefixes the stack writes into Firehose, IAM and lifecycle rules are the layout's."""
    assert layout.firehose_raw_prefix_expression() == contract.FIREHOSE_RAW_PREFIX
    assert layout.firehose_error_prefix_expression() == contract.FIREHOSE_ERROR_PREFIX
    assert contract.CHANGES_PREFIX == layout.CHANGES + "/"
    assert contract.RAW_PREFIX == layout.RAW + "/"
    assert contract.ERRORS_PREFIX == layout.ERRORS + "/"
    assert layout.errors_prefix(contract.CONSUMER_ERROR_SOURCE, "persons").startswith(
        f"{contract.ERRORS_PREFIX}{contract.CONSUMER_ERROR_SOURCE}/"
    )
    assert contract.FIREHOSE_ERROR_PREFIX.startswith(
        f"{contract.ERRORS_PREFIX}{contract.FIREHOSE_ERROR_SOURCE}/"
    )


@pytest.mark.unit
def test_deploy_consumer_error_source_is_the_consumers() -> None:
    """The consumer's IAM grant on errors/<source>/ names the source the consumer writes."""
    from changelake_consumer.service import ERROR_SOURCE

    assert contract.CONSUMER_ERROR_SOURCE == ERROR_SOURCE


@pytest.mark.unit
def test_deploy_commands_and_handlers_are_the_images_own() -> None:
    """ECS commands equal the images' CMDs; Lambda handlers are callables and the images' CMDs."""
    assert (
        list(contract.CONSUMER_COMMAND)
        == ds.dockerfile("consumer").stage(None).last("CMD").exec_form()
    )
    producer_cmd = ds.dockerfile("producer").stage("runtime").last("CMD").exec_form()
    assert list(contract.PRODUCER_COMMAND) == producer_cmd
    catalog_cmd = ds.dockerfile("catalog").stage(None).last("CMD").exec_form()
    assert list(contract.CATALOG_COMMAND) == catalog_cmd
    assert ds.module_runnable(catalog_cmd[2])
    for service, handler_name in contract.LAMBDA_HANDLERS.items():
        assert callable(ds.handler(handler_name)), handler_name
        dockerfile, target = contract.IMAGES[service]
        stage = ds.parse_dockerfile(ROOT / dockerfile).stage(target)
        assert stage.last("CMD").exec_form() == [handler_name]
    for dockerfile, target in contract.IMAGES.values():
        parsed = ds.parse_dockerfile(ROOT / dockerfile)
        assert target is None or target in [s.name for s in parsed.stages]


@pytest.mark.aws
def test_deploy_table_key_matches_the_emulators_table(aws_endpoint: str) -> None:
    """The deployed table has the key the emulator creates locally (the producer writes it)."""
    import boto3
    from changelake.settings import ChangelakeSettings
    from changelake_emulator.bootstrap import bootstrap

    settings = ChangelakeSettings()
    bootstrap(settings, endpoint_url=aws_endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name=settings.region)
    schema = ddb.describe_table(TableName=settings.tables[0])["Table"]["KeySchema"]
    assert schema == [{"AttributeName": contract.TABLE_PARTITION_KEY, "KeyType": "HASH"}]


def _metric_calls(service: str) -> tuple[set[str], str]:
    """(names passed to ``.count``/``.gauge``, source text) of one service's code."""
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "services" / service).rglob("*.py"))
    )
    return set(re.findall(r"\.(?:count|gauge)\(\s*\"(\w+)\"", source)), source


@pytest.mark.unit
@pytest.mark.parametrize("service", sorted(contract.METRICS))
def test_deploy_alarm_metrics_are_emitted_by_the_code(service: str) -> None:
    """Every metric the alarms/dashboard read is emitted by that service, in that namespace."""
    import inspect

    from changelake.metrics import make_metrics

    namespace, names = contract.METRICS[service]
    emitted, source = _metric_calls(service)
    assert set(names) <= emitted, sorted(set(names) - emitted)
    calls = re.findall(r"make_metrics\(([^)]*)\)", source)
    assert calls, f"{service} builds no metrics sink"
    default = inspect.signature(make_metrics).parameters["namespace"].default
    for args in calls:
        explicit = re.search(r'namespace\s*=\s*"([^"]+)"', args)
        assert (explicit.group(1) if explicit else default) == namespace, args


@pytest.mark.unit
def test_deploy_consumer_gauges_carry_the_shard_dimension_the_alarms_group_by() -> None:
    """The Metrics Insights queries group lag_ms by ``shard``: the gauge sets that dimension."""
    _, source = _metric_calls("consumer")
    gauges = re.findall(r"\.gauge\(\s*\"lag_ms\"[^\n]*", source)
    assert gauges
    for call in gauges:
        assert f'{{"{contract.CONSUMER_SHARD_DIMENSION}":' in call, call


@pytest.mark.unit
@pytest.mark.parametrize(
    ("service", "stage"), [("consumer", None), ("catalog", None), ("producer", "runtime")]
)
def test_deploy_runtime_user_is_the_images_user(service: str, stage: str | None) -> None:
    """The task definitions' ``user`` is the USER each ECS image runs as."""
    user = ds.dockerfile(service).stage(stage).last("USER")
    assert user is not None
    assert user.value.strip() == contract.RUNTIME_USER


@pytest.mark.unit
def test_deploy_consumer_writes_its_kcl_properties_under_a_writable_path() -> None:
    """The rendered .properties lands on a path the task mounts writable (read-only root fs)."""
    from changelake_consumer.settings import ConsumerSettings

    path = ConsumerSettings.model_fields["kcl_properties_path"].default
    for env in ds.dockerfile("consumer").stage(None).all("ENV"):
        match = re.search(r"CHANGELAKE_KCL_PROPERTIES_PATH=(\S+)", env.value)
        if match:
            path = match.group(1)
    assert path, "the consumer image names no properties path"
    assert any(
        Path(path).is_relative_to(writable) for writable in contract.WRITABLE_PATHS["consumer"]
    ), path


@pytest.mark.unit
def test_deploy_kcl_lag_metric_is_published_by_the_installed_kcl_under_the_app_name() -> None:
    """The KCL jars publish MillisBehindLatest; multilang sets no namespace, so it is the app's.

    ConfigsBuilder.namespace() falls back to applicationName (KCL 3); the MultiLangDaemon's
    configuration has no namespace property to change that, and on AWS (no endpoints) the
    rendered properties leave metrics on.
    """
    import zipfile

    from changelake_consumer.kcl_properties import jars_dir, render
    from changelake_consumer.settings import ConsumerSettings

    settings = ConsumerSettings()
    jars = {p.name: p for p in jars_dir(settings).glob("*.jar")}
    (core,) = [p for n, p in jars.items() if re.fullmatch(r"amazon-kinesis-client-[\d.]+\.jar", n)]
    (multilang,) = [p for n, p in jars.items() if n.startswith("amazon-kinesis-client-multilang-")]
    with zipfile.ZipFile(core) as jar:
        process_task = jar.read("software/amazon/kinesis/lifecycle/ProcessTask.class")
        configs = jar.read("software/amazon/kinesis/common/ConfigsBuilder.class")
    assert contract.KCL_LAG_METRIC.encode() in process_task
    assert b"applicationName" in configs
    assert b"namespace" in configs
    with zipfile.ZipFile(multilang) as jar:
        daemon_config = jar.read(
            "software/amazon/kinesis/multilang/config/MultiLangDaemonConfiguration.class"
        )
    assert b"amespace" not in daemon_config
    rendered = render(settings, env={})
    assert "metricsLevel" not in rendered
    assert f"applicationName = {settings.application_name}" in rendered


@pytest.mark.unit
@pytest.mark.parametrize("service", sorted(contract.WRITABLE_PATHS))
def test_deploy_writable_paths_are_the_images_volumes_and_composes(service: str) -> None:
    """ONE list of writable paths: the task definition's mounts (contract), the image's VOLUMEs
    (what ECS copies the owner from) and compose's volumes under read_only are the same."""
    dockerfile, target = contract.IMAGES[service]
    stage = ds.parse_dockerfile(ROOT / dockerfile).stage(target)
    assert ds.volumes(stage) == list(contract.WRITABLE_PATHS[service])
    compose_service = ds.compose()["services"][service.partition("-")[0]]  # producer-task
    assert compose_service["read_only"] is True
    assert sorted(compose_service["volumes"]) == sorted(contract.WRITABLE_PATHS[service])
