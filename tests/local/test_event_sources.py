"""The event source mapping emulator: checkpoints, bisect, retries, on-failure messages, filters,
starting positions and per-key order with a parallelization factor."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import defaultdict

import pytest

from tickwatch.local.event_sources import EventSourceMapping, MappingSettings
from tickwatch.local.functions import Invocation
from tickwatch.template import Template, create_resources

STREAM = "emulator-ticks"


class ScriptedFunction:
    """Stands in for a LocalFunction: records each event and answers with `behaviour(records)`."""

    arn = "arn:aws:lambda:us-east-1:123456789012:function:scripted"

    def __init__(self, behaviour=None, delay: float = 0.0):
        self.behaviour = behaviour or (lambda records: {"batchItemFailures": []})
        self.delay = delay
        self.batches: list[list[dict]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def invoke(self, event) -> Invocation:
        with self.lock:
            self.batches.append(event["Records"])
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay)
            answer = self.behaviour(event["Records"])
        except Exception as error:
            return Invocation(str(uuid.uuid4()), error="Unhandled", error_message=str(error))
        finally:
            with self.lock:
                self.running -= 1
        return Invocation(str(uuid.uuid4()), response=answer)

    def delivered(self) -> list[int]:
        return [payload(record)["n"] for batch in self.batches for record in batch]


def payload(record: dict) -> dict:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


@pytest.fixture
def stream(aws):
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    return kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]


@pytest.fixture
def failure_queue(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="on-failure")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def put(aws, count: int, key=lambda n: f"K{n % 3}", start: int = 0) -> None:
    aws.client("kinesis").put_records(
        StreamName=STREAM,
        Records=[{"Data": json.dumps({"n": n}).encode(), "PartitionKey": key(n)} for n in range(start, start + count)],
    )


def run_mapping(aws, settings: MappingSettings, function, *, until, timeout: float = 20.0) -> EventSourceMapping:
    mapping = EventSourceMapping(settings, function, aws, poll_interval=0.05)
    mapping.retry_delay = 0.0
    mapping.start()
    deadline = time.monotonic() + timeout
    done = (lambda: until(mapping)) if until.__code__.co_argcount == 1 else until
    try:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done(), "the mapping did not get there in time"
        assert mapping.errors == []
    finally:
        mapping.stop()
    return mapping


def kinesis_settings(stream_arn, **overrides) -> MappingSettings:
    return MappingSettings(
        **{"name": "test", "source": "Kinesis", "stream_arn": stream_arn, "batch_size": 100, **overrides}
    )


def failure_messages(aws, url) -> list[dict]:
    response = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


def test_records_arrive_in_order_as_lambda_shaped_events(aws, stream):
    put(aws, 25)
    function = ScriptedFunction()
    run_mapping(aws, kinesis_settings(stream, batch_size=10), function, until=lambda: len(function.delivered()) == 25)
    assert function.delivered() == list(range(25))
    assert [len(batch) for batch in function.batches] == [10, 10, 5]
    record = function.batches[0][0]
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventSourceARN"] == stream
    assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
    assert record["kinesis"]["partitionKey"] == "K0"


def test_partial_batch_response_checkpoints_at_the_reported_record(aws, stream):
    put(aws, 10)
    answers = iter([4, None])

    def behaviour(records):
        failed_at = next(answers, None)
        if failed_at is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": records[failed_at]["kinesis"]["sequenceNumber"]}]}

    function = ScriptedFunction(behaviour)
    mapping = run_mapping(
        aws, kinesis_settings(stream, report_item_failures=True), function, until=lambda: len(function.batches) == 2
    )
    assert [payload(r)["n"] for r in function.batches[0]] == list(range(10))
    assert [payload(r)["n"] for r in function.batches[1]] == list(range(4, 10))  # 0-3 are not delivered again
    assert (mapping.stats.records_succeeded, mapping.stats.retries) == (10, 1)


def test_partial_responses_are_ignored_unless_the_mapping_reports_item_failures(aws, stream):
    put(aws, 5)
    function = ScriptedFunction(
        lambda records: {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    )
    run_mapping(
        aws, kinesis_settings(stream, report_item_failures=False), function, until=lambda: len(function.batches) >= 1
    )
    time.sleep(0.2)
    assert len(function.batches) == 1


def test_an_unknown_identifier_fails_the_whole_batch(aws, stream):
    put(aws, 5)
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}])
    function = ScriptedFunction(lambda records: next(answers, {"batchItemFailures": []}))
    run_mapping(
        aws, kinesis_settings(stream, report_item_failures=True), function, until=lambda: len(function.batches) == 2
    )
    assert [len(batch) for batch in function.batches] == [5, 5]


def test_bisect_isolates_a_poison_record_which_goes_to_the_on_failure_queue(aws, stream, failure_queue):
    put(aws, 16)
    queue_url, queue_arn = failure_queue

    def behaviour(records):
        if any(payload(r)["n"] == 11 for r in records):
            raise ValueError("poison")
        return {"batchItemFailures": []}

    function = ScriptedFunction(behaviour)
    settings = kinesis_settings(
        stream, report_item_failures=True, bisect_on_error=True, maximum_retries=2, on_failure_arn=queue_arn
    )
    mapping = run_mapping(
        aws, settings, function, until=lambda m: (m.stats.records_succeeded, m.stats.sent_to_on_failure) == (15, 1)
    )
    succeeded = sorted(
        {payload(r)["n"] for batch in function.batches if not any(payload(x)["n"] == 11 for x in batch) for r in batch}
    )
    assert succeeded == [n for n in range(16) if n != 11]
    poison_alone = [batch for batch in function.batches if [payload(r)["n"] for r in batch] == [11]]
    assert len(poison_alone) == 3  # first try and two retries
    time.sleep(0.2)
    (message,) = failure_messages(aws, queue_url)
    info = message["KinesisBatchInfo"]
    poison = next(r for r in poison_alone[0])
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison["kinesis"]["sequenceNumber"]
    assert (info["batchSize"], info["shardId"], info["streamArn"]) == (1, "shardId-000000000000", stream)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["functionArn"] == ScriptedFunction.arn
    assert message["responseContext"]["functionError"] == "Unhandled"
    assert message["version"] == "1.0"
    assert mapping.stats.sent_to_on_failure == 1


def test_without_bisect_the_whole_batch_is_retried_then_sent_to_on_failure(aws, stream, failure_queue):
    put(aws, 4)
    queue_url, queue_arn = failure_queue

    def always_fails(records):
        raise RuntimeError("down")

    function = ScriptedFunction(always_fails)
    settings = kinesis_settings(stream, maximum_retries=3, on_failure_arn=queue_arn)
    run_mapping(aws, settings, function, until=lambda: len(function.batches) == 4)
    time.sleep(0.2)
    (message,) = failure_messages(aws, queue_url)
    assert message["KinesisBatchInfo"]["batchSize"] == 4
    assert message["requestContext"]["approximateInvokeCount"] == 4
    assert all(len(batch) == 4 for batch in function.batches)


def test_records_older_than_the_maximum_age_go_to_on_failure_unprocessed(aws, stream, failure_queue):
    queue_url, queue_arn = failure_queue
    put(aws, 3)
    function = ScriptedFunction()
    settings = kinesis_settings(stream, maximum_record_age=0.2, batching_window=0.6, on_failure_arn=queue_arn)
    mapping = run_mapping(aws, settings, function, until=lambda: failure_messages_peek(aws, queue_url))
    assert function.batches == []
    assert mapping.stats.sent_to_on_failure == 3


def failure_messages_peek(aws, url) -> bool:
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"]) > 0


def test_starting_position_latest_skips_what_was_there_before(aws, stream):
    put(aws, 5)
    function = ScriptedFunction()
    mapping = EventSourceMapping(
        kinesis_settings(stream, starting_position="LATEST"), function, aws, poll_interval=0.05
    ).start()
    try:
        # Put only once the mapping has its LATEST iterator and has read to the tip: a fixed sleep
        # lost that race on a loaded machine, and the new records were skipped too.
        deadline = time.monotonic() + 10
        while not mapping.idle() and time.monotonic() < deadline:
            time.sleep(0.02)
        put(aws, 3, start=100)
        deadline = time.monotonic() + 10
        while len(function.delivered()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mapping.stop()
    assert function.delivered() == [100, 101, 102]


def test_starting_position_trim_horizon_reads_from_the_oldest_record(aws, stream):
    put(aws, 5)
    function = ScriptedFunction()
    run_mapping(
        aws,
        kinesis_settings(stream, starting_position="TRIM_HORIZON"),
        function,
        until=lambda: len(function.delivered()) == 5,
    )
    assert function.delivered() == list(range(5))


def test_batching_window_gathers_records_before_invoking(aws, stream):
    # The window is wide against the three puts so that a slow machine (a put to moto can
    # take a few hundred ms under load) still lands all of them inside it.
    window = 3.0
    function = ScriptedFunction()
    mapping = EventSourceMapping(
        kinesis_settings(stream, batching_window=window), function, aws, poll_interval=0.05
    ).start()
    try:
        started = time.monotonic()
        for start in range(0, 9, 3):
            put(aws, 3, start=start)
            time.sleep(0.15)
        putting_took = time.monotonic() - started
        deadline = time.monotonic() + window + 10
        while len(function.delivered()) < 9 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mapping.stop()
    assert putting_took < window, f"the puts took {putting_took:.1f} s, longer than the window"
    assert function.delivered() == list(range(9))
    assert len(function.batches) == 1


def test_parallelization_runs_lanes_concurrently_and_keeps_order_per_partition_key(aws, stream):
    put(aws, 300, key=lambda n: f"SYM{n % 10}")
    function = ScriptedFunction(delay=0.05)
    settings = kinesis_settings(stream, batch_size=10, parallelization=3)
    run_mapping(aws, settings, function, until=lambda: len(function.delivered()) == 300)
    by_key = defaultdict(list)
    for batch in function.batches:
        for record in batch:
            by_key[record["kinesis"]["partitionKey"]].append(payload(record)["n"])
    assert all(numbers == sorted(numbers) for numbers in by_key.values())
    assert sorted(function.delivered()) == list(range(300))
    assert function.most_running > 1


def test_filter_criteria_from_the_template_pass_only_quote_changes(aws):
    template = Template.load()
    create_resources(template, aws)
    dynamodb = aws.client("dynamodb")
    table = template.physical["MarketTable"].ref
    for sk in ("QUOTE", "BAR#2026-11-20T14:30Z", "RULE#AAPL-above-1", "QUOTE"):
        dynamodb.put_item(
            TableName=table, Item={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": sk}, "v": {"S": str(time.time())}}
        )
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": "QUOTE"}})
    event = template.function_events("AlertsFunction")["QuoteChanges"]
    settings = MappingSettings.from_template(template, "AlertsFunction", "QuoteChanges", event)
    function = ScriptedFunction()
    mapping = run_mapping(aws, settings, function, until=lambda: len([r for b in function.batches for r in b]) == 2)
    time.sleep(0.3)
    records = [record for batch in function.batches for record in batch]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in records] == [
        ("INSERT", "QUOTE"),
        ("MODIFY", "QUOTE"),
    ]
    assert records[0]["eventSource"] == "aws:dynamodb"
    assert mapping.stats.records_filtered_out == 3  # the bar, the rule and the REMOVE


def test_the_template_settings_are_what_the_mapping_uses():
    template = Template.load(parameter_overrides={"ProcessorBatchSize": "250", "ProcessorParallelizationFactor": "4"})
    template.physical["TickStream"] = type(
        "P", (), {"ref": "s", "attributes": {"Arn": "arn:aws:kinesis:us-east-1:1:stream/s"}}
    )()
    template.physical["ProcessorFailureQueue"] = type(
        "P", (), {"ref": "q", "attributes": {"Arn": "arn:aws:sqs:us-east-1:1:q"}}
    )()
    event = template.function_events("ProcessorFunction")["Ticks"]
    settings = MappingSettings.from_template(template, "ProcessorFunction", "Ticks", event)
    assert (settings.batch_size, settings.parallelization, settings.batching_window) == (250, 4, 1.0)
    assert (settings.bisect_on_error, settings.report_item_failures, settings.maximum_retries) == (True, True, 10)
    assert (settings.maximum_record_age, settings.on_failure_arn, settings.starting_position) == (
        21600,
        "arn:aws:sqs:us-east-1:1:q",
        "TRIM_HORIZON",
    )
