"""Event source mappings for Kinesis and DynamoDB Streams, which moto does not run.

For every Kinesis or DynamoDB event of a function in template.yaml, this polls the stream's shards
and invokes the function with Lambda-shaped events, honouring the mapping's settings:

* StartingPosition (TRIM_HORIZON, LATEST, AT_TIMESTAMP), BatchSize, MaximumBatchingWindowInSeconds;
* FilterCriteria: records that match no filter are dropped before batching;
* ParallelizationFactor: each shard's records are split by partition key over that many lanes, which
  run concurrently; records of one key stay in one lane, in order;
* FunctionResponseTypes ReportBatchItemFailures: a partial batch response checkpoints just before
  the lowest reported sequence number, and the batch is retried from there;
* function errors (an exception, a timeout): with BisectBatchOnFunctionError the batch is split in
  two and each half retried (splitting does not use up retries), else retried whole;
* MaximumRetryAttempts and MaximumRecordAgeInSeconds: when either is exceeded, the batch's
  metadata goes to the OnFailure destination (the same message Lambda sends) and it is skipped.

Polling follows AWS's cadence by default: about once a second per Kinesis shard and four times a
second per DynamoDB stream shard while idle, and without pause while records keep coming.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.filters import matches_any
from tickwatch.local import events
from tickwatch.local.functions import Invocation, LocalFunction
from tickwatch.template import Template

KINESIS_POLL_INTERVAL = 1.0
DYNAMODB_POLL_INTERVAL = 0.25
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_READ_ATTEMPTS = 10


@dataclass
class MappingSettings:
    """One function event of type Kinesis or DynamoDB, with the template's settings resolved."""

    name: str
    source: str  # "Kinesis" or "DynamoDB"
    stream_arn: str
    batch_size: int = 100
    batching_window: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: datetime | None = None
    parallelization: int = 1
    bisect_on_error: bool = False
    maximum_retries: int = -1
    maximum_record_age: float = -1
    filters: list[str] = field(default_factory=list)
    report_item_failures: bool = False
    on_failure_arn: str | None = None
    poll_interval: float = KINESIS_POLL_INTERVAL

    @classmethod
    def from_template(
        cls, template: Template, function: str, event_name: str, event: dict[str, Any]
    ) -> MappingSettings:
        properties = event["Properties"]
        source = event["Type"]
        timestamp = properties.get("StartingPositionTimestamp")
        return cls(
            name=f"{function}.{event_name}",
            source=source,
            stream_arn=properties["Stream"],
            batch_size=int(properties.get("BatchSize", 100)),
            batching_window=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            starting_position=properties.get("StartingPosition", "TRIM_HORIZON"),
            starting_timestamp=datetime.fromtimestamp(float(timestamp), UTC) if timestamp is not None else None,
            parallelization=int(properties.get("ParallelizationFactor", 1)),
            bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            maximum_retries=int(properties.get("MaximumRetryAttempts", -1)),
            maximum_record_age=float(properties.get("MaximumRecordAgeInSeconds", -1)),
            filters=[f["Pattern"] for f in properties.get("FilterCriteria", {}).get("Filters", [])],
            report_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            on_failure_arn=properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
            poll_interval=KINESIS_POLL_INTERVAL if source == "Kinesis" else DYNAMODB_POLL_INTERVAL,
        )


def stream_mappings(template: Template) -> list[tuple[str, MappingSettings]]:
    """Every (function logical id, mapping) of the template's stream events."""
    mappings = []
    for function in template.logical_ids("AWS::Serverless::Function"):
        for event_name, event in template.function_events(function).items():
            if event["Type"] in ("Kinesis", "DynamoDB"):
                mappings.append((function, MappingSettings.from_template(template, function, event_name, event)))
    return mappings


@dataclass
class MappingStats:
    """What a mapping has done, for status lines, summaries and tests."""

    records_read: int = 0
    records_filtered_out: int = 0
    batches: int = 0
    records_succeeded: int = 0
    retries: int = 0
    bisections: int = 0
    sent_to_on_failure: int = 0
    last_arrival: datetime | None = None  # arrival of the newest record a batch has finished with
    # Lambda's IteratorAge metric: the age of a batch's newest record when the batch was done, and when.
    last_batch_age: float = 0.0
    last_batch_done: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def iterator_age(self) -> float:
        """Seconds between now and the arrival of the last record processed (the status line's lag)."""
        return 0.0 if self.last_arrival is None else max(0.0, (datetime.now(UTC) - self.last_arrival).total_seconds())

    def iterator_age_metric(self, within: float = 60.0) -> float | None:
        """IteratorAge as CloudWatch has it: the last batch's, or None when no batch was done in the
        last `within` seconds (an idle stream sends no data point, and its alarm stays OK)."""
        if self.last_batch_done is None or (datetime.now(UTC) - self.last_batch_done).total_seconds() > within:
            return None
        return self.last_batch_age


class EventSourceMapping:
    """Polls one stream for one function; `start()` runs it in background threads."""

    def __init__(
        self, settings: MappingSettings, function: LocalFunction, session: Any, *, poll_interval: float | None = None
    ) -> None:
        self.settings = settings
        self.function = function
        self.session = session
        self.poll_interval = settings.poll_interval if poll_interval is None else poll_interval
        self.stats = MappingStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lanes: list[_Lane] = []
        self._at_tip: dict[str, float | None] = {}  # per shard: when its last empty read began
        self._on_failure_url: str | None = None
        self.errors: list[str] = []
        self.read_errors: list[str] = []  # failed reads that a later attempt got past
        # A short, growing pause before each retry, so a failing dependency is not hammered.
        self.retry_delay = 0.05
        self.retry_delay_cap = 1.0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EventSourceMapping:
        if self.settings.on_failure_arn:
            self._on_failure_url = self._queue_url(self.settings.on_failure_arn)
        for shard_id in self._shards():
            lanes = [_Lane(self, shard_id, n) for n in range(self.settings.parallelization)]
            self._lanes += lanes
            for lane in lanes:
                self._spawn(lane.run, f"{self.settings.name}-{shard_id}-lane{lane.number}")
            self._spawn(lambda s=shard_id, ls=lanes: self._poll_shard(s, ls), f"{self.settings.name}-{shard_id}-poller")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def idle(self, since: float = 0.0) -> bool:
        """True when a read of every shard that began after `since` (monotonic seconds) found
        nothing new, and every batch is handled."""
        if self.errors:
            raise RuntimeError(f"{self.settings.name} stopped: {self.errors[0]}")
        with self.stats.lock:
            at_tip = bool(self._at_tip) and all(read is not None and read >= since for read in self._at_tip.values())
        return at_tip and all(lane.idle() for lane in self._lanes)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._guard(target, name), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, target: Callable[[], None], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as error:  # a poller must not die silently
                self.errors.append(f"{name}: {type(error).__name__}: {error}")
                raise

        return run

    # -- reading --------------------------------------------------------------------------------

    def _shards(self) -> list[str]:
        if self.settings.source == "Kinesis":
            kinesis = self.session.client("kinesis")
            return [shard["ShardId"] for shard in kinesis.list_shards(StreamName=self._stream_name)["Shards"]]
        streams = self.session.client("dynamodbstreams")
        return [
            shard["ShardId"]
            for shard in streams.describe_stream(StreamArn=self.settings.stream_arn)["StreamDescription"]["Shards"]
        ]

    @property
    def _stream_name(self) -> str:
        return self.settings.stream_arn.split(":stream/", 1)[1]

    def _iterator(self, shard_id: str) -> str:
        position = self.settings.starting_position
        if self.settings.source == "Kinesis":
            # By name: moto does not resolve GetShardIterator's StreamARN.
            arguments: dict[str, Any] = {
                "StreamName": self._stream_name,
                "ShardId": shard_id,
                "ShardIteratorType": position,
            }
            if position == "AT_TIMESTAMP":
                arguments["Timestamp"] = self.settings.starting_timestamp
            return self.session.client("kinesis").get_shard_iterator(**arguments)["ShardIterator"]
        return self.session.client("dynamodbstreams").get_shard_iterator(
            StreamArn=self.settings.stream_arn, ShardId=shard_id, ShardIteratorType=position
        )["ShardIterator"]

    def _poll_shard(self, shard_id: str, lanes: list[_Lane]) -> None:
        with self.stats.lock:
            self._at_tip[shard_id] = None
        iterator: str | None = self._iterator(shard_id)
        is_kinesis = self.settings.source == "Kinesis"
        client = self.session.client("kinesis" if is_kinesis else "dynamodbstreams")
        failures = 0
        while iterator and not self._stop.is_set():
            read_began = time.monotonic()
            try:
                response = client.get_records(ShardIterator=iterator, Limit=10000 if is_kinesis else 1000)
            except (ClientError, BotoCoreError) as error:
                # Lambda's pollers ride out a failing read; so do these, after a growing pause.
                failures += 1
                self.read_errors.append(f"{type(error).__name__}: {error}")
                if failures >= _READ_ATTEMPTS:
                    raise
                self._stop.wait(min(5.0, 0.2 * 2**failures))
                continue
            failures = 0
            iterator = response.get("NextShardIterator")
            records = [
                events.kinesis_record_from_api(r, shard_id=shard_id, stream_arn=self.settings.stream_arn)
                if is_kinesis
                else events.dynamodb_record_from_api(r, stream_arn=self.settings.stream_arn)
                for r in response["Records"]
            ]
            with self.stats.lock:
                self.stats.records_read += len(records)
            if self.settings.filters:
                kept = [r for r in records if matches_any(self.settings.filters, _filterable(r))]
                with self.stats.lock:
                    self.stats.records_filtered_out += len(records) - len(kept)
                records = kept
            for record in records:
                lanes[_lane_of(events.partition_key_of(record), len(lanes))].offer(record)
            with self.stats.lock:
                self._at_tip[shard_id] = None if response["Records"] else read_began
            if not response["Records"]:
                self._stop.wait(self.poll_interval)

    # -- invoking -------------------------------------------------------------------------------

    def process(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        """Run one batch to completion: success, checkpoint-and-retry, bisect, or on-failure."""
        pending: deque[tuple[list[dict[str, Any]], int, int]] = deque([(batch, 0, 0)])  # records, retries, invokes
        while pending and not self._stop.is_set():
            records, retries, invokes = pending.popleft()
            records = self._drop_expired(shard_id, records, invokes)
            if not records:
                continue
            outcome = self.function.invoke({"Records": records})
            invokes += 1
            with self.stats.lock:
                self.stats.batches += 1
            failed_from = self._failed_from(records, outcome)
            if failed_from is None:
                self._done(records)
                continue
            done, remaining = records[:failed_from], records[failed_from:]
            self._done(done)
            if outcome.error and self.settings.bisect_on_error and len(remaining) > 1:
                middle = len(remaining) // 2
                pending.extendleft([(remaining[middle:], retries, invokes), (remaining[:middle], retries, invokes)])
                with self.stats.lock:
                    self.stats.bisections += 1
                continue
            if 0 <= self.settings.maximum_retries <= retries:
                self._send_on_failure(shard_id, remaining, "RetryAttemptsExhausted", invokes, outcome)
                continue
            with self.stats.lock:
                self.stats.retries += 1
            self._stop.wait(min(self.retry_delay_cap, self.retry_delay * 2**retries))
            pending.appendleft((remaining, retries + 1, invokes))

    def _failed_from(self, records: list[dict[str, Any]], outcome: Invocation) -> int | None:
        """Index of the first record to retry, or None when the whole batch succeeded."""
        if outcome.error:
            return 0
        if not self.settings.report_item_failures:
            return None
        response = outcome.response
        if response is None or response == {} or not isinstance(response, dict):
            return None if response in (None, {}) else 0
        failures = response.get("batchItemFailures")
        if not failures:
            return None
        sequence_numbers = [events.sequence_number_of(r) for r in records]
        positions = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in sequence_numbers:
                return 0  # Lambda treats a malformed or unknown identifier as a failure of the whole batch
            positions.append(sequence_numbers.index(identifier))
        return min(positions)

    def _drop_expired(self, shard_id: str, records: list[dict[str, Any]], invokes: int) -> list[dict[str, Any]]:
        if self.settings.maximum_record_age < 0:
            return records
        now = datetime.now(UTC)
        fresh, expired = [], []
        for record in records:
            too_old = (now - events.arrival_of(record)).total_seconds() > self.settings.maximum_record_age
            (expired if too_old else fresh).append(record)
        if expired:
            self._send_on_failure(shard_id, expired, "RecordAgeExceeded", invokes, None)
        return fresh

    def _done(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with self.stats.lock:
            self.stats.records_succeeded += len(records)
            self._advance(records)

    def _advance(self, records: list[dict[str, Any]]) -> None:
        newest = max(events.arrival_of(r) for r in records)
        if self.stats.last_arrival is None or newest > self.stats.last_arrival:
            self.stats.last_arrival = newest
        now = datetime.now(UTC)
        self.stats.last_batch_age, self.stats.last_batch_done = max(0.0, (now - newest).total_seconds()), now

    def _send_on_failure(
        self, shard_id: str, records: list[dict[str, Any]], condition: str, invokes: int, outcome: Invocation | None
    ) -> None:
        with self.stats.lock:
            self.stats.sent_to_on_failure += len(records)
            self._advance(records)
        if self._on_failure_url is None:
            return  # no destination: Lambda skips the records
        message = events.on_failure_message(
            records=records,
            function_arn=self.function.arn,
            request_id=outcome.request_id if outcome else "",
            condition=condition,
            invoke_count=invokes,
            function_error=outcome.error if outcome and outcome.error else None,
            shard_id=shard_id,
        )
        self.session.client("sqs").send_message(QueueUrl=self._on_failure_url, MessageBody=json.dumps(message))

    def _queue_url(self, arn: str) -> str:
        name, account = arn.split(":")[5], arn.split(":")[4]
        return self.session.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


class _Lane:
    """One of ParallelizationFactor concurrent batchers of a shard; keeps its records in order."""

    def __init__(self, mapping: EventSourceMapping, shard_id: str, number: int) -> None:
        self.mapping = mapping
        self.shard_id = shard_id
        self.number = number
        self._records: deque[dict[str, Any]] = deque()
        self._first_at: float | None = None
        self._busy = False
        self._condition = threading.Condition()

    def offer(self, record: dict[str, Any]) -> None:
        with self._condition:
            if not self._records:
                self._first_at = time.monotonic()
            self._records.append(record)
            self._condition.notify()

    def idle(self) -> bool:
        with self._condition:
            return not self._records and not self._busy

    def run(self) -> None:
        settings = self.mapping.settings
        stop = self.mapping._stop
        while not stop.is_set():
            with self._condition:
                while not stop.is_set():
                    if self._records and (
                        len(self._records) >= settings.batch_size
                        or time.monotonic() - (self._first_at or 0) >= settings.batching_window
                    ):
                        break
                    wait = (
                        0.5
                        if not self._records
                        else max(0.0, settings.batching_window - (time.monotonic() - (self._first_at or 0)))
                    )
                    self._condition.wait(min(wait, 0.5))
                if stop.is_set():
                    return
                batch = self._take(settings.batch_size)
                self._busy = True
            try:
                self.mapping.process(self.shard_id, batch)
            finally:
                with self._condition:
                    self._busy = False

    def _take(self, limit: int) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        while self._records and len(batch) < limit:
            record_size = len(json.dumps(self._records[0]))
            if batch and size + record_size > MAX_PAYLOAD_BYTES:
                break
            batch.append(self._records.popleft())
            size += record_size
        self._first_at = time.monotonic() if self._records else None
        return batch


def _lane_of(partition_key: str, lanes: int) -> int:
    if lanes == 1:
        return 0
    return int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest()[:4], "big") % lanes


def _filterable(record: dict[str, Any]) -> dict[str, Any]:
    """Kinesis filters see `data` decoded as JSON when it is JSON, as Lambda does."""
    if "kinesis" not in record:
        return record
    import base64

    try:
        data = json.loads(base64.b64decode(record["kinesis"]["data"]))
    except (ValueError, UnicodeDecodeError):
        return record
    return {**record, "data": data}
