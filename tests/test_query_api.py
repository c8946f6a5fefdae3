"""The query API in-process: functions/query/app.py on moto resources built from template.yaml, fed
with quotes from the processor itself and bars, alerts and rules stored the way the pipeline does."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from openapi_spec_validator import validate

from tests.query_support import ROUTES, call
from tests.support import BASE_TIME, CallCounter, FailingClient, LambdaContext, clients_for, kinesis_event, tick
from tickwatch_core.domain.indicators import BarPoint, Indicator, compute
from tickwatch_core.domain.market import Bar
from tickwatch_core.domain.rules import Direction, Firing, Rule, make_rule_id
from tickwatch_core.store import items
from tickwatch_core.store.dynamodb import batch_put
from tickwatch_core.store.rule_store import RuleStore

DAY = datetime(2026, 11, 19, tzinfo=UTC)


@pytest.fixture
def api(query_app, aws, stack):
    query_app.service.clients = clients_for(aws)
    query_app.service.clock = lambda: DAY + timedelta(days=1)
    return query_app


@pytest.fixture
def table(stack):
    return stack.physical["MarketTable"].ref


def store_minute_bars(aws, table, symbol: str, start: datetime, count: int, *, seed: int = 1) -> list[Bar]:
    """`count` one-minute bars from `start`, stored as the processor stores them (some minutes empty)."""
    generator = random.Random(seed)
    price, bars = Decimal("200.00"), []
    for minute in range(count):
        if generator.random() < 0.05:
            continue  # a minute without trades has no bar
        moment = start + timedelta(minutes=minute)
        close = (price * Decimal(1 + generator.gauss(0, 0.001))).quantize(Decimal("0.01"))
        high = max(price, close) + Decimal("0.03")
        low = min(price, close) - Decimal("0.02")
        bars.append(
            Bar(
                symbol,
                moment,
                price,
                high,
                low,
                close,
                generator.randint(1, 9000),
                generator.randint(1, 40),
                moment,
                moment + timedelta(seconds=59),
                "1",
            )
        )
        price = close
    batch_put(aws.client("dynamodb"), table, [items.bar_to_item(bar, retention=timedelta(days=30)) for bar in bars])
    return bars


def expected_aggregate(bars: list[Bar], length: timedelta) -> list[dict]:
    """An independent aggregation: group by epoch-aligned start."""
    groups: dict[int, list[Bar]] = {}
    for bar in bars:
        seconds = int(bar.start.timestamp())
        groups.setdefault(seconds - seconds % int(length.total_seconds()), []).append(bar)
    return [
        {
            "start": datetime.fromtimestamp(key, UTC).isoformat().replace("+00:00", "Z"),
            "open": group[0].open,
            "high": max(b.high for b in group),
            "low": min(b.low for b in group),
            "close": group[-1].close,
            "volume": sum(b.volume for b in group),
            "trades": sum(b.trades for b in group),
        }
        for key, group in sorted(groups.items())
    ]


def plain(bar: dict) -> dict:
    return {name: bar[name] for name in ("start", "open", "high", "low", "close", "volume", "trades")}


# -- quotes ---------------------------------------------------------------------------------------


def feed_quotes(processor_app) -> None:
    ticks = [
        tick("AAPL", 228.5, BASE_TIME, volume=100, bid=228.49, ask=228.51),
        tick("MSFT", 415.3, BASE_TIME, volume=50),
        tick("AAPL", 230.7725, BASE_TIME + timedelta(seconds=1), volume=30),
        tick("MSFT", 412, BASE_TIME + timedelta(seconds=1), volume=20),
    ]
    assert processor_app.lambda_handler(kinesis_event(ticks), LambdaContext()) == {"batchItemFailures": []}


def test_quotes_list_every_symbol_with_exact_numbers_and_no_scan(api, processor_app, aws):
    feed_quotes(processor_app)
    dynamodb = aws.client("dynamodb")
    counter = CallCounter().attach(dynamodb)
    api.service.clients = clients_for(aws, dynamodb=dynamodb)

    answer = call(api, "GET", "/quotes")

    assert answer.status == 200
    aapl, msft = answer.json["quotes"]
    assert (aapl["symbol"], aapl["price"], aapl["day_open"], aapl["day_high"]) == (
        "AAPL",
        Decimal("230.7725"),
        Decimal("228.5"),
        Decimal("230.7725"),
    )
    assert '"price":230.7725' in answer.text  # written as the number stored, not through a float
    assert aapl["change"] == Decimal("2.2725")
    assert aapl["change_pct"] == Decimal("0.9945")  # 2.2725 / 228.50, 4 decimals
    assert (aapl["volume"], aapl["day_volume"], aapl["at"]) == (30, 130, "2026-11-20T14:30:01Z")
    assert msft["change_pct"] == Decimal("-0.7946")
    assert counter.count("dynamodb", "Scan") == 0


def test_one_quote_by_symbol_and_404_for_an_unknown_one(api, processor_app):
    feed_quotes(processor_app)
    answer = call(api, "GET", "/quotes/MSFT")
    assert (answer.status, answer.json["price"], answer.json["bid"]) == (200, Decimal("412"), None)

    missing = call(api, "GET", "/quotes/TSLA")
    assert missing.status == 404
    assert missing.json == {
        "error": {"code": "not_found", "message": "no quote for TSLA", "field": "symbol"},
        "request_id": "test-request",
    }


def test_a_malformed_symbol_is_422_naming_the_field(api):
    answer = call(api, "GET", "/quotes/aapl")
    assert answer.status == 422
    assert answer.json["error"]["field"] == "symbol"
    assert answer.json["error"]["code"] == "invalid_request"


# -- bars -----------------------------------------------------------------------------------------


def test_bars_default_to_the_last_two_hours_of_one_minute_bars(api, aws, table):
    stored = store_minute_bars(aws, table, "AAPL", DAY + timedelta(hours=20), 240)
    api.service.clock = lambda: DAY + timedelta(hours=23, seconds=30)

    answer = call(api, "GET", "/bars/AAPL")

    assert answer.status == 200
    body = answer.json
    assert (body["interval"], body["from"], body["to"], body["next"]) == (
        "1m",
        "2026-11-19T21:00:00Z",  # the minute that holds `to` - 2 h
        "2026-11-19T23:00:30Z",
        None,
    )
    window = [b for b in stored if DAY + timedelta(hours=21) <= b.start < DAY + timedelta(hours=23, seconds=30)]
    expected = expected_aggregate(window, timedelta(minutes=1))
    assert body["bars"] == expected


@pytest.mark.parametrize("interval", ["5m", "15m", "1h", "1d"])
def test_bars_of_longer_intervals_are_aggregated_exactly_and_aligned_to_utc(api, aws, table, interval):
    stored = store_minute_bars(aws, table, "AAPL", DAY - timedelta(days=1, minutes=7), 2 * 1440 + 13)
    length = {
        "5m": timedelta(minutes=5),
        "15m": timedelta(minutes=15),
        "1h": timedelta(hours=1),
        "1d": timedelta(days=1),
    }
    answer = call(
        api,
        "GET",
        "/bars/AAPL",
        query={"interval": interval, "from": "2026-11-17T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
    )
    assert answer.status == 200, answer.text
    inside = [b for b in stored if datetime(2026, 11, 17, tzinfo=UTC) <= b.start < DAY + timedelta(days=1)]
    assert answer.json["bars"] == expected_aggregate(inside, length[interval])


def test_pages_of_bars_follow_the_next_cursor_to_the_end(api, aws, table):
    stored = store_minute_bars(aws, table, "AAPL", DAY, 300)
    pages, query = [], {"from": "2026-11-19T00:00:00Z", "to": "2026-11-19T05:00:00Z", "limit": 100}
    while True:
        answer = call(api, "GET", "/bars/AAPL", query=query)
        assert answer.status == 200, answer.text
        pages.append(answer.json)
        if answer.json["next"] is None:
            break
        query = {"cursor": answer.json["next"]}
    assert len(pages) == 3
    assert all(len(page["bars"]) <= 100 for page in pages)
    assert [bar for page in pages for bar in page["bars"]] == expected_aggregate(stored, timedelta(minutes=1))


def test_indicators_have_values_from_the_first_bar_returned_thanks_to_the_warm_up(api, aws, table):
    stored = store_minute_bars(aws, table, "AAPL", DAY, 600)
    answer = call(
        api,
        "GET",
        "/bars/AAPL",
        query={
            "from": "2026-11-19T05:00:00Z",
            "to": "2026-11-19T06:00:00Z",
            "indicators": "sma:20,bollinger:20:2,vwap",
        },
    )
    assert answer.status == 200, answer.text
    bars = answer.json["bars"]
    # The same indicators over the whole stored series, independently aggregated.
    series = [BarPoint(b.start, float(b.high), float(b.low), float(b.close), float(b.volume)) for b in stored]
    by_start = {b.start: i for i, b in enumerate(stored)}
    for name, spec in (("sma_20", "sma:20"), ("vwap", "vwap"), ("bollinger_20_2", "bollinger:20:2")):
        values = compute(Indicator.parse(spec), series)
        for bar in bars:
            index = by_start[datetime.fromisoformat(bar["start"])]
            expected = values[index]
            if isinstance(expected, dict):
                assert {k: float(v) for k, v in bar[name].items()} == pytest.approx(expected, abs=1e-6)
            else:
                assert float(bar[name]) == pytest.approx(expected, abs=1e-6)
    assert bars[0]["sma_20"] is not None


def test_indicators_are_null_where_no_history_exists(api, aws, table):
    store_minute_bars(aws, table, "AAPL", DAY, 30)
    answer = call(
        api,
        "GET",
        "/bars/AAPL",
        query={"from": "2026-11-19T00:00:00Z", "to": "2026-11-19T00:30:00Z", "indicators": "sma:20,rsi:14"},
    )
    first = answer.json["bars"][0]
    assert (first["sma_20"], first["rsi_14"]) == (None, None)


def test_a_day_of_minute_bars_with_three_indicators_takes_at_most_two_dynamodb_pages_a_request(api, aws, table):
    stored = store_minute_bars(aws, table, "AAPL", DAY - timedelta(hours=2), 1440 + 120)
    dynamodb = aws.client("dynamodb")
    counter = CallCounter().attach(dynamodb)
    api.service.clients = clients_for(aws, dynamodb=dynamodb)
    query = {"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z", "indicators": "sma:20,ema:12,rsi:14"}
    bars, requests = [], 0
    while query:
        before = counter.count("dynamodb", "Query")
        answer = call(api, "GET", "/bars/AAPL", query=query)
        assert answer.status == 200, answer.text
        requests += 1
        # Up to 1,000 bars and their warm-up come from at most two pages of one Query.
        assert counter.count("dynamodb", "Query") - before <= 2
        bars += answer.json["bars"]
        query = {"cursor": answer.json["next"]} if answer.json["next"] else None
    assert requests == 2  # 1,440 minutes: a page of 1,000 and one of 440
    assert set(counter.calls) == {("dynamodb", "Query")}
    assert [plain(b) for b in bars] == expected_aggregate(
        [b for b in stored if b.start >= DAY and b.start < DAY + timedelta(days=1)], timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"interval": "2m"}, "interval", "interval"),
        ({"from": "yesterday"}, "from", "from"),
        ({"from": "2026-11-19T10:00:00"}, "from", "with a zone"),
        ({"from": "1700000000"}, "from", "RFC 3339"),
        ({"from": "0001-01-02T00:00:00Z", "interval": "1d"}, "from", "between 1970 and 2100"),
        ({"from": "2026-11-19T10:00:00Z", "to": "2026-11-19T09:00:00Z"}, "from", "before to"),
        ({"from": "2026-10-01T00:00:00Z", "to": "2026-11-19T00:00:00Z"}, "from", "31 days"),
        ({"limit": "0"}, "limit", "limit"),
        ({"limit": "1001"}, "limit", "limit"),
        ({"indicators": "macd:12"}, "indicators", "not one of"),
        ({"indicators": "sma:20,sma:20"}, "indicators", "twice"),
        ({"cursor": "not-a-cursor"}, "cursor", "cursor"),
    ],
)
def test_bad_bar_queries_are_422_naming_the_field(api, query, field, message):
    answer = call(api, "GET", "/bars/AAPL", query=query)
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == field
    assert message in answer.json["error"]["message"]
    assert answer.json["request_id"] == "test-request"


def test_dynamodb_throttling_after_retries_is_503_with_retry_after(api, aws):
    api.service.clients = clients_for(
        aws, dynamodb=FailingClient(aws.client("dynamodb"), {"query": lambda kwargs: True})
    )
    answer = call(api, "GET", "/bars/AAPL")
    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json["error"]["code"] == "throttled"


def test_anything_unexpected_is_500_with_the_request_id_and_no_trace(api, aws):
    class Broken:
        def query(self, **_):
            raise RuntimeError("secret internals")

    api.service.clients = clients_for(aws, dynamodb=Broken())
    answer = call(api, "GET", "/bars/AAPL")
    assert answer.status == 500
    assert answer.json["error"]["code"] == "internal"
    assert "test-request" in answer.json["error"]["message"]
    assert "secret" not in answer.text
    assert "Traceback" not in answer.text


def test_an_unknown_route_is_a_json_404(api):
    answer = call(api, "GET", "/nothing/here")
    assert answer.status == 404
    assert answer.json["error"]["code"] == "not_found"


# -- alerts ---------------------------------------------------------------------------------------


def store_alerts(aws, table, count: int) -> list[Firing]:
    firings = []
    for n in range(count):
        symbol = ("AAPL", "MSFT")[n % 2]
        threshold = Decimal(200 + n)
        rule = Rule(make_rule_id(symbol, Direction.ABOVE, threshold), symbol, Direction.ABOVE, threshold)
        firings.append(Firing(rule, threshold + Decimal("0.25"), DAY + timedelta(minutes=n), str(n), 0))
    batch_put(
        aws.client("dynamodb"),
        table,
        [
            items.alert_to_item(f, published_at=f.at, message_id=f"m{n}", retention=timedelta(days=90))
            for n, f in enumerate(firings)
        ],
    )
    return firings


def test_alerts_newest_first_in_pages(api, aws, table):
    firings = store_alerts(aws, table, 7)
    seen, query = [], {"limit": 3}
    while True:
        answer = call(api, "GET", "/alerts", query=query)
        assert answer.status == 200, answer.text
        seen += answer.json["alerts"]
        if not answer.json["next"]:
            break
        query = {"cursor": answer.json["next"]}
    assert [a["alert_id"] for a in seen] == [f.alert_id for f in reversed(firings)]
    assert seen[0]["price"] == Decimal("206.25")


def test_alerts_of_one_symbol_before_a_time(api, aws, table):
    firings = store_alerts(aws, table, 8)
    answer = call(api, "GET", "/alerts", query={"symbol": "MSFT", "before": "2026-11-19T00:05:00Z", "limit": 1})
    assert [a["alert_id"] for a in answer.json["alerts"]] == [firings[3].alert_id]
    rest = call(api, "GET", "/alerts", query={"cursor": answer.json["next"]})
    assert [a["alert_id"] for a in rest.json["alerts"]] == [firings[1].alert_id]
    assert rest.json["next"] is None


# -- rules ----------------------------------------------------------------------------------------


def test_a_rule_made_through_the_api_is_the_rule_the_cli_makes(api, aws, table):
    created = call(
        api, "POST", "/rules", body={"symbol": "AAPL", "direction": "above", "threshold": 230.5, "cooldown": "15m"}
    )
    assert created.status == 201, created.text
    assert created.json["rule_id"] == "AAPL-above-230.5"
    assert (created.json["cooldown_seconds"], created.json["armed"]) == (900, True)

    cli = RuleStore(aws.client("dynamodb"), table)
    cli.add("MSFT", "above", "230.5", cooldown=timedelta(minutes=15))
    via_api = items.deserialize(
        aws.client("dynamodb").get_item(TableName=table, Key=items.rule_key("AAPL", "AAPL-above-230.5"))["Item"]
    )
    via_cli = items.deserialize(
        aws.client("dynamodb").get_item(TableName=table, Key=items.rule_key("MSFT", "MSFT-above-230.5"))["Item"]
    )
    differing = {"pk", "sk", "symbol", "rule_id", "kind_key", "created_at"}
    assert {k: v for k, v in via_api.items() if k not in differing} == {
        k: v for k, v in via_cli.items() if k not in differing
    }

    listed = call(api, "GET", "/rules").json["rules"]
    assert [r["rule_id"] for r in listed] == ["AAPL-above-230.5", "MSFT-above-230.5"]


def test_a_duplicate_rule_is_409(api):
    body = {"symbol": "AAPL", "direction": "below", "threshold": "199.99"}
    assert call(api, "POST", "/rules", body=body).status == 201
    again = call(api, "POST", "/rules", body=body)
    assert again.status == 409
    assert again.json["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "aapl", "direction": "above", "threshold": 1}, "symbol"),
        ({"symbol": "AAPL", "direction": "sideways", "threshold": 1}, "direction"),
        ({"symbol": "AAPL", "direction": "above", "threshold": -3}, "threshold"),
        ({"symbol": "AAPL", "direction": "above", "threshold": "lots"}, "threshold"),
        ({"symbol": "AAPL", "direction": "above", "threshold": 1, "cooldown": "soon"}, "cooldown"),
        ({"symbol": "AAPL", "direction": "above"}, "threshold"),
        ({"symbol": "AAPL", "direction": "above", "threshold": 1, "extra": True}, "extra"),
    ],
)
def test_a_bad_rule_is_422_naming_the_field(api, body, field):
    answer = call(api, "POST", "/rules", body=body)
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == field


def test_a_body_sent_as_a_form_is_422_saying_to_send_json(api):
    answer = call(api, "POST", "/rules", body={"symbol": "AAPL"}, content_type="application/x-www-form-urlencoded")
    assert answer.status == 422
    assert answer.json["error"]["field"] == "body"
    assert "Content-Type: application/json" in answer.json["error"]["message"]


def test_a_body_that_is_not_json_is_422(api):
    answer = call(api, "POST", "/rules", body=b"{not json")
    assert answer.status == 422
    assert answer.json["error"]["field"] == "body"


def test_deleting_rules(api):
    call(api, "POST", "/rules", body={"symbol": "AAPL", "direction": "above", "threshold": 230})
    deleted = call(api, "DELETE", "/rules/AAPL-above-230")
    assert (deleted.status, deleted.json["deleted"]["rule_id"]) == (200, "AAPL-above-230")
    assert call(api, "DELETE", "/rules/AAPL-above-230").status == 404
    malformed = call(api, "DELETE", "/rules/nonsense")
    assert (malformed.status, malformed.json["error"]["field"]) == (422, "rule_id")


# -- documents ------------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_covers_every_route_and_the_key(api):
    answer = call(api, "GET", "/openapi.json")
    assert answer.status == 200
    document = answer.json
    validate(document)
    assert document["openapi"].startswith("3.1")
    keyed = {route.resource for route in ROUTES if route.needs_key}
    assert set(document["paths"]) == keyed  # every route of the template but the two documents
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    bars = document["paths"]["/bars/{symbol}"]["get"]
    assert {p["name"] for p in bars["parameters"]} == {
        "symbol",
        "interval",
        "from",
        "to",
        "limit",
        "indicators",
        "cursor",
    }
    assert "422" in bars["responses"]
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }


def test_the_docs_page_is_swagger_ui_served_from_the_bundle(api):
    answer = call(api, "GET", "/docs")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in answer.text
    assert "cdn" not in answer.text.lower()
    assert '<script src="http' not in answer.text


# -- what a review of the first version found --------------------------------------------------------


def cursor_of(values: dict) -> str:
    from tickwatch_core.apps.query_api.views import encode_cursor

    return encode_cursor(values)


BARS_PAGE = {"kind": "bars", "symbol": "AAPL", "interval": "1m", "limit": 10, "indicators": None,
             "from": "2026-11-19T00:00:00+00:00", "to": "2026-11-19T02:00:00+00:00"}  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [{"interval": None}, {"interval": "2m"}, {"limit": 0}, {"limit": 100000}, {"from": 5}, {"indicators": "macd:1"}],
)
def test_a_tampered_bars_cursor_is_422_not_a_crash_or_a_bigger_page(api, changes):
    answer = call(api, "GET", "/bars/AAPL", query={"cursor": cursor_of({**BARS_PAGE, **changes})})
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == "cursor"


@pytest.mark.parametrize(
    "page",
    [
        {"kind": "alerts", "symbol": None, "limit": 5, "before": None},
        {"kind": "alerts", "symbol": None, "limit": 5, "before": None, "key": [1]},
        {"kind": "alerts", "symbol": None, "limit": 100000, "before": None, "key": {"pk": "a", "sk": "b"}},
        {"kind": "alerts", "symbol": "aapl!", "limit": 5, "before": None, "key": {"pk": "a", "sk": "b"}},
    ],
)
def test_a_tampered_alerts_cursor_is_422(api, page):
    answer = call(api, "GET", "/alerts", query={"cursor": cursor_of(page)})
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == "cursor"


def test_a_cursor_goes_alone(api):
    answer = call(api, "GET", "/bars/AAPL", query={"cursor": cursor_of(BARS_PAGE), "interval": "1d"})
    assert answer.status == 422
    assert "alone" in answer.json["error"]["message"]


def test_a_body_that_is_not_utf8_is_422(api):
    answer = call(api, "POST", "/rules", body=b"\xff\xfe{not text")
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == "body"


@pytest.mark.parametrize("cooldown", [99999999999999, "99999999999d", True, 0, "400d"])
def test_a_cooldown_out_of_range_is_422(api, cooldown):
    answer = call(
        api, "POST", "/rules", body={"symbol": "AAPL", "direction": "above", "threshold": 1, "cooldown": cooldown}
    )
    assert answer.status == 422, answer.text
    assert answer.json["error"]["field"] == "cooldown"


def test_a_threshold_sent_as_a_json_number_is_kept_digit_for_digit(api):
    body = b'{"symbol": "AAPL", "direction": "above", "threshold": 123456789.123456789123}'
    answer = call(api, "POST", "/rules", body=body)
    assert answer.status == 201, answer.text
    assert answer.json["rule_id"] == "AAPL-above-123456789.123456789123"
    assert '"threshold":123456789.123456789123' in answer.text


def store_session_bars(aws, table, days: int) -> list[Bar]:
    """One-minute bars from 14:30 to 21:00 UTC on `days` days: nights without trades between."""
    bars = []
    for day in range(days):
        bars += store_minute_bars(aws, table, "AAPL", DAY + timedelta(days=day, hours=14, minutes=30), 390, seed=day)
    return bars


def test_indicator_warm_up_counts_bars_across_quiet_hours(api, aws, table):
    stored = store_session_bars(aws, table, 5)
    answer = call(
        api,
        "GET",
        "/bars/AAPL",
        query={"interval": "1h", "from": "2026-11-23T14:00:00Z", "to": "2026-11-24T00:00:00Z", "indicators": "sma:5"},
    )
    hourly = expected_aggregate(stored, timedelta(hours=1))
    closes = [float(bar["close"]) for bar in hourly]
    starts = [bar["start"] for bar in hourly]
    for bar in answer.json["bars"]:
        index = starts.index(bar["start"])
        assert float(bar["sma_5"]) == pytest.approx(sum(closes[index - 4 : index + 1]) / 5, abs=1e-6)


def test_a_bar_that_starts_before_to_holds_its_whole_interval(api, aws, table):
    store_minute_bars(aws, table, "AAPL", DAY, 30)
    cut = call(
        api, "GET", "/bars/AAPL", query={"interval": "5m", "from": "2026-11-19T00:00:00Z", "to": "2026-11-19T00:12:00Z"}
    )
    whole = call(
        api, "GET", "/bars/AAPL", query={"interval": "5m", "from": "2026-11-19T00:00:00Z", "to": "2026-11-19T00:15:00Z"}
    )
    assert cut.json["bars"] == whole.json["bars"]


def test_no_page_is_empty_while_later_bars_exist(api, aws, table):
    stored = store_session_bars(aws, table, 2)
    query, sizes = {"from": "2026-11-19T20:55:00Z", "to": "2026-11-20T15:00:00Z", "limit": 10}, []
    while query:
        answer = call(api, "GET", "/bars/AAPL", query=query)
        sizes.append(len(answer.json["bars"]))
        query = {"cursor": answer.json["next"]} if answer.json["next"] else None
    expected = len(
        [b for b in stored if datetime(2026, 11, 19, 20, 55, tzinfo=UTC) <= b.start < DAY + timedelta(hours=39)]
    )
    assert 0 not in sizes
    assert sum(sizes) == expected


def test_batch_reads_that_stay_unprocessed_are_503_with_retry_after(api, aws):
    real = aws.client("dynamodb")

    class HandsKeysBack:
        def __getattr__(self, name):
            return getattr(real, name)

        def batch_get_item(self, **kwargs):
            return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}

    api.service.clients = clients_for(aws, dynamodb=HandsKeysBack())
    call(api, "POST", "/rules", body={"symbol": "AAPL", "direction": "above", "threshold": 1})
    answer = call(api, "GET", "/rules")
    assert answer.status == 503, answer.text
    assert answer.headers["retry-after"] == "1"


def test_a_bollinger_width_of_ten_is_named_as_written(api, aws, table):
    store_minute_bars(aws, table, "AAPL", DAY, 30)
    answer = call(
        api,
        "GET",
        "/bars/AAPL",
        query={"from": "2026-11-19T00:00:00Z", "to": "2026-11-19T00:30:00Z", "indicators": "bollinger:20:10"},
    )
    assert "bollinger_20_10" in answer.json["bars"][-1]


# -- rule options (re-arm margin and lifecycle) -------------------------------------------------


def test_a_rule_with_every_option_is_stored_and_listed_with_them(api):
    body = {
        "symbol": "AAPL",
        "direction": "above",
        "threshold": 230,
        "rearm": "0.5%",
        "once": True,
        "for": "7d",
        "hours": "09:30-16:00",
        "tz": "America/New_York",
        "weekdays": True,
        "holidays": "nyse",
    }
    answer = call(api, "POST", "/rules", body=body)
    assert answer.status == 201, answer.text
    rule = answer.json
    assert (rule["rearm"], rule["once"], rule["status"], rule["armed"]) == ("0.5%", True, "armed", True)
    assert rule["expires_at"] == "2026-11-27T00:00:00Z"  # the API's clock (2026-11-20) plus 7 days
    assert rule["hours"] == {
        "start": "09:30",
        "end": "16:00",
        "tz": "America/New_York",
        "weekdays": True,
        "holidays": "NYSE",
    }
    api.service.clock = lambda: DAY + timedelta(days=9)
    (listed,) = call(api, "GET", "/rules").json["rules"]
    assert (listed["rule_id"], listed["status"]) == ("AAPL-above-230", "expired")


def test_a_plain_rule_has_no_options(api):
    rule = call(api, "POST", "/rules", body={"symbol": "AAPL", "direction": "below", "threshold": 200}).json
    assert (rule["rearm"], rule["once"], rule["expires_at"], rule["hours"], rule["status"]) == (
        None,
        False,
        None,
        None,
        "armed",
    )


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"rearm": "half"}, "rearm", "is not a percentage like 0.5%"),
        ({"rearm": "90%"}, "rearm", "at most 50%"),
        ({"expires": "2020-01-01T00:00Z"}, "expires", "is not in the future"),
        ({"expires": "2027-01-01T00:00"}, "expires", "has no time zone"),
        ({"expires": "2027-01-01T00:00Z", "for": "7d"}, "for", "not both"),
        ({"for": "soon"}, "for", "is not like 30s, 15m"),
        ({"hours": "9-5"}, "hours", "not like 09:30-16:00"),
        ({"hours": "09:30-16:00", "tz": "Mars/Olympus"}, "tz", "IANA time zone"),
        ({"weekdays": True}, "hours", "only go with hours"),
        ({"hours": "09:30-16:00", "holidays": "MOON"}, "holidays", "not a market calendar like NYSE"),
        ({"tz": "UTC"}, "tz", "only go with hours"),
    ],
)
def test_a_bad_rule_option_is_422_naming_it(api, options, field, message):
    body = {"symbol": "AAPL", "direction": "above", "threshold": 230, **options}
    answer = call(api, "POST", "/rules", body=body)
    assert (answer.status, answer.json["error"]["field"]) == (422, field), answer.text
    assert message in answer.json["error"]["message"]
    assert call(api, "GET", "/rules").json["rules"] == []


def test_a_day_change_rule_is_added_listed_and_removed_by_its_id(api):
    answer = call(api, "POST", "/rules", body={"symbol": "AAPL", "direction": "below", "change": "-2%"})
    assert answer.status == 201, answer.text
    rule = answer.json
    assert (rule["rule_id"], rule["kind"], rule["change"], rule["threshold"]) == (
        "AAPL-change-below--2pct",
        "change",
        "-2%",
        None,
    )
    assert [r["rule_id"] for r in call(api, "GET", "/rules").json["rules"]] == ["AAPL-change-below--2pct"]
    assert call(api, "DELETE", "/rules/AAPL-change-below--2pct").status == 200


def test_move_and_cross_rules_are_added_and_listed_with_their_level_in_its_own_field(api):
    move = call(api, "POST", "/rules", body={"symbol": "TSLA", "direction": "below", "move": "2%", "within": "15m"})
    assert move.status == 201, move.text
    assert {k: move.json[k] for k in ("rule_id", "kind", "threshold", "move", "within", "cross", "status")} == {
        "rule_id": "TSLA-move-down-2pct-15m",
        "kind": "move",
        "threshold": None,
        "move": "2%",
        "within": "15m",
        "cross": None,
        "status": "armed",
    }
    cross = call(api, "POST", "/rules", body={"symbol": "NVDA", "direction": "above", "cross": "SMA:20@1m"})
    assert cross.status == 201, cross.text
    assert (cross.json["rule_id"], cross.json["cross"], cross.json["status"]) == (
        "NVDA-cross-above-sma20-1m",
        "sma:20@1m",
        "disarmed",
    )
    again = call(api, "POST", "/rules", body={"symbol": "NVDA", "direction": "above", "cross": "sma:20@1m"})
    assert (again.status, again.json["error"]["field"]) == (409, "cross")
    assert [r["rule_id"] for r in call(api, "GET", "/rules").json["rules"]] == [
        "NVDA-cross-above-sma20-1m",
        "TSLA-move-down-2pct-15m",
    ]
    assert call(api, "DELETE", "/rules/TSLA-move-down-2pct-15m").status == 200


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"threshold": 200, "change": "3%"}, "change", "give one of threshold"),
        ({}, "threshold", "give one of threshold"),
        ({"change": "3"}, "change", "is not a percentage like 3% or -2%"),
        ({"change": "-100%"}, "change", "must be above -100%"),
        ({"move": "2%"}, "within", "needs a window"),
        ({"move": "2%", "within": "5h"}, "within", "1m to 4h"),
        ({"threshold": 200, "within": "5m"}, "within", "goes with move"),
        ({"cross": "sma:20"}, "cross", "not like sma:20@1m"),
        ({"cross": "sma:20@1m", "move": "2%", "within": "5m"}, "cross", "give one of"),
        ({"move": "2%", "within": "99999999999999d"}, "within", "is too long"),
    ],
)
def test_a_rule_needs_exactly_one_level(api, body, field, message):
    answer = call(api, "POST", "/rules", body={"symbol": "AAPL", "direction": "above", **body})
    assert (answer.status, answer.json["error"]["field"]) == (422, field), answer.text
    assert message in answer.json["error"]["message"]
