"""Providers against recorded, real-shaped responses served on loopback: normal data, error
bodies, rate limits, malformed messages, disconnects and reconnects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from websockets.sync.server import serve

from tickwatch.fetch.providers import (
    Backoff,
    FinnhubTradesProvider,
    ProviderError,
    ReplayProvider,
    TwelveDataQuotesProvider,
)

API_KEY = "sk-test-0123456789abcdef"  # any report containing it fails the test


class FakeTime(threading.Event):
    """A stop event whose waits advance a fake clock instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        self.now += timeout or 0.0
        return self.is_set()


def collect(provider, want: int, timeout: float = 5.0, stop: threading.Event | None = None) -> list[dict]:
    """Run a provider until it has produced `want` ticks (or ends, or times out)."""
    stop = stop or threading.Event()
    ticks: list[dict] = []
    deadline = time.monotonic() + timeout
    for tick in provider.ticks(stop):
        if tick is not None:
            ticks.append(tick)
        if len(ticks) >= want or time.monotonic() > deadline:
            stop.set()
            break
    return ticks


class Reports(list):
    def __call__(self, message: str) -> None:
        assert API_KEY not in message
        self.append(message)


# --- Finnhub WebSocket --------------------------------------------------------------------------

TRADES_AAPL = {
    "data": [
        {"c": ["1", "12"], "p": 228.51, "s": "AAPL", "t": 1763649000123, "v": 100},
        {"c": None, "p": 228.52, "s": "AAPL", "t": 1763649000456, "v": 5},
    ],
    "type": "trade",
}
TRADES_MSFT = {"data": [{"c": ["1"], "p": 415.3, "s": "MSFT", "t": 1763649001000, "v": 0.5}], "type": "trade"}


@contextmanager
def websocket_server(script: Callable) -> Iterator[tuple[str, list]]:
    """A loopback WebSocket server; `script(connection, number)` plays one connection."""
    connections: list = []

    def handler(connection):
        connections.append(connection.request.path)
        script(connection, len(connections))

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            yield f"ws://127.0.0.1:{port}", connections
        finally:
            server.shutdown()


def test_finnhub_subscribes_turns_trades_into_ticks_and_reconnects_after_a_drop():
    subscriptions: list[dict] = []

    def script(connection, number):
        if number == 1:
            for _ in range(2):
                subscriptions.append(json.loads(connection.recv(timeout=2)))
            connection.send(json.dumps({"type": "ping"}))
            connection.send(json.dumps(TRADES_AAPL))
            connection.send("not json {")
            connection.send(json.dumps({"type": "error", "msg": "Invalid symbol XYZ"}))
            connection.send(json.dumps({"type": "trade", "data": [{"s": "AAPL", "p": "oops"}]}))
            connection.close()  # the feed drops
        else:
            for _ in range(2):
                connection.recv(timeout=2)
            connection.send(json.dumps(TRADES_MSFT))
            time.sleep(1)

    reports = Reports()
    with websocket_server(script) as (url, connections):
        provider = FinnhubTradesProvider(
            API_KEY, ["AAPL", "MSFT"], url=url, report=reports, backoff=Backoff(base=0.01, cap=0.05)
        )
        ticks = collect(provider, want=3)

    assert subscriptions == [{"type": "subscribe", "symbol": "AAPL"}, {"type": "subscribe", "symbol": "MSFT"}]
    assert ticks == [
        {
            "symbol": "AAPL",
            "price": 228.51,
            "timestamp": "2025-11-20T14:30:00.123Z",
            "source": "finnhub",
            "volume": 100,
        },
        {"symbol": "AAPL", "price": 228.52, "timestamp": "2025-11-20T14:30:00.456Z", "source": "finnhub", "volume": 5},
        # A fractional volume is left out rather than rounded.
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2025-11-20T14:30:01.000Z", "source": "finnhub"},
    ]
    assert len(connections) == 2
    assert all(path == f"/?token={API_KEY}" for path in connections)
    assert any("not JSON" in r for r in reports)
    assert any("finnhub error: Invalid symbol XYZ" in r for r in reports)
    assert any("malformed trade" in r for r in reports)
    assert any("reconnecting in" in r for r in reports)


def test_finnhub_rejected_key_stops_with_a_clear_error():
    class Reject(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Reject) as base:
        provider = FinnhubTradesProvider(
            API_KEY, ["AAPL"], url=base.replace("http", "ws"), backoff=Backoff(base=0.01, cap=0.05)
        )
        with pytest.raises(ProviderError, match=r"finnhub rejected the API key \(HTTP 401\)") as raised:
            collect(provider, want=1)
    assert API_KEY not in str(raised.value)


def test_finnhub_unreachable_reports_and_retries_without_printing_the_key():
    reports = Reports()
    provider = FinnhubTradesProvider(
        API_KEY, ["AAPL"], url="ws://127.0.0.1:9", report=reports, backoff=Backoff(base=0.01, cap=0.02)
    )
    stop = threading.Event()
    for _ in provider.ticks(stop):
        if len(reports) >= 2:
            stop.set()
    assert all("connection failed" in r and "reconnecting" in r for r in reports)


# --- Twelve Data REST ---------------------------------------------------------------------------


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def scripted_http(responses: list[tuple[int, str]], requests: list[dict]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlparse(self.path)
            requests.append({"path": url.path, **{k: v[0] for k, v in parse_qs(url.query).items()}})
            status, body = responses.pop(0) if responses else (200, "{}")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    return Handler


def twelvedata(url: str, symbols: list[str], reports: Reports, credits: int = 6000) -> TwelveDataQuotesProvider:
    # A huge credit allowance keeps the test fast; the pacing itself is tested separately.
    return TwelveDataQuotesProvider(
        API_KEY,
        symbols,
        credits_per_minute=credits,
        url=url,
        report=reports,
        backoff=Backoff(base=0.01, cap=0.02),
        now=lambda: datetime(2026, 11, 20, 14, 30, 5, tzinfo=UTC),
    )


def test_twelvedata_polls_prices_and_sends_only_changes():
    responses = [
        (200, json.dumps({"AAPL": {"price": "228.51000"}, "MSFT": {"price": "415.30000"}})),
        (200, json.dumps({"AAPL": {"price": "228.51000"}, "MSFT": {"price": "415.35000"}})),
    ]
    requests: list[dict] = []
    with http_server(scripted_http(responses, requests)) as url:
        ticks = collect(twelvedata(url, ["AAPL", "MSFT"], Reports()), want=3)
    assert ticks == [
        {"symbol": "AAPL", "price": 228.51, "timestamp": "2026-11-20T14:30:05.000Z", "source": "twelvedata"},
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2026-11-20T14:30:05.000Z", "source": "twelvedata"},
        {"symbol": "MSFT", "price": 415.35, "timestamp": "2026-11-20T14:30:05.000Z", "source": "twelvedata"},
    ]
    assert requests[0] == {"path": "/price", "symbol": "AAPL,MSFT", "apikey": API_KEY}


def test_twelvedata_error_bodies_rate_limits_and_malformed_replies_are_reported_and_skipped():
    responses = [
        (
            200,
            json.dumps(
                {"code": 429, "message": "You have run out of API credits for the current minute.", "status": "error"}
            ),
        ),
        (500, "Internal Server Error"),
        (200, "<html>gateway</html>"),
        (200, "{}"),
        (
            200,
            json.dumps(
                {
                    "AAPL": {"price": "228.5"},
                    "XYZ": {"code": 400, "message": "**symbol** not found: XYZ", "status": "error"},
                }
            ),
        ),
    ]
    reports = Reports()
    provider = twelvedata("", ["AAPL", "XYZ"], reports)
    requests: list[dict] = []
    with http_server(scripted_http(responses, requests)) as url:
        provider.url = url
        # The rate limit makes the provider wait a minute: on a fake clock.
        fake = FakeTime()
        provider.clock = fake.clock
        provider_ticks = collect(provider, want=1, stop=fake)
    assert provider_ticks == [
        {"symbol": "AAPL", "price": 228.5, "timestamp": "2026-11-20T14:30:05.000Z", "source": "twelvedata"}
    ]
    assert any("rate limited (You have run out of API credits" in r for r in reports)
    assert any("HTTP 500" in r for r in reports)
    assert any("response is not JSON" in r for r in reports)
    assert any("empty response" in r for r in reports)
    assert any("XYZ: **symbol** not found: XYZ" in r for r in reports)


def test_twelvedata_rejected_key_is_fatal():
    responses = [(200, json.dumps({"code": 401, "message": "**apikey** parameter is incorrect", "status": "error"}))]
    with http_server(scripted_http(responses, [])) as url, pytest.raises(ProviderError, match="rejected the API key"):
        collect(twelvedata(url, ["AAPL"], Reports()), want=1)


def test_twelvedata_stays_within_the_plans_credits():
    # 20 symbols on a free plan (8 credits a minute): groups of 8, 8 and 4 symbols, and a pause of
    # 60 s * group size / 8 after each.
    provider = TwelveDataQuotesProvider(
        API_KEY, [f"S{n}" for n in range(20)], credits_per_minute=8, url="http://127.0.0.1:9"
    )
    calls: list[tuple[list[str], float]] = []
    clock = [0.0]  # the fake time of each poll

    def fake_poll(group):
        calls.append((group, clock[0]))
        return iter(())

    provider._poll = fake_poll
    fake = FakeTime()
    provider.clock = fake.clock
    for _ in provider.ticks(fake):
        clock[0] = fake.now
        if len(calls) >= 4:
            fake.set()
    assert [len(group) for group, _ in calls] == [8, 8, 4, 8]
    spent = [len(group) for group, _ in calls[:3]]
    elapsed = calls[3][1] - calls[0][1]
    assert sum(spent) / (elapsed / 60) <= 8.0 + 0.1


# --- replay -------------------------------------------------------------------------------------


def test_replay_csv_with_optional_columns_and_bad_rows(tmp_path: Path):
    path = tmp_path / "ticks.csv"
    path.write_text(
        "symbol,timestamp,price,volume,bid,ask\n"
        "AAPL,2026-11-20T14:30:00Z,228.5,100,228.49,228.51\n"
        "MSFT,2026-11-20T14:30:01Z,abc,,,\n"
        "MSFT,2026-11-20T14:30:02Z,415.3,,,\n"
    )
    reports = Reports()
    ticks = collect(ReplayProvider(path, report=reports), want=10)
    assert ticks == [
        {
            "symbol": "AAPL",
            "timestamp": "2026-11-20T14:30:00Z",
            "price": 228.5,
            "volume": 100,
            "bid": 228.49,
            "ask": 228.51,
        },
        {"symbol": "MSFT", "timestamp": "2026-11-20T14:30:02Z", "price": 415.3},
    ]
    assert reports == ["ticks.csv line 3: price 'abc' is not a number"]


def test_replay_json_lines_shifted_to_now_at_ten_times_speed(tmp_path: Path):
    path = tmp_path / "ticks.jsonl"
    path.write_text(
        json.dumps({"symbol": "AAPL", "timestamp": "2026-11-20T14:30:00Z", "price": 1}) + "\n"
        "{broken\n"
        "\n" + json.dumps({"symbol": "AAPL", "timestamp": "2026-11-20T14:30:02Z", "price": 2}) + "\n"
    )
    reports = Reports()
    now = datetime(2027, 1, 4, 9, 0, 0, tzinfo=UTC)
    provider = ReplayProvider(path, speed=10, shift_to_now=True, report=reports, now=lambda: now)
    started = time.monotonic()
    ticks = collect(provider, want=2)
    elapsed = time.monotonic() - started
    assert [t["timestamp"] for t in ticks] == ["2027-01-04T09:00:00.000Z", "2027-01-04T09:00:02.000Z"]
    assert 0.15 <= elapsed < 1.0  # two recorded seconds at ten times the pace
    assert reports == ["ticks.jsonl line 2: not JSON (Expecting property name enclosed in double quotes)"]


def test_replay_of_a_csv_without_the_needed_columns_is_refused(tmp_path: Path):
    path = tmp_path / "ticks.csv"
    path.write_text("sym,when,last\nAAPL,2026-11-20T14:30:00Z,1\n")
    with pytest.raises(ProviderError, match="lacks price, symbol, timestamp"):
        collect(ReplayProvider(path), want=1)
