"""The live WebSocket API's handlers on moto resources built from the template: `$connect` with and
without the key, subscribe validation, fan-out grouping, 410 cleanup, throttling, 32 KB frames."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from tests.support import BASE_TIME, LambdaContext, StreamReader, kinesis_event, quote_as_served, scan_table, tick
from tickwatch.filters import matches_any
from tickwatch_core.apps.live.messages import MAX_MESSAGE_BYTES
from tickwatch_core.domain.rules import Direction
from tickwatch_core.store import items
from tickwatch_core.store.rule_store import RuleStore


def ws_event(route: str, connection_id: str, *, body: str | None = None, key: str | None = None) -> dict:
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    event: dict = {
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "domainName": "example.execute-api.us-east-1.amazonaws.com",
            "stage": "live",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "isBase64Encoded": False,
    }
    if key is not None:
        event["queryStringParameters"] = {"key": key}
    if body is not None:
        event["body"] = body
    return event


class Live:
    """Drives the WebSocket routes and the broadcast function, with posts captured."""

    def __init__(self, aws, stack, live_app, broadcast_app, processor_app):
        self.aws, self.stack = aws, stack
        self.live_app, self.broadcast_app, self.processor_app = live_app, broadcast_app, processor_app
        self.key = stack.physical["QueryApiApiKey"].attributes["Value"]
        self.connections = stack.physical["ConnectionTable"].ref
        self.market = stack.physical["MarketTable"].ref
        self.stream = StreamReader(aws, stack.physical["MarketTable"].attributes["StreamArn"])
        self.patterns = [
            f["Pattern"]
            for f in stack.function_events("BroadcastFunction")["MarketChanges"]["Properties"]["FilterCriteria"][
                "Filters"
            ]
        ]
        self.posts: list[tuple[str, bytes]] = []
        self.answers: dict[str, list] = {}  # connection id -> what post() does: exceptions to raise, in turn
        broadcast_app.broadcaster.post = self.post
        broadcast_app.broadcaster.sleep = lambda seconds: None
        self.sent = 0

    def post(self, *, ConnectionId: str, Data: bytes) -> dict:
        planned = self.answers.get(ConnectionId)
        if planned:
            answer = planned.pop(0) if len(planned) > 1 else planned[0]
            if answer is not None:
                raise answer
        self.posts.append((ConnectionId, Data))
        return {}

    def route(self, route: str, connection_id: str, **options) -> dict:
        return self.live_app.lambda_handler(ws_event(route, connection_id, **options), LambdaContext())

    def connect(self, connection_id: str, *symbols: str) -> None:
        assert self.route("$connect", connection_id, key=self.key)["statusCode"] == 200
        if symbols:
            answer = self.route(
                "subscribe", connection_id, body=json.dumps({"action": "subscribe", "symbols": symbols})
            )
            assert answer["statusCode"] == 200, answer

    def trade(self, *trades: tuple[str, str]) -> dict:
        """One processor batch, then its filtered stream records to the broadcast function."""
        documents = [
            tick(symbol, float(price), BASE_TIME + timedelta(seconds=self.sent + i))
            for i, (symbol, price) in enumerate(trades)
        ]
        self.processor_app.lambda_handler(kinesis_event(documents, first=self.sent), LambdaContext())
        self.sent += len(documents)
        return self.broadcast()

    def broadcast(self) -> dict:
        fresh = self.stream.new_event(quotes_only=False)["Records"]
        event = {"Records": [r for r in fresh if matches_any(self.patterns, r)]}
        return self.broadcast_app.lambda_handler(event, LambdaContext())

    def received(self, connection_id: str) -> list[dict]:
        return [json.loads(data) for cid, data in self.posts if cid == connection_id]

    def table(self) -> set[tuple[str, str]]:
        return set(scan_table(self.aws, self.connections))

    def quote(self, symbol: str) -> dict:
        return quote_as_served(self.aws.client("dynamodb"), self.market, symbol)


@pytest.fixture
def live(aws, stack, live_app, broadcast_app, processor_app) -> Live:
    return Live(aws, stack, live_app, broadcast_app, processor_app)


# --- $connect, subscribe, $disconnect -----------------------------------------------------------


def test_connect_needs_one_of_the_query_apis_keys(live):
    assert live.route("$connect", "no-key")["statusCode"] == 403
    assert live.route("$connect", "wrong", key="not-the-key")["statusCode"] == 403
    assert live.table() == set()
    assert live.route("$connect", "right", key=live.key)["statusCode"] == 200
    assert live.table() == {("CONNECTION#right", "CONNECTION")}


def test_a_key_added_to_the_usage_plan_later_opens_connections_at_once(live, aws, stack):
    clock = [1000.0]
    live.live_app.routes.keys.clock = lambda: clock[0]
    live.route("$connect", "before", key=live.key)  # the plan's keys are now cached
    apigateway = aws.client("apigateway")
    new_key = apigateway.create_api_key(name="second", enabled=True, value="a-second-key-of-forty-characters-long-xx")
    apigateway.create_usage_plan_key(
        usagePlanId=stack.physical["QueryApiUsagePlan"].ref, keyId=new_key["id"], keyType="API_KEY"
    )
    clock[0] += 1  # within a second: unknown keys do not reread the plan yet
    assert live.route("$connect", "too-soon", key=new_key["value"])["statusCode"] == 403
    clock[0] += 5
    assert live.route("$connect", "after", key=new_key["value"])["statusCode"] == 200


def test_subscribe_and_unsubscribe_answer_every_symbol_followed(live):
    live.connect("c1")
    answer = live.route("subscribe", "c1", body='{"action": "subscribe", "symbols": ["AAPL", "MSFT", "AAPL"]}')
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"type": "subscribed", "symbols": ["AAPL", "MSFT"]}
    answer = live.route("unsubscribe", "c1", body='{"action": "unsubscribe", "symbols": ["AAPL"]}')
    assert json.loads(answer["body"]) == {"type": "subscribed", "symbols": ["MSFT"]}
    assert live.table() == {("CONNECTION#c1", "CONNECTION"), ("SYMBOL#MSFT", "CONNECTION#c1")}


@pytest.mark.parametrize(
    ("route", "body", "field", "words"),
    [
        ("$default", "hello", None, "not JSON"),
        ("$default", '{"action": "watch"}', "action", "valid actions: subscribe, unsubscribe"),
        ("$default", "[1]", None, "JSON object"),
        ("subscribe", '{"action": "subscribe"}', "symbols", "non-empty list"),
        ("subscribe", '{"action": "subscribe", "symbols": []}', "symbols", "non-empty list"),
        ("subscribe", '{"action": "subscribe", "symbols": ["AAPL", "aapl"]}', "symbols[1]", "is not a symbol"),
        ("subscribe", '{"action": "subscribe", "symbols": "AAPL"}', "symbols", "list"),
        ("subscribe", '{"action": "subscribe", "symbols": ["AAPL"], "x": 1}', "x", "unknown field"),
        (
            "subscribe",
            json.dumps({"action": "subscribe", "symbols": [f"S{i}" for i in range(51)]}),
            "symbols",
            "at most 50",
        ),
    ],
)
def test_a_bad_frame_gets_an_error_naming_the_field(live, route, body, field, words):
    live.connect("c1")
    answer = live.route(route, "c1", body=body)
    assert answer["statusCode"] == 400
    error = json.loads(answer["body"])
    assert error["type"] == "error"
    assert words in error["message"]
    assert error.get("field") == field
    assert live.table() == {("CONNECTION#c1", "CONNECTION")}


def test_a_connection_follows_at_most_50_symbols_in_all(live):
    live.connect("c1", *[f"S{i}" for i in range(40)])
    answer = live.route(
        "subscribe", "c1", body=json.dumps({"action": "subscribe", "symbols": [f"T{i}" for i in range(11)]})
    )
    assert answer["statusCode"] == 400
    assert "at most 50" in json.loads(answer["body"])["message"]
    assert len(live.table()) == 41


def test_subscribing_an_unknown_connection_says_reconnect(live):
    answer = live.route("subscribe", "ghost", body='{"action": "subscribe", "symbols": ["AAPL"]}')
    assert answer["statusCode"] == 410
    assert "reconnect" in json.loads(answer["body"])["message"]
    assert live.table() == set()


def test_disconnect_removes_the_connection_and_its_subscriptions(live):
    live.connect("c1", "AAPL", "MSFT")
    live.connect("c2", "AAPL")
    assert live.route("$disconnect", "c1")["statusCode"] == 200
    assert live.table() == {("CONNECTION#c2", "CONNECTION"), ("SYMBOL#AAPL", "CONNECTION#c2")}
    assert live.route("$disconnect", "c1")["statusCode"] == 200  # twice is harmless


def test_every_item_expires_with_the_connection(live, aws):
    live.connect("c1", "AAPL")
    found = scan_table(aws, live.connections)
    expiries = {int(item["expires_at"]["N"]) for item in found.values()}
    connected = items.parse_time(found[("CONNECTION#c1", "CONNECTION")]["connected_at"]["S"])
    assert expiries == {int((connected + timedelta(hours=2)).timestamp())}


# --- broadcast ----------------------------------------------------------------------------------


def test_one_message_per_connection_with_the_latest_quote_of_each_of_its_symbols(live):
    live.connect("both", "AAPL", "MSFT")
    live.connect("apple", "AAPL")
    live.connect("other", "TSLA")
    live.trade(("AAPL", "190.10"), ("MSFT", "410.00"), ("AAPL", "190.25"), ("MSFT", "409.50"))
    assert sorted(cid for cid, _ in live.posts) == ["apple", "both"]  # nothing for TSLA, one post each
    (both,) = live.received("both")
    (apple,) = live.received("apple")
    assert both["type"] == "update"
    assert [q["symbol"] for q in both["quotes"]] == ["AAPL", "MSFT"]
    assert both["quotes"] == [live.quote("AAPL"), live.quote("MSFT")]
    assert apple["quotes"] == [live.quote("AAPL")]
    assert Decimal(str(apple["quotes"][0]["price"])) == Decimal("190.25")
    (bar,) = apple["bars"]
    assert (bar["symbol"], bar["interval"], bar["open"], bar["close"], bar["trades"]) == (
        "AAPL",
        "1m",
        190.1,
        190.25,
        2,
    )


def test_new_alerts_go_to_the_connections_of_their_symbol(live, aws, alerts_app):
    RuleStore(aws.client("dynamodb"), live.market).add("AAPL", Direction.ABOVE, "191")
    live.connect("c1", "AAPL")
    live.trade(("AAPL", "190.00"), ("AAPL", "191.50"))
    # The alerts function runs on the quote records; its history item then reaches the broadcast.
    quotes = StreamReader(live.aws, live.stream.stream_arn).new_event()
    alerts_app.lambda_handler(quotes, LambdaContext())
    live.posts.clear()
    live.broadcast()
    alerts = [alert for message in live.received("c1") for alert in message.get("alerts", [])]
    assert [(a["symbol"], a["direction"], a["threshold"], a["price"]) for a in alerts] == [
        ("AAPL", "above", 191, 191.5)
    ]


def test_a_gone_connection_is_forgotten_and_the_others_still_get_theirs(live):
    live.connect("gone", "AAPL", "MSFT")
    live.connect("here", "AAPL")
    live.answers["gone"] = [ClientError({"Error": {"Code": "GoneException", "Message": "gone"}}, "PostToConnection")]
    live.trade(("AAPL", "190.10"))
    assert [cid for cid, _ in live.posts] == ["here"]
    assert live.table() == {("CONNECTION#here", "CONNECTION"), ("SYMBOL#AAPL", "CONNECTION#here")}


def test_throttled_posts_are_retried_with_backoff(live):
    throttled = ClientError({"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "PostToConnection")
    live.connect("slow", "AAPL")
    live.answers["slow"] = [throttled, throttled, None]
    sleeps: list[float] = []
    live.broadcast_app.broadcaster.sleep = sleeps.append
    live.trade(("AAPL", "190.10"))
    assert [cid for cid, _ in live.posts] == ["slow"]
    assert len(sleeps) == 2
    assert sleeps[0] <= 0.05
    assert sleeps[1] <= 0.1


def test_one_failing_connection_never_fails_the_batch(live, capsys):
    failing = ClientError({"Error": {"Code": "ForbiddenException", "Message": "no"}}, "PostToConnection")
    throttled = ClientError({"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "PostToConnection")
    live.connect("broken", "AAPL")
    live.connect("always-throttled", "AAPL")
    live.connect("fine", "AAPL")
    live.answers["broken"] = [failing]
    live.answers["always-throttled"] = [throttled]
    assert live.trade(("AAPL", "190.10")) == {}
    assert [cid for cid, _ in live.posts] == ["fine"]
    output = capsys.readouterr().out
    assert '"Failures":[2.0]' in output.replace(" ", "") or '"Failures": [2.0]' in output
    assert ("CONNECTION#broken", "CONNECTION") in live.table()  # not gone: kept


def test_updates_over_32_kb_are_split_into_complete_messages(live):
    symbols = [f"SYM{i}" for i in range(50)]
    live.connect("wide", *symbols)
    # Each symbol's ticks span several minutes: many bars and a quote for each.
    trades = [(symbol, f"{100 + minute}.{index:02d}") for minute in range(4) for index, symbol in enumerate(symbols)]
    documents = [
        tick(symbol, float(price), BASE_TIME + timedelta(minutes=n // 50, seconds=n % 50))
        for n, (symbol, price) in enumerate(trades)
    ]
    live.processor_app.lambda_handler(kinesis_event(documents), LambdaContext())
    live.broadcast()
    messages = [data for cid, data in live.posts if cid == "wide"]
    assert len(messages) > 1
    assert all(len(data) <= MAX_MESSAGE_BYTES for data in messages)
    decoded = [json.loads(data) for data in messages]
    assert sorted(q["symbol"] for m in decoded for q in m["quotes"]) == sorted(symbols)
    assert len([b for m in decoded for b in m["bars"]]) == 200
    assert all(m["type"] == "update" for m in decoded)
