"""`tickwatch dlq replay` against moto: reading ranges back from the streams, what happens to each
message (deleted, put back from the first failed record with the reason, kept when records are
past retention), and invoking deployed functions through the Lambda API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.support import LambdaContext, kinesis_records, scan_table, tick
from tickwatch.dlq import Invocation, LambdaInvoker, failed_batches, replay_queue, template_filters
from tickwatch.local import events
from tickwatch.template import Template
from tickwatch_core.store.repair import REPLAY_FLAG


@pytest.fixture
def pipeline(aws, stack: Template, processor_app, alerts_app):
    names = {logical_id: resource.ref for logical_id, resource in stack.physical.items()}
    kinesis = aws.client("kinesis")
    documents = [tick(symbol, 100 + n, datetime(2026, 11, 20, 14, 30, n, tzinfo=UTC)) for n, symbol in
                 enumerate(["AAPL", "MSFT", "AAPL", "TSLA", "AAPL", "MSFT"])]  # fmt: skip
    kinesis.put_records(
        StreamName=names["TickStream"],
        Records=[{"Data": json.dumps(d).encode(), "PartitionKey": d["symbol"]} for d in documents],
    )
    return {
        "aws": aws,
        "names": names,
        "stream_arn": stack.physical["TickStream"].attributes["Arn"],
        "records": kinesis_records(kinesis, names["TickStream"]),
        "apps": {"processor": processor_app, "alerts": alerts_app},
    }


class HandlerInvoker:
    """Runs the handler modules in-process, recording the events; `fail` overrides the outcome."""

    def __init__(self, apps, fail=None):
        self.apps, self.fail, self.events = apps, fail, []

    def __call__(self, function, event):
        self.events.append(event)
        if self.fail is not None:
            return self.fail(event)
        return Invocation(response=self.apps[function].lambda_handler(event, LambdaContext()))


def send_failure(pipeline, records, *, queue="ProcessorFailureQueue", shard_id="shardId-000000000000"):
    lambda_records = [
        events.kinesis_record_from_api(r, shard_id=shard_id, stream_arn=pipeline["stream_arn"]) for r in records
    ]
    return send_lambda_failure(pipeline, lambda_records, queue=queue, shard_id=shard_id)


def send_lambda_failure(pipeline, lambda_records, *, queue, shard_id):
    """What Lambda sends to a failure queue when it gives up on these records."""
    message = events.on_failure_message(
        records=lambda_records,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:tickwatch",
        request_id="r-1",
        condition="RetryAttemptsExhausted",
        invoke_count=11,
        function_error="Unhandled",
        shard_id=shard_id,
    )
    pipeline["aws"].client("sqs").send_message(QueueUrl=pipeline["names"][queue], MessageBody=json.dumps(message))
    return message


def replay(pipeline, invoker, function="processor", queue="ProcessorFailureQueue", **options):
    aws = pipeline["aws"]
    return replay_queue(
        aws.client("sqs"),
        pipeline["names"][queue],
        function,
        kinesis=aws.client("kinesis"),
        streams=aws.client("dynamodbstreams"),
        invoke=invoker,
        read_pause=0,
        **options,
    )


def queued(pipeline, queue="ProcessorFailureQueue", function="processor"):
    return failed_batches(pipeline["aws"].client("sqs"), pipeline["names"][queue], function)


def test_a_batch_that_succeeds_is_applied_and_deleted(pipeline):
    send_failure(pipeline, pipeline["records"][1:5])
    invoker = HandlerInvoker(pipeline["apps"])
    (outcome,) = replay(pipeline, invoker)
    assert (outcome.status, outcome.records) == ("replayed", 4)
    (event,) = invoker.events
    assert event[REPLAY_FLAG] is True
    assert [r["kinesis"]["sequenceNumber"] for r in event["Records"]] == [
        r["SequenceNumber"] for r in pipeline["records"][1:5]
    ]
    assert queued(pipeline) == []
    table = scan_table(pipeline["aws"], pipeline["names"]["MarketTable"])
    assert {pk for pk, sk in table if sk == "QUOTE"} == {"SYMBOL#AAPL", "SYMBOL#MSFT", "SYMBOL#TSLA"}


def test_dry_run_reads_and_reports_but_invokes_and_deletes_nothing(pipeline):
    send_failure(pipeline, pipeline["records"][:3])
    invoker = HandlerInvoker(pipeline["apps"])
    (outcome,) = replay(pipeline, invoker, dry_run=True)
    assert (outcome.status, outcome.records) == ("would replay", 3)
    assert invoker.events == []
    assert len(queued(pipeline)) == 1


def test_records_that_fail_again_go_back_from_the_first_failed_record_with_the_reason(pipeline):
    records = pipeline["records"]
    send_failure(pipeline, records[:5])
    failed = records[2]["SequenceNumber"]
    invoker = HandlerInvoker(
        pipeline["apps"], fail=lambda event: Invocation(response={"batchItemFailures": [{"itemIdentifier": failed}]})
    )
    (outcome,) = replay(pipeline, invoker)
    assert (outcome.status, outcome.records) == ("failed again", 3)
    (batch,) = queued(pipeline)
    assert batch.info["startSequenceNumber"] == failed
    assert batch.info["endSequenceNumber"] == records[4]["SequenceNumber"]
    assert batch.info["batchSize"] == 3
    assert "replayed 1x" in batch.reason
    assert f"records from {failed}" in batch.reason

    # A crash the next time: the whole rest stays, the count goes up.
    invoker.fail = lambda event: Invocation(error="Unhandled (RuntimeError: still broken)")
    (outcome,) = replay(pipeline, invoker)
    assert outcome.status == "failed again"
    (batch,) = queued(pipeline)
    assert batch.info["startSequenceNumber"] == failed
    assert "replayed 2x" in batch.reason
    assert "still broken" in batch.reason


def test_records_past_retention_are_reported_and_the_message_stays(pipeline):
    records = pipeline["records"]
    message = send_failure(pipeline, records[:3])
    # The stream no longer has the batch's first record (trimmed): moto cannot trim, so the
    # message names a start before the stream's first record instead.
    message["KinesisBatchInfo"]["startSequenceNumber"] = str(int(records[0]["SequenceNumber"]) - 1)
    sqs = pipeline["aws"].client("sqs")
    url = pipeline["names"]["ProcessorFailureQueue"]
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
    send_failure(pipeline, records[:2], shard_id="shardId-000000000009")  # a shard that is gone

    invoker = HandlerInvoker(pipeline["apps"])
    outcomes = sorted(replay(pipeline, invoker), key=lambda o: o.batch.info["shardId"])
    assert [(o.status, o.records) for o in outcomes] == [("past retention", 3), ("past retention", 0)]
    assert "no longer in the stream" in outcomes[0].detail
    assert len(invoker.events) == 1  # what was left of the first batch was replayed
    assert {b.info["shardId"] for b in queued(pipeline)} == {"shardId-000000000000", "shardId-000000000009"}
    assert all("past the stream's retention" in b.reason for b in queued(pipeline))


def test_messages_that_are_not_from_lambda_are_left_alone_and_block_nothing(pipeline):
    sqs = pipeline["aws"].client("sqs")
    for n in range(12):  # more than one receive returns
        sqs.send_message(QueueUrl=pipeline["names"]["ProcessorFailureQueue"], MessageBody=f"hello {n}")
    send_failure(pipeline, pipeline["records"][:2])
    outcomes = replay(pipeline, HandlerInvoker(pipeline["apps"]))
    assert sorted(o.status for o in outcomes) == ["not replayable"] * 12 + ["replayed"]
    assert len(queued(pipeline)) == 12


def test_an_alerts_batch_is_read_back_from_the_table_stream(pipeline):
    aws, names = pipeline["aws"], pipeline["names"]
    # The processor's quote writes are what the alerts function reads from the table's stream.
    apps = pipeline["apps"]
    apps["processor"].lambda_handler(
        {"Records": [events.kinesis_record_from_api(r, shard_id="shardId-000000000000",
                                                    stream_arn=pipeline["stream_arn"]) for r in pipeline["records"]]},
        LambdaContext(),
    )  # fmt: skip
    streams = aws.client("dynamodbstreams")
    stream_arn = aws.client("dynamodb").describe_table(TableName=names["MarketTable"])["Table"]["LatestStreamArn"]
    shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    stream_records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    lambda_records = [events.dynamodb_record_from_api(r, stream_arn=stream_arn) for r in stream_records]
    # What Lambda delivered (and names in the message) were the quote records its filter let
    # through; the bars' records lie between them in the stream.
    quote_records = [r for r in lambda_records if r["dynamodb"]["Keys"]["sk"]["S"] == "QUOTE"]
    assert 0 < len(quote_records) < len(lambda_records)
    send_lambda_failure(pipeline, quote_records, queue="AlertsFailureQueue", shard_id=shard_id)

    invoker = HandlerInvoker(apps)
    filters = template_filters(Template.load().body, "AlertsFunction")
    (outcome,) = replay(pipeline, invoker, function="alerts", queue="AlertsFailureQueue", filters=filters)
    assert (outcome.status, outcome.records) == ("replayed", len(quote_records))
    assert [r["dynamodb"]["SequenceNumber"] for r in invoker.events[0]["Records"]] == [
        r["dynamodb"]["SequenceNumber"] for r in quote_records
    ]
    assert queued(pipeline, "AlertsFailureQueue", "alerts") == []


def _payload(document) -> StreamingBody:
    body = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(body), len(body))


def test_on_aws_the_function_is_invoked_synchronously_and_its_error_reported():
    client = boto3.client("lambda", region_name="us-east-1")
    invoker = LambdaInvoker(client, {"processor": "tickwatch-dev-Processor"})
    event = {"Records": [], REPLAY_FLAG: True}
    with Stubber(client) as stub:
        expected = {
            "FunctionName": "tickwatch-dev-Processor",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(event).encode(),
        }
        stub.add_response("invoke", {"StatusCode": 200, "Payload": _payload({"batchItemFailures": []})}, expected)
        stub.add_response(
            "invoke",
            {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": _payload({"errorType": "KeyError", "errorMessage": "'price'"}),
            },
            expected,
        )
        assert invoker("processor", event) == Invocation(response={"batchItemFailures": []})
        assert invoker("processor", event) == Invocation(error="Unhandled (KeyError: 'price')")
