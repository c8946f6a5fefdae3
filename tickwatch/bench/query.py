"""Part 6 of `make bench`: the query API's routes.

The QueryFunction handler (loaded under the template's environment) answers REST proxy events for
each route, against the in-memory fakes (its own work) and against moto (an emulator's cost added),
on the same data: quotes of 100 symbols, a day and two hours of one-minute bars of one symbol, 200
alerts and 20 rules. moto's runs also count each route's AWS requests and the DynamoDB read units
they cost (from the items' sizes).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeDynamoDB
from tickwatch.bench.measure import RequestCounter, invoke, load_handler, moto_pipeline, percentiles_ms
from tickwatch.local.events import api_gateway_rest_event
from tickwatch.local.gateway import RestApi
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.market import Bar, Quote
from tickwatch_core.domain.rules import Direction, Firing, Rule, make_rule_id
from tickwatch_core.store import items
from tickwatch_core.store.dynamodb import batch_put

DAY = datetime(2026, 11, 19, tzinfo=UTC)
SYMBOLS = [f"SYM{index}" for index in range(100)]
BAR_SYMBOL = SYMBOLS[0]
INDICATORS = "sma:20,ema:12,rsi:14"

# (label, method, path, query): what a dashboard and a bot ask for.
CASES = [
    ("GET /quotes (100 symbols)", "GET", "/quotes", {}),
    ("GET /quotes/{symbol}", "GET", f"/quotes/{BAR_SYMBOL}", {}),
    (
        "GET /bars/{symbol}: 1,000 1m bars + 3 indicators",
        "GET",
        f"/bars/{BAR_SYMBOL}",
        {"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z", "indicators": INDICATORS},
    ),
    (
        "GET /bars/{symbol}: the day's other 440 1m bars + 3 indicators",
        "GET",
        f"/bars/{BAR_SYMBOL}",
        {"from": "2026-11-19T16:40:00Z", "to": "2026-11-20T00:00:00Z", "indicators": INDICATORS},
    ),
    (
        "GET /bars/{symbol}: a day as 5m bars",
        "GET",
        f"/bars/{BAR_SYMBOL}",
        {"interval": "5m", "from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
    ),
    ("GET /alerts (50 newest)", "GET", "/alerts", {}),
    ("GET /rules (20)", "GET", "/rules", {}),
]


@dataclass
class RouteFigures:
    seconds_fake: list[float] = field(default_factory=list)
    seconds_moto: list[float] = field(default_factory=list)
    requests: dict[str, float] = field(default_factory=dict)  # per request
    read_units: float = 0.0  # per request


def measure_routes(repeats: int) -> dict[str, RouteFigures]:
    figures = {label: RouteFigures() for label, *_ in CASES}
    with moto_pipeline() as (session, template, _, _):
        table = template.physical["MarketTable"].ref
        _store_data(session.client("dynamodb"), table)
        stored = [
            item
            for page in session.client("dynamodb").get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]
        ]
        query = load_handler(template, "QueryFunction")
        query.service.clock = lambda: DAY + timedelta(days=1)
        routes = RestApi.from_template(template, "QueryApi").routes

        fake = FakeDynamoDB()
        for item in stored:
            fake.put_item(TableName=table, Item=item)
        for label, method, path, parameters in CASES:
            event = _event(routes, method, path, parameters)
            query.service.clients = AwsClients(dynamodb=fake)
            _check(invoke(query, event)[0], label)
            figures[label].seconds_fake = [invoke(query, event)[1] for _ in range(repeats)]

            counter = RequestCounter()
            query.service.clients = AwsClients(dynamodb=counter.attach(session.client("dynamodb")))
            figures[label].seconds_moto = [invoke(query, event)[1] for _ in range(repeats)]
            figures[label].requests = {op: n / repeats for op, n in counter.by_operation().items()}
            figures[label].read_units = counter.read_units / repeats
    return figures


def report(figures: dict[str, RouteFigures], prices: dict[str, Any], memory_gb: float, architecture: str) -> list:
    rows = []
    for label, route in figures.items():
        cpu = statistics.median(route.seconds_fake)
        wait = cost.query_wait(route.requests)
        rows.append(
            {
                "route": label,
                "in_memory_fake": percentiles_ms(route.seconds_fake),
                "moto": percentiles_ms(route.seconds_moto),
                "requests": route.requests,
                "read_units": round(route.read_units, 2),
                "modelled_aws_wait_ms": round(wait * 1000, 1),
                "usd_per_million_requests": cost.query_cost_per_million(
                    cpu + wait, route.read_units, memory_gb, prices, architecture=architecture
                ),
            }
        )
    return rows


def _event(routes: list, method: str, path: str, parameters: dict[str, str]) -> dict[str, Any]:
    route = next(r for r in routes if r.method == method and r.match(path) is not None)
    return api_gateway_rest_event(
        method=method,
        path=path,
        resource=route.resource,
        path_parameters=route.match(path),
        query=list(parameters.items()),
        request_id="bench",
    )


def _check(response: dict[str, Any], label: str) -> None:
    if response.get("statusCode") != 200:
        raise AssertionError(f"{label}: {response.get('statusCode')} {response.get('body', '')[:300]}")


def sample_quote(symbol: str, price: Decimal, moment: datetime, *, day_open: Decimal, day_open_at: datetime) -> Quote:
    """A latest quote with a one-cent spread and a day's range of a dollar either side."""
    return Quote(
        symbol=symbol,
        price=price,
        at=moment,
        bid=price - Decimal("0.01"),
        ask=price + Decimal("0.01"),
        volume=100,
        day=moment.date(),
        day_open=day_open,
        day_open_at=day_open_at,
        day_high=max(price, day_open) + 1,
        day_low=min(price, day_open) - 1,
        day_volume=1_000_000,
        window_high=price,
        window_low=price,
        trades=(),
        applied_seq="1",
    )


def _store_data(client: Any, table: str) -> None:
    generator = random.Random(2026)
    moment = DAY + timedelta(hours=23, minutes=59)
    quotes = []
    for symbol in SYMBOLS:
        price = Decimal(generator.randint(2000, 60000)) / 100
        quote = sample_quote(symbol, price, moment, day_open=price, day_open_at=DAY)
        quotes.append(items.quote_to_item(quote, updated_at=moment))
    bars, price = [], Decimal("200.00")
    for minute in range(-120, 1440):
        start = DAY + timedelta(minutes=minute)
        close = (price * Decimal(1 + generator.gauss(0, 0.001))).quantize(Decimal("0.01"))
        bar = Bar(BAR_SYMBOL, start, price, max(price, close), min(price, close), close, 5000, 30, start, start, "1")
        bars.append(items.bar_to_item(bar, retention=timedelta(days=30)))
        price = close
    alerts = []
    for index in range(200):
        symbol = SYMBOLS[index % 20]
        threshold = Decimal(100 + index)
        rule = Rule(make_rule_id(symbol, Direction.ABOVE, threshold), symbol, Direction.ABOVE, threshold)
        firing = Firing(rule, threshold, DAY + timedelta(minutes=index), str(index), 0)
        alerts.append(items.alert_to_item(firing, published_at=firing.at, message_id="m", retention=timedelta(days=90)))
    rules = [
        items.rule_to_item(
            Rule(make_rule_id(s, Direction.BELOW, Decimal(50)), s, Direction.BELOW, Decimal(50)), created_at=DAY
        )
        for s in SYMBOLS[:20]
    ]
    batch_put(client, table, [*quotes, *bars, *alerts, *rules])
