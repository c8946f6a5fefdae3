"""Operations in template.yaml: the alarms an operator needs, where they go, and the dashboard."""

from __future__ import annotations

import json
import re

import pytest

from tickwatch.template import Template

TEMPLATE = Template.load()
RESOURCES = TEMPLATE.resources


def _alarms() -> dict[str, dict]:
    return {
        logical_id: RESOURCES[logical_id]["Properties"] for logical_id in TEMPLATE.logical_ids("AWS::CloudWatch::Alarm")
    }


def _alarms_on(namespace: str, metric: str) -> dict[str, dict]:
    """Alarms on the metric, by the Ref/GetAtt of the dimension they watch."""
    found = {}
    for alarm in _alarms().values():
        if (alarm.get("Namespace"), alarm.get("MetricName")) == (namespace, metric):
            (target,) = [dimension["Value"] for dimension in alarm["Dimensions"]][:1]
            found[json.dumps(target, sort_keys=True)] = alarm
    return found


def _ref(logical_id: str) -> str:
    return json.dumps({"Ref": logical_id}, sort_keys=True)


FUNCTIONS = TEMPLATE.logical_ids("AWS::Serverless::Function")
STREAM_CONSUMERS = [
    function
    for function in FUNCTIONS
    if any(
        event["Type"] in ("Kinesis", "DynamoDB")
        for event in RESOURCES[function]["Properties"].get("Events", {}).values()
    )
]
FAILURE_QUEUES = sorted(
    {
        event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for function in FUNCTIONS
        for event in RESOURCES[function]["Properties"].get("Events", {}).values()
        if "DestinationConfig" in event.get("Properties", {})
    }
)


def test_every_alarm_notifies_the_ops_topic_when_it_fires_and_when_it_clears():
    assert len(_alarms()) >= 20
    for logical_id, alarm in _alarms().items():
        assert alarm["AlarmActions"] == [{"Ref": "OpsTopic"}], logical_id
        assert alarm["OKActions"] == [{"Ref": "OpsTopic"}], logical_id
        assert alarm["AlarmDescription"], logical_id


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_its_first_error_and_throttle(metric):
    alarms = _alarms_on("AWS/Lambda", metric)
    assert set(alarms) == {_ref(function) for function in FUNCTIONS}
    for alarm in alarms.values():
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Sum",
            0,
            "GreaterThanThreshold",
        )


def test_every_stream_consumer_alarms_when_it_falls_behind_by_the_parameter():
    assert set(STREAM_CONSUMERS) == {"ProcessorFunction", "AlertsFunction", "BroadcastFunction", "DeliveryFunction"}
    alarms = _alarms_on("AWS/Lambda", "IteratorAge")
    assert set(alarms) == {_ref(function) for function in STREAM_CONSUMERS}
    for alarm in alarms.values():
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == {"Fn::Sub": "${IteratorAgeAlarmSeconds}000"}  # seconds as ms
    assert TEMPLATE.body["Parameters"]["IteratorAgeAlarmSeconds"]["Default"] == 60


def test_every_failure_queue_alarms_as_soon_as_anything_arrives():
    assert FAILURE_QUEUES == ["AlertsFailureQueue", "DeliveryFailureQueue", "ProcessorFailureQueue"]
    alarms = _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert set(alarms) == {json.dumps({"Fn::GetAtt": [queue, "QueueName"]}, sort_keys=True) for queue in FAILURE_QUEUES}
    for alarm in alarms.values():
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["Period"]) == (0, "GreaterThanThreshold", 60)
        assert alarm["EvaluationPeriods"] == 1


def test_stream_write_throttling_table_throttling_and_api_5xx_alarm():
    assert set(_alarms_on("AWS/Kinesis", "WriteProvisionedThroughputExceeded")) == {_ref("TickStream")}
    watched_tables = set()
    for alarm in _alarms().values():
        for query in alarm.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/DynamoDB":
                assert metric["MetricName"] in ("ReadThrottleEvents", "WriteThrottleEvents")
                watched_tables.add(metric["Dimensions"][0]["Value"]["Ref"])
    assert watched_tables == set(TEMPLATE.logical_ids("AWS::DynamoDB::Table"))
    (api_alarm,) = [a for a in _alarms().values() if a.get("MetricName") == "5XXError"]
    dimensions = {d["Name"]: d["Value"] for d in api_alarm["Dimensions"]}
    assert dimensions["ApiName"] == RESOURCES["QueryApi"]["Properties"]["Name"]
    assert dimensions["Stage"] == RESOURCES["QueryApi"]["Properties"]["StageName"]


def test_the_ops_topic_uses_a_key_cloudwatch_may_use_and_takes_an_optional_email():
    topic = RESOURCES["OpsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "OpsKey"}
    key = RESOURCES["OpsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    statements = RESOURCES["OpsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (publish,) = [s for s in statements if s["Effect"] == "Allow"]
    assert (publish["Principal"], publish["Action"]) == ({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish")
    subscription = TEMPLATE.resources["OpsEmailSubscription"]
    assert subscription["Condition"] == "HasOpsEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "OpsEmail"}


def test_the_dashboard_is_valid_json_showing_the_pipeline():
    body = RESOURCES["OpsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # What CloudFormation substitutes: every ${...} is a resource or pseudo parameter of the template.
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    for name in names:
        base = name.split(".")[0]
        assert base.startswith("AWS::") or base in RESOURCES, name
    document = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    metrics = {metric[1] for widget in document["widgets"] for metric in widget["properties"]["metrics"]}
    assert {
        "IncomingRecords",
        "TicksProcessed",
        "TicksQuarantined",
        "IteratorAge",
        "Invocations",
        "Duration",
        "AlertsPublished",
        "ApproximateNumberOfMessagesVisible",
        "ConsumedWriteCapacityUnits",
        "Errors",
    } <= metrics


def test_custom_metrics_are_kept_apart_per_stack():
    namespace = TEMPLATE.body["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert namespace == {"Fn::Sub": "tickwatch/${AWS::StackName}"}
    assert "tickwatch/${AWS::StackName}" in RESOURCES["OpsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
