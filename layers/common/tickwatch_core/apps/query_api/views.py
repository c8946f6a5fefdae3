"""Domain values as the query API's JSON objects, and its opaque page cursors."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from decimal import Context, Decimal
from typing import Any

from tickwatch_core.apps.query_api.errors import invalid
from tickwatch_core.domain.intervals import OhlcvBar
from tickwatch_core.domain.market import Quote
from tickwatch_core.domain.rules import (
    RuleKind,
    format_change,
    format_decimal,
    format_duration,
    format_percent,
    rule_status,
)
from tickwatch_core.store.items import StoredRule, parse_time

_PERCENT = Decimal("0.0001")
_EXACT = Context(prec=60)


def quote_view(quote: Quote) -> dict[str, Any]:
    change = _EXACT.subtract(quote.price, quote.day_open)
    change_pct = _EXACT.multiply(_EXACT.divide(change, quote.day_open), Decimal(100)).quantize(_PERCENT)
    return {
        "symbol": quote.symbol,
        "price": quote.price,
        "bid": quote.bid,
        "ask": quote.ask,
        "volume": quote.volume,
        "at": quote.at,
        "day": quote.day.isoformat(),
        "day_open": quote.day_open,
        "day_high": quote.day_high,
        "day_low": quote.day_low,
        "day_volume": quote.day_volume,
        "change": change,
        "change_pct": change_pct,
    }


def bar_view(bar: OhlcvBar) -> dict[str, Any]:
    return {
        "start": bar.start,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "trades": bar.trades,
    }


def destination_view(destination: Any) -> dict[str, Any]:
    """A destination as the API shows it: nothing secret (the target is masked where it must be)."""
    return {
        "name": destination.name,
        "kind": destination.kind.value,
        "target": destination.target,
        "symbols": list(destination.symbols),
        "limits": [limit.text for limit in destination.limits],
        "template": destination.template,
    }


def alert_view(values: dict[str, Any], deliveries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    within = values.get("within_seconds")
    return {
        "alert_id": values["alert_id"],
        "rule_id": values["rule_id"],
        "symbol": values["symbol"],
        **_level(
            RuleKind(values.get("rule_kind", RuleKind.PRICE.value)),
            values["threshold"],
            timedelta(seconds=int(within)) if within else None,
            values.get("average"),
        ),
        "direction": values["direction"],
        "reference": values.get("reference"),
        "price": values["price"],
        "fired_at": parse_time(values["fired_at"]),
        "published_at": parse_time(values["published_at"]),
        "deliveries": [
            {**delivery, "delivered_at": parse_time(delivery["delivered_at"]) if delivery["delivered_at"] else None}
            for delivery in deliveries or []
        ],
    }


def _level(kind: RuleKind, threshold: Decimal, window: timedelta | None, average: str | None) -> dict[str, Any]:
    """The rule's level in the field of its kind: a price rule's threshold, a day change (+3%), a
    move (2%) and its window (15m), or an average (sma:20@1m); the others are null."""
    level: dict[str, Any] = {"kind": kind.value, "threshold": None, "change": None, "move": None, "within": None}
    level["cross"] = average if kind is RuleKind.CROSS else None
    if kind is RuleKind.CHANGE:
        level["change"] = format_change(threshold)
    elif kind is RuleKind.MOVE:
        level["move"] = f"{format_decimal(threshold)}%"
        level["within"] = format_duration(window) if window else None
    elif kind is RuleKind.PRICE:
        level["threshold"] = threshold
    return level


def rule_view(stored: StoredRule, *, now: datetime) -> dict[str, Any]:
    rule, state = stored.rule, stored.state
    hours = rule.hours
    return {
        "rule_id": rule.rule_id,
        "symbol": rule.symbol,
        **_level(rule.kind, rule.threshold, rule.window, rule.average.text if rule.average else None),
        "direction": rule.direction.value,
        "cooldown_seconds": int(rule.cooldown.total_seconds()) if rule.cooldown else None,
        "rearm": format_percent(rule.rearm_margin) if rule.rearm_margin is not None else None,
        "once": rule.once,
        "expires_at": rule.expires_at,
        "hours": None
        if hours is None
        else {
            "start": f"{hours.start:%H:%M}",
            "end": f"{hours.end:%H:%M}",
            "tz": hours.zone,
            "weekdays": hours.weekdays_only,
            "holidays": hours.holidays,
        },
        "armed": state.armed,
        "status": rule_status(rule, state, now),
        "last_fired_at": state.last_fired_at,
        "created_at": stored.created_at,
    }


def encode_cursor(values: dict[str, Any]) -> str:
    """An opaque token: what the next page needs, not meant to be read by clients."""
    text = json.dumps(values, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str, kind: str) -> dict[str, Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise invalid("cursor", "cursor is not one this API gave out (pass the `next` of a page as it is)") from None
    if not isinstance(values, dict) or values.get("kind") != kind:
        raise invalid("cursor", f"cursor is not one of a {kind} page")
    return values
