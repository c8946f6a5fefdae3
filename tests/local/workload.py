"""The seeded workload of the end-to-end tests: rules, 10,000 simulator ticks over 12 symbols,
and a handful of bad records in the middle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tickwatch.fetch.writer import KinesisWriter, Record, Spool
from tickwatch.local.stack import LocalStack
from tickwatch.local.verify import RuleSpec, read_stream
from tickwatch_core.store.rule_store import RuleStore

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
BAD = {data for data, _ in BAD_RECORDS}


def rules_for(start_prices: dict[str, Decimal]) -> list[RuleSpec]:
    """Thresholds close to the start prices, so the walk crosses them many times; some with cooldowns."""
    rules = []
    for index, (symbol, price) in enumerate(list(start_prices.items())[:6]):
        offset = Decimal("0.002") * (1 + index % 3)
        cooldown = timedelta(seconds=15) if index % 2 else None
        rules.append(RuleSpec(symbol, "above", (price * (1 + offset)).quantize(Decimal("0.01")), cooldown))
        rules.append(RuleSpec(symbol, "below", (price * (1 - offset)).quantize(Decimal("0.01")), cooldown))
    return rules


def run_workload(
    stack: LocalStack,
    workdir: Path,
    *,
    symbols: dict[str, Decimal] = SYMBOLS,
    ticks: int = TICKS,
    rules: list[RuleSpec] | None = None,
    bad_records: list[tuple[bytes, str]] = BAD_RECORDS,
) -> tuple[list[RuleSpec], list[dict]]:
    """Add the rules (`rules_for` the symbols unless given), send the ticks as fast as the writer
    goes, with the bad records in the middle; returns (rules, the stream's records)."""
    names = stack.names()
    rules = rules_for(symbols) if rules is None else rules
    store = RuleStore(stack.session.client("dynamodb"), names["MarketTableName"])
    for rule in rules:
        store.add(rule.symbol, rule.direction, rule.threshold, cooldown=rule.cooldown)

    simulator = MarketSimulator(symbols=symbols, seed=20261120)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=150)
    kinesis = stack.session.client("kinesis")
    writer = KinesisWriter(kinesis, names["TickStreamName"], Spool(workdir / "spool.jsonl"))
    for n in range(ticks):
        tick = simulator.next_tick(start + n * SPACING)
        writer.add(Record(json.dumps(tick).encode(), tick["symbol"]))
        if n == ticks // 2 and bad_records:
            writer.close()
            kinesis.put_records(
                StreamName=names["TickStreamName"],
                Records=[{"Data": data, "PartitionKey": key} for data, key in bad_records],
            )
    writer.close()
    assert writer.stats.sent == ticks
    return rules, read_stream(kinesis, names["TickStreamName"])
