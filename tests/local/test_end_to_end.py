"""The whole pipeline on the local stack, checked against an independent recomputation.

10,000 seeded simulator ticks over 12 symbols and a handful of bad records go through the real
moto server, the emulated event source mappings and both functions. The expected raw data, bars,
quotes and alerts are recomputed here from what the stream holds, with code that shares nothing
with the pipeline's domain modules.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import kinesis_records
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tickwatch.fetch.writer import KinesisWriter, Record, Spool
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch_core.rule_store import RuleStore

SYMBOLS = dict(list(DEFAULT_SYMBOLS.items())[:12])
TICKS = 10_000
SPACING = timedelta(milliseconds=10)  # 10,000 ticks over 100 s: two or three one-minute bars each
BAD_RECORDS = [
    (b'{"symbol": "AAPL", "price": ', "AAPL"),
    (json.dumps({"symbol": "AAPL", "price": -1, "timestamp": "2026-11-20T14:30:00Z"}).encode(), "AAPL"),
    (json.dumps({"symbol": "msft", "price": 1, "timestamp": "2026-11-20T14:30:00Z"}).encode(), "msft"),
    (b"\xff\xfe\xfd", "TSLA"),
    (json.dumps({"symbol": "NVDA", "price": 1, "timestamp": "2026-11-20T14:30:00Z", "venue": "X"}).encode(), "NVDA"),
    (json.dumps({"symbol": "AMZN", "price": 197.5, "timestamp": "2026-11-20T14:30:00Z"}).encode(), "wrong-key"),
]


def rules_for(start_prices: dict[str, Decimal]) -> list[tuple[str, str, Decimal, timedelta | None]]:
    """Thresholds close to the start prices, so the walk crosses them many times; some with cooldowns."""
    rules = []
    for index, (symbol, price) in enumerate(list(start_prices.items())[:6]):
        offset = Decimal("0.002") * (1 + index % 3)
        cooldown = timedelta(seconds=15) if index % 2 else None
        rules.append((symbol, "above", (price * (1 + offset)).quantize(Decimal("0.01")), cooldown))
        rules.append((symbol, "below", (price * (1 - offset)).quantize(Decimal("0.01")), cooldown))
    return rules


def run_workload(stack: LocalStack, workdir: Path) -> tuple[list, list[dict]]:
    """Rules, 10,000 seeded ticks with bad records in the middle; returns (rules, stream records)."""
    names = stack.names()
    rules = rules_for(SYMBOLS)
    store = RuleStore(stack.session.client("dynamodb"), names["MarketTableName"])
    for symbol, direction, threshold, cooldown in rules:
        store.add(symbol, direction, threshold, cooldown=cooldown)

    simulator = MarketSimulator(symbols=SYMBOLS, seed=20261120)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=150)
    kinesis = stack.session.client("kinesis")
    writer = KinesisWriter(kinesis, names["TickStreamName"], Spool(workdir / "spool.jsonl"))
    for n in range(TICKS):
        tick = simulator.next_tick(start + n * SPACING)
        writer.add(Record(json.dumps(tick).encode(), tick["symbol"]))
        if n == TICKS // 2:
            writer.close()
            kinesis.put_records(
                StreamName=names["TickStreamName"],
                Records=[{"Data": data, "PartitionKey": key} for data, key in BAD_RECORDS],
            )
    writer.close()
    assert writer.stats.sent == TICKS
    return rules, read_stream(stack, names["TickStreamName"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the pipeline once; the tests below each check one aspect of the result."""
    workdir = tmp_path_factory.mktemp("local")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        rules, records = run_workload(stack, workdir)
        assert stack.wait_until_caught_up(timeout=90), "the pipeline did not catch up"
        stack.inbox.drain()
        yield stack, rules, records
    finally:
        stack.stop()


def read_stream(stack: LocalStack, stream: str) -> list[dict]:
    """Every record in the stream, read independently of the pipeline: (sequence, key, data)."""
    records = kinesis_records(stack.session.client("kinesis"), stream)
    return sorted(
        ({"sequence": r["SequenceNumber"], "key": r["PartitionKey"], "data": r["Data"]} for r in records),
        key=lambda r: int(r["sequence"]),
    )


def valid_ticks(records: list[dict]) -> list[dict]:
    bad = {data for data, _ in BAD_RECORDS}
    ticks = []
    for record in records:
        if record["data"] in bad:
            continue
        tick = json.loads(record["data"])
        tick["sequence"] = int(record["sequence"])
        tick["at"] = datetime.fromisoformat(tick["timestamp"].replace("Z", "+00:00"))
        tick["price"] = Decimal(str(tick["price"]))
        ticks.append(tick)
    return ticks


def test_every_valid_tick_is_in_raw_s3_once(run):
    stack, _, records = run
    lines = stack.raw_lines("raw/")
    expected = {record["sequence"] for record in records if record["data"] not in {d for d, _ in BAD_RECORDS}}
    assert len(expected) == TICKS
    assert sorted(line["sequence_number"] for line in lines) == sorted(expected)


def test_every_bad_record_is_quarantined(run):
    stack, _, records = run
    quarantined = {line["sequence_number"] for line in stack.raw_lines("quarantine/")}
    bad = {record["sequence"] for record in records if record["data"] in {d for d, _ in BAD_RECORDS}}
    assert len(bad) == len(BAD_RECORDS)
    assert quarantined == bad


def table_items(stack: LocalStack, prefix: str) -> list[dict]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    dynamodb = stack.session.client("dynamodb")
    found = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=stack.names()["MarketTableName"], ConsistentRead=True
    ):
        for item in page["Items"]:
            if item["sk"]["S"].startswith(prefix):
                found.append({name: deserializer.deserialize(value) for name, value in item.items()})
    return found


def test_every_bar_is_exact(run):
    stack, _, records = run
    expected: dict[tuple[str, str], dict] = {}
    for tick in valid_ticks(records):
        minute = tick["at"].replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")
        bar = expected.get((tick["symbol"], minute))
        order = (tick["at"], tick["sequence"])
        if bar is None:
            expected[(tick["symbol"], minute)] = bar = {
                "open": tick["price"],
                "high": tick["price"],
                "low": tick["price"],
                "close": tick["price"],
                "volume": 0,
                "trades": 0,
                "first": order,
                "last": order,
            }
        bar["high"], bar["low"] = max(bar["high"], tick["price"]), min(bar["low"], tick["price"])
        bar["volume"] += tick.get("volume", 0)
        bar["trades"] += 1
        if order < bar["first"]:
            bar["open"], bar["first"] = tick["price"], order
        if order >= bar["last"]:
            bar["close"], bar["last"] = tick["price"], order
    actual = {(item["symbol"], item["sk"].removeprefix("BAR#")): item for item in table_items(stack, "BAR#")}
    assert set(actual) == set(expected)
    for key, bar in expected.items():
        item = actual[key]
        assert (item["open"], item["high"], item["low"], item["close"]) == (
            bar["open"],
            bar["high"],
            bar["low"],
            bar["close"],
        ), key
        assert (item["volume"], item["trades"]) == (bar["volume"], bar["trades"]), key


def test_every_latest_quote_is_exact(run):
    stack, _, records = run
    by_symbol = defaultdict(list)
    for tick in valid_ticks(records):
        by_symbol[tick["symbol"]].append(tick)
    quotes = {item["symbol"]: item for item in table_items(stack, "QUOTE")}
    assert set(quotes) == set(SYMBOLS)
    for symbol, ticks in by_symbol.items():
        latest = max(ticks, key=lambda t: (t["at"], t["sequence"]))
        day = [t for t in ticks if t["at"].date() == latest["at"].date()]
        quote = quotes[symbol]
        assert (quote["price"], quote["bid"], quote["ask"], quote["volume"]) == (
            latest["price"],
            Decimal(str(latest["bid"])),
            Decimal(str(latest["ask"])),
            latest["volume"],
        )
        assert quote["at"] == latest["at"].isoformat(timespec="microseconds").replace("+00:00", "Z").replace(
            ".000000Z", "Z"
        )
        assert quote["day_open"] == min(day, key=lambda t: (t["at"], t["sequence"]))["price"]
        assert (quote["day_high"], quote["day_low"]) == (max(t["price"] for t in day), min(t["price"] for t in day))
        assert quote["day_volume"] == sum(t.get("volume", 0) for t in day)


def expected_alerts(ticks: list[dict], rules) -> list[tuple[str, str, str]]:
    """The documented semantics, tick by tick in stream order: (rule id, price, time)."""
    alerts = []
    for symbol, direction, threshold, cooldown in rules:
        armed, last_fired = True, None
        rule_id = f"{symbol}-{direction}-{threshold.normalize():f}"
        for tick in (t for t in ticks if t["symbol"] == symbol):
            price, at = tick["price"], tick["at"]
            on_side = price >= threshold if direction == "above" else price <= threshold
            if armed and on_side:
                alerts.append((rule_id, f"{price.normalize():f}", at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"))
                armed, last_fired = False, at
            elif not armed and not on_side and (cooldown is None or at >= last_fired + cooldown):
                armed = True
    return sorted(alerts)


def received_alert(alert) -> tuple[str, str, str]:
    """(rule id, price, time) of an alert as the inbox received it."""
    price = re.search(r"^Price: +(\S+)$", alert.body, re.M).group(1)
    moment = re.search(r"^Time: +(.+)$", alert.body, re.M).group(1)
    return alert.attributes["rule_id"], price, moment


def test_the_inbox_has_exactly_the_documented_crossings(run):
    stack, rules, records = run
    expected = expected_alerts(valid_ticks(records), rules)
    received = [received_alert(alert) for alert in stack.inbox.received]
    assert len(expected) >= 20, "the workload should cross the rules many times"
    assert sorted(received) == expected  # none missing, none duplicated
    assert len(list(Path(stack.options.outbox).glob("*.eml"))) == len(expected)
    assert {alert.attributes["symbol"] for alert in stack.inbox.received} <= set(SYMBOLS)


def test_nothing_went_to_the_failure_queues(run):
    stack, _, _ = run
    assert all(mapping.stats.sent_to_on_failure == 0 for mapping in stack.mappings)
    sqs = stack.session.client("sqs")
    for url in (stack.names()["ProcessorFailureQueueUrl"], stack.names()["AlertsFailureQueueUrl"]):
        count = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        assert count["ApproximateNumberOfMessages"] == "0"
