"""Part 11: delivering alerts, per channel: the delivery function's time and the cost of 1,000
alerts, sent one at a time (each its own message) or as a burst (one invocation, digests).

The delivery function runs as in Lambda (`DeliveryService`), against the in-memory fakes for
DynamoDB, SNS and Secrets Manager and an HTTP client that answers at once as each receiver does,
so the handler's own work is what is timed. Waiting is modelled: `cost.LATENCY` per AWS request,
`RECEIVER_LATENCY` per HTTPS POST to a receiver, and the pacing waits the function would sleep
(its clock here is virtual: a sleep moves it, and costs no time).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeDynamoDB, FakeSNS
from tickwatch.bench.measure import percentiles_ms
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import DeliverySettings
from tickwatch_core.domain.delivery.destinations import new_destination
from tickwatch_core.domain.delivery.notices import AlertNotice
from tickwatch_core.pipeline.delivery.senders import HttpAnswer
from tickwatch_core.pipeline.delivery.service import DeliveryService, StreamDelivery
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.items import deserialize

TABLE = "tickwatch-bench-deliveries"
SECRET_PREFIX = "tickwatch/bench/destinations/"
RECEIVER_LATENCY = 0.150  # seconds an HTTPS POST to Slack, Discord, Telegram or a webhook takes, assumed
SNS_PUBLISH_LATENCY = 0.020  # seconds an SNS Publish takes, assumed
ALERTS = 1000
SPREAD_SAMPLE = 100  # alerts measured one at a time; the cost is scaled to 1,000
SYMBOLS = 20
EMAIL_SUBSCRIBERS = 1  # e-mail notifications are priced per subscriber that receives them
CHANNELS = ("email", "slack", "discord", "telegram", "webhook")


class VirtualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class InstantReceivers:
    """Answers each POST as its receiver would, at once, and counts them."""

    posts: int = 0
    bytes_sent: int = 0

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        self.posts += 1
        self.bytes_sent += len(body)
        if "/sendMessage" in url:
            answer = {"ok": True, "result": {"message_id": self.posts}}
            return HttpAnswer(200, {}, json.dumps(answer).encode())
        if "discord" in url:
            return HttpAnswer(200, {}, json.dumps({"id": str(self.posts)}).encode())
        return HttpAnswer(200, {}, b"ok")


class FakeSecrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.calls = 0

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:
        self.calls += 1
        return {"SecretString": self.values[SecretId]}


class CountingDynamoDB(FakeDynamoDB):
    """The fake, counting requests and capacity units as DynamoDB bills them."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, int] = {}
        self.read_units = 0.0
        self.write_units = 0.0

    def _count(self, operation: str) -> None:
        self.requests[operation] = self.requests.get(operation, 0) + 1

    def batch_get_item(self, **arguments: Any) -> dict[str, Any]:
        self._count("dynamodb:BatchGetItem")
        answer = super().batch_get_item(**arguments)
        for found in answer.get("Responses", {}).values():
            self.read_units += sum(math.ceil(item_bytes(item) / 4096) for item in found)
        return answer

    def get_item(self, **arguments: Any) -> dict[str, Any]:
        self._count("dynamodb:GetItem")
        self.read_units += 1
        return super().get_item(**arguments)

    def query(self, **arguments: Any) -> dict[str, Any]:
        self._count("dynamodb:Query")
        answer = super().query(**arguments)
        self.read_units += max(1, math.ceil(sum(item_bytes(item) for item in answer["Items"]) / 4096))
        return answer

    def batch_write_item(self, **arguments: Any) -> dict[str, Any]:
        self._count("dynamodb:BatchWriteItem")
        for requests in arguments["RequestItems"].values():
            self.write_units += sum(math.ceil(item_bytes(r["PutRequest"]["Item"]) / 1024) for r in requests)
        return super().batch_write_item(**arguments)


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names and values, as UTF-8 (numbers as their digits)."""
    size = 0
    for name, value in item.items():
        ((kind, content),) = value.items()
        size += len(name.encode())
        if kind in ("S", "N"):
            size += len(str(content).encode())
        elif kind == "L":
            size += sum(len(str(next(iter(entry.values()))).encode()) for entry in content) + 3
        else:
            size += 1
    return size


@dataclass
class ChannelFigures:
    channel: str
    case: str
    alerts: int
    invocations: int
    messages: int
    seconds_fake: list[float] = field(default_factory=list)  # per invocation
    slept_seconds: float = 0.0
    dynamodb_requests: dict[str, int] = field(default_factory=dict)
    read_units: float = 0.0
    write_units: float = 0.0  # the delivery function's
    hand_over_write_units: float = 0.0  # the alerts function's conditional PutItem of each delivery
    sns_publishes: int = 0
    http_posts: int = 0
    secret_reads: int = 0


def _notice(index: int) -> AlertNotice:
    symbol = f"S{index % SYMBOLS:02d}"
    return AlertNotice(
        alert_id=f"{index:020x}",
        rule_id=f"{symbol}-above-200",
        symbol=symbol,
        kind="price",
        direction="above",
        level="200",
        price=Decimal("201.25"),
        fired_at=datetime(2026, 12, 7, 14, 30, tzinfo=UTC) + timedelta(milliseconds=index),
        subject=f"tickwatch: {symbol} rose to 201.25 (above 200)",
        body=(
            f"{symbol} traded at 201.25, at or above your threshold of 200.\n\nSymbol:     {symbol}\n"
            "Direction:  above\nThreshold:  200\nPrice:      201.25\nTime:       2026-12-07 14:30:00.000 UTC\n"
            f"Rule:       {symbol}-above-200\n\nThe rule is now disarmed. It re-arms when {symbol} trades below 200.\n"
            f"Alert id: {index:020x}\n"
        ),
        notify=("dest",),
    )


def _service(
    channel: str,
) -> tuple[DeliveryService, CountingDynamoDB, FakeSNS, InstantReceivers, FakeSecrets, VirtualClock]:
    dynamodb, sns, receivers, secrets, clock = (
        CountingDynamoDB(),
        FakeSNS(),
        InstantReceivers(),
        FakeSecrets(),
        VirtualClock(),
    )
    fields = {
        "email": {"email": "you@example.com"},
        "slack": {"url": "https://hooks.slack.com/services/T0/B0/bench"},
        "discord": {"url": "https://discord.com/api/webhooks/1/bench"},
        "telegram": {"token": "123456789:AAHbenchTokenbenchTokenbench000", "chat_id": "12345"},
        "webhook": {"url": "https://example.com/hook", "secret": "bench-signing-secret-0000"},
    }[channel]
    new = new_destination("dest", channel, secret_prefix=SECRET_PREFIX, **fields)
    if new.secret is not None:
        secrets.values[f"{SECRET_PREFIX}dest"] = new.secret
    dynamodb.put_item(TableName=TABLE, Item=stored.destination_to_item(new.destination, clock()))
    settings = DeliverySettings(
        TABLE, "arn:aws:sns:us-east-1:123456789012:alerts", SECRET_PREFIX, None, "https://api.telegram.org", False
    )
    clients = AwsClients(dynamodb=dynamodb, sns=sns, secretsmanager=secrets)
    service = DeliveryService(settings, clients, http=receivers, clock=clock, sleep=clock.sleep)
    return service, dynamodb, sns, receivers, secrets, clock


def _pending(
    notices: list[AlertNotice], pacing_key: str, dynamodb: CountingDynamoDB, start: int
) -> tuple[list[StreamDelivery], float]:
    """Pending deliveries as the alerts function writes them; returns the records and their WRU."""
    records, units = [], 0.0
    for offset, notice in enumerate(notices):
        item = stored.new_delivery_item(pacing_key, "dest", notice, timedelta(days=90))
        FakeDynamoDB.put_item(dynamodb, TableName=TABLE, Item=item)
        units += math.ceil(item_bytes(item) / 1024)
        records.append(StreamDelivery(str(start + offset), deserialize(item)))
    return records, units


def measure_channel(channel: str, case: str, repeats: int) -> ChannelFigures:
    figures: ChannelFigures | None = None
    for _ in range(repeats):
        service, dynamodb, sns, receivers, secrets, clock = _service(channel)
        pacing_key = service.destination("dest").pacing_key
        count = SPREAD_SAMPLE if case == "one at a time" else ALERTS
        notices = [_notice(index) for index in range(count)]
        run = ChannelFigures(channel, case, count, 0, 0)
        batches = [[notice] for notice in notices] if case == "one at a time" else [notices]
        hand_over = 0.0
        for index, batch in enumerate(batches):
            records, units = _pending(batch, pacing_key, dynamodb, index * count)
            hand_over += units
            began = time.perf_counter()
            report = service.process(records)
            run.seconds_fake.append(time.perf_counter() - began)
            assert not report.failures, report.failures
            run.invocations += 1
            run.messages += report.messages
            clock.advance(60)  # the next alert comes a minute later: no wait for a slot
        run.slept_seconds = clock.slept
        run.dynamodb_requests = dict(dynamodb.requests)
        run.read_units, run.write_units, run.hand_over_write_units = (
            dynamodb.read_units,
            dynamodb.write_units,
            hand_over,
        )
        run.sns_publishes, run.http_posts, run.secret_reads = len(sns.published), receivers.posts, secrets.calls
        if figures is None:
            figures = run
        else:
            figures.seconds_fake += run.seconds_fake
    assert figures is not None
    return figures


def measure_delivery(repeats: int) -> list[ChannelFigures]:
    return [measure_channel(channel, case, repeats) for channel in CHANNELS for case in ("one at a time", "burst")]


def report(
    figures: list[ChannelFigures], prices: dict[str, Any], memory_gb: float, architecture: str
) -> dict[str, Any]:
    rows = []
    for entry in figures:
        scale = ALERTS / entry.alerts  # per 1,000 alerts
        cpu = statistics.median(entry.seconds_fake)
        aws_requests = sum(entry.dynamodb_requests.values()) / entry.invocations
        sends_per_invocation = entry.messages / entry.invocations
        send_latency = SNS_PUBLISH_LATENCY if entry.channel == "email" else RECEIVER_LATENCY
        wait = aws_requests * cost.LATENCY["default"] + sends_per_invocation * send_latency
        seconds = cpu + wait + entry.slept_seconds / entry.invocations
        invocations = entry.invocations * scale
        dynamodb = prices["dynamodb"]
        usd = {
            "lambda": invocations * cost.lambda_per_million_invocations(seconds, memory_gb, prices, architecture) / 1e6,
            "dynamodb": (
                (entry.write_units + entry.hand_over_write_units) * scale * dynamodb["write_request_units_per_million"]
                + entry.read_units * scale * dynamodb["read_request_units_per_million"]
            )
            / 1e6,
            "sns": entry.sns_publishes * scale * prices["sns"]["publishes_per_million"] / 1e6
            + entry.sns_publishes * scale * EMAIL_SUBSCRIBERS * prices["sns"]["email_per_hundred_thousand"] / 1e5,
            "secrets_manager": entry.secret_reads
            * scale
            * prices["secrets_manager"]["api_calls_per_ten_thousand"]
            / 1e4,
        }
        usd["total"] = sum(usd.values())
        rows.append(
            {
                "channel": entry.channel,
                "case": entry.case,
                "alerts_measured": entry.alerts,
                "messages_per_1000_alerts": round(entry.messages * scale),
                "invocations_per_1000_alerts": round(invocations),
                "in_memory_fake": percentiles_ms(entry.seconds_fake),
                "modelled_seconds_per_invocation": round(seconds, 4),
                "paced_wait_seconds_per_invocation": round(entry.slept_seconds / entry.invocations, 3),
                "dynamodb_requests_per_invocation": {
                    k: round(v / entry.invocations, 2) for k, v in entry.dynamodb_requests.items()
                },
                "write_units_per_1000_alerts": round((entry.write_units + entry.hand_over_write_units) * scale),
                "read_units_per_1000_alerts": round(entry.read_units * scale),
                "usd_per_1000_alerts": {name: round(value, 5) for name, value in usd.items()},
            }
        )
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "receiver_latency_assumed_ms": round(RECEIVER_LATENCY * 1000),
        "sns_publish_latency_assumed_ms": round(SNS_PUBLISH_LATENCY * 1000),
        "email_subscribers_assumed": EMAIL_SUBSCRIBERS,
        "symbols": SYMBOLS,
        "rows": rows,
    }


def render(part: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "### 11. Delivery: 1,000 alerts to one destination of each channel, one at a time or as one burst "
        f"(measured {part['date']})",
        "",
        f"Handler time on the in-memory fakes; billed time adds {cost.LATENCY['default'] * 1000:.0f} ms per DynamoDB "
        f"request, {part['receiver_latency_assumed_ms']} ms per HTTPS POST to a receiver and "
        f"{part['sns_publish_latency_assumed_ms']} ms per SNS Publish (assumed), and the pacing waits. E-mail is "
        f"priced for {part['email_subscribers_assumed']} subscriber; write units include the alerts function's "
        "conditional PutItem of each delivery. One at a time: each alert its own invocation and message. Burst: "
        f"1,000 alerts over {part['symbols']} symbols in one invocation, sent as the receiver's limits allow "
        "(digests).",
        "",
        "| channel | case | messages | invocations | handler p50 | billed s per invocation | pacing wait | WRU | RRU "
        "| Lambda | DynamoDB | SNS | total USD per 1,000 alerts |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["rows"]:
        usd = row["usd_per_1000_alerts"]
        lines.append(
            f"| {row['channel']} | {row['case']} | {row['messages_per_1000_alerts']:,} | "
            f"{row['invocations_per_1000_alerts']:,} | {row['in_memory_fake']['p50_ms']} ms | "
            f"{row['modelled_seconds_per_invocation']} | {row['paced_wait_seconds_per_invocation']} s | "
            f"{row['write_units_per_1000_alerts']:,} | {row['read_units_per_1000_alerts']:,} | {usd['lambda']:.4f} | "
            f"{usd['dynamodb']:.4f} | {usd['sns']:.4f} | **{usd['total']:.4f}** |"
        )
    return lines
