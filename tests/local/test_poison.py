"""Poison pills: records that make the processor fail whenever they are in a batch. Bisection
isolates each, the bounded retries give up on it alone, its metadata lands in the on-failure
queue, and the rest of the shard flows on. Then `dlq replay`: while the fault lasts the batches
fail again and stay queued with the reason; once it is fixed they are replayed into the state of
a run without the fault."""

from __future__ import annotations

import json
import os

import pytest

from tests.support import kinesis_records
from tickwatch.cli import main
from tickwatch.dlq import failed_batches, replay_queue
from tickwatch.fetch.simulator import MarketSimulator
from tickwatch.fetch.writer import KinesisWriter, Record, Spool
from tickwatch.local import events
from tickwatch.local.faults import FaultPlan
from tickwatch.local.functions import LocalInvoker
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.state import LocalState
from tickwatch.local.verify import read_stream, verify


def test_poison_pills_end_in_the_failure_queue_and_never_block_the_shard(tmp_path):
    plan = FaultPlan.parse("poison=0.002", seed=5)
    stack = LocalStack(
        LocalStackOptions(
            outbox=tmp_path / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1, faults=plan
        )
    ).start()
    try:
        for mapping in stack.mappings:
            mapping.retry_delay = 0.0
        names = stack.names()
        writer = KinesisWriter(
            stack.session.client("kinesis"), names["TickStreamName"], Spool(tmp_path / "spool.jsonl")
        )
        for tick in MarketSimulator(seed=3).ticks(1500):
            writer.add(Record(json.dumps(tick).encode(), tick["symbol"]))
        writer.close()
        assert stack.wait_until_caught_up(timeout=120)

        records = kinesis_records(stack.session.client("kinesis"), names["TickStreamName"])
        arn = stack.template.physical["TickStream"].attributes["Arn"]
        poison = {
            r["SequenceNumber"]
            for r in records
            if stack.faults.is_poison(
                events.kinesis_record_from_api(r, shard_id="shardId-000000000000", stream_arn=arn)
            )
        }
        assert 1 <= len(poison) <= 8
        batches = failed_batches(stack.session.client("sqs"), names["ProcessorFailureQueueUrl"], "processor")
        assert {b.info["startSequenceNumber"] for b in batches} == poison
        assert all(
            b.info["startSequenceNumber"] == b.info["endSequenceNumber"] and b.info["batchSize"] == 1 for b in batches
        )
        for batch in batches:
            # The first try and 10 retries of the isolated record, after the bisections that found it.
            assert batch.body["requestContext"]["condition"] == "RetryAttemptsExhausted"
            assert batch.body["requestContext"]["approximateInvokeCount"] >= 11
            assert batch.body["responseContext"]["functionError"] == "Unhandled"
        raw = {line["sequence_number"] for line in stack.raw_lines("raw/")}
        assert raw == {r["SequenceNumber"] for r in records} - poison  # everything else went through
        # Listing leaves the messages where they are.
        again = failed_batches(stack.session.client("sqs"), names["ProcessorFailureQueueUrl"], "processor")
        assert len(again) == len(batches)

        # Replayed while the bug is still there: each fails again and stays, saying why.
        sqs, queue = stack.session.client("sqs"), names["ProcessorFailureQueueUrl"]
        invoker = LocalInvoker({"processor": stack.functions["ProcessorFunction"]})
        clients = {"kinesis": stack.session.client("kinesis"), "streams": stack.session.client("dynamodbstreams")}
        outcomes = replay_queue(sqs, queue, "processor", invoke=invoker, **clients)
        assert [o.status for o in outcomes] == ["failed again"] * len(poison)
        still = failed_batches(sqs, queue, "processor")
        assert {b.info["startSequenceNumber"] for b in still} == poison
        assert all("replayed 1x" in b.reason and "poison pill" in b.reason for b in still)

        # Fixed: `tickwatch dlq replay` (here against the running local stack) empties the queue.
        stack.faults.disable()
        LocalState(stack.endpoint_url, stack.template.region, os.getpid(), names, str(tmp_path)).write()
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("AWS_ENDPOINT_URL")  # as in a shell beside `tickwatch local up`
            assert main(["dlq", "replay", "--dry-run"]) == 0
            assert len(failed_batches(sqs, queue, "processor")) == len(poison)
            assert main(["dlq", "replay"]) == 0
        assert failed_batches(sqs, queue, "processor") == []

        # The poison ticks went in late, behind later ticks of their symbols: still the same
        # raw data, bars and quotes as a run without the fault.
        result = verify(stack, read_stream(stack.session.client("kinesis"), names["TickStreamName"]), [], set(),
                        replayed_late=poison)  # fmt: skip
        assert result.problems == []
    finally:
        stack.stop()
