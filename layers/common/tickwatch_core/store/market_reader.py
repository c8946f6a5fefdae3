"""Reads of the market table for the query API: quotes, one-minute bars and alert history.

Nothing here scans: every quote is listed through the keys-only ByKind index and fetched with
BatchGetItem; a symbol's bars and alerts are one Query on its partition, in key order; all alerts
are the ByKind index's ALERT keys, newest first. Numbers stay Decimals from the wire to the answer.
Reads are eventually consistent (half the read units): an answer may miss a write of the last
second, which the next request sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tickwatch_core.domain.intervals import OhlcvBar, aggregate, interval_start
from tickwatch_core.domain.market import Quote
from tickwatch_core.store import items
from tickwatch_core.store.dynamodb import batch_get, keys_by_kind

_BAR_ATTRIBUTES = ("start", "open", "high", "low", "close", "volume", "trades")
_MINUTE = timedelta(minutes=1)
_INSTANT = timedelta(microseconds=1)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# How far back `bars_before` looks for a gappy history (weekends, holidays, a halted symbol).
MAX_LOOKBACK = timedelta(days=62)


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[dict[str, Any]]
    next_key: dict[str, str] | None  # where the next page starts (ExclusiveStartKey, plain strings)


@dataclass(frozen=True, slots=True)
class MarketReader:
    """Reads of one market table. `client` is a DynamoDB client (boto3 or a fake)."""

    client: Any
    table_name: str
    consistent: bool = False  # strongly consistent bar reads (the alerts function's)

    def quotes(self) -> list[Quote]:
        """The latest quote of every symbol, by symbol."""
        keys = keys_by_kind(self.client, self.table_name, "QUOTE")
        found = batch_get(self.client, self.table_name, keys, consistent=False)
        return sorted((items.quote_from_values(values) for values in found.values()), key=lambda q: q.symbol)

    def quote(self, symbol: str) -> Quote | None:
        response = self.client.get_item(TableName=self.table_name, Key=items.quote_key(symbol))
        item = response.get("Item")
        return None if item is None else items.quote_from_values(items.deserialize(item))

    def first_minute_bar(self, symbol: str, start: datetime, end: datetime) -> OhlcvBar | None:
        """The first stored one-minute bar with start <= bar.start < end: one Query of one item."""
        return next(self.iter_minute_bars(symbol, start, end, limit=1), None)

    def iter_minute_bars(
        self, symbol: str, start: datetime, end: datetime, *, limit: int | None = None
    ) -> Iterator[OhlcvBar]:
        """The stored one-minute bars with start <= bar.start < end, oldest first, read a Query page
        (of `limit` items, if given) at a time as the caller goes: stopping early reads no more."""
        last_minute = interval_start(end - _INSTANT, _MINUTE)  # the last minute that starts before `end`
        if last_minute < interval_start(start, _MINUTE):
            return
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": items.symbol_pk(symbol)},
                ":first": items.bar_key(symbol, start)["sk"],
                ":last": items.bar_key(symbol, last_minute)["sk"],
            },
            # Only what a bar answer needs (several of these names are DynamoDB reserved words).
            "ProjectionExpression": ", ".join(f"#{name}" for name in _BAR_ATTRIBUTES),
            "ExpressionAttributeNames": {f"#{name}": name for name in _BAR_ATTRIBUTES},
            **({"Limit": limit} if limit is not None else {}),
            **({"ConsistentRead": True} if self.consistent else {}),
        }
        while True:
            response = self.client.query(**arguments)
            for item in response.get("Items", []):
                yield _bar_from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def bars_before(self, symbol: str, length: timedelta, before: datetime, count: int) -> list[OhlcvBar]:
        """The last `count` bars of interval `length` that end by `before` (an interval start),
        oldest first. Reads back twice as far as `count` bars need, then four times further each
        round while a gappy history has too few, up to MAX_LOOKBACK."""
        bars: list[OhlcvBar] = []
        span, upper = min(2 * count * length, MAX_LOOKBACK), before
        while True:
            lower = max(interval_start(before - span, length), _EARLIEST)
            bars = aggregate(self.iter_minute_bars(symbol, lower, upper), length) + bars
            if len(bars) >= count or span >= MAX_LOOKBACK or lower <= _EARLIEST:
                return bars[-count:]
            span, upper = min(span * 4, MAX_LOOKBACK), lower

    def alerts(
        self, *, symbol: str | None, limit: int, before: datetime | None, start_key: dict[str, str] | None
    ) -> AlertPage:
        """Alert history newest first: `limit` items fired before `before`, from `start_key` on."""
        if symbol is not None:
            return self._alerts_of_symbol(symbol, limit, before, start_key)
        upper = items.key_timestamp(before) if before else "~"  # "~" sorts after every timestamp
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": items.KIND_INDEX,
            "KeyConditionExpression": "kind = :kind AND kind_key < :upper",
            "ExpressionAttributeValues": {":kind": {"S": "ALERT"}, ":upper": {"S": upper}},
            "ScanIndexForward": False,
            "Limit": limit + 1,  # one more than asked: says whether there is a next page
        }
        if start_key:
            arguments["ExclusiveStartKey"] = {name: {"S": value} for name, value in start_key.items()}
        response = self.client.query(**arguments)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        page, more = keys[:limit], len(keys) > limit
        found = batch_get(self.client, self.table_name, page, consistent=False)
        alerts = [found[items.key_of(key)] for key in page if items.key_of(key) in found]
        next_key = None
        if more:
            last = response["Items"][limit - 1]
            next_key = {name: last[name]["S"] for name in ("pk", "sk", "kind", "kind_key")}
        return AlertPage(alerts, next_key)

    def _alerts_of_symbol(
        self, symbol: str, limit: int, before: datetime | None, start_key: dict[str, str] | None
    ) -> AlertPage:
        upper = items.ALERT_PREFIX + (items.key_timestamp(before) if before else "~")
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lower AND :upper",
            "ExpressionAttributeValues": {
                ":pk": {"S": items.symbol_pk(symbol)},
                ":lower": {"S": items.ALERT_PREFIX},
                ":upper": {"S": upper},
            },
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if start_key:
            arguments["ExclusiveStartKey"] = {name: {"S": value} for name, value in start_key.items()}
        response = self.client.query(**arguments)
        found = response.get("Items", [])
        alerts = [items.deserialize(item) for item in found[:limit]]
        next_key = None
        if len(found) > limit:
            next_key = {name: found[limit - 1][name]["S"] for name in ("pk", "sk")}
        return AlertPage(alerts, next_key)


def _bar_from_item(item: dict[str, Any]) -> OhlcvBar:
    # Read by hand: the generic deserializer costs several times more for a day of bars.
    return OhlcvBar(
        start=items.parse_time(item["start"]["S"]),
        open=Decimal(item["open"]["N"]),
        high=Decimal(item["high"]["N"]),
        low=Decimal(item["low"]["N"]),
        close=Decimal(item["close"]["N"]),
        volume=int(item["volume"]["N"]),
        trades=int(item["trades"]["N"]),
    )
