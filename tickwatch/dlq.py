"""What is in the functions' on-failure queues (`tickwatch dlq list`).

Each message is the metadata Lambda sends when it gives up on a batch of stream records: which
function, shard and sequence range, why (retries exhausted or records too old, and the function
error), and when. Listing does not consume the messages: they are made visible again at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from botocore.exceptions import ClientError

from tickwatch.filters import matches_any
from tickwatch.local import events
from tickwatch_core.store.repair import REPLAY_FLAG

# Output key of each function's failure queue in template.yaml.
FAILURE_QUEUES = {
    "processor": "ProcessorFailureQueueUrl",
    "alerts": "AlertsFailureQueueUrl",
    "delivery": "DeliveryFailureQueueUrl",
}
# Logical id and function-name output of each function in template.yaml.
FUNCTIONS = {
    "processor": ("ProcessorFunction", "ProcessorFunctionName"),
    "alerts": ("AlertsFunction", "AlertsFunctionName"),
    "delivery": ("DeliveryFunction", "DeliveryFunctionName"),
}
# What `dlq replay` adds to a message it puts back: attempts, when, and why it failed again.
REPLAY_NOTE = "tickwatchReplay"
_PEEK_SECONDS = 30


@dataclass(frozen=True, slots=True)
class FailedBatch:
    function: str
    message_id: str
    body: dict[str, Any]

    @property
    def source(self) -> str:
        return "Kinesis" if "KinesisBatchInfo" in self.body else "DynamoDB"

    @property
    def info(self) -> dict[str, Any]:
        return self.body.get("KinesisBatchInfo") or self.body.get("DDBStreamBatchInfo") or {}

    @property
    def reason(self) -> str:
        condition = self.body.get("requestContext", {}).get("condition", "unknown")
        error = self.body.get("responseContext", {}).get("functionError")
        invokes = self.body.get("requestContext", {}).get("approximateInvokeCount")
        reason = condition + (f" ({error}" + (f", {invokes} invocations)" if invokes else ")") if error else "")
        replay = self.body.get(REPLAY_NOTE)
        if isinstance(replay, dict):
            reason += f"; replayed {replay.get('attempts', '?')}x, last: {replay.get('reason', '?')}"
        return reason

    def age(self, now: datetime | None = None) -> float:
        stamp = self.body.get("timestamp")
        if not stamp:
            return 0.0
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return max(0.0, ((now or datetime.now(UTC)) - sent).total_seconds())


def failed_batches(sqs: Any, queue_url: str, function: str) -> list[FailedBatch]:
    """Every message in one failure queue, left in the queue."""
    found: dict[str, FailedBatch] = {}
    receipts: list[str] = []
    try:
        while True:
            messages = sqs.receive_message(
                # A short poll (0 s) asks only some of SQS's servers and can miss messages.
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_PEEK_SECONDS,
                WaitTimeSeconds=1,
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in found]
            receipts += [m["ReceiptHandle"] for m in messages]
            if not fresh:
                break
            for message in fresh:
                try:
                    body = json.loads(message["Body"])
                except json.JSONDecodeError:
                    body = {"requestContext": {"condition": "not a Lambda on-failure message"}, "raw": message["Body"]}
                found[message["MessageId"]] = FailedBatch(function, message["MessageId"], body)
    finally:
        for receipt in receipts:  # back to visible: listing consumes nothing
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return sorted(found.values(), key=lambda batch: batch.body.get("timestamp", ""))


def describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# --- replay -------------------------------------------------------------------------------------

# Lambda's synchronous invoke takes at most 6 MB; events are cut below that.
_EVENT_BYTES_LIMIT = 5_000_000
_READ_LIMIT = {"Kinesis": 10_000, "DynamoDB": 1_000}
_EMPTY_READS = 10  # empty answers in a row (0.2 s apart) before a stream counts as read to its tip
_READ_PAUSE_SECONDS = 0.2  # Kinesis allows 5 reads a second per shard, shared with Lambda's own
_REPLAY_VISIBILITY_SECONDS = 3600  # messages stay hidden from other readers while a run lasts


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a replayed event returned: the handler's response, or its error."""

    response: Any = None
    error: str | None = None


class Invoker(Protocol):
    """Runs a function's handler on an event: `LambdaInvoker` on AWS, `LocalInvoker` locally."""

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation: ...


class LambdaInvoker:
    """Invokes the deployed functions (`lambda:InvokeFunction`), synchronously."""

    def __init__(self, lambda_client: Any, function_names: dict[str, str]) -> None:
        self.client = lambda_client
        self.function_names = function_names

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation:
        try:
            response = self.client.invoke(
                FunctionName=self.function_names[function],
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode("utf-8"),
            )
        except ClientError as error:  # throttled, too large, not allowed: this batch fails, the run goes on
            details = error.response.get("Error", {})
            return Invocation(error=f"Invoke failed ({details.get('Code', 'Error')}: {details.get('Message', '')})")
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            details = payload if isinstance(payload, dict) else {}
            message = f"{details.get('errorType', 'Error')}: {details.get('errorMessage', payload)}"
            return Invocation(error=f"{response['FunctionError']} ({message})")
        return Invocation(response=payload)


def template_filters(template_body: dict[str, Any], logical_id: str) -> list[str]:
    """The FilterCriteria patterns of a function's stream events, as written in template.yaml."""
    events_of = template_body["Resources"][logical_id].get("Properties", {}).get("Events", {})
    return [
        entry["Pattern"]
        for event in events_of.values()
        for entry in event.get("Properties", {}).get("FilterCriteria", {}).get("Filters", [])
    ]


@dataclass(frozen=True, slots=True)
class RangeRead:
    """The records of a failed batch still in the stream, and what is no longer there."""

    records: list[dict[str, Any]]
    missing: str | None = None  # why some or all records cannot be replayed


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    batch: FailedBatch
    status: str  # replayed | failed again | past retention | would replay | not replayable
    records: int
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status in ("replayed", "would replay")


def read_range(batch: FailedBatch, kinesis: Any, streams: Any, *, pause: float = _READ_PAUSE_SECONDS) -> RangeRead:
    """Re-read every record from a failure message's first to its last sequence number.

    The range can hold records the failed batch did not (other partition keys with a
    ParallelizationFactor, items a filter kept away), so it is read to its end, not counted; the
    read is complete when it starts at the first record and reaches the last.
    """
    info = batch.info
    try:
        start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        shard, stream_arn = info["shardId"], info["streamArn"]
    except (KeyError, TypeError, ValueError):
        return RangeRead([], "the message does not name a stream, shard and sequence range")
    try:
        if batch.source == "Kinesis":
            iterator = kinesis.get_shard_iterator(
                StreamARN=stream_arn,
                ShardId=shard,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                StartingSequenceNumber=info["startSequenceNumber"],
            )["ShardIterator"]
            fetch = partial(kinesis.get_records, Limit=_READ_LIMIT["Kinesis"], StreamARN=stream_arn)
        else:
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=shard,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=info["startSequenceNumber"],
            )["ShardIterator"]
            fetch = partial(streams.get_records, Limit=_READ_LIMIT["DynamoDB"])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("TrimmedDataAccessException", "ResourceNotFoundException", "InvalidArgumentException"):
            return RangeRead([], f"past the stream's retention ({code}: {error.response['Error'].get('Message', '')})")
        raise

    records: list[dict[str, Any]] = []
    empty_reads = 0
    reached_end = False
    while iterator and not reached_end and empty_reads < _EMPTY_READS:
        response = fetch(ShardIterator=iterator)
        page = response.get("Records", [])
        records += [r for r in page if start <= _sequence(r) <= end]
        reached_end = any(_sequence(r) >= end for r in page)
        at_tip = not page and response.get("MillisBehindLatest", 0) == 0
        empty_reads = empty_reads + 1 if at_tip else 0
        iterator = response.get("NextShardIterator")
        if not reached_end and iterator and pause:
            time.sleep(pause)

    if not records:
        return RangeRead([], "past the stream's retention: none of its records is left")
    if _sequence(records[0]) != start:
        return RangeRead(records, "past the stream's retention: its first records are no longer in the stream")
    if _sequence(records[-1]) != end:
        return RangeRead(records, f"the stream ends before the batch's last record ({end})")
    return RangeRead(records)


def _sequence(record: dict[str, Any]) -> int:
    return int(record["SequenceNumber"] if "SequenceNumber" in record else record["dynamodb"]["SequenceNumber"])


def replay_queue(
    sqs: Any,
    queue_url: str,
    function: str,
    *,
    kinesis: Any,
    streams: Any,
    invoke: Invoker,
    filters: list[str] | None = None,
    dry_run: bool = False,
    read_pause: float = _READ_PAUSE_SECONDS,
) -> list[ReplayOutcome]:
    """Replay every failed batch in one function's on-failure queue.

    A batch whose records all succeed is deleted. One whose records fail again goes back to the
    queue from its first failed record, with the reason; one with records past the stream's
    retention has what is left replayed and stays in the queue, saying what is gone. `filters`:
    the function's FilterCriteria, applied to re-read records as Lambda applied them.
    """
    if dry_run:
        outcomes = []
        for batch in failed_batches(sqs, queue_url, function):
            read = read_range(batch, kinesis, streams, pause=read_pause)
            status = "past retention" if read.missing else "would replay"
            outcomes.append(ReplayOutcome(batch, status, len(read.records), read.missing or ""))
        return outcomes

    outcomes = []
    handled: set[str] = set()  # messages replayed in this run, and the ones it queued again
    kept: list[str] = []  # receipts of messages to show again when the run ends
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_REPLAY_VISIBILITY_SECONDS,
                WaitTimeSeconds=1,
            ).get("Messages", [])
            if not messages:
                return outcomes
            for message in messages:
                if message["MessageId"] in handled:  # one this run queued again: for the next run
                    kept.append(message["ReceiptHandle"])
                    continue
                handled.add(message["MessageId"])
                outcome, requeued_id, keep = _replay_message(
                    sqs, queue_url, function, message, kinesis, streams, invoke, filters or [], read_pause
                )
                outcomes.append(outcome)
                if requeued_id:
                    handled.add(requeued_id)
                if keep:
                    kept.append(message["ReceiptHandle"])
    finally:
        for receipt in kept:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)


def _replay_message(
    sqs: Any,
    queue_url: str,
    function: str,
    message: dict[str, Any],
    kinesis: Any,
    streams: Any,
    invoke: Invoker,
    filters: list[str],
    read_pause: float,
) -> tuple[ReplayOutcome, str | None, bool]:
    """Replay one message: (outcome, id of the message put back in its place, keep this one)."""
    try:
        body = json.loads(message["Body"])
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not ({"KinesisBatchInfo", "DDBStreamBatchInfo"} & body.keys()):
        batch = FailedBatch(function, message["MessageId"], {"raw": message["Body"]})
        return (
            ReplayOutcome(batch, "not replayable", 0, "not a Lambda on-failure message; left in the queue"),
            None,
            True,
        )
    batch = FailedBatch(function, message["MessageId"], body)
    read = read_range(batch, kinesis, streams, pause=read_pause)
    # As Lambda delivered them: Lambda's record shape, through the function's filters.
    records = [_lambda_record(batch, r) for r in read.records]
    records = [r for r in records if not filters or matches_any(filters, r)]

    failed_at, reason = _invoke_in_order(records, function, invoke)
    if failed_at is not None:
        remaining = records[failed_at:]
        note = f"{reason}; {read.missing}" if read.missing else reason
        requeued = _requeue(sqs, queue_url, message, body, note, remaining)
        return ReplayOutcome(batch, "failed again", len(remaining), note), requeued, False
    if read.missing:
        requeued = _requeue(sqs, queue_url, message, body, f"{read.missing}; the rest was replayed", None)
        return ReplayOutcome(batch, "past retention", len(records), read.missing), requeued, False
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return ReplayOutcome(batch, "replayed", len(records)), None, False


def _invoke_in_order(lambda_records: list[dict[str, Any]], function: str, invoke: Invoker) -> tuple[int | None, str]:
    """Send Lambda records as events below the invoke size limit, in order; on the first failure,
    the index of the first record not applied and why."""
    sizes = [len(json.dumps(record)) for record in lambda_records]
    start = 0
    while start < len(lambda_records):
        end, size = start + 1, sizes[start]
        while end < len(lambda_records) and size + sizes[end] <= _EVENT_BYTES_LIMIT:
            size += sizes[end]
            end += 1
        outcome = invoke(function, {"Records": lambda_records[start:end], REPLAY_FLAG: True})
        if outcome.error:
            return start, f"the function failed: {outcome.error}"
        failures = (outcome.response or {}).get("batchItemFailures") or []
        if failures:
            failed = failures[0].get("itemIdentifier")
            for index in range(start, end):
                if events.sequence_number_of(lambda_records[index]) == failed:
                    return index, f"the function reported records from {failed} as failed again (see its log)"
            return start, f"the function reported {failed!r}, which is not in the batch"
        start = end
    return None, ""


def _lambda_record(batch: FailedBatch, record: dict[str, Any]) -> dict[str, Any]:
    stream_arn = batch.info["streamArn"]
    region = stream_arn.split(":")[3]
    if batch.source == "Kinesis":
        return events.kinesis_record_from_api(
            record, shard_id=batch.info["shardId"], stream_arn=stream_arn, region=region
        )
    return events.dynamodb_record_from_api(record, stream_arn=stream_arn, region=region)


def _requeue(
    sqs: Any,
    queue_url: str,
    message: dict[str, Any],
    body: dict[str, Any],
    reason: str,
    remaining: list[dict[str, Any]] | None,  # Lambda records
) -> str:
    """Put the message back (from its first record not replayed) with the reason, and delete the old one."""
    updated = json.loads(json.dumps(body))
    info = updated.get("KinesisBatchInfo") or updated["DDBStreamBatchInfo"]
    if remaining:
        info["startSequenceNumber"] = events.sequence_number_of(remaining[0])
        info["batchSize"] = len(remaining)
    previous = updated.get(REPLAY_NOTE, {})
    updated[REPLAY_NOTE] = {
        "attempts": int(previous.get("attempts", 0)) + 1,
        "lastAttempt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "reason": reason,
    }
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(updated))
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sent["MessageId"]
