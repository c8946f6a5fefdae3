"""Moving-average cross rules: the price crossing the SMA or EMA of the last N closed bars."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain import indicators
from tickwatch_core.domain.intervals import interval_start
from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import (
    BarSeries,
    ClosedBar,
    Direction,
    MovingAverage,
    QuoteUpdate,
    Rule,
    RuleKind,
    RuleOptionError,
    RuleState,
    apply_update,
    apply_updates,
    make_rule_id,
    parse_condition,
    split_rule_id,
)

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
SMA_3 = MovingAverage("sma", 3, "1m")
ABOVE_SMA = Rule("NVDA-cross-above-sma3-1m", "NVDA", Direction.ABOVE, Decimal(0), kind=RuleKind.CROSS, average=SMA_3)
BELOW_SMA = replace(ABOVE_SMA, rule_id="NVDA-cross-below-sma3-1m", direction=Direction.BELOW)


def minute_closes(*closes: str) -> list[Trade]:
    """One trade per minute from T0: each minute's bar closes at that price."""
    return [Trade(Decimal(close), T0 + timedelta(minutes=i)) for i, close in enumerate(closes)]


def stored_bars(trades: list[Trade], average: MovingAverage) -> tuple[ClosedBar, ...]:
    """The bars the processor stores for `trades` (aggregated to the interval): each interval's
    close is its latest trade by time, the later one on a tie."""
    closes: dict[datetime, tuple[datetime, Decimal]] = {}
    for trade in trades:
        start = interval_start(trade.at, average.length)
        if start not in closes or trade.at >= closes[start][0]:
            closes[start] = (trade.at, trade.price)
    return tuple(ClosedBar(start, price) for start, (_, price) in sorted(closes.items()))


def fired(
    rule: Rule, trades: list[Trade], state: RuleState | None = None, bars: tuple[ClosedBar, ...] | None = None
) -> list[tuple[str, str]]:
    """(price, average) of each firing, one trade per update, with the bars stored for `trades`."""
    assert rule.average is not None
    updates = [QuoteUpdate("NVDA", f"{i:04d}", (trade,)) for i, trade in enumerate(trades, 1)]
    bars = stored_bars(trades, rule.average) if bars is None else bars
    results = apply_updates(rule, state or RuleState(armed=rule.starts_armed), updates, bars)
    return [(str(f.price), str(f.reference)) for _, firings in results for f in firings]


def test_fires_when_the_price_crosses_above_the_average_of_the_last_closed_bars():
    # Bars close 10, 10, 10: the average is 10 from the fourth minute. 9 is below (arms), 11 crosses.
    # At 11 the closed bars are 10, 10, 9: average 9.666...
    assert fired(ABOVE_SMA, minute_closes("10", "10", "10", "9", "11")) == [("11", str(Decimal(29) / 3))]


def test_a_cross_needs_the_price_on_the_other_side_first():
    # Always above the average: never a cross, however far above.
    assert fired(ABOVE_SMA, minute_closes("10", "10", "10", "11", "12", "13")) == []


def test_no_average_before_the_period_s_bars_have_closed():
    # 9 in the third minute: only two bars have closed, so it is not evaluated and does not arm.
    assert fired(ABOVE_SMA, minute_closes("10", "10", "9", "11")) == []


def test_below_mirrors_it():
    assert fired(BELOW_SMA, minute_closes("10", "10", "10", "11", "9")) == [("9", str(Decimal(31) / 3))]


def test_trades_inside_a_minute_are_compared_with_the_average_of_the_bars_before_it():
    # Three bars of 10; in the fourth minute 9.89 arms, 10.2 fires, 9.95 re-arms, 10 fires again
    # (at the average counts as crossed): the minute's own trades do not move its average.
    at = T0 + timedelta(minutes=3)
    trades = minute_closes("10", "10", "10")
    trades += [
        Trade(Decimal(p), at + timedelta(seconds=s)) for s, p in ((1, "9.89"), (2, "10.2"), (3, "9.95"), (4, "10"))
    ]
    assert [p for p, _ in fired(ABOVE_SMA, trades)] == ["10.2", "10"]
    # With a 1 % margin it arms and re-arms only below 9.9: 9.89 arms it, 9.95 does not re-arm.
    assert [p for p, _ in fired(replace(ABOVE_SMA, rearm_margin=Decimal("0.01")), trades)] == ["10.2"]


def test_a_gap_has_no_bar_and_the_average_is_of_the_last_bars_that_exist():
    # Minutes 0, 1 and 2 close 10, 20, 30; then nothing for an hour; at 15:33 the average is 20.
    trades = minute_closes("10", "20", "30")
    later = T0 + timedelta(hours=1, minutes=3)
    trades += [Trade(Decimal("19"), later), Trade(Decimal("20"), later + timedelta(seconds=1))]
    assert fired(ABOVE_SMA, trades) == [("20", "20")]


def test_the_average_is_of_the_stored_bars():
    # The rule reads the closes the processor stored, which may hold trades it never evaluated
    # (late ones, or before it was added): over stored closes of 20, 12 is no cross.
    trades = minute_closes("10", "10", "10", "9", "12")
    bars = tuple(ClosedBar(T0 + timedelta(minutes=i), Decimal(20)) for i in range(4))
    assert fired(ABOVE_SMA, trades, bars=bars) == []
    assert fired(ABOVE_SMA, trades) == [("12", str(Decimal(29) / 3))]


def test_a_late_trade_of_a_bar_already_read_is_compared_but_changes_no_bar():
    trades = minute_closes("10", "10", "10", "9")
    bars = stored_bars(trades, SMA_3)
    late = Trade(Decimal(50), T0 + timedelta(minutes=1, seconds=30))  # for 14:31, read at 14:33
    assert fired(ABOVE_SMA, [*trades, late], bars=bars) == [("50", "10")]
    state = RuleState(armed=False)
    for i, trade in enumerate([*trades, late]):
        state, _ = apply_update(ABOVE_SMA, state, QuoteUpdate("NVDA", f"{i:03d}", (trade,)), bars)
    assert state.series is not None
    assert state.series.closes == (Decimal(10), Decimal(10), Decimal(10))
    assert state.series.read_until == T0 + timedelta(minutes=3)


def test_the_state_changes_once_per_bar_not_per_trade():
    at = T0 + timedelta(minutes=3)
    trades = [*minute_closes("10", "10", "10"), *(Trade(Decimal("10.5"), at + timedelta(seconds=s)) for s in (1, 2))]
    bars = stored_bars(trades, SMA_3)
    first, _ = apply_update(ABOVE_SMA, RuleState(armed=False), QuoteUpdate("NVDA", "001", tuple(trades[:4])), bars)
    second, firings = apply_update(ABOVE_SMA, first, QuoteUpdate("NVDA", "002", (trades[4],)), bars)
    assert (second, firings) == (first, [])  # same minute, above the average, not armed: nothing to save


def test_the_ema_is_the_query_api_s_from_the_same_closes():
    closes = [Decimal(c) for c in ("100", "101.5", "99.25", "102", "103.75", "101", "98.5", "104", "105.25")]
    bars = [ClosedBar(T0 + timedelta(minutes=5 * i), close) for i, close in enumerate(closes)]
    after_the_last = T0 + timedelta(minutes=5 * len(closes))
    for name, computed in (("ema", indicators.ema), ("sma", indicators.sma)):
        average = MovingAverage(name, 4, "5m")
        value = BarSeries().closed_before(after_the_last, bars, average).average(average)
        assert value is not None
        assert float(value) == pytest.approx(computed([float(c) for c in closes], 4)[-1], abs=1e-9)


def test_bars_of_a_longer_interval_are_read_once_closed():
    rule = replace(ABOVE_SMA, average=MovingAverage("sma", 2, "5m"))
    # 14:30-14:35 closed at 10, 14:35-14:40 at 12: at 14:40 the average is 11, not before.
    bars = (ClosedBar(T0, Decimal(10)), ClosedBar(T0 + timedelta(minutes=5), Decimal(12)))
    trades = [
        Trade(Decimal(5), T0 + timedelta(minutes=9)),  # only one bar closed: not evaluated
        Trade(Decimal("10.9"), T0 + timedelta(minutes=10)),  # arms
        Trade(Decimal(11), T0 + timedelta(minutes=11)),  # fires
    ]
    assert fired(rule, trades, bars=bars) == [("11", "11")]


def test_the_series_is_kept_across_updates_and_redelivery_changes_nothing():
    trades = minute_closes("10", "10", "10", "9", "11")
    bars = stored_bars(trades, SMA_3)
    state = RuleState(armed=False)
    for i, trade in enumerate(trades[:-1]):
        state, _ = apply_update(ABOVE_SMA, state, QuoteUpdate("NVDA", f"{i:03d}", (trade,)), bars)
    last = QuoteUpdate("NVDA", "999", (trades[-1],))
    after, firings = apply_update(ABOVE_SMA, state, last, bars)
    assert [str(f.price) for f in firings] == ["11"]
    assert apply_update(ABOVE_SMA, after, last, bars) == (after, [])


def test_ids_and_parsing():
    average = MovingAverage.parse("EMA:50@5m")
    assert average == MovingAverage("ema", 50, "5m")
    assert make_rule_id("NVDA", Direction.BELOW, Decimal(0), RuleKind.CROSS, average=average) == (
        "NVDA-cross-below-ema50-5m"
    )
    assert split_rule_id("BRK-B-cross-above-sma20-1h") == "BRK-B"
    condition = parse_condition(direction="above", cross="sma:20@1m")
    assert (condition.kind, condition.average) == (RuleKind.CROSS, MovingAverage("sma", 20, "1m"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sma20", "not like sma:20@1m"),
        ("wma:20@1m", "not like sma:20@1m"),
        ("sma:1@1m", "between 2 and 200"),
        ("sma:201@1m", "between 2 and 200"),
        ("sma:20@2m", "one of 1m, 5m, 15m, 1h, 1d"),
    ],
)
def test_a_bad_average_names_the_cross_field(text, message):
    with pytest.raises(RuleOptionError) as error:
        parse_condition(direction="above", cross=text)
    assert error.value.field == "cross"
    assert message in str(error.value)
