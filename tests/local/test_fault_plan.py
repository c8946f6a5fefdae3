"""The fault injector itself: aimed faults hit only their target, and the alert accounting says
exactly which alerts SNS accepted without a history item, and when a call widened that window."""

from __future__ import annotations

import threading

import pytest

from tickwatch.local.faults import FaultInjector, FaultPlan, InjectedCrash


def test_a_crash_or_timeout_can_be_aimed_at_a_service_or_an_operation():
    plan = FaultPlan.parse("crash:sns.PublishBatch=0.1,timeout:dynamodb=0.02,aws=0.05", seed=3)
    assert plan.rates == {
        "crash:sns.PublishBatch": 0.1,
        "timeout:dynamodb": 0.02,
        "s3": 0.05,
        "dynamodb": 0.05,
        "sns": 0.05,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poison:sns=0.1", "only crash and timeout take a target"),
        ("crash:sqs=0.1", "the service must be one of s3, dynamodb, sns"),
        ("crash:sns.Publsh=0.1", "sns has no operation 'Publsh'"),
        ("crash=2", "must be between 0 and 1"),
        ("drop=0.1", "unknown fault 'drop'"),
    ],
)
def test_a_bad_fault_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        FaultPlan.parse(text)


def topic_and_queue(aws):
    topic = aws.client("sns").create_topic(Name="alerts")["TopicArn"]
    aws.client("dynamodb").create_table(
        TableName="market",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return topic


def publish(sns, topic, *alert_ids):
    return sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {
                "Id": str(n),
                "Message": alert_id,
                "MessageAttributes": {"alert_id": {"DataType": "String", "StringValue": alert_id}},
            }
            for n, alert_id in enumerate(alert_ids)
        ],
    )


def record(dynamodb, *alert_ids):
    dynamodb.batch_write_item(
        RequestItems={
            "market": [{"PutRequest": {"Item": {"pk": {"S": f"ALERT#{a}"}, "alert_id": {"S": a}}}} for a in alert_ids]
        }
    )


def watched(aws, injector):
    sns, dynamodb = aws.client("sns"), aws.client("dynamodb")
    injector.customize(sns)
    injector.customize(dynamodb)
    return sns, dynamodb


def test_an_aimed_crash_hits_every_call_of_its_operation_and_no_other(aws):
    topic = topic_and_queue(aws)
    injector = FaultInjector(FaultPlan.parse("crash:sns.PublishBatch=1"))
    sns, dynamodb = watched(aws, injector)
    sns.list_topics()
    record(dynamodb, "a")
    with pytest.raises(InjectedCrash, match=r"sns\.PublishBatch"):
        publish(sns, topic, "a")
    assert injector.injected_by_operation == {("crash", "sns.PublishBatch"): 1}


def in_invocation(injector, work):
    """Run `work` in a thread that begins an invocation, as the local functions' threads do."""
    failure = []

    def run():
        injector.before_invoke({"Records": []})
        try:
            work()
        except Exception as error:  # the invocation fails; what it left behind is the point
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return failure


def test_alerts_accepted_and_then_recorded_are_not_interrupted(aws):
    topic = topic_and_queue(aws)
    injector = FaultInjector(FaultPlan.parse(""))
    sns, dynamodb = watched(aws, injector)
    in_invocation(injector, lambda: (publish(sns, topic, "a", "b"), record(dynamodb, "a", "b")))
    assert injector.interrupted_alert_writes == []
    assert injector.alerts.widened == []
    assert injector.alerts.accepted == 2


def test_an_invocation_that_dies_at_the_history_write_interrupts_that_call_s_alerts(aws):
    topic = topic_and_queue(aws)
    injector = FaultInjector(FaultPlan.parse("crash:dynamodb.BatchWriteItem=1"))
    sns, dynamodb = watched(aws, injector)
    (failure,) = in_invocation(injector, lambda: (publish(sns, topic, "a", "b"), record(dynamodb, "a", "b")))
    assert isinstance(failure, InjectedCrash)
    assert injector.interrupted_alert_writes == ["a", "b"]
    assert injector.duplicates_allowed == ["a", "b"]  # inside the window SNS makes unavoidable


def test_publishing_again_before_recording_widens_the_window_and_allows_no_duplicate(aws):
    topic = topic_and_queue(aws)
    injector = FaultInjector(FaultPlan.parse(""))
    sns, _ = watched(aws, injector)
    # The design issue 11 fixed: the next call before the last one's history was written.
    in_invocation(injector, lambda: (publish(sns, topic, "a"), publish(sns, topic, "b")))
    assert injector.alerts.widened == [("a", "sns.PublishBatch")]
    assert injector.interrupted_alert_writes == ["a", "b"]
    assert injector.duplicates_allowed == ["b"]


def test_each_interruption_of_the_same_alert_counts_once(aws):
    topic = topic_and_queue(aws)
    injector = FaultInjector(FaultPlan.parse(""))
    sns, dynamodb = watched(aws, injector)
    in_invocation(injector, lambda: publish(sns, topic, "a"))
    in_invocation(injector, lambda: publish(sns, topic, "a"))
    in_invocation(injector, lambda: (publish(sns, topic, "a"), record(dynamodb, "a")))
    assert injector.interrupted_alert_writes == ["a", "a"]
