"""Builders for Lambda-shaped events, a client that fails on demand, and an AWS call counter."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from tickwatch.local import events
from tickwatch.local.verify import stream_records
from tickwatch_core.apps.query_api.views import quote_view
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain import exact_json
from tickwatch_core.store import items

ACCOUNT = "123456789012"
REGION = "us-east-1"
SHARD = "shardId-000000000000"
# Real Kinesis sequence numbers are 56 digits; moto's are "1", "2", ... The tests use real-length ones.
FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136588898
BASE_TIME = datetime(2026, 11, 20, 14, 30, 0, tzinfo=UTC)


def sequence(n: int) -> str:
    """The n-th sequence number of the test shard (56 digits, increasing)."""
    return str(FIRST_SEQUENCE + n * 7919)


def tick(symbol: str, price: str | float, at: datetime, **extra: Any) -> dict[str, Any]:
    document = {"symbol": symbol, "price": price, "timestamp": at.isoformat().replace("+00:00", "Z")}
    document.update(extra)
    return document


def encode(document: dict[str, Any] | bytes) -> bytes:
    return document if isinstance(document, bytes) else json.dumps(document).encode()


@dataclass
class KinesisBatch:
    """Records as Lambda delivers them from one shard: base64 data, 56-digit sequence numbers."""

    stream_arn: str = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/tickwatch-local-tickstream"
    shard_id: str = SHARD
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        n: int,
        payload: dict[str, Any] | bytes,
        *,
        arrival: datetime | None = None,
        partition_key: str | None = None,
    ) -> KinesisBatch:
        data = encode(payload)
        if partition_key is None:
            partition_key = payload.get("symbol", "UNKNOWN") if isinstance(payload, dict) else "UNKNOWN"
            partition_key = partition_key if isinstance(partition_key, str) and partition_key else "UNKNOWN"
        arrival = arrival or BASE_TIME + timedelta(seconds=n / 100)
        self.records.append(
            events.kinesis_record(
                data=data,
                sequence_number=sequence(n),
                partition_key=partition_key,
                arrival=arrival,
                shard_id=self.shard_id,
                stream_arn=self.stream_arn,
                region=REGION,
            )
        )
        return self

    def event(self) -> dict[str, Any]:
        return {"Records": list(self.records)}

    def event_from(self, sequence_number: str) -> dict[str, Any]:
        """What Lambda redelivers after a partial batch response naming `sequence_number`."""
        start = next(
            i for i, record in enumerate(self.records) if record["kinesis"]["sequenceNumber"] == sequence_number
        )
        return {"Records": self.records[start:]}


def kinesis_event(ticks: Sequence[dict[str, Any] | bytes], *, first: int = 0) -> dict[str, Any]:
    batch = KinesisBatch()
    for offset, payload in enumerate(ticks):
        batch.add(first + offset, payload)
    return batch.event()


class StreamReader:
    """Reads the market table's DynamoDB stream from moto and shapes records as Lambda delivers them."""

    def __init__(self, session: Any, stream_arn: str) -> None:
        self.client = session.client("dynamodbstreams")
        self.stream_arn = stream_arn
        self.seen = 0

    def all_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            iterator = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = self.client.get_records(ShardIterator=iterator, Limit=1000)
                records += [events.dynamodb_record_from_api(r, stream_arn=self.stream_arn) for r in response["Records"]]
                if not response["Records"]:
                    break
                iterator = response.get("NextShardIterator")
        return records

    def new_event(self, *, quotes_only: bool = True) -> dict[str, Any]:
        """A Lambda event with the stream records not returned before (as FilterCriteria passes them)."""
        records = self.all_records()
        fresh, self.seen = records[self.seen :], len(records)
        if quotes_only:
            fresh = [
                r
                for r in fresh
                if r["eventName"] in ("INSERT", "MODIFY") and r["dynamodb"]["Keys"]["sk"]["S"] == "QUOTE"
            ]
        return {"Records": fresh}


class FailingClient:
    """A real client whose chosen operations raise ClientError, as AWS throttling or a 5xx would.

    `failures` maps an operation name (`put_item`) to a predicate on the call's keyword arguments;
    `times` bounds how many calls fail (None: all matching calls).
    """

    def __init__(
        self,
        client: Any,
        failures: dict[str, Callable[[dict[str, Any]], bool]],
        *,
        code: str = "ProvisionedThroughputExceededException",
        status: int = 400,
        times: int | None = None,
    ) -> None:
        self._client = client
        self._failures = failures
        self._code = code
        self._status = status
        self._remaining = times
        self.failed_calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        predicate = self._failures.get(name)
        if predicate is None:
            return attribute

        def call(**kwargs: Any) -> Any:
            if predicate(kwargs) and (self._remaining is None or self._remaining > 0):
                if self._remaining is not None:
                    self._remaining -= 1
                self.failed_calls.append(name)
                raise ClientError(
                    {
                        "Error": {"Code": self._code, "Message": "injected by the test"},
                        "ResponseMetadata": {"HTTPStatusCode": self._status},
                    },
                    _operation_name(name),
                )
            return attribute(**kwargs)

        return call


def _operation_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


class CallCounter:
    """Counts AWS API calls from botocore's own `before-call` events, by (service, operation)."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def attach(self, *clients: Any) -> CallCounter:
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)
        return self

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[(model.service_model.service_name, model.name)] += 1

    def count(self, service: str, *operations: str) -> int:
        return sum(n for (s, op), n in self.calls.items() if s == service and (not operations or op in operations))


def clients_for(session: Any, **overrides: Any) -> AwsClients:
    """AwsClients on the moto session, with some services replaced."""
    clients = {service: session.client(service) for service in ("s3", "dynamodb", "sns")}
    clients.update(overrides)
    return AwsClients(**clients)


def kinesis_records(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in a Kinesis stream (boto3 shape), shard by shard from the oldest."""
    return stream_records(client, stream)


def list_objects(session: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = session.client("s3")
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            objects[entry["Key"]] = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
    return objects


def scan_table(session: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    client = session.client("dynamodb")
    found = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            found[(item["pk"]["S"], item["sk"]["S"])] = item
    return found


def subscribe_queue(session: Any, topic_arn: str, name: str = "test-inbox") -> str:
    """An SQS queue subscribed to the topic: what an e-mail subscriber would receive, readable."""
    sqs, sns = session.client("sqs"), session.client("sns")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def received_messages(session: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every SNS notification in the queue (Subject, Message, MessageAttributes...)."""
    sqs = session.client("sqs")
    messages = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = response.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@dataclass
class LambdaContext:
    """The parts of the Lambda context Powertools reads."""

    function_name: str = "tickwatch-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tickwatch-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    timeout_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def ids(items: Iterable[Any]) -> list[str]:
    return [str(item) for item in items]


def quote_as_served(client: Any, table: str, symbol: str, *, parse_float: Callable[[str], Any] = float) -> dict:
    """A symbol's stored latest quote as the query API and the live updates write it, parsed back."""
    item = client.get_item(TableName=table, Key=items.quote_key(symbol))["Item"]
    text = exact_json.dumps(quote_view(items.quote_from_values(items.deserialize(item))))
    return json.loads(text, parse_float=parse_float)
