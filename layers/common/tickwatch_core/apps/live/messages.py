"""What the dashboard receives: market-table changes as `update` messages, one per connection,
each under API Gateway's 32 KB frame limit (pure).

`{"type": "update", "quotes": [...], "bars": [...], "alerts": [...]}`: quotes as `GET /quotes`
gives them (the latest of each symbol in the batch), bars as one-minute `GET /bars` bars with their
symbol (the latest state of each minute touched), alerts as `GET /alerts` lists them. A connection
gets the entries of the symbols it follows; when they do not fit in one frame they are spread over
several, each a complete `update` on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tickwatch_core.apps.query_api.views import alert_view, bar_view, quote_view
from tickwatch_core.domain import exact_json
from tickwatch_core.domain.intervals import OhlcvBar
from tickwatch_core.store import items

MAX_MESSAGE_BYTES = 32 * 1024  # API Gateway's WebSocket frame size
_ENVELOPE = '{"type":"update","quotes":[],"bars":[],"alerts":[]}'
_LISTS = ("quotes", "bars", "alerts")


@dataclass(frozen=True, slots=True)
class TableChange:
    """One stream record of the market table: its sort key and new image (deserialized)."""

    sort_key: str
    new_image: Mapping[str, Any]
    inserted: bool


@dataclass
class MarketUpdates:
    """The changes of one batch worth sending: entries by symbol, already JSON text."""

    entries: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # symbol -> [(list, json)]
    quotes: int = 0
    bars: int = 0
    alerts: int = 0

    @property
    def symbols(self) -> list[str]:
        return sorted(self.entries)


def collect(changes: Iterable[TableChange]) -> MarketUpdates:
    """The latest quote per symbol, the latest state of each one-minute bar, every new alert.

    Records of one item arrive in the order they were written (one stream shard per item), so the
    last record of an item in the batch is its newest state.
    """
    quotes: dict[str, dict[str, Any]] = {}
    bars: dict[tuple[str, str], dict[str, Any]] = {}
    alerts: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        values = change.new_image
        if change.sort_key == items.QUOTE_SORT_KEY:
            quotes[values["symbol"]] = quote_view(items.quote_from_values(values))
        elif change.sort_key.startswith(items.BAR_PREFIX):
            bar = items.bar_from_values(values)
            view = bar_view(OhlcvBar.of_minute(bar))
            bars[(bar.symbol, change.sort_key)] = {"symbol": bar.symbol, "interval": "1m", **view}
        elif change.sort_key.startswith(items.ALERT_PREFIX) and change.inserted:
            alerts.setdefault(values["symbol"], []).append(alert_view(dict(values)))
    updates = MarketUpdates(quotes=len(quotes), bars=len(bars), alerts=sum(map(len, alerts.values())))
    for symbol, view in quotes.items():
        updates.entries.setdefault(symbol, []).append(("quotes", exact_json.dumps(view)))
    for (symbol, _), view in sorted(bars.items()):
        updates.entries.setdefault(symbol, []).append(("bars", exact_json.dumps(view)))
    for symbol, views in alerts.items():
        updates.entries.setdefault(symbol, []).extend(("alerts", exact_json.dumps(view)) for view in views)
    return updates


def messages_for(updates: MarketUpdates, symbols: Iterable[str], limit: int = MAX_MESSAGE_BYTES) -> list[bytes]:
    """The update messages of a connection following `symbols`: as few as fit under `limit` bytes."""
    messages: list[bytes] = []
    lists: dict[str, list[str]] = {name: [] for name in _LISTS}
    size = len(_ENVELOPE)
    for symbol in sorted(symbols):
        for name, text in updates.entries.get(symbol, ()):
            added = len(text.encode()) + (1 if lists[name] else 0)  # the comma before it
            if size + added > limit and any(lists.values()):
                messages.append(_message(lists))
                lists = {name: [] for name in _LISTS}
                size, added = len(_ENVELOPE), len(text.encode())
            if size + added > limit:
                raise ValueError(f"one {name} entry of {symbol} is {len(text)} bytes, over the {limit}-byte frame")
            lists[name].append(text)
            size += added
    if any(lists.values()):
        messages.append(_message(lists))
    return messages


def _message(lists: dict[str, list[str]]) -> bytes:
    body = ",".join(f'"{name}":[{",".join(lists[name])}]' for name in _LISTS)
    return ('{"type":"update",' + body + "}").encode()
