"""How domain values are stored in the market table (one table, documented in the README).

| item          | pk            | sk                                   | kind / kind_key (ByKind index)   |
|---------------|---------------|--------------------------------------|----------------------------------|
| latest quote  | SYMBOL#AAPL   | QUOTE                                | QUOTE / AAPL                     |
| 1-minute bar  | SYMBOL#AAPL   | BAR#2026-11-21T14:30Z                | (none)                           |
| alert rule    | SYMBOL#AAPL   | RULE#AAPL-above-200                  | RULE / AAPL#AAPL-above-200       |
| alert history | SYMBOL#AAPL   | ALERT#2026-11-21T14:30:05.120Z#<id>  | ALERT / 2026-11-21T14:30:05.120Z#<id> |
| credit ledger | PRODUCER      | CREDITS#MINUTE#… / CREDITS#DAY#… / ROTATION | (none): see credits.py |

The ByKind index projects keys only: rewriting a quote whose kind and kind_key stay the same costs
no index write, yet every quote, rule or alert can still be listed without a scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from tickwatch_core.domain.indicators import DECIMALS as INDICATOR_DECIMALS
from tickwatch_core.domain.market import Bar, Quote, Trade
from tickwatch_core.domain.rules import (
    BarSeries,
    Direction,
    Firing,
    MovingAverage,
    PriceWindow,
    Rule,
    RuleKind,
    RuleState,
    TradingHours,
)
from tickwatch_core.domain.ticks import format_timestamp

QUOTE_SORT_KEY = "QUOTE"
BAR_PREFIX = "BAR#"
RULE_PREFIX = "RULE#"
ALERT_PREFIX = "ALERT#"
TTL_ATTRIBUTE = "expires_at"
KIND_INDEX = "ByKind"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@cache
def _converters() -> tuple[Any, Any]:
    """boto3's serializer and deserializer, imported on first use: boto3 is about a quarter of a
    second of cold start, and a handler needs it only once it calls AWS."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


Key = dict[str, dict[str, str]]
AttributeMap = dict[str, dict[str, Any]]


def symbol_pk(symbol: str) -> str:
    return f"SYMBOL#{symbol}"


def quote_key(symbol: str) -> Key:
    return {"pk": {"S": symbol_pk(symbol)}, "sk": {"S": QUOTE_SORT_KEY}}


def bar_key(symbol: str, start: datetime) -> Key:
    return {"pk": {"S": symbol_pk(symbol)}, "sk": {"S": BAR_PREFIX + start.strftime("%Y-%m-%dT%H:%MZ")}}


def rule_key(symbol: str, rule_id: str) -> Key:
    return {"pk": {"S": symbol_pk(symbol)}, "sk": {"S": RULE_PREFIX + rule_id}}


def alert_key(firing: Firing) -> Key:
    return {"pk": {"S": symbol_pk(firing.rule.symbol)}, "sk": {"S": ALERT_PREFIX + _alert_sort_suffix(firing)}}


def key_of(item: AttributeMap) -> tuple[str, str]:
    """(pk, sk) of an attribute map, hashable for lookups."""
    return item["pk"]["S"], item["sk"]["S"]


def serialize(values: Mapping[str, Any]) -> AttributeMap:
    """Plain values -> DynamoDB attribute map; `None` values are left out."""
    serializer = _converters()[0]
    return {name: serializer.serialize(value) for name, value in values.items() if value is not None}


def deserialize(item: AttributeMap) -> dict[str, Any]:
    deserializer = _converters()[1]
    return {name: deserializer.deserialize(value) for name, value in item.items()}


# --- quotes -------------------------------------------------------------------------------------


def quote_to_item(quote: Quote, *, updated_at: datetime) -> AttributeMap:
    return serialize(
        {
            "pk": symbol_pk(quote.symbol),
            "sk": QUOTE_SORT_KEY,
            "kind": "QUOTE",
            "kind_key": quote.symbol,
            "symbol": quote.symbol,
            "price": quote.price,
            "at": format_timestamp(quote.at),
            "bid": quote.bid,
            "ask": quote.ask,
            "volume": quote.volume,
            "day": quote.day.isoformat(),
            "day_open": quote.day_open,
            "day_open_at": format_timestamp(quote.day_open_at),
            "day_high": quote.day_high,
            "day_low": quote.day_low,
            "day_volume": quote.day_volume,
            "window_high": quote.window_high,
            "window_low": quote.window_low,
            "window_trades": len(quote.trades),
            "trades": encode_trades(quote.trades),
            "applied_seq": quote.applied_seq,
            "at_seq": quote.at_seq or None,
            "revision": quote.revision,
            "updated_at": format_timestamp(updated_at),
        }
    )


def quote_from_values(values: Mapping[str, Any]) -> Quote:
    """Quote from a deserialized item (a GetItem result or a stream image)."""
    return Quote(
        symbol=values["symbol"],
        price=values["price"],
        at=parse_time(values["at"]),
        bid=values.get("bid"),
        ask=values.get("ask"),
        volume=_optional_int(values.get("volume")),
        day=date.fromisoformat(values["day"]),
        day_open=values["day_open"],
        day_open_at=parse_time(values["day_open_at"]),
        day_high=values["day_high"],
        day_low=values["day_low"],
        day_volume=int(values["day_volume"]),
        window_high=values["window_high"],
        window_low=values["window_low"],
        trades=decode_trades(values.get("trades", "")),
        applied_seq=values["applied_seq"],
        at_seq=values.get("at_seq", ""),
        revision=int(values.get("revision", 0)),
    )


def encode_trades(trades: tuple[Trade, ...]) -> str:
    """Compact text for the trades of one update: `<base epoch ms>|price@offset_ms;...`.

    About 12 bytes a trade, against over 60 as a DynamoDB list of maps; timestamps keep
    millisecond precision, which is what alerts report.
    """
    if not trades:
        return ""
    base = _epoch_ms(trades[0].at)
    body = ";".join(f"{trade.price}@{_epoch_ms(trade.at) - base}" for trade in trades)
    return f"{base}|{body}"


def decode_trades(text: str) -> tuple[Trade, ...]:
    if not text:
        return ()
    base_text, _, body = text.partition("|")
    base = _EPOCH + timedelta(milliseconds=int(base_text))
    trades = []
    for entry in body.split(";"):
        price, _, offset = entry.partition("@")
        trades.append(Trade(Decimal(price), base + timedelta(milliseconds=int(offset))))
    return tuple(trades)


# --- bars ---------------------------------------------------------------------------------------


def bar_to_item(bar: Bar, *, retention: timedelta) -> AttributeMap:
    return serialize(
        {
            **_plain(bar_key(bar.symbol, bar.start)),
            "symbol": bar.symbol,
            "start": format_timestamp(bar.start),
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "trades": bar.trades,
            "open_at": format_timestamp(bar.open_at),
            "close_at": format_timestamp(bar.close_at),
            "applied_seq": bar.applied_seq,
            "revision": bar.revision,
            TTL_ATTRIBUTE: int((bar.start + retention).timestamp()),
        }
    )


def bar_from_values(values: Mapping[str, Any]) -> Bar:
    return Bar(
        symbol=values["symbol"],
        start=parse_time(values["start"]),
        open=values["open"],
        high=values["high"],
        low=values["low"],
        close=values["close"],
        volume=int(values["volume"]),
        trades=int(values["trades"]),
        open_at=parse_time(values["open_at"]),
        close_at=parse_time(values["close_at"]),
        applied_seq=values["applied_seq"],
        revision=int(values.get("revision", 0)),
    )


# --- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRule:
    rule: Rule
    state: RuleState
    created_at: datetime | None = None


def rule_to_item(rule: Rule, *, created_at: datetime) -> AttributeMap:
    """A new rule item: armed, never fired. Options a rule does not use are not stored."""
    hours = rule.hours
    return serialize(
        {
            "pk": symbol_pk(rule.symbol),
            "sk": RULE_PREFIX + rule.rule_id,
            "kind": "RULE",
            "kind_key": f"{rule.symbol}#{rule.rule_id}",
            "rule_id": rule.rule_id,
            "symbol": rule.symbol,
            "direction": rule.direction.value,
            "threshold": rule.threshold,
            "cooldown_seconds": int(rule.cooldown.total_seconds()) if rule.cooldown else None,
            "rule_kind": rule.kind.value if rule.kind is not RuleKind.PRICE else None,
            "within_seconds": int(rule.window.total_seconds()) if rule.window else None,
            "average": rule.average.text if rule.average else None,
            "rearm_margin": rule.rearm_margin,
            "once": True if rule.once else None,
            "expires_at": format_timestamp(rule.expires_at) if rule.expires_at else None,
            "hours": None
            if hours is None
            else {
                "start": f"{hours.start:%H:%M}",
                "end": f"{hours.end:%H:%M}",
                "zone": hours.zone,
                "weekdays_only": hours.weekdays_only,
                **({"holidays": hours.holidays} if hours.holidays else {}),
            },
            "notify": list(rule.notify) or None,
            "template": rule.template,
            "created_at": format_timestamp(created_at),
            "armed": rule.starts_armed,
        }
    )


def rule_state_values(state: RuleState) -> dict[str, Any]:
    """The attributes of a rule item that the alerts function updates (None: not set)."""
    series = state.series
    return {
        "armed": state.armed,
        "state_seq": state.state_seq,
        "ended": state.ended,
        "last_fired_at": format_timestamp(state.last_fired_at) if state.last_fired_at else None,
        "reference_day": state.reference_day.isoformat() if state.reference_day else None,
        "reference_open": state.reference_open,
        "price_window": state.window.encode() if state.window is not None else None,
        "bars": None
        if series is None
        else {
            name: value
            for name, value in {
                "closes": " ".join(str(close) for close in series.closes),
                "ema": series.ema,
                "read_until": format_timestamp(series.read_until) if series.read_until else None,
            }.items()
            if value is not None
        },
    }


def _bar_series(values: Mapping[str, Any] | None) -> BarSeries | None:
    if values is None:
        return None
    closes = values.get("closes", "")
    return BarSeries(
        closes=tuple(Decimal(close) for close in closes.split()),
        ema=values.get("ema"),
        read_until=parse_time(values["read_until"]) if values.get("read_until") else None,
    )


def rule_from_values(values: Mapping[str, Any]) -> StoredRule:
    cooldown = values.get("cooldown_seconds")
    last_fired_at = values.get("last_fired_at")
    created_at = values.get("created_at")
    expires_at = values.get("expires_at")
    hours = values.get("hours")
    return StoredRule(
        rule=Rule(
            rule_id=values["rule_id"],
            symbol=values["symbol"],
            direction=Direction(values["direction"]),
            threshold=values["threshold"],
            cooldown=timedelta(seconds=int(cooldown)) if cooldown else None,
            rearm_margin=values.get("rearm_margin"),
            once=bool(values.get("once", False)),
            expires_at=parse_time(expires_at) if expires_at else None,
            hours=None
            if hours is None
            else TradingHours(
                start=time.fromisoformat(hours["start"]),
                end=time.fromisoformat(hours["end"]),
                zone=hours["zone"],
                weekdays_only=bool(hours.get("weekdays_only", False)),
                holidays=hours.get("holidays"),
            ),
            kind=RuleKind(values.get("rule_kind", RuleKind.PRICE.value)),
            window=timedelta(seconds=int(values["within_seconds"])) if values.get("within_seconds") else None,
            average=MovingAverage.parse(values["average"]) if values.get("average") else None,
            notify=tuple(values.get("notify") or ()),
            template=values.get("template"),
        ),
        state=RuleState(
            armed=bool(values.get("armed", True)),
            last_fired_at=parse_time(last_fired_at) if last_fired_at else None,
            state_seq=values.get("state_seq"),
            ended=bool(values.get("ended", False)),
            reference_day=date.fromisoformat(values["reference_day"]) if values.get("reference_day") else None,
            reference_open=values.get("reference_open"),
            window=PriceWindow.decode(values["price_window"]) if "price_window" in values else None,
            series=_bar_series(values.get("bars")),
        ),
        created_at=parse_time(created_at) if created_at else None,
    )


# --- alert history ------------------------------------------------------------------------------


def alert_to_item(
    firing: Firing, *, published_at: datetime, message_id: str | None, retention: timedelta
) -> AttributeMap:
    """An alert's history item. `message_id` is SNS's for an alert published to the topic; None for
    one handed to its rule's destinations (`notify`), whose deliveries are items of their own."""
    suffix = _alert_sort_suffix(firing)
    return serialize(
        {
            **_plain(alert_key(firing)),
            "kind": "ALERT",
            "kind_key": suffix,
            "alert_id": firing.alert_id,
            "rule_id": firing.rule.rule_id,
            "symbol": firing.rule.symbol,
            "direction": firing.rule.direction.value,
            "threshold": firing.rule.threshold,
            "rule_kind": firing.rule.kind.value if firing.rule.kind is not RuleKind.PRICE else None,
            "within_seconds": int(firing.rule.window.total_seconds()) if firing.rule.window else None,
            "average": firing.rule.average.text if firing.rule.average else None,
            "reference": _stored_reference(firing),
            "price": firing.price,
            "fired_at": format_timestamp(firing.at),
            "published_at": format_timestamp(published_at),
            "message_id": message_id,
            "notify": list(firing.rule.notify) or None,
            TTL_ATTRIBUTE: int((published_at + retention).timestamp()),
        }
    )


def _stored_reference(firing: Firing) -> Decimal | None:
    """What the level was measured from; a cross rule's average to the query API's indicator
    precision (an EMA carries 28 digits, which no reader wants)."""
    if firing.reference is None or firing.rule.kind is not RuleKind.CROSS:
        return firing.reference
    return firing.reference.quantize(Decimal(1).scaleb(-INDICATOR_DECIMALS)).normalize()


def _alert_sort_suffix(firing: Firing) -> str:
    return f"{key_timestamp(firing.at)}#{firing.alert_id}"


def key_timestamp(moment: datetime) -> str:
    """Fixed millisecond precision, so keys sort in time order (`...05Z` would sort after `...05.120Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- helpers ------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _epoch_ms(moment: datetime) -> int:
    # Integer arithmetic: float timestamps can round 0.123 s to 122 ms.
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _plain(key: Key) -> dict[str, str]:
    return {name: value["S"] for name, value in key.items()}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
