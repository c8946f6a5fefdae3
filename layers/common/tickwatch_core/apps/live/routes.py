"""The WebSocket API's routes, one handler for all (`$connect`, `$disconnect`, `subscribe`,
`unsubscribe`, `$default`), shared by the Lambda, the local emulator and the tests.

Frames from the client are JSON: `{"action": "subscribe", "symbols": ["AAPL", ...]}`. The answer to
a frame (API Gateway sends it back through the route's response) is `{"type": "subscribed",
"symbols": [...every symbol followed...]}` or `{"type": "error", "message", "field"?}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tickwatch_core.apps.live.connections import (
    MAX_SYMBOLS_PER_CONNECTION,
    ConnectionStore,
    TooManySymbols,
    UnknownConnection,
)
from tickwatch_core.apps.live.keys import ApiKeyCheck
from tickwatch_core.domain.rules import SYMBOL_PATTERN

ACTIONS = ("subscribe", "unsubscribe")
KEY_PARAMETER = "key"
MAX_FRAME = 32 * 1024  # API Gateway's WebSocket frame limit


class FrameError(ValueError):
    """A frame the client should fix; `field` names the part of it that is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    """What a route did, for the handler's log line and metrics."""

    route: str
    status: int
    connection_id: str
    symbols: int = 0  # symbols followed after it
    error: str | None = None


def _answer(status: int, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"statusCode": status}
    if payload is not None:
        response["body"] = json.dumps(payload, separators=(",", ":"))
    return response


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": "error", "message": message}
    if field is not None:
        payload["field"] = field
    return payload


def parse_frame(body: str | None) -> tuple[str, list[str]]:
    """(action, symbols) of a subscribe or unsubscribe frame, or FrameError."""
    if body is None or len(body.encode()) > MAX_FRAME:
        raise FrameError("send a JSON object of at most 32 KB")
    try:
        frame = json.loads(body)
    except ValueError:
        raise FrameError('the frame is not JSON; send {"action": "subscribe", "symbols": ["AAPL"]}') from None
    if not isinstance(frame, dict):
        raise FrameError("the frame must be a JSON object")
    action = frame.get("action")
    if action not in ACTIONS:
        raise FrameError(f"unknown action {action!r}; valid actions: {', '.join(ACTIONS)}", "action")
    unknown = sorted(set(frame) - {"action", "symbols"})
    if unknown:
        raise FrameError(f"unknown field {unknown[0]!r}; a frame has action and symbols", unknown[0])
    symbols = frame.get("symbols")
    if not isinstance(symbols, list) or not symbols:
        raise FrameError('symbols must be a non-empty list like ["AAPL", "MSFT"]', "symbols")
    if len(symbols) > MAX_SYMBOLS_PER_CONNECTION:
        raise FrameError(f"at most {MAX_SYMBOLS_PER_CONNECTION} symbols", "symbols")
    for index, symbol in enumerate(symbols):
        if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
            raise FrameError(
                f"symbols[{index}] = {symbol!r} is not a symbol (1-10 uppercase letters, digits, '.' or '-', "
                "starting with a letter)",
                f"symbols[{index}]",
            )
    return action, list(dict.fromkeys(symbols))


class LiveRoutes:
    """Routes a WebSocket API event to its route and answers as API Gateway expects."""

    def __init__(self, store: ConnectionStore, keys: ApiKeyCheck) -> None:
        self.store = store
        self.keys = keys

    def handle(self, event: dict[str, Any]) -> tuple[dict[str, Any], RouteOutcome]:
        context = event.get("requestContext") or {}
        route = context.get("routeKey", "$default")
        connection_id = context.get("connectionId", "")
        if route == "$connect":
            return self._connect(event, connection_id)
        if route == "$disconnect":
            self.store.forget(connection_id)
            return _answer(200), RouteOutcome(route, 200, connection_id)
        if route in ACTIONS or route == "$default":
            return self._frame(route, event.get("body"), connection_id)
        return _answer(400, _error(f"no route {route!r}")), RouteOutcome(route, 400, connection_id, error="route")

    def _connect(self, event: dict[str, Any], connection_id: str) -> tuple[dict[str, Any], RouteOutcome]:
        key = (event.get("queryStringParameters") or {}).get(KEY_PARAMETER)
        if not self.keys.valid(key):
            # A refused $connect ends the handshake with this status; the client sees no body.
            reason = "missing key" if not key else "wrong key"
            return _answer(403), RouteOutcome("$connect", 403, connection_id, error=reason)
        source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
        self.store.connect(connection_id, source_ip=source_ip)
        return _answer(200), RouteOutcome("$connect", 200, connection_id)

    def _frame(self, route: str, body: str | None, connection_id: str) -> tuple[dict[str, Any], RouteOutcome]:
        try:
            action, symbols = parse_frame(body)
        except FrameError as error:
            outcome = RouteOutcome(route, 400, connection_id, error=str(error))
            return _answer(400, _error(str(error), error.field)), outcome
        try:
            if action == "subscribe":
                followed = self.store.subscribe(connection_id, symbols)
            else:
                followed = self.store.unsubscribe(connection_id, symbols)
        except TooManySymbols as error:
            return _answer(400, _error(str(error), "symbols")), RouteOutcome(
                route, 400, connection_id, error=str(error)
            )
        except UnknownConnection:
            message = "this connection is not registered (it expired); reconnect"
            return _answer(410, _error(message)), RouteOutcome(route, 410, connection_id, error="unknown connection")
        payload = {"type": "subscribed", "symbols": sorted(followed)}
        return _answer(200, payload), RouteOutcome(route, 200, connection_id, symbols=len(followed))
