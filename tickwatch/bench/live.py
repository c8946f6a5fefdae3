"""Part 7 of `make bench`: the live dashboard's fan-out.

The BroadcastFunction handler (loaded under the template's environment) gets one stream batch of a
busy market (a quote and a one-minute bar of each of 20 symbols, and 2 new alerts) with 1,000
connections following them, its connection table and the management API answered by in-memory
fakes: its own work (grouping, serializing, posting in parallel) without AWS's latency, which the
cost model adds (`cost.LATENCY`). Two audiences: every connection follows all 20 symbols (one
dashboard layout, so one message shared by all), and each follows 5 of them at random (many
different messages).
"""

from __future__ import annotations

import json
import random
import statistics
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeDynamoDB
from tickwatch.bench.measure import invoke, load_handler, moto_pipeline, percentiles_ms
from tickwatch.bench.query import sample_quote
from tickwatch_core.apps.live.broadcast import Broadcaster
from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.market import Bar
from tickwatch_core.domain.rules import Direction, Firing, Rule, make_rule_id
from tickwatch_core.store import items

CONNECTIONS = 1000
SYMBOLS = [f"SYM{index}" for index in range(20)]
MOMENT = datetime(2026, 11, 20, 14, 30, 30, tzinfo=UTC)


class CountingPoster:
    """PostToConnection answered at once; counts calls and message sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def post(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        with self._lock:
            self.sizes.append(len(Data))
        return {}


@dataclass
class AudienceFigures:
    label: str
    seconds: list[float] = field(default_factory=list)
    posts_per_batch: float = 0.0
    queries_per_batch: int = 0
    message_bytes: list[int] = field(default_factory=list)


def measure_broadcast(repeats: int) -> list[AudienceFigures]:
    with moto_pipeline() as (_, template, _, _):
        broadcast = load_handler(template, "BroadcastFunction")
        table = template.physical["ConnectionTable"].ref
    event = {"Records": _stream_records()}
    audiences = [
        ("1,000 connections x all 20 symbols", lambda _: SYMBOLS),
        ("1,000 connections x 5 of the 20 symbols", lambda generator: generator.sample(SYMBOLS, 5)),
    ]
    figures = []
    for label, choose in audiences:
        generator = random.Random(2026)
        store = ConnectionStore(AwsClients(dynamodb=FakeDynamoDB()), table, clock=lambda: MOMENT)
        for number in range(CONNECTIONS):
            store.connect(f"connection-{number}")
            store.subscribe(f"connection-{number}", choose(generator))
        poster = CountingPoster()
        broadcast.broadcaster = Broadcaster(store, poster.post)
        audience = AudienceFigures(label, queries_per_batch=len(SYMBOLS))
        invoke(broadcast, event)  # warm: the first batch builds what later ones reuse
        poster.sizes.clear()
        audience.seconds = [invoke(broadcast, event)[1] for _ in range(repeats)]
        audience.posts_per_batch = len(poster.sizes) / repeats
        audience.message_bytes = poster.sizes
        figures.append(audience)
    return figures


class FakeApiGateway:
    """The usage plan's one key, for `$connect`'s check."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_usage_plan_keys(self, **_: Any) -> dict[str, Any]:
        return {"items": [{"id": "key-id", "type": "API_KEY", "name": "bench", "value": self.key}]}


class CountingDynamoDB(FakeDynamoDB):
    """The fake, counting request units as DynamoDB bills items under 1 KB: a write unit per item
    written or deleted, a read unit per strongly consistent read."""

    def __init__(self) -> None:
        super().__init__()
        self.write_units = 0
        self.read_units = 0.0

    def put_item(self, **arguments: Any) -> dict[str, Any]:
        self.write_units += 1
        return super().put_item(**arguments)

    def update_item(self, **arguments: Any) -> dict[str, Any]:
        self.write_units += 1
        return super().update_item(**arguments)

    def batch_write_item(self, **arguments: Any) -> dict[str, Any]:
        self.write_units += sum(len(requests) for requests in arguments["RequestItems"].values())
        return super().batch_write_item(**arguments)

    def get_item(self, **arguments: Any) -> dict[str, Any]:
        self.read_units += 1 if arguments.get("ConsistentRead") else 0.5
        return super().get_item(**arguments)


@dataclass
class RouteFigures:
    seconds: list[float] = field(default_factory=list)
    read_units: float = 0.0  # per request
    write_units: float = 0.0


def measure_routes(repeats: int) -> dict[str, RouteFigures]:
    """The LiveFunction's routes on the fakes: seconds per `$connect`, `subscribe` (20 symbols) and
    `$disconnect`, each on its own connection."""
    from tickwatch.local.websocket import WebSocketApi
    from tickwatch_core.apps.live.keys import ApiKeyCheck
    from tickwatch_core.apps.live.routes import LiveRoutes

    with moto_pipeline() as (_, template, _, _):
        live = load_handler(template, "LiveFunction")
        table = template.physical["ConnectionTable"].ref
        stage = WebSocketApi.from_template(template, "LiveApi").stage
    table_client = CountingDynamoDB()
    live.routes = LiveRoutes(
        ConnectionStore(AwsClients(dynamodb=table_client), table, clock=lambda: MOMENT),
        ApiKeyCheck(AwsClients(apigateway=FakeApiGateway("bench-key")), "plan"),
    )
    subscribe = json.dumps({"action": "subscribe", "symbols": SYMBOLS})
    figures = {label: RouteFigures() for label in ("$connect", "subscribe (20 symbols)", "$disconnect")}
    for number in range(repeats + 1):  # the first round warms the key cache and the imports
        connection = f"connection-{number}"
        for label, event in (
            ("$connect", _ws_event("$connect", connection, stage, query={"key": "bench-key"})),
            ("subscribe (20 symbols)", _ws_event("subscribe", connection, stage, body=subscribe)),
            ("$disconnect", _ws_event("$disconnect", connection, stage)),
        ):
            reads, writes = table_client.read_units, table_client.write_units
            response, took = invoke(live, event)
            if response.get("statusCode") != 200:
                raise AssertionError(f"{label}: {response}")
            if number:
                figures[label].seconds.append(took)
                figures[label].read_units = table_client.read_units - reads
                figures[label].write_units = table_client.write_units - writes
    return figures


def _ws_event(route: str, connection: str, stage: str, *, query: dict | None = None, body: str | None = None) -> dict:
    event: dict[str, Any] = {
        "requestContext": {"routeKey": route, "connectionId": connection, "stage": stage},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body
    return event


def report(
    figures: list[AudienceFigures],
    routes: dict[str, RouteFigures],
    prices: dict[str, Any],
    memory_gb: float,
    architecture: str,
) -> dict:
    rows = []
    for audience in figures:
        cpu = statistics.median(audience.seconds)
        wait = cost.broadcast_wait(audience.queries_per_batch, audience.posts_per_batch)
        rows.append(
            {
                "audience": audience.label,
                "in_memory_fake": percentiles_ms(audience.seconds),
                "post_to_connection_per_batch": audience.posts_per_batch,
                "queries_per_batch": audience.queries_per_batch,
                "message_bytes_p50": int(statistics.median(audience.message_bytes)),
                "message_bytes_max": max(audience.message_bytes),
                "modelled_aws_wait_ms": round(wait * 1000, 1),
                "usd_per_million_messages": cost.websocket_cost_per_million_messages(
                    cpu + wait, audience.posts_per_batch, memory_gb, prices, architecture=architecture
                ),
            }
        )
    route_rows = [
        {
            "route": label,
            "in_memory_fake": percentiles_ms(route.seconds),
            "read_units": route.read_units,
            "write_units": route.write_units,
            "usd_per_million": cost.websocket_route_cost_per_million(
                statistics.median(route.seconds),
                route.read_units,
                route.write_units,
                memory_gb,
                prices,
                architecture=architecture,
            ),
        }
        for label, route in routes.items()
    ]
    return {
        "audiences": rows,
        "routes": route_rows,
        "connection_minutes_per_million_usd": prices["api_gateway"]["websocket_connection_minutes_per_million"],
    }


def _stream_records() -> list[dict[str, Any]]:
    """One batch as the stream delivers it: a quote and a bar MODIFY per symbol, two alert INSERTs."""
    records = []
    generator = random.Random(7)
    for symbol in SYMBOLS:
        price = Decimal(generator.randint(2000, 60000)) / 100
        quote = sample_quote(symbol, price, MOMENT, day_open=price - 1, day_open_at=MOMENT.replace(hour=0, minute=0))
        minute = MOMENT.replace(second=0)
        bar = Bar(symbol, minute, price, price + 1, price - 1, price, 5000, 30, minute, MOMENT, "1")
        records.append(_record("MODIFY", items.quote_to_item(quote, updated_at=MOMENT)))
        records.append(_record("MODIFY", items.bar_to_item(bar, retention=timedelta(days=30))))
    for symbol in SYMBOLS[:2]:
        rule = Rule(make_rule_id(symbol, Direction.ABOVE, Decimal(100)), symbol, Direction.ABOVE, Decimal(100))
        firing = Firing(rule, Decimal("100.5"), MOMENT, "1", 0)
        item = items.alert_to_item(firing, published_at=MOMENT, message_id="m", retention=timedelta(days=90))
        records.append(_record("INSERT", item))
    return records


def _record(event_name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventID": "1",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "NewImage": item,
            "SequenceNumber": "1",
            "SizeBytes": 1,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/market/stream/2026",
    }
