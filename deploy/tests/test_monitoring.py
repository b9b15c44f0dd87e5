"""Alarms, dashboard and consumer autoscaling (issue 14 finding 5, ADR 0025) on the template."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from changelake_deploy import contract

from conftest import Synth

pytestmark = pytest.mark.unit

# Metrics Insights: SELECT FUNC(name) FROM SCHEMA("namespace", dims…) | FROM "namespace"
INSIGHTS = re.compile(r'SELECT\s+\w+\((\w+)\)\s+FROM\s+(?:SCHEMA\()?"([^"]+)"')
KCL_APPLICATION = "changelake-consumer"


def alarms(synth: Synth, *, scaling: bool = False) -> dict[str, dict[str, Any]]:
    """Logical id → alarm properties; the autoscaling policies' own alarms only if asked."""
    return {
        k: r["Properties"]
        for k, r in synth.resources("AWS::CloudWatch::Alarm").items()
        if scaling == ("TaskCountTarget" in k)
    }


def metrics_read(props: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric name) of everything an alarm reads, Metrics Insights included."""
    found: list[tuple[str, str]] = []
    if "MetricName" in props:
        found.append((props["Namespace"], props["MetricName"]))
    for query in props.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append((metric["Namespace"], metric["MetricName"]))
        elif "SELECT" in query.get("Expression", ""):
            ((name, namespace),) = INSIGHTS.findall(query["Expression"])
            found.append((namespace, name))
    return found


def by_description(synth: Synth, needle: str) -> dict[str, Any]:
    """The one alarm whose description mentions ``needle``."""
    (props,) = [p for p in alarms(synth).values() if needle in p["AlarmDescription"]]
    return props


def test_the_stack_has_the_required_alarms(synth: Synth) -> None:
    """DLQ, consumer lag, Firehose freshness and failures, Lambda errors, tasks below desired."""
    found = alarms(synth)
    assert len(found) >= 3
    read = {m for props in found.values() for m in metrics_read(props)}
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        (contract.CONSUMER_NAMESPACE, "lag_ms"),
        (KCL_APPLICATION, contract.KCL_LAG_METRIC),
        ("AWS/Firehose", "DeliveryToS3.DataFreshness"),
        ("AWS/Firehose", "DeliveryToS3.Success"),
        ("AWS/Firehose", "ExecuteProcessing.Success"),
        ("AWS/Lambda", "Errors"),
        ("ECS/ContainerInsights", "RunningTaskCount"),
        ("ECS/ContainerInsights", "DesiredTaskCount"),
        ("AWS/Kinesis", "ReadProvisionedThroughputExceeded"),
    } <= read


def test_dlq_alarm_fires_on_the_first_dead_letter(synth: Synth) -> None:
    """Depth of the catalog DLQ > 0 in one 5-minute period."""
    dlq_id = next(
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in synth.resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in r["Properties"]
    )
    props = by_description(synth, "DLQ")
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
    ]
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["Threshold"] == 0
    assert props["EvaluationPeriods"] == 1


def test_every_lambda_and_every_service_is_watched(synth: Synth) -> None:
    """One Errors alarm per Lambda of ours, one tasks-below-desired alarm per ECS service."""
    functions = {
        k
        for k, r in synth.resources("AWS::Lambda::Function").items()
        if r["Properties"].get("PackageType") == "Image"
    }
    watched = {
        d["Value"]["Ref"]
        for p in alarms(synth).values()
        if p.get("MetricName") == "Errors"
        for d in p["Dimensions"]
        if d["Name"] == "FunctionName"
    }
    assert watched == functions
    services = set(synth.resources("AWS::ECS::Service"))
    below = [p for p in alarms(synth).values() if "tasks run than desired" in p["AlarmDescription"]]
    watched_services = set()
    for props in below:
        (expression,) = [m for m in props["Metrics"] if "Expression" in m]
        assert expression["Expression"] == "desired - running"
        for query in props["Metrics"]:
            for dim in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []):
                if dim["Name"] == "ServiceName":
                    watched_services.add(dim["Value"]["Fn::GetAtt"][0])
    assert watched_services == services


def test_alarms_read_only_metrics_that_exist(synth: Synth) -> None:
    """AWS-published namespaces, or a name the contract lists for the namespace our code uses."""
    ours = {namespace: set(names) for namespace, names in contract.METRICS.values()}
    for logical_id, props in {**alarms(synth), **alarms(synth, scaling=True)}.items():
        for namespace, name in metrics_read(props):
            if namespace.startswith(("AWS/", "ECS/")):
                continue
            if namespace == KCL_APPLICATION:  # the KCL's own metrics (root suite checks the jar)
                assert name == contract.KCL_LAG_METRIC, logical_id
                continue
            assert name in ours.get(namespace, set()), (logical_id, namespace, name)


def test_alarms_notify_the_topic_given_by_context(synth: Synth, other: Synth) -> None:
    """No topic by default (no actions); ``-c alarm_topic_arn=…`` → every alarm notifies it."""
    for props in alarms(synth).values():
        assert "AlarmActions" not in props
    topic = "arn:aws:sns:eu-west-1:123456789012:oncall"
    for props in alarms(other).values():
        assert props["AlarmActions"] == [topic]
        assert props["OKActions"] == [topic]
    assert not other.resources("AWS::SNS::Topic")  # imported, never created


def dashboard_body(synth: Synth) -> dict[str, Any]:
    """The dashboard's JSON body with every CloudFormation token replaced by a placeholder."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return dict(json.loads(text))


def test_dashboard_shows_throughput_lag_duplicates_quarantine_catalog_latency(
    synth: Synth,
) -> None:
    """One dashboard; its graphs plot the metrics each question needs."""
    body = dashboard_body(synth)
    graphs = {
        w["properties"]["title"]: json.dumps(w["properties"].get("metrics", []))
        for w in body["widgets"]
        if w["type"] == "metric" and "title" in w["properties"]
    }
    assert "IncomingRecords" in graphs["Throughput (records/min)"]
    assert '"rows_written"' in graphs["Throughput (records/min)"]
    assert "SELECT MAX(lag_ms)" in graphs["Lag"]
    assert f'SELECT MAX(MillisBehindLatest) FROM \\"{KCL_APPLICATION}\\"' in graphs["Lag"]
    dupes = graphs["Duplicates skipped and records quarantined"]
    assert '"duplicate_rows_skipped"' in dupes
    assert '"decode_failures"' in dupes
    assert "ApproximateAgeOfOldestMessage" in graphs["Catalog latency and backlog"]
    assert "RunningTaskCount" in graphs["ECS tasks running"]
    assert any(w["type"] == "alarm" for w in body["widgets"])


def test_consumer_scales_between_one_and_one_task_per_shard(synth: Synth, other: Synth) -> None:
    """A scalable target on the consumer service: floor 1, ceiling = shard_count."""
    for variant, shards in ((synth, 2), (other, 4)):
        (target,) = variant.resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
        props = target["Properties"]
        assert props["ScalableDimension"] == "ecs:service:DesiredCount"
        (service_id,) = [
            p["Fn::GetAtt"][0]
            for p in props["ResourceId"]["Fn::Join"][1]
            if isinstance(p, dict) and "Fn::GetAtt" in p
        ]
        assert service_id.startswith("ConsumerService")
        assert (props["MinCapacity"], props["MaxCapacity"]) == (1, shards)


def test_consumer_scaling_steps_follow_the_lag(synth: Synth) -> None:
    """Step policies driven by the KCL's max MillisBehindLatest: out past 1 min, in under 10 s."""
    policies = {
        k: r["Properties"]
        for k, r in synth.resources("AWS::ApplicationAutoScaling::ScalingPolicy").items()
    }
    steps = {k: p["StepScalingPolicyConfiguration"]["StepAdjustments"] for k, p in policies.items()}
    adjustments = sorted(a["ScalingAdjustment"] for s in steps.values() for a in s)
    assert adjustments == [-1, 1, 2]
    scaling_alarms = alarms(synth, scaling=True)
    assert len(scaling_alarms) == 2
    for props in scaling_alarms.values():
        assert metrics_read(props) == [(KCL_APPLICATION, contract.KCL_LAG_METRIC)]
        (action,) = props["AlarmActions"]
        assert action["Ref"] in policies
    assert sorted(p["Threshold"] for p in scaling_alarms.values()) == [10_000, 60_000]
