"""Check what the local pipeline produced against an independent recomputation from the stream.

Nothing here uses the pipeline's domain code (tickwatch_core.domain.market, .rules): expected raw data,
bars, quotes and alerts are recomputed from the records in the Kinesis stream with plain loops
that follow the README's definitions. The end-to-end tests, the fault proof and the soak use it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer


@dataclass(frozen=True, slots=True)
class RuleSpec:
    symbol: str
    direction: str  # "above" or "below"
    threshold: Decimal
    cooldown: timedelta | None = None

    @property
    def rule_id(self) -> str:
        return f"{self.symbol}-{self.direction}-{self.threshold.normalize():f}"


@dataclass
class Verification:
    """Problems found; empty when everything matched."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in a Kinesis stream (boto3 shape), shard by shard from the oldest."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            records += response["Records"]
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return records


def read_stream(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream: sequence number, partition key and data, oldest first."""
    records = [
        {"sequence": r["SequenceNumber"], "key": r["PartitionKey"], "data": r["Data"]}
        for r in stream_records(kinesis, stream)
    ]
    return sorted(records, key=lambda r: int(r["sequence"]))


def valid_ticks(records: Iterable[dict[str, Any]], bad: set[bytes]) -> list[dict[str, Any]]:
    """The stream's ticks other than the known bad records, with exact prices and parsed times."""
    ticks = []
    for record in records:
        if record["data"] in bad:
            continue
        tick = json.loads(record["data"])
        tick["sequence"] = int(record["sequence"])
        tick["sequence_number"] = record["sequence"]
        tick["at"] = datetime.fromisoformat(tick["timestamp"].replace("Z", "+00:00"))
        tick["price"] = Decimal(str(tick["price"]))
        ticks.append(tick)
    return ticks


def expected_bars(ticks: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """One-minute OHLCV by tick time; open is the earliest trade, close the latest (ties: stream order)."""
    bars: dict[tuple[str, str], dict[str, Any]] = {}
    for tick in ticks:
        minute = tick["at"].replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")
        order = (tick["at"], tick["sequence"])
        bar = bars.get((tick["symbol"], minute))
        if bar is None:
            bar = bars[(tick["symbol"], minute)] = {
                "open": tick["price"], "high": tick["price"], "low": tick["price"], "close": tick["price"],
                "volume": 0, "trades": 0, "first": order, "last": order,
            }  # fmt: skip
        bar["high"], bar["low"] = max(bar["high"], tick["price"]), min(bar["low"], tick["price"])
        bar["volume"] += tick.get("volume", 0)
        bar["trades"] += 1
        if order < bar["first"]:
            bar["open"], bar["first"] = tick["price"], order
        if order >= bar["last"]:
            bar["close"], bar["last"] = tick["price"], order
    return bars


def expected_alerts(ticks: list[dict[str, Any]], rules: Iterable[RuleSpec]) -> list[tuple[str, str, str]]:
    """The documented semantics, tick by tick in stream order: (rule id, price, time) of each alert."""
    alerts = []
    for rule in rules:
        armed, last_fired = True, None
        for tick in (t for t in ticks if t["symbol"] == rule.symbol):
            price, at = tick["price"], tick["at"]
            on_side = price >= rule.threshold if rule.direction == "above" else price <= rule.threshold
            if armed and on_side:
                alerts.append(
                    (rule.rule_id, f"{price.normalize():f}", at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC")
                )
                armed, last_fired = False, at
            elif not armed and not on_side and (rule.cooldown is None or at >= last_fired + rule.cooldown):
                armed = True
    return sorted(alerts)


def received_alert(body: str, attributes: dict[str, str]) -> tuple[str, str, str]:
    """(rule id, price, time) of an alert as a subscriber received it."""
    price = re.search(r"^Price: +(\S+)$", body, re.M)
    moment = re.search(r"^Time: +(.+)$", body, re.M)
    return attributes.get("rule_id", "?"), price.group(1) if price else "?", moment.group(1) if moment else "?"


def table_items(dynamodb: Any, table: str, sort_key_prefix: str) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    found = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ConsistentRead=True,
        FilterExpression="begins_with(sk, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": sort_key_prefix}},
    ):
        found += [{name: deserializer.deserialize(value) for name, value in item.items()} for item in page["Items"]]
    return found


def verify(
    stack: Any,
    records: list[dict[str, Any]],
    rules: list[RuleSpec],
    bad: set[bytes],
    *,
    duplicates_allowed: Iterable[str] = (),
    replayed_late: set[str] = frozenset(),
    unprocessed: set[str] = frozenset(),
) -> Verification:
    """Compare a local stack's raw data, quarantine, bars, quotes, alert history and inbox with
    what the stream's records should give.

    `replayed_late`: sequence numbers of ticks that reached the items only through `dlq replay`.
    They count everywhere except in alerts, which by design (README) are not evaluated for them.
    `unprocessed`: sequence numbers of records still in a failure queue: expected nowhere yet."""
    result = Verification()
    names = stack.names()
    ticks = valid_ticks([r for r in records if r["sequence"] not in unprocessed], bad)
    dynamodb = stack.session.client("dynamodb")

    raw = [line["sequence_number"] for line in stack.raw_lines("raw/")]
    expected_raw = {t["sequence_number"] for t in ticks}
    result.facts.update(ticks=len(ticks), raw_lines=len(raw), raw_distinct=len(set(raw)))
    result.check(
        set(raw) == expected_raw,
        f"raw data: {len(expected_raw - set(raw))} ticks missing, {len(set(raw) - expected_raw)} unexpected",
    )
    quarantined = {line["sequence_number"] for line in stack.raw_lines("quarantine/")}
    expected_bad = {r["sequence"] for r in records if r["data"] in bad}
    result.check(
        quarantined == expected_bad,
        f"quarantine: {len(expected_bad - quarantined)} bad records missing, "
        f"{len(quarantined - expected_bad)} unexpected",
    )

    bars = expected_bars(ticks)
    actual_bars = {
        (item["symbol"], item["sk"].removeprefix("BAR#")): item
        for item in table_items(dynamodb, names["MarketTableName"], "BAR#")
    }
    result.facts["bars"] = len(actual_bars)
    result.check(
        set(actual_bars) == set(bars),
        f"bars: {len(set(bars) - set(actual_bars))} missing, {len(set(actual_bars) - set(bars))} unexpected",
    )
    wrong_bars = [
        key
        for key, bar in bars.items()
        if key in actual_bars
        and (
            (actual_bars[key]["open"], actual_bars[key]["high"], actual_bars[key]["low"], actual_bars[key]["close"])
            != (bar["open"], bar["high"], bar["low"], bar["close"])
            or (actual_bars[key]["volume"], actual_bars[key]["trades"]) != (bar["volume"], bar["trades"])
        )
    ]
    result.check(not wrong_bars, f"bars: {len(wrong_bars)} with wrong OHLCV, like {wrong_bars[:3]}")

    by_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tick in ticks:
        by_symbol[tick["symbol"]].append(tick)
    quotes = {item["symbol"]: item for item in table_items(dynamodb, names["MarketTableName"], "QUOTE")}
    result.facts["quotes"] = len(quotes)
    for symbol, own in by_symbol.items():
        quote = quotes.get(symbol)
        if quote is None:
            result.problems.append(f"quote: {symbol} missing")
            continue
        latest = max(own, key=lambda t: (t["at"], t["sequence"]))
        day = [t for t in own if t["at"].date() == latest["at"].date()]
        expected = (
            latest["price"],
            min(day, key=lambda t: (t["at"], t["sequence"]))["price"],
            max(t["price"] for t in day),
            min(t["price"] for t in day),
            sum(t.get("volume", 0) for t in day),
        )
        actual = (quote["price"], quote["day_open"], quote["day_high"], quote["day_low"], quote["day_volume"])
        result.check(actual == expected, f"quote {symbol}: {actual} instead of {expected}")

    alerts = expected_alerts([t for t in ticks if t["sequence_number"] not in replayed_late], rules)
    history = Counter(
        (item["rule_id"], f"{item['price'].normalize():f}", item["fired_at"])
        for item in table_items(dynamodb, names["MarketTableName"], "ALERT#")
    )
    result.facts.update(alerts=len(alerts), alert_history=sum(history.values()))
    result.check(
        sum(history.values()) == len(alerts) and all(n == 1 for n in history.values()),
        f"alert history: {sum(history.values())} items for {len(alerts)} alerts",
    )
    received = Counter(received_alert(alert.body, alert.attributes) for alert in stack.inbox.received)
    result.facts["inbox"] = sum(received.values())
    result.check(
        set(received) == set(alerts),
        f"inbox: {len(set(alerts) - set(received))} alerts missing, {len(set(received) - set(alerts))} unexpected",
    )
    # An alert may arrive once more for each time SNS accepted it and its invocation then ended
    # before writing its history item (FaultInjector.interrupted_alert_writes), and no more.
    allowed = Counter(duplicates_allowed)
    deliveries = Counter(alert.attributes.get("alert_id") for alert in stack.inbox.received)
    beyond = {alert_id: n - 1 - allowed[alert_id] for alert_id, n in deliveries.items() if n - 1 > allowed[alert_id]}
    result.facts["inbox_duplicates"] = sum(n - 1 for n in received.values())
    result.check(
        not beyond,
        f"inbox: {sum(beyond.values())} deliveries of {len(beyond)} alerts beyond the documented window",
    )
    return result
