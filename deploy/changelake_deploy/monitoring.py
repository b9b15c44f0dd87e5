"""Alarms, the dashboard and the consumer's autoscaling (ADR 0025).

Every metric read here is either published by an AWS service (AWS/SQS, AWS/Firehose,
AWS/Lambda, AWS/Kinesis, ECS/ContainerInsights) or emitted by our code under the namespace and
name ``contract.METRICS`` declares (the root suite greps the services' source for each one),
or the KCL daemon's own ``MillisBehindLatest`` in the namespace named after the KCL application
(the root suite checks the installed KCL jars for both).
The consumer's per-shard gauges carry a ``shard`` dimension, so the stack reads them with
CloudWatch Metrics Insights (``SELECT MAX(lag_ms) FROM SCHEMA(…, shard)``): one series for any
number of shards, and shards born from a reshard are covered without a redeploy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from changelake_deploy import contract

MINUTE = cdk.Duration.minutes(1)
FIVE_MINUTES = cdk.Duration.minutes(5)
# Consumer lag (ms, max over shards) that pages: 5 minutes behind for 5 minutes in a row.
LAG_ALARM_MS = 5 * 60 * 1000
# Scaling steps on the same lag: add a task past 1 min, two past 5 min; remove one under 10 s.
SCALE_OUT_MS = 60 * 1000
SCALE_OUT_FAST_MS = 5 * 60 * 1000
SCALE_IN_MS = 10 * 1000
# Firehose buffers 60 s (up to 1.5 times that with dynamic partitioning) and retries a failed
# partition for 5 min.
FIREHOSE_FRESHNESS_ALARM_S = 15 * 60
# A change waiting this long for DynamoDB to put it on the stream.
REPLICATION_AGE_ALARM_MS = 5 * 60 * 1000


def consumer_metric_names() -> tuple[str, ...]:
    """The consumer metric names this module may use (from the contract)."""
    return contract.METRICS["consumer"][1]


def _consumer_max(name: str, label: str) -> cw.MathExpression:
    """Max of a per-shard consumer gauge over every shard (Metrics Insights)."""
    assert name in consumer_metric_names(), name
    return cw.MathExpression(
        expression=(
            f'SELECT MAX({name}) FROM SCHEMA("{contract.CONSUMER_NAMESPACE}", '
            f"{contract.CONSUMER_SHARD_DIMENSION})"
        ),
        label=label,
        period=MINUTE,
    )


def _kcl_max(application: str) -> cw.MathExpression:
    """Max MillisBehindLatest the KCL publishes for the application (any dimensions)."""
    return cw.MathExpression(
        expression=f'SELECT MAX({contract.KCL_LAG_METRIC}) FROM "{application}"',
        label="KCL MillisBehindLatest (ms, max)",
        period=MINUTE,
    )


def _ours(service: str, name: str, statistic: str = "Sum") -> cw.Metric:
    """A metric our code emits without dimensions (EMF), by the contract's namespace."""
    namespace, names = contract.METRICS[service]
    assert name in names, (service, name)
    return cw.Metric(namespace=namespace, metric_name=name, statistic=statistic, period=MINUTE)


class Monitoring(Construct):
    """The stack's alarms (optionally notifying an SNS topic), dashboard and consumer scaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shard_count: int,
        kcl_application: str,
        alarm_topic_arn: str | None,
        dlq: sqs.IQueue,
        queue: sqs.IQueue,
        stream: kinesis.IStream,
        tables: Sequence[str],
        delivery_stream_name: str,
        functions: Sequence[lambda_.IFunction],
        cluster: ecs.ICluster,
        services: Mapping[str, ecs.FargateService],
    ) -> None:
        """Create every alarm, the dashboard and the consumer's scalable target."""
        super().__init__(scope, construct_id)
        self._topic = (
            sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
            if alarm_topic_arn
            else None
        )
        self._cluster = cluster
        self.alarms: list[cw.Alarm] = []
        stack = cdk.Stack.of(self)

        # ---- alarms ------------------------------------------------------------------------
        dlq_depth = dlq.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=FIVE_MINUTES
        )
        self._alarm(
            "CatalogDeadLetters",
            dlq_depth,
            threshold=0,
            periods=1,
            description="A lake object the catalog failed to register 5 times is in the DLQ "
            "(redrive it after the fix; `changelake catalog repair` registers what is missing).",
        )
        lag = _consumer_max("lag_ms", "consumer lag (ms, max over shards)")
        self._alarm(
            "ConsumerLag",
            lag,
            threshold=LAG_ALARM_MS,
            periods=5,
            description="The KCL consumer is more than 5 minutes behind the stream on a shard.",
        )
        kcl_lag = _kcl_max(kcl_application)
        self._alarm(
            "KclLag",
            kcl_lag,
            threshold=LAG_ALARM_MS,
            periods=5,
            description="The KCL reports the consumer more than 5 minutes behind the stream "
            "(its own MillisBehindLatest; does not depend on the processor's EMF lines).",
        )
        freshness = self._firehose("DeliveryToS3.DataFreshness", delivery_stream_name, "Maximum")
        self._alarm(
            "FirehoseFreshness",
            freshness,
            threshold=FIREHOSE_FRESHNESS_ALARM_S,
            periods=3,
            description="Firehose's oldest undelivered record is older than 15 minutes.",
        )
        for metric_name, what in (
            ("DeliveryToS3.Success", "S3 puts"),
            ("ExecuteProcessing.Success", "transform Lambda invocations"),
        ):
            self._alarm(
                f"Firehose{metric_name.split('.')[0]}Failures",
                self._firehose(metric_name, delivery_stream_name, "Minimum"),
                threshold=1,
                periods=3,
                comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                description=f"Some Firehose {what} failed for 15 minutes (records go to "
                "errors/firehose/ once retries run out).",
            )
        for function in functions:
            self._alarm(
                f"{function.node.id}Errors",
                function.metric_errors(statistic="Sum", period=FIVE_MINUTES),
                threshold=0,
                periods=1,
                description=f"The {function.node.id} Lambda returned errors.",
            )
        for service_name, service in services.items():
            self._alarm(
                f"{service_name.title()}TasksBelowDesired",
                self._tasks_missing(service),
                threshold=0,
                periods=5,
                description=f"Fewer {service_name} tasks run than desired for 5 minutes "
                "(crash loop, failed image pull, capacity).",
            )
        for table in tables:
            # Per table: DynamoDB's own view of its Kinesis streaming destination (ADR 0032).
            label = contract.construct_name(table)
            self._alarm(
                f"{label}ReplicationAge",
                self._replication(table, "AgeOfOldestUnreplicatedRecord", "Maximum"),
                threshold=REPLICATION_AGE_ALARM_MS,
                periods=3,
                description=f"A change of table {table} has waited more than 5 minutes to "
                "reach the change stream (stream throttled or the destination failing).",
            )
            self._alarm(
                f"{label}ReplicationFailed",
                self._replication(table, "FailedToReplicateRecordCount", "Sum"),
                threshold=0,
                periods=1,
                description=f"DynamoDB could not put some changes of table {table} on the "
                "change stream (an item too large for a Kinesis record): those changes are "
                "not in the lake.",
            )
        throttled = self._stream(stream, "ReadProvisionedThroughputExceeded", "Average")
        self._alarm(
            "StreamReadThrottled",
            throttled,
            threshold=0,
            periods=15,
            description="GetRecords on the change stream was throttled every minute for 15 "
            "minutes: the consumer and Firehose outgrow the shards' shared 2 MB/s (ADR 0026).",
        )

        # ---- consumer autoscaling ------------------------------------------------------------
        consumer = services["consumer"]
        self.scaling = consumer.auto_scale_task_count(min_capacity=1, max_capacity=shard_count)
        self.scaling.scale_on_metric(
            "ScaleOnLag",
            # The KCL's own metric: it reaches CloudWatch whatever happens to the processor's
            # stderr (the MultiLangDaemon re-logs it), and covers every shard.
            metric=_kcl_max(kcl_application),
            scaling_steps=[
                appscaling.ScalingInterval(upper=SCALE_IN_MS, change=-1),
                appscaling.ScalingInterval(lower=SCALE_OUT_MS, change=+1),
                appscaling.ScalingInterval(lower=SCALE_OUT_FAST_MS, change=+2),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            # KCL lease rebalancing takes a few failover periods; do not flap.
            cooldown=cdk.Duration.minutes(5),
            evaluation_periods=3,
        )

        # ---- dashboard -----------------------------------------------------------------------
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            period_override=cw.PeriodOverride.AUTO,
            default_interval=cdk.Duration.hours(3),
        )
        incoming = self._stream(stream, "IncomingRecords", "Sum")
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=f"# changelake `{stack.stack_name}`\nThroughput, lag, duplicates, "
                "quarantined records, catalog latency. Alarms: ADR 0025.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Throughput (records/min)",
                left=[
                    incoming.with_(label="changes into the stream"),
                    _ours("consumer", "records_in").with_(label="consumer records in"),
                    _ours("consumer", "rows_written").with_(label="Parquet rows written"),
                    self._firehose(
                        "DeliveryToS3.Records", delivery_stream_name, "Sum", MINUTE
                    ).with_(label="Firehose records to raw/"),
                    _ours("catalog", "catalog_objects").with_(label="objects catalogued"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Lag",
                left=[lag, kcl_lag],
                right=[freshness.with_(label="Firehose data freshness (s)")],
                left_annotations=[cw.HorizontalAnnotation(value=LAG_ALARM_MS, label="alarm")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Duplicates skipped and records quarantined",
                left=[
                    _ours("consumer", "duplicate_rows_skipped").with_(
                        label="replayed rows already in the lake (skipped)"
                    ),
                    _ours("consumer", "decode_failures").with_(
                        label="records quarantined (errors/consumer/)"
                    ),
                    _ours("catalog", "catalog_messages_failed").with_(
                        label="catalog messages failed (retried)"
                    ),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Catalog latency and backlog",
                left=[
                    queue.metric_approximate_age_of_oldest_message(
                        statistic="Maximum", period=MINUTE
                    ).with_(label="oldest unregistered object (s)")
                ],
                right=[
                    queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=MINUTE
                    ).with_(label="objects waiting"),
                    dlq_depth.with_(label="dead letters"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="ECS tasks running",
                left=[
                    self._insights(service, "RunningTaskCount").with_(label=f"{name} running")
                    for name, service in services.items()
                ],
                width=12,
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=12),
        )

    # ---- helpers ------------------------------------------------------------------------------

    def _alarm(
        self,
        construct_id: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        periods: int,
        description: str,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            # No data = nothing flowing (an idle pipeline is healthy); a dead service trips
            # the tasks-below-desired alarm instead.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if self._topic is not None:
            alarm.add_alarm_action(cw_actions.SnsAction(self._topic))
            alarm.add_ok_action(cw_actions.SnsAction(self._topic))
        self.alarms.append(alarm)
        return alarm

    @staticmethod
    def _firehose(
        name: str, delivery_stream_name: str, statistic: str, period: cdk.Duration = FIVE_MINUTES
    ) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/Firehose",
            metric_name=name,
            dimensions_map={"DeliveryStreamName": delivery_stream_name},
            statistic=statistic,
            period=period,
        )

    @staticmethod
    def _replication(table: str, name: str, statistic: str) -> cw.Metric:
        """An AWS/DynamoDB metric of the table's Kinesis streaming destination."""
        return cw.Metric(
            namespace="AWS/DynamoDB",
            metric_name=name,
            dimensions_map={"TableName": table, "DelegatedOperation": "PutRecords"},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    @staticmethod
    def _stream(stream: kinesis.IStream, name: str, statistic: str) -> cw.Metric:
        """A stream-level AWS/Kinesis metric, per minute."""
        return cw.Metric(
            namespace="AWS/Kinesis",
            metric_name=name,
            dimensions_map={"StreamName": stream.stream_name},
            statistic=statistic,
            period=MINUTE,
        )

    def _insights(self, service: ecs.FargateService, name: str) -> cw.Metric:
        """A Container Insights service metric (the cluster has Container Insights on)."""
        return cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name=name,
            dimensions_map={
                "ClusterName": self._cluster.cluster_name,
                "ServiceName": service.service_name,
            },
            statistic="Average",
            period=MINUTE,
        )

    def _tasks_missing(self, service: ecs.FargateService) -> cw.MathExpression:
        """Desired minus running tasks (0 when healthy)."""
        return cw.MathExpression(
            expression="desired - running",
            using_metrics={
                "desired": self._insights(service, "DesiredTaskCount"),
                "running": self._insights(service, "RunningTaskCount"),
            },
            label="tasks missing",
            period=MINUTE,
        )
