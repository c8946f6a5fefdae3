"""`tickwatch status` and what the template's alarms would say about the local stack."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from tickwatch.cli import main
from tickwatch.local import health
from tickwatch.local.state import LocalState, process_start

STACK = "tickwatch-dev"


def _local_stack(template, aws, *, errors=None, ages=None):
    """What `health.evaluate` reads of a LocalStack: its template, functions, mappings and session."""
    functions = {
        logical_id: SimpleNamespace(errors=(errors or {}).get(logical_id, 0))
        for logical_id in template.logical_ids("AWS::Serverless::Function")
    }
    mappings = [
        SimpleNamespace(
            function=SimpleNamespace(logical_id=logical_id),
            stats=SimpleNamespace(iterator_age_metric=lambda age=age: age),
        )
        for logical_id, age in (ages or {}).items()
    ]
    return SimpleNamespace(template=template, functions=functions, mappings=mappings, session=aws)


def test_a_quiet_local_stack_fires_none_of_the_alarms_it_can_evaluate(aws, stack):
    states = health.evaluate(_local_stack(stack, aws))
    evaluated = {state.alarm for state in states}
    assert "ProcessorErrorsAlarm" in evaluated
    assert "ProcessorIteratorAgeAlarm" in evaluated
    assert "ProcessorFailureAlarm" in evaluated
    assert not any(state.firing for state in states)
    (idle,) = [state for state in states if state.alarm == "ProcessorIteratorAgeAlarm"]
    assert idle.value == "idle: no batch in the last minute"  # no data point: the alarm stays OK
    assert health.summary_lines(states) == [
        f"  alarms             none of the {len(states)} alarms evaluated locally would fire"
    ]


def test_errors_lag_and_a_failed_batch_fire_the_alarms_the_template_defines_for_them(aws, stack):
    queue = stack.physical["AlertsFailureQueue"].ref
    aws.client("sqs").send_message(QueueUrl=queue, MessageBody="{}")
    local = _local_stack(stack, aws, errors={"QueryFunction": 2}, ages={"ProcessorFunction": 75.0})

    firing = {state.alarm: state for state in health.evaluate(local) if state.firing}

    assert set(firing) == {"QueryErrorsAlarm", "ProcessorIteratorAgeAlarm", "AlertsFailureAlarm"}
    assert firing["ProcessorIteratorAgeAlarm"].value == "75.0 s behind its stream"
    assert firing["ProcessorIteratorAgeAlarm"].threshold == "> 60 s"  # IteratorAgeAlarmSeconds
    assert firing["AlertsFailureAlarm"].value == "1 messages"
    lines = health.summary_lines(list(firing.values()))
    assert lines[0] == "  alarms             3 of 3 would fire:"


def test_status_shows_what_local_up_last_evaluated(tmp_path, capsys):
    LocalState(
        "http://127.0.0.1:1", "us-east-1", os.getpid(), {}, str(tmp_path), started=process_start(os.getpid())
    ).write()
    health.write(
        [
            health.AlarmState("ProcessorErrorsAlarm", False, "0 failed invocations since start", "> 0"),
            health.AlarmState("AlertsFailureAlarm", True, "2 messages", "> 0"),
        ]
    )
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"AlertsFailureAlarm +ALARM +2 messages", out)
    assert "1 of 2 alarms firing" in out


def test_status_of_a_deployed_stack_reads_alarms_queues_and_iterator_age(aws, capsys):
    cloudwatch, sqs = aws.client("cloudwatch"), aws.client("sqs")
    # Two of this stack's alarms, named as CloudFormation names them, and another stack's.
    for name in (
        f"{STACK}-ProcessorErrorsAlarm-1A2B3C4D5E6F",
        f"{STACK}-AlertsFailureAlarm-1A2B3C4D5E6F",
        "other-stack-ProcessorErrorsAlarm-XYZXYZXYZXYZ",
    ):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
    cloudwatch.set_alarm_state(
        AlarmName=f"{STACK}-AlertsFailureAlarm-1A2B3C4D5E6F", StateValue="ALARM", StateReason="1 message in the queue"
    )
    processor_queue = sqs.create_queue(QueueName="processor-failures")["QueueUrl"]
    alerts_queue = sqs.create_queue(QueueName="alerts-failures")["QueueUrl"]
    delivery_queue = sqs.create_queue(QueueName="delivery-failures")["QueueUrl"]
    sqs.send_message(QueueUrl=alerts_queue, MessageBody="{}")
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": "processor-fn"}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                "Value": 12500.0,
                "Unit": "Milliseconds",
            }
        ],
    )

    code = main(
        [
            "status",
            "--stack",
            STACK,
            "--processor-failure-queue",
            processor_queue,
            "--alerts-failure-queue",
            alerts_queue,
            "--delivery-failure-queue",
            delivery_queue,
            "--delivery-function",
            "delivery-fn",
            "--processor-function",
            "processor-fn",
            "--alerts-function",
            "alerts-fn",
            "--broadcast-function",
            "broadcast-fn",
        ],
        session_factory=lambda: aws,
    )

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("AlertsFailureAlarm")  # firing ones first
    assert "ALARM" in lines[1]
    assert "1 message in the queue" in lines[1]
    assert "other-stack" not in out
    assert "1 of 2 alarms firing" in out
    assert "alerts failure queue" in out
    assert "1 messages" in out
    assert re.search(r"processor behind its stream +12\.5 s", out)
    assert re.search(r"alerts behind its stream +no data \(idle\)", out)
    assert re.search(r"delivery failure queue +0 messages", out)
    assert re.search(r"delivery behind its stream +no data \(idle\)", out)


def test_status_says_so_when_the_stack_has_no_alarms(aws, capsys):
    assert main(["status", "--stack", STACK], session_factory=lambda: aws) == 1
    assert "has no alarms" in capsys.readouterr().err
