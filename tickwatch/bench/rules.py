"""Part 10 of `make bench`: what each rule kind adds to the alerts function.

Every kind with a setting a user would type (a price, a day change, a move within 15 minutes and
within 4 hours, the largest window, and SMA and EMA crosses up to SMA 200, the largest period) is
evaluated by `rules.apply_update`, the alerts function's own decision, on the simulator's walk:
added at a session's open, warmed up for 4 hours, then timed on 20 minutes of one-second quote
updates of 10 trades each. A cross rule is given its bars as the alerts function gives them
(`AlertDispatcher.bars_to_read`, on an in-memory table of stored one-minute bars, the walk's
included): on its first evaluation the bars before it (the seeding, with the read units it costs),
then one strongly consistent Query each time an update reaches a later bar interval. Alongside:
how many updates change the rule's state (each is a conditional UpdateItem), the rule item's size
(write units per state write, read units of the consistent rules Query that loads it every
invocation), the time to decode the item and encode its state, and a cross rule's bar Queries (how
often, their read units, their CPU).

Priced per rule and month, for a symbol whose alerts invocations come once a second (one quote
update each) during NYSE hours (6.5 h, 21 days) and around the clock (crypto).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeDynamoDB
from tickwatch.bench.measure import FIRST_SEQUENCE, item_bytes
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tickwatch.template import Template
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import AlertsSettings
from tickwatch_core.domain.market import Bar, Trade
from tickwatch_core.domain.rules import (
    ClosedBar,
    Direction,
    MovingAverage,
    QuoteUpdate,
    Rule,
    RuleKind,
    RuleState,
    TradingHours,
    apply_update,
    make_rule_id,
)
from tickwatch_core.domain.sequence import sortable_sequence
from tickwatch_core.pipeline.alerts import AlertDispatcher
from tickwatch_core.store import items
from tickwatch_core.store.items import StoredRule

SYMBOL = "AAPL"
START_PRICE = DEFAULT_SYMBOLS[SYMBOL]
TABLE = "tickwatch-bench-rules"
# The session the rules are added at: a Wednesday's open in New York (14:30 UTC in November).
SESSION_OPEN = datetime(2026, 11, 18, 14, 30, tzinfo=UTC)
NYSE_HOURS = TradingHours(clock_time(9, 30), clock_time(16, 0), "America/New_York", weekdays_only=True, holidays="NYSE")
TRADES_PER_SECOND = 10  # in the measured span: a one-second quote update carries 10 trades
WARM_UP_TRADE_EVERY = timedelta(seconds=1)  # the warm-up's trades (a state keeps minutes and bars, not trades)
WARM_UP_UPDATE_TRADES = 10
CREATED_AT = SESSION_OPEN - timedelta(hours=12)
CODEC_CALLS = 50  # decodes and encodes timed per run
# The measured span's bar Queries go to a table holding only the walk's bars from this long before
# it (more than any case's interval): the in-memory table sorts a partition's keys on every Query,
# which DynamoDB's sort key does not, and 8 days of bars would make that sort the figure.
RECENT_BARS = timedelta(hours=1)
SETTINGS = AlertsSettings(
    table_name=TABLE,
    alert_topic_arn="arn:aws:sns:us-east-1:123456789012:tickwatch-bench-alerts",
    alert_history_retention=timedelta(days=30),
    delivery_table_name="tickwatch-bench-deliveries",
)

# Invocations of the alerts function a month for one symbol, one a second while it trades.
SCHEDULES = {
    "market hours (6.5 h × 21 days)": round(6.5 * 3600 * 21),
    "24×7 (730 h)": cost.HOURS_PER_MONTH * 3600,
}


@dataclass(frozen=True)
class Case:
    label: str  # as `tickwatch rules add` takes it
    rule: Rule


def _rule(direction: Direction, threshold: Decimal, kind: RuleKind = RuleKind.PRICE, **level: Any) -> Rule:
    rule_id = make_rule_id(SYMBOL, direction, threshold, kind, **level)
    return Rule(rule_id, SYMBOL, direction, threshold, kind=kind, **level)


CASES = [
    Case("price `--above 230.80`", _rule(Direction.ABOVE, Decimal("230.80"))),
    Case("change `--change-above 3%`", _rule(Direction.ABOVE, Decimal(3), RuleKind.CHANGE)),
    Case(
        "move `--move-down 2% --within 15m`",
        _rule(Direction.BELOW, Decimal(2), RuleKind.MOVE, window=timedelta(minutes=15)),
    ),
    Case(
        "move `--move-down 2% --within 4h`",
        _rule(Direction.BELOW, Decimal(2), RuleKind.MOVE, window=timedelta(hours=4)),
    ),
    Case(
        "cross `--cross-above sma:20@1m`",
        _rule(Direction.ABOVE, Decimal(0), RuleKind.CROSS, average=MovingAverage.parse("sma:20@1m")),
    ),
    Case(
        "cross `--cross-below ema:50@5m`",
        _rule(Direction.BELOW, Decimal(0), RuleKind.CROSS, average=MovingAverage.parse("ema:50@5m")),
    ),
    Case(
        "cross `--cross-above sma:200@1m`",
        _rule(Direction.ABOVE, Decimal(0), RuleKind.CROSS, average=MovingAverage.parse("sma:200@1m")),
    ),
]


@dataclass
class BarReads:
    """Stored bars a cross rule read: its strongly consistent Queries, the bar items they
    returned and their read units."""

    queries: int = 0
    bars: int = 0
    read_units: float = 0.0


@dataclass
class KindFigures:
    label: str
    rule_id: str
    kind: str
    warm_state: str  # what the state holds once warm
    seconds_per_trade: list[float] = field(default_factory=list)  # one per run
    decode_seconds: list[float] = field(default_factory=list)  # the item, loaded every invocation
    encode_seconds: list[float] = field(default_factory=list)  # the state's values, per write
    bar_read_seconds: list[float] = field(default_factory=list)  # `bars_to_read`, per invocation
    updates: int = 0
    trades: int = 0
    writes: int = 0
    bar_writes: int = 0  # writes of a cross rule's bars alone: no firing, no re-arm
    firings: int = 0
    item_bytes: list[int] = field(default_factory=list)  # the item after each write (or the warm one)
    bar_reads: BarReads = field(default_factory=BarReads)  # in the measured span, cross rules only
    seeding: dict[str, BarReads] = field(default_factory=dict)  # by calendar, cross rules only


@dataclass
class Measured:
    history_days: int  # of stored bars before the session's open
    warm_up_minutes: int
    figures: list[KindFigures]


@dataclass
class _Evaluation:
    """One case's measured span as the alerts function goes through it: per update, the rule as
    loaded (for `bars_to_read`), its trades' times and the bars given to `apply_update`."""

    stored: list[StoredRule] = field(default_factory=list)
    times: list[list[datetime]] = field(default_factory=list)
    bars: list[tuple[ClosedBar, ...]] = field(default_factory=list)


def measure_rule_kinds(history_days: int, warm_up_minutes: int, measured_minutes: int, runs: int) -> Measured:
    """Each case warmed up on `warm_up_minutes` of the walk, then timed `runs` times (round-robin,
    so that noise falls on every kind alike) on `measured_minutes` of one-second updates."""
    retention = timedelta(days=int(Template.load().parameter("BarRetentionDays")))
    sequence = _sequence_keys()
    simulator = MarketSimulator(symbols={SYMBOL: START_PRICE}, seed=2026)
    warm_up_end = SESSION_OPEN + timedelta(minutes=warm_up_minutes)
    day_opens: dict[date, Decimal] = {}
    minutes: dict[datetime, _Minute] = {}
    warm_up = _updates(
        simulator,
        (SESSION_OPEN, warm_up_end),
        (WARM_UP_TRADE_EVERY, WARM_UP_UPDATE_TRADES),
        sequence,
        day_opens,
        minutes,
    )
    measured_end = warm_up_end + timedelta(minutes=measured_minutes)
    step = timedelta(seconds=1) / TRADES_PER_SECOND
    measured = _updates(simulator, (warm_up_end, measured_end), (step, TRADES_PER_SECOND), sequence, day_opens, minutes)

    # The stored one-minute bars: the history, then the walk's own, as the processor writes them.
    stores = _stored_bars(history_days, retention)
    recent, recent_untimed = _CountingTable(), FakeDynamoDB()
    for bar in _walk_bars(minutes):
        item = items.bar_to_item(bar, retention=retention)
        for table in stores.values():
            table.put_item(TableName=TABLE, Item=item)
        if bar.start >= warm_up_end - RECENT_BARS:
            recent.put_item(TableName=TABLE, Item=item)
            recent_untimed.put_item(TableName=TABLE, Item=item)

    figures, warm, evaluations = [], [], []
    for case in CASES:
        state = RuleState(armed=case.rule.starts_armed)
        entry = KindFigures(case.label, case.rule.rule_id, case.rule.kind.value, "")
        for index, update in enumerate(warm_up):
            if index == 0 and case.rule.kind is RuleKind.CROSS:
                bars = _seed(case.rule, state, update, stores, entry)
            else:
                bars = _bars_given(_alerts(stores["24×7"]), case.rule, state, update)
            state, _ = apply_update(case.rule, state, update, bars)
        entry.warm_state = _describe_state(case.rule, state)
        evaluations.append(_count_writes(case.rule, state, measured, recent, entry))
        figures.append(entry)
        warm.append(state)

    alerts = _alerts(recent_untimed)
    for _ in range(runs):
        for case, state, entry, evaluation in zip(CASES, warm, figures, evaluations, strict=True):
            started = time.perf_counter()
            for update, bars in zip(measured, evaluation.bars, strict=True):
                state, _ = apply_update(case.rule, state, update, bars)
            entry.seconds_per_trade.append((time.perf_counter() - started) / entry.trades)
            started = time.perf_counter()
            for stored, times in zip(evaluation.stored, evaluation.times, strict=True):
                alerts.bars_to_read(stored, times)
            entry.bar_read_seconds.append((time.perf_counter() - started) / entry.updates)
            _time_codec(case.rule, state, entry)
    return Measured(history_days, warm_up_minutes, figures)


def _count_writes(
    rule: Rule, state: RuleState, updates: list[QuoteUpdate], table: _CountingTable, entry: KindFigures
) -> _Evaluation:
    """Updates that change the state (one UpdateItem each, one update per invocation), the size of
    the item each of them writes, and a cross rule's bar Queries; untimed."""
    entry.updates, entry.trades = len(updates), sum(len(update.trades) for update in updates)
    evaluation, alerts = _Evaluation(), _alerts(table)
    table.reads = entry.bar_reads
    for update in updates:
        bars = _bars_given(alerts, rule, state, update)
        evaluation.stored.append(StoredRule(rule, state))
        evaluation.times.append([trade.at for trade in update.trades])
        evaluation.bars.append(bars)
        after, firings = apply_update(rule, state, update, bars)
        entry.firings += len(firings)
        if after is not state:
            entry.writes += 1
            entry.bar_writes += bool(bars) and not firings and after.armed == state.armed
            entry.item_bytes.append(item_bytes(_item(rule, after)))
        state = after
    if not entry.item_bytes:
        entry.item_bytes.append(item_bytes(_item(rule, state)))
    stored = items.rule_from_values(items.deserialize(_item(rule, state)))
    if stored.rule != rule or stored.state != state:
        raise AssertionError(f"rule kinds, {rule.rule_id}: the item does not give back the rule and its state")
    return evaluation


def _time_codec(rule: Rule, state: RuleState, entry: KindFigures) -> None:
    """Seconds to load the item (every invocation: `load_rules`) and to encode the state's values
    (every write: `AlertDispatcher._write_rule_state`)."""
    item = _item(rule, state)
    started = time.perf_counter()
    for _ in range(CODEC_CALLS):
        items.rule_from_values(items.deserialize(item))
    entry.decode_seconds.append((time.perf_counter() - started) / CODEC_CALLS)
    started = time.perf_counter()
    for _ in range(CODEC_CALLS):
        items.serialize({f":{name}": value for name, value in items.rule_state_values(state).items()})
    entry.encode_seconds.append((time.perf_counter() - started) / CODEC_CALLS)


def _item(rule: Rule, state: RuleState) -> dict[str, Any]:
    """The rule item as it stands after a state write: the item `RuleStore.add` put, with the
    attributes the alerts function sets."""
    return {**items.rule_to_item(rule, created_at=CREATED_AT), **items.serialize(items.rule_state_values(state))}


def _describe_state(rule: Rule, state: RuleState) -> str:
    if rule.kind is RuleKind.MOVE:
        assert state.window is not None
        return f"{len(state.window.minutes)} minutes"
    if rule.kind is RuleKind.CROSS:
        assert state.series is not None
        held = "an EMA" if state.series.ema is not None else f"{len(state.series.closes)} closes"
        return f"{held}, read_until"
    if rule.kind is RuleKind.CHANGE:
        return "the day's open"
    return "armed or not"


# --- cross rules: the stored bars --------------------------------------------------------------------


class _CountingTable(FakeDynamoDB):
    """The in-memory table, counting the read units of each Query as DynamoDB bills them: the whole
    items' bytes (a projection does not reduce them), per 4 KB, half for an eventually consistent read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = BarReads()

    def query(self, **arguments: Any) -> dict[str, Any]:
        response = super().query(**arguments)
        share = 1.0 if arguments.get("ConsistentRead") else 0.5
        size = sum(item_bytes(item) for item in response["Items"])
        self.reads.queries += 1
        self.reads.bars += len(response["Items"])
        self.reads.read_units += share * max(1, math.ceil(size / 4096))
        return response


def _alerts(table: FakeDynamoDB) -> AlertDispatcher:
    return AlertDispatcher(SETTINGS, AwsClients(dynamodb=table))


def _bars_given(alerts: AlertDispatcher, rule: Rule, state: RuleState, update: QuoteUpdate) -> tuple[ClosedBar, ...]:
    """The bars the alerts function gives `apply_update` for an invocation of this one update."""
    return alerts.bars_to_read(StoredRule(rule, state), [trade.at for trade in update.trades])


def _seed(
    rule: Rule, state: RuleState, first: QuoteUpdate, stores: dict[str, _CountingTable], entry: KindFigures
) -> tuple[ClosedBar, ...]:
    """A new cross rule's first evaluation, whose first trade is the session's open: the bars it
    reads from each calendar's store (the read counted); the 24×7 ones are the ones it is given."""
    given: tuple[ClosedBar, ...] = ()
    for calendar, store in stores.items():
        store.reads = entry.seeding[calendar] = BarReads()
        bars = _bars_given(_alerts(store), rule, state, first)
        store.reads = BarReads()  # the warm-up's reads are not the seeding's
        if calendar == "24×7":
            given = bars
    return given


@dataclass
class _Minute:
    """The trades of one minute of the walk, as the processor folds them into a bar."""

    first_at: datetime
    last_at: datetime
    applied_seq: str  # the last update's, as a bar keeps the last record it applied
    prices: list[Decimal] = field(default_factory=list)
    volume: int = 0


def _stored_bars(days: int, retention: timedelta) -> dict[str, _CountingTable]:
    """The one-minute bar items of the `days` before the session's open, as the processor writes
    them: every minute (24×7), and only the minutes of NYSE sessions (market hours). Each minute's
    prices come from a walk of one trade a minute, its trade count and volume as at 10 trades a
    second; only the items' sizes and closes matter here."""
    simulator = MarketSimulator(symbols={SYMBOL: START_PRICE}, seed=17)
    stores = {"24×7": _CountingTable(), "market hours": _CountingTable()}
    minute, sequence, previous = SESSION_OPEN - timedelta(days=days), FIRST_SEQUENCE, START_PRICE
    trades = 60 * TRADES_PER_SECOND
    while minute < SESSION_OPEN:
        tick = simulator.tick_for(SYMBOL, minute)
        close = Decimal(repr(tick["price"]))
        sequence += trades
        bar = Bar(
            symbol=SYMBOL,
            start=minute,
            open=previous,
            high=max(previous, close),
            low=min(previous, close),
            close=close,
            volume=tick["volume"] * trades,
            trades=trades,
            open_at=minute + timedelta(milliseconds=31),
            close_at=minute + timedelta(seconds=59, milliseconds=947),
            applied_seq=sortable_sequence(str(sequence)),
        )
        item = items.bar_to_item(bar, retention=retention)
        stores["24×7"].put_item(TableName=TABLE, Item=item)
        if NYSE_HOURS.contains(minute):
            stores["market hours"].put_item(TableName=TABLE, Item=item)
        minute, previous = minute + timedelta(minutes=1), close
    return stores


def _walk_bars(minutes: dict[datetime, _Minute]) -> list[Bar]:
    """The walk's one-minute bars, from its trades."""
    bars = []
    for start, minute in sorted(minutes.items()):
        prices = minute.prices
        bars.append(
            Bar(
                symbol=SYMBOL,
                start=start,
                open=prices[0],
                high=max(prices),
                low=min(prices),
                close=prices[-1],
                volume=minute.volume,
                trades=len(prices),
                open_at=minute.first_at,
                close_at=minute.last_at,
                applied_seq=minute.applied_seq,
            )
        )
    return bars


# --- the walk ------------------------------------------------------------------------------------


def _sequence_keys() -> Iterator[str]:
    """Quote updates' keys, rising as a shard's sequence numbers do."""
    number = FIRST_SEQUENCE
    while True:
        number += 1000
        yield sortable_sequence(str(number))


def _updates(
    simulator: MarketSimulator,
    span: tuple[datetime, datetime],
    pace: tuple[timedelta, int],
    sequence: Iterator[str],
    day_opens: dict[date, Decimal],
    minutes: dict[datetime, _Minute],
) -> list[QuoteUpdate]:
    """The simulator's trades over `span`, one each `pace[0]`, as quote updates of `pace[1]`
    trades; a quote's day open is the walk's first trade of the day (kept in `day_opens`), and each
    minute's trades go to `minutes`, for its bar."""
    step, per_update = pace
    updates: list[QuoteUpdate] = []
    moment, end = span
    while moment < end:
        trades, update_seq = [], next(sequence)
        for _ in range(per_update):
            tick = simulator.tick_for(SYMBOL, moment)
            trade = Trade(Decimal(repr(tick["price"])), moment)
            trades.append(trade)
            minute = minutes.setdefault(moment.replace(second=0, microsecond=0), _Minute(moment, moment, update_seq))
            minute.prices.append(trade.price)
            minute.volume += tick["volume"]
            minute.last_at, minute.applied_seq = moment, update_seq
            moment += step
        day = trades[0].at.date()
        day_open = day_opens.setdefault(day, trades[0].price)
        updates.append(QuoteUpdate(SYMBOL, update_seq, tuple(trades), day=day, day_open=day_open))
    return updates


# --- the report ----------------------------------------------------------------------------------


def report(measured: Measured, prices: dict[str, Any], memory_gb: float, architecture: str) -> dict[str, Any]:
    """Per kind: the measurements, and a month of one rule on a symbol invoked once a second."""
    figures = measured.figures
    dynamodb = prices["dynamodb"]
    gb_second = prices["lambda"][f"{architecture.replace('-', '_')}_gb_second"]
    rows = []
    for entry in figures:
        per_trade = statistics.median(entry.seconds_per_trade)
        trades_per_update = entry.trades / entry.updates
        write_share = entry.writes / entry.updates
        write_units = statistics.mean(math.ceil(size / 1024) for size in entry.item_bytes)
        warm_bytes = round(statistics.median(entry.item_bytes))
        # The consistent rules Query of every invocation reads this item too: its share of 4 KB units.
        read_units = warm_bytes / 4096
        bars = entry.bar_reads
        query_share = bars.queries / entry.updates
        bar_read_units = bars.read_units / entry.updates
        decode, encode = statistics.median(entry.decode_seconds), statistics.median(entry.encode_seconds)
        bar_read = statistics.median(entry.bar_read_seconds) if entry.bar_read_seconds else 0.0
        decision = per_trade * trades_per_update
        codec = decode + write_share * encode
        # State writes go 16 at a time (alerts.py): a write's share of a round of AWS latency. A bar
        # Query is a whole round: a symbol's rules read their bars one after another (`_load_rules`).
        write_wait = write_share * cost.LATENCY["default"] / cost.WRITE_THREADS
        bar_wait = query_share * cost.LATENCY["default"]
        seconds = decision + codec + bar_read + write_wait + bar_wait
        month = {}
        for schedule, invocations in SCHEDULES.items():
            writes = invocations * write_share
            usd = {
                "dynamodb_writes": writes * write_units * dynamodb["write_request_units_per_million"] / 1e6,
                "dynamodb_reads": invocations * read_units * dynamodb["read_request_units_per_million"] / 1e6,
                "dynamodb_bar_reads": invocations * bar_read_units * dynamodb["read_request_units_per_million"] / 1e6,
                "lambda": invocations * seconds * memory_gb * gb_second,
            }
            usd["total"] = sum(usd.values())
            month[schedule] = {
                "invocations": invocations,
                "writes": round(writes),
                "write_units": round(writes * write_units),
                "bar_queries": round(invocations * query_share),
                "bar_read_units": round(invocations * bar_read_units, 1),
                "usd": {name: round(value, 4) for name, value in usd.items()},
            }
        rows.append(
            {
                "rule": entry.label,
                "rule_id": entry.rule_id,
                "kind": entry.kind,
                "warm_state": entry.warm_state,
                "us_per_trade": round(per_trade * 1e6, 2),
                "trades_per_invocation": round(trades_per_update, 2),
                "decision_us_per_invocation": round(decision * 1e6, 1),
                "decode_us_per_invocation": round(decode * 1e6, 1),
                "encode_us_per_write": round(encode * 1e6, 1),
                "encode_us_per_invocation": round(write_share * encode * 1e6, 1),
                "bar_read_us_per_invocation": round(bar_read * 1e6, 1),
                "modelled_write_wait_us_per_invocation": round(write_wait * 1e6, 1),
                "modelled_bar_read_wait_us_per_invocation": round(bar_wait * 1e6, 1),
                "lambda_us_per_invocation": round(seconds * 1e6, 1),
                "updates": entry.updates,
                "writes": entry.writes,
                "write_share": round(write_share, 4),
                "bar_writes": entry.bar_writes,
                "bar_write_share": round(entry.bar_writes / entry.updates, 4),
                "firings": entry.firings,
                "item_bytes_p50": warm_bytes,
                "item_bytes_max": max(entry.item_bytes),
                "write_units_per_write": round(write_units, 2),
                "read_units_per_invocation": round(read_units, 3),
                "bar_queries": bars.queries,
                "bar_query_share": round(query_share, 4),
                "bars_read": bars.bars,
                "bar_read_units": bars.read_units,
                "bar_read_units_per_invocation": round(bar_read_units, 5),
                "month": month,
                "seeding": {
                    calendar: {
                        "queries": reads.queries,
                        "bars_read": reads.bars,
                        "read_units": reads.read_units,
                        "usd": round(reads.read_units * dynamodb["read_request_units_per_million"] / 1e6, 8),
                    }
                    for calendar, reads in entry.seeding.items()
                },
            }
        )
    return {
        "symbol": SYMBOL,
        "history_days": measured.history_days,
        "warm_up_minutes": measured.warm_up_minutes,
        "trades_per_second": TRADES_PER_SECOND,
        "runs": len(figures[0].seconds_per_trade) if figures else 0,
        "measured_seconds": figures[0].updates if figures else 0,
        "write_wait_assumed_ms": cost.LATENCY["default"] * 1000,
        "schedules": SCHEDULES,
        "rows": rows,
    }


def render(part: dict[str, Any]) -> list[str]:
    schedules = part["schedules"]
    lines = [
        "",
        f"### 10. Rule kinds: one rule on a symbol trading {part['trades_per_second']} times a second, "
        "an alerts invocation a second",
        "",
        f"Measured on {part['measured_seconds']:,} one-second quote updates once the rule is warm "
        f"(median of {part['runs']} runs); {part['trades_per_second']} trades per invocation. A state write is one "
        "conditional UpdateItem, billed by the whole item's size. A cross rule reads its bars with one strongly "
        "consistent Query when an update reaches a later bar interval; the Query's AWS wait is a whole round "
        f"({part['write_wait_assumed_ms']:g} ms), a state write's 1/16 of one.",
        "",
        "| rule | warm state | decision per trade | per invocation: decision / item decode / state encode / bar read "
        "| AWS wait per invocation (modelled): state writes / bar Queries | Lambda per invocation "
        "| updates that write | updates that Query bars | item bytes p50 (max) | WRU per write "
        "| RRU per invocation: rules Query / bars |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["rows"]:
        cross = row["kind"] == "cross"
        lines.append(
            f"| {row['rule']} | {row['warm_state']} | {row['us_per_trade']:.1f} µs "
            f"| {row['decision_us_per_invocation']:.0f} / {row['decode_us_per_invocation']:.0f} "
            f"/ {row['encode_us_per_invocation']:.0f} / {row['bar_read_us_per_invocation']:.0f} µs "
            f"| {row['modelled_write_wait_us_per_invocation']:.0f} / "
            f"{row['modelled_bar_read_wait_us_per_invocation']:.0f} µs "
            f"| **{row['lambda_us_per_invocation'] / 1000:.2f} ms** | {row['write_share']:.1%}"
            f"{f' ({row["bar_write_share"]:.1%} bars alone)' if cross else ''} "
            f"| {f'{row["bar_query_share"]:.2%}' if cross else ''} "
            f"| {row['item_bytes_p50']:,} ({row['item_bytes_max']:,}) | {row['write_units_per_write']:g} "
            f"| {row['read_units_per_invocation']:.2f} / {row['bar_read_units_per_invocation']:.4f} |"
        )
    lines += [
        "",
        "A month of one rule (USD): its state writes, its share of the rules Query every invocation reads "
        "(strongly consistent), a cross rule's bar Queries (strongly consistent), and the Lambda time above; "
        "invocations once a second: "
        + ", ".join(f"{name}: {invocations:,}" for name, invocations in schedules.items())
        + ".",
        "",
        "| rule | "
        + " | ".join(
            f"{name}: state writes (WRU) | bar Queries (RRU) | DynamoDB writes / reads | Lambda | total"
            for name in schedules
        )
        + " | first evaluation, once: bars read (24×7 / market hours) | RRU |",
        "|---|" + "---:|---:|---:|---:|---:|" * len(schedules) + "---:|---:|",
    ]
    for row in part["rows"]:
        cells = []
        for name in schedules:
            month = row["month"][name]
            usd = month["usd"]
            queries = f"{month['bar_queries']:,} ({month['bar_read_units']:,.0f})" if row["kind"] == "cross" else ""
            cells.append(
                f"{month['writes']:,} ({month['write_units']:,}) | {queries} "
                f"| {usd['dynamodb_writes']:.3f} / {usd['dynamodb_reads'] + usd['dynamodb_bar_reads']:.3f} "
                f"| {usd['lambda']:.3f} | **{usd['total']:.2f}**"
            )
        seeding = row["seeding"]
        if seeding:
            bars = " / ".join(f"{seeding[c]['bars_read']:,}" for c in ("24×7", "market hours"))
            units = " / ".join(f"{seeding[c]['read_units']:g}" for c in ("24×7", "market hours"))
        else:
            bars, units = "", ""
        lines.append(f"| {row['rule']} | " + " | ".join(cells) + f" | {bars} | {units} |")
    seeding_usd = [entry["usd"] for row in part["rows"] for entry in row["seeding"].values()]
    if seeding_usd:
        lines += [
            "",
            f"A new cross rule's first evaluation reads its stored bars once: USD {max(seeding_usd):.6f} at most.",
        ]
    return lines
