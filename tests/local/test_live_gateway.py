"""The live WebSocket API on the local stack: the gateway built from template.yaml in front of the
same LiveFunction, BroadcastFunction fed by its event source mapping, posting through the local
management API. A real WebSocket client connects, subscribes and receives what the table holds."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.local.workload import RuleSpec, run_workload
from tests.support import quote_as_served
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS
from tickwatch.local.stack import LOCAL_CREDENTIALS, LocalStack, LocalStackOptions
from tickwatch.local.websocket import WebSocketApi
from tickwatch.template import Template

SYMBOLS = dict(list(DEFAULT_SYMBOLS.items())[:2])


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        yield stack, workdir
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _functions_reach_the_local_stack(local, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", local[0].endpoint_url)


def live_url(stack: LocalStack, key: str) -> str:
    return f"{stack.names()['LiveApiUrl']}?key={key}"


def receive_until(socket, condition, timeout: float = 30.0) -> list[dict]:
    """Messages received until `condition(all so far)` holds."""
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while not condition(received):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"condition not met in {timeout} s; received {received[-3:]}"
        try:
            received.append(json.loads(socket.recv(timeout=remaining), parse_float=Decimal))
        except TimeoutError:
            continue
    return received


def connection_items(stack: LocalStack) -> set[tuple[str, str]]:
    dynamodb = stack.session.client("dynamodb")
    found = dynamodb.scan(TableName=stack.template.physical["ConnectionTable"].ref, ConsistentRead=True)["Items"]
    return {(item["pk"]["S"], item["sk"]["S"]) for item in found}


def stored_quote(stack: LocalStack, symbol: str) -> dict:
    table = stack.names()["MarketTableName"]
    return quote_as_served(stack.session.client("dynamodb"), table, symbol, parse_float=Decimal)


def test_the_gateway_is_derived_from_the_template():
    api = WebSocketApi.from_template(Template.load(), "LiveApi")
    assert api.stage == "live"
    assert api.selection_field == "action"
    assert {key: (r.function, r.answers) for key, r in api.routes.items()} == {
        "$connect": ("LiveFunction", False),
        "$disconnect": ("LiveFunction", False),
        "subscribe": ("LiveFunction", True),
        "unsubscribe": ("LiveFunction", True),
        "$default": ("LiveFunction", True),
    }


def test_a_connection_without_the_key_is_refused(local):
    stack, _ = local
    for key in ("", "wrong"):
        with pytest.raises(InvalidStatus) as refused:
            connect(live_url(stack, key), open_timeout=10)
        assert refused.value.response.status_code == 403
    assert connection_items(stack) == set()


def test_a_client_receives_updates_equal_to_the_stored_quotes_and_its_alerts(local):
    stack, workdir = local
    names = stack.names()
    symbol = next(iter(SYMBOLS))
    with connect(live_url(stack, names["QueryApiKey"]), open_timeout=10) as socket:
        socket.send(json.dumps({"action": "watch"}))
        error = json.loads(socket.recv(timeout=10))
        assert error["type"] == "error"
        assert "valid actions: subscribe, unsubscribe" in error["message"]
        socket.send(json.dumps({"action": "subscribe", "symbols": [symbol]}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "subscribed", "symbols": [symbol]}

        # Rules just above and below the start price: the walk crosses one of them early.
        price = SYMBOLS[symbol]
        rules = [
            RuleSpec(symbol, "above", (price * Decimal("1.0005")).quantize(Decimal("0.01")), None),
            RuleSpec(symbol, "below", (price * Decimal("0.9995")).quantize(Decimal("0.01")), None),
        ]
        run_workload(stack, workdir, symbols=SYMBOLS, ticks=400, rules=rules, bad_records=[])
        assert stack.wait_until_caught_up(timeout=60)
        final = stored_quote(stack, symbol)
        messages = receive_until(
            socket,
            lambda got: any(m["alerts"] for m in got) and any(q == final for m in got for q in m["quotes"]),
        )

    assert all(m["type"] == "update" for m in messages)
    assert {q["symbol"] for m in messages for q in m["quotes"]} == {symbol}  # only what it follows
    alerts = [a for m in messages for a in m["alerts"]]
    assert alerts
    assert all(a["symbol"] == symbol for a in alerts)
    assert {b["symbol"] for m in messages for b in m["bars"]} == {symbol}


def test_a_closed_connection_is_cleaned_up_and_then_gone(local):
    stack, _ = local
    key = stack.names()["QueryApiKey"]
    with connect(live_url(stack, key), open_timeout=10) as socket:
        socket.send(json.dumps({"action": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        socket.recv(timeout=10)
        (connection_id,) = stack.websockets["LiveApi"].open_connections()
        assert len(connection_items(stack)) == 3
        management = boto3.session.Session(**LOCAL_CREDENTIALS).client(
            "apigatewaymanagementapi", endpoint_url=stack.websockets["LiveApi"].management_url
        )
        assert management.get_connection(ConnectionId=connection_id)["Identity"]["SourceIp"] == "127.0.0.1"
        management.post_to_connection(ConnectionId=connection_id, Data=b'{"type": "hello"}')
        assert json.loads(socket.recv(timeout=10)) == {"type": "hello"}
    deadline = time.monotonic() + 10
    while connection_items(stack) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connection_items(stack) == set()
    with pytest.raises(ClientError) as gone:
        management.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
