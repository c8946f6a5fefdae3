"""`tickwatch status`: what the alarms say, the failure queues' depth and how far behind each
stream consumer is, for a deployed stack (CloudWatch, SQS) or a running `tickwatch local up`."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from tickwatch.cli.output import format_table
from tickwatch.local import health
from tickwatch.resources import AwsContext, CliError

# CloudFormation names an alarm <stack>-<logical id>-<random suffix>.
_GENERATED_SUFFIX = re.compile(r"-[A-Z0-9]{8,}$")
CONSUMERS = (
    ("processor", "processor_function"),
    ("alerts", "alerts_function"),
    ("broadcast", "broadcast_function"),
    ("delivery", "delivery_function"),
)
QUEUES = (
    ("processor", "processor_failure_queue"),
    ("alerts", "alerts_failure_queue"),
    ("delivery", "delivery_failure_queue"),
)


def command_status(args: argparse.Namespace, context: AwsContext) -> int:
    if context.local is not None:
        states = health.read()
        if states is None:
            raise CliError("the local stack has not evaluated its alarms yet: try again in a few seconds")
        print(format_table(("alarm", "state", "measured", "fires when"), [_row(state) for state in states]))
        print(_verdict(sum(state.firing for state in states), len(states)))
        return 0
    stack = context.stack_name
    cloudwatch = context.client("cloudwatch")
    alarms = [
        alarm
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack}-")
        for alarm in page.get("MetricAlarms", [])
    ]
    if not alarms:
        raise CliError(f"stack {stack} has no alarms: deploy this version of the template, or pass --stack")
    rows = [
        (_GENERATED_SUFFIX.sub("", alarm["AlarmName"].removeprefix(f"{stack}-")), alarm["StateValue"], _reason(alarm))
        for alarm in sorted(alarms, key=lambda alarm: (alarm["StateValue"] != "ALARM", alarm["AlarmName"]))
    ]
    print(format_table(("alarm", "state", "why"), rows))
    print(_verdict(sum(alarm["StateValue"] == "ALARM" for alarm in alarms), len(alarms)))
    print()
    sqs = context.client("sqs")
    depths = []
    for name, resource in QUEUES:
        attributes = sqs.get_queue_attributes(
            QueueUrl=context.resource(resource), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        depths.append((f"{name} failure queue", f"{int(attributes['ApproximateNumberOfMessages']):,} messages"))
    ages = _iterator_ages(cloudwatch, [(name, context.resource(resource)) for name, resource in CONSUMERS])
    print(format_table(("what", "now"), depths + ages))
    return 0


def _iterator_ages(cloudwatch, functions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The largest IteratorAge of each function over the last five minutes."""
    now = datetime.now(UTC)
    queries = [
        {
            "Id": f"age{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": "IteratorAge",
                    "Dimensions": [{"Name": "FunctionName", "Value": function}],
                },
                "Period": 300,
                "Stat": "Maximum",
            },
        }
        for index, (_, function) in enumerate(functions)
    ]
    results = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=now - timedelta(minutes=5), EndTime=now)
    values = {result["Id"]: result.get("Values", []) for result in results["MetricDataResults"]}
    rows = []
    for index, (name, _) in enumerate(functions):
        latest = values.get(f"age{index}") or []
        rows.append((f"{name} behind its stream", f"{latest[0] / 1000:,.1f} s" if latest else "no data (idle)"))
    return rows


def _row(state: health.AlarmState) -> tuple[str, str, str, str]:
    return (state.alarm, state.state, state.value, state.threshold)


def _reason(alarm: dict) -> str:
    reason = " ".join(str(alarm.get("StateReason", "")).split())
    return reason if len(reason) <= 100 else reason[:99] + "…"


def _verdict(firing: int, total: int) -> str:
    return f"{firing} of {total} alarms firing" if firing else f"all {total} alarms OK"
