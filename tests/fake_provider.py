"""A loopback stand-in for Twelve Data's `/price` and Finnhub's `/api/v1/quote`, answering in their
shapes (recorded from the real services): quotes, unknown symbols, a rejected key, and scripted
failures. Every request is recorded, so tests can count what reached the provider."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "sk-fake-provider-0123456789abcdef"  # any log line containing it fails the test
FINNHUB_TRADE_TIME = 1795185005  # 2026-11-20T14:30:05Z, the `t` of every Finnhub quote


@dataclass
class FakeQuoteProvider:
    """`prices` by symbol (text, as Twelve Data sends them); a symbol not there is unknown.
    `failures` are (status, body) answered instead of the next requests, first first."""

    prices: dict[str, str]
    api_key: str = API_KEY
    failures: list[tuple[int, str]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    @property
    def symbols_asked(self) -> list[str]:
        """Every symbol any request asked for, in order (Twelve Data's lists split)."""
        return [symbol for request in self.requests for symbol in request.get("symbol", "").split(",") if symbol]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        self.requests.append({"path": path, **query})
        if self.failures:
            status, body = self.failures.pop(0)
            return status, body
        if path == "/price":
            return self._twelvedata(query)
        if path == "/api/v1/quote":
            return self._finnhub(query)
        return 404, {"error": "not found"}

    def _twelvedata(self, query: dict[str, str]) -> tuple[int, Any]:
        if query.get("apikey") != self.api_key:
            return 200, {
                "code": 401,
                "message": "**apikey** parameter is incorrect or not specified.",
                "status": "error",
            }
        symbols = query.get("symbol", "").split(",")
        quotes = {
            symbol: {"price": self.prices[symbol]}
            if symbol in self.prices
            else {"code": 400, "message": f"**symbol** not found: {symbol}", "status": "error"}
            for symbol in symbols
        }
        return 200, quotes[symbols[0]] if len(symbols) == 1 else quotes

    def _finnhub(self, query: dict[str, str]) -> tuple[int, Any]:
        if query.get("token") != self.api_key:
            return 401, {"error": "Invalid API key"}
        symbol = query.get("symbol", "")
        if symbol not in self.prices:
            return 200, {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
        price = float(self.prices[symbol])
        return 200, {
            "c": price,
            "d": 1.2,
            "dp": 0.5,
            "h": price,
            "l": price,
            "o": price,
            "pc": price,
            "t": FINNHUB_TRADE_TIME,
        }


def _handler(provider: FakeQuoteProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, body = provider.answer(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
            text = body if isinstance(body, str) else json.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(provider: FakeQuoteProvider, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeQuoteProvider]:
    """`provider` on `host` (port: a free one) until the block ends; its `url` is set."""
    server = ThreadingHTTPServer((host, port), _handler(provider))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    provider.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
