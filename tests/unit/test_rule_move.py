"""Move rules: a trade X % above the lowest (below the highest) trade of the window before it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import (
    Direction,
    PriceWindow,
    QuoteUpdate,
    Rule,
    RuleKind,
    RuleOptionError,
    RuleState,
    TradingHours,
    apply_update,
    apply_updates,
    make_rule_id,
    parse_condition,
    split_rule_id,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FIFTEEN = timedelta(minutes=15)
UP_2 = Rule("TSLA-move-up-2pct-15m", "TSLA", Direction.ABOVE, Decimal(2), kind=RuleKind.MOVE, window=FIFTEEN)
DOWN_2 = Rule("TSLA-move-down-2pct-15m", "TSLA", Direction.BELOW, Decimal(2), kind=RuleKind.MOVE, window=FIFTEEN)


def trades_at(*timed: tuple[float, str]) -> tuple[Trade, ...]:
    """Trades at (minutes after T0, price)."""
    return tuple(Trade(Decimal(price), T0 + timedelta(minutes=minutes)) for minutes, price in timed)


def fired(rule: Rule, *batches: tuple[Trade, ...], state: RuleState | None = None) -> list[tuple[str, str]]:
    """(price, reference) of each firing, one update per batch."""
    updates = [QuoteUpdate("TSLA", f"{seq:03d}", trades) for seq, trades in enumerate(batches, 1)]
    results = apply_updates(rule, state or RuleState(), updates)
    return [(str(f.price), str(f.reference)) for _, firings in results for f in firings]


def test_fires_on_a_trade_the_size_of_the_move_above_the_window_s_low():
    # Low 100 at 10:00; 100 × 1.02 = 102: 101.99 is not enough, 102 is.
    assert fired(UP_2, trades_at((0, "100"), (5, "101.99"), (6, "102"), (7, "103"))) == [("102", "100")]


def test_a_fall_mirrors_it_from_the_window_s_high():
    # High 250 at 10:01; 250 × 0.98 = 245.
    assert fired(DOWN_2, trades_at((0, "249"), (1, "250"), (3, "245.01"), (4, "245"))) == [("245", "250")]


def test_the_window_is_the_trade_s_minute_and_the_minutes_before_it_less_than_the_window_in_all():
    # Within 15m, a trade at 10:14:59 still sees 10:00:00; one at 10:15:00 no longer does.
    assert fired(UP_2, trades_at((0, "100"), (14 + 59 / 60, "102"))) == [("102", "100")]
    assert fired(UP_2, trades_at((0, "100"), (15, "102"))) == []
    # The minute is what counts: at 10:15:30 the window starts at 10:01:00, so 10:00:59 is out;
    # at 10:15:59, 10:01:00 is in.
    assert fired(UP_2, trades_at((59 / 60, "100"), (15.5, "102"))) == []
    assert fired(UP_2, trades_at((1, "100"), (15 + 59 / 60, "102"))) == [("102", "100")]


def test_a_trade_with_nothing_before_it_in_its_window_is_not_evaluated():
    # After a 20-minute gap the window is empty: 110 neither fires nor re-arms; the next one sees it.
    assert fired(UP_2, trades_at((0, "100"), (20, "110"), (21, "112.2"))) == [("112.2", "110")]


def test_a_window_across_midnight_holds_the_last_minutes_of_the_day_before():
    late = Rule(UP_2.rule_id, "TSLA", Direction.ABOVE, Decimal(2), kind=RuleKind.MOVE, window=FIFTEEN)
    before_midnight = datetime(2026, 11, 20, 23, 55, tzinfo=UTC)
    trades = (Trade(Decimal(100), before_midnight), Trade(Decimal(102), before_midnight + timedelta(minutes=8)))
    assert fired(late, trades) == [("102", "100")]


def test_hovering_gives_an_alert_per_real_move_and_a_margin_makes_it_one():
    # The low stays 100 for the window: 102 fires, 101.9 re-arms (back below 102), 102.1 fires again.
    hovering = trades_at((0, "100"), (1, "102"), (2, "101.9"), (3, "102.1"), (4, "101.95"), (5, "102"))
    assert [p for p, _ in fired(UP_2, hovering)] == ["102", "102.1", "102"]
    with_margin = replace(UP_2, rearm_margin=Decimal("0.005"))  # re-arms below 102 × 0.995 = 101.49
    assert [p for p, _ in fired(with_margin, hovering)] == ["102"]
    # As a move: (1.02 × 0.995 − 1) × 100 = 1.49 % up from the low.
    assert with_margin.rearm_level == Decimal("1.4900")


def test_when_the_low_leaves_the_window_the_level_rises_and_the_rule_re_arms():
    # 100 at 10:00 leaves the window at 10:15: the low is then 102 (10:01), the level 104.04, and
    # 103 re-arms the rule. At 10:16 the low is 10:15's 103: 105.06 is 2 % above it.
    series = trades_at((0, "100"), (1, "102"), (15, "103"), (16, "105.05"), (16.5, "105.06"))
    assert fired(UP_2, series) == [("102", "100"), ("105.06", "103")]


def test_the_window_is_kept_across_updates_and_redelivery_changes_nothing():
    first = QuoteUpdate("TSLA", "001", trades_at((0, "100"), (1, "101")))
    second = QuoteUpdate("TSLA", "002", trades_at((2, "102")))
    state, firings = apply_update(UP_2, RuleState(), first)
    assert firings == []
    assert state.window is not None
    assert [m.minute for m, _, _ in state.window.minutes] == [0, 1]
    state, firings = apply_update(UP_2, state, second)
    assert [str(f.price) for f in firings] == ["102"]
    assert apply_update(UP_2, state, second) == (state, [])


def test_the_window_keeps_only_minutes_a_later_trade_can_see():
    window = PriceWindow()
    for minutes, price in ((0, "100"), (0.5, "99"), (3, "101"), (20, "105"), (21, "104")):
        window = window.with_trade(Trade(Decimal(price), T0 + timedelta(minutes=minutes)), FIFTEEN)
    assert [(m.minute, str(low), str(high)) for m, low, high in window.minutes] == [
        (20, "105", "105"),
        (21, "104", "104"),
    ]
    assert PriceWindow.decode(window.encode()) == window


def test_a_late_trade_sees_its_own_window_and_does_not_move_the_newest_minute_s():
    # 10:10 arrives after 10:12: its window is 09:56-10:10, which holds 10:00's 100 and not 10:12's.
    series = trades_at((0, "100"), (12, "90"), (10, "102"))
    assert fired(UP_2, series) == [("102", "100")]


def test_trades_outside_the_hours_fill_the_window_but_do_not_fire():
    hours = TradingHours(time(10, 5), time(16, 0), "UTC")
    rule = replace(UP_2, hours=hours)
    # 10:00's 100 is before the session; 10:03's 102 would fire but is outside; 10:06's 102.5 fires.
    assert fired(rule, trades_at((0, "100"), (3, "102"), (6, "102.5"))) == [("102.5", "100")]


def test_ids_and_parsing():
    assert make_rule_id("TSLA", Direction.BELOW, Decimal("1.5"), RuleKind.MOVE, window=timedelta(minutes=90)) == (
        "TSLA-move-down-1.5pct-1h30m"
    )
    assert split_rule_id("BRK-B-move-up-2pct-15m") == "BRK-B"
    condition = parse_condition(direction="below", move="2%", within="15m")
    assert (condition.kind, condition.direction, condition.threshold, condition.window) == (
        RuleKind.MOVE,
        Direction.BELOW,
        Decimal(2),
        FIFTEEN,
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"move": "2%"}, "within", "needs a window"),
        ({"move": "2%", "within": "90s"}, "within", "whole minutes"),
        ({"move": "2%", "within": "5h"}, "within", "1m to 4h"),
        ({"move": "0%", "within": "5m"}, "move", "above 0%"),
        ({"move": "2", "within": "5m"}, "move", "not a percentage"),
        ({"threshold": "200", "within": "5m"}, "within", "goes with move"),
        ({"threshold": "200", "move": "2%", "within": "5m"}, "move", "give one of"),
    ],
)
def test_a_bad_move_names_its_field(fields, field, message):
    with pytest.raises(RuleOptionError) as error:
        parse_condition(direction="above", **fields)
    assert error.value.field == field
    assert message in str(error.value)
