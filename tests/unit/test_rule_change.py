"""Day-change rules: the change from the day's (or session's) open crossing a percentage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import (
    Direction,
    QuoteUpdate,
    Rule,
    RuleKind,
    RuleState,
    TradingHours,
    apply_update,
    apply_updates,
    make_rule_id,
    parse_change,
    split_rule_id,
)

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
UP_3 = Rule("AAPL-change-above-3pct", "AAPL", Direction.ABOVE, Decimal(3), kind=RuleKind.CHANGE)
DOWN_2 = Rule("AAPL-change-below--2pct", "AAPL", Direction.BELOW, Decimal(-2), kind=RuleKind.CHANGE)


def update(seq: int, *prices: str, start: datetime = T0, day_open: str = "200", day: date = DAY) -> QuoteUpdate:
    trades = tuple(Trade(Decimal(p), start + timedelta(seconds=i)) for i, p in enumerate(prices))
    return QuoteUpdate("AAPL", f"{seq:03d}", trades, day=day, day_open=Decimal(day_open))


def fired(rule: Rule, *updates: QuoteUpdate, state: RuleState | None = None) -> list[tuple[str, str]]:
    """(price, open) of each firing."""
    results = apply_updates(rule, state or RuleState(), list(updates))
    return [(str(f.price), str(f.reference)) for _, firings in results for f in firings]


def test_fires_when_the_change_from_the_open_reaches_the_percentage():
    # 200 × 1.03 = 206: 205.99 is +2.995 %, 206 is +3 %.
    assert fired(UP_3, update(1, "201", "205.99", "206", "207")) == [("206", "200")]


def test_a_fall_mirrors_it():
    assert fired(DOWN_2, update(1, "199", "196.01", "196", "195")) == [("196", "200")]


def test_hovering_at_the_level_gives_one_alert_per_crossing_and_a_margin_makes_it_one():
    hovering = update(1, "206.1", "205.9", "206.2", "205.95", "206.05")
    assert [p for p, _ in fired(UP_3, hovering)] == ["206.1", "206.2", "206.05"]
    with_margin = replace(UP_3, rearm_margin=Decimal("0.005"))  # re-arms below 206 × 0.995 = 204.97
    assert [p for p, _ in fired(with_margin, hovering)] == ["206.1"]
    assert with_margin.rearm_level.quantize(Decimal("0.001")) == Decimal("2.485")  # +2.485 % from the open


def test_a_new_day_brings_a_new_open_and_its_first_trade_re_arms_the_rule():
    next_morning = T0 + timedelta(days=1)
    friday = update(1, "207")  # fires: +3.5 %
    saturday = update(2, "210", "217", start=next_morning, day_open="210", day=DAY + timedelta(days=1))
    # 210 is the new open: 0 %, which re-arms; 217 is +3.33 % on 210.
    assert fired(UP_3, friday, saturday) == [("207", "200"), ("217", "210")]


def test_an_earlier_day_s_trades_in_the_same_update_use_the_open_the_rule_remembered():
    state, _ = apply_update(UP_3, RuleState(), update(1, "201"))
    assert (state.reference_day, state.reference_open) == (DAY, Decimal(200))
    # The next update spans midnight: its quote is of the 21st (open 190), its first trade of the 20th.
    just_before_midnight = datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)
    spanning = update(2, "206.5", "196", start=just_before_midnight, day_open="190", day=DAY + timedelta(days=1))
    # 206.5 is +3.25 % on the 20th's 200; 196 is +3.16 % on the 21st's 190 but the rule has not re-armed.
    assert fired(UP_3, spanning, state=state) == [("206.5", "200")]


def test_a_trade_of_a_day_whose_open_is_unknown_is_skipped():
    yesterday = T0 - timedelta(days=1)
    late = update(1, "250", start=yesterday)  # the quote's day is the 20th, the trade of the 19th
    state, firings = apply_update(UP_3, RuleState(), late)
    assert (firings, state) == ([], RuleState())


def test_with_trading_hours_the_session_s_first_trade_is_the_open():
    session = TradingHours(time(9, 30), time(16, 0), "America/New_York")
    rule = replace(UP_3, hours=session)
    before = update(1, "100", start=T0 - timedelta(minutes=5))  # 09:25: outside, ignored
    in_session = update(2, "200", "205", "206", start=T0)  # 09:30: 200 is the session's open
    assert fired(rule, before, in_session) == [("206", "200")]


def test_a_rule_added_during_a_session_measures_from_the_session_s_stored_open():
    session = TradingHours(time(9, 30), time(16, 0), "America/New_York")
    rule = replace(UP_3, hours=session)
    assert session.session_start(DAY) == T0  # 09:30 in New York is 14:30 UTC
    # The rule's first trade is at 11:00; the session opened at 200 (the first stored trade).
    midday = update(1, "205", "206", start=T0 + timedelta(hours=1, minutes=30))
    results = apply_updates(rule, RuleState(), [midday], session_opens={DAY: Decimal(200)})
    assert [(str(f.price), str(f.reference)) for _, firings in results for f in firings] == [("206", "200")]
    # Without a stored open (none was stored yet), its first trade opens the session.
    assert fired(rule, midday) == []


def test_a_redelivered_update_changes_nothing():
    first = update(1, "207")
    state, _ = apply_update(UP_3, RuleState(), first)
    assert apply_update(UP_3, state, first) == (state, [])


@pytest.mark.parametrize(
    ("symbol", "direction", "level", "rule_id"),
    [
        ("AAPL", Direction.ABOVE, Decimal(3), "AAPL-change-above-3pct"),
        ("TSLA", Direction.BELOW, Decimal(-2), "TSLA-change-below--2pct"),
        ("BRK-B", Direction.ABOVE, Decimal("0.5"), "BRK-B-change-above-0.5pct"),
    ],
)
def test_change_rule_ids_read_back(symbol, direction, level, rule_id):
    assert make_rule_id(symbol, direction, level, RuleKind.CHANGE) == rule_id
    assert split_rule_id(rule_id) == symbol


@pytest.mark.parametrize(
    "rule_id", ["AAPL-change-above-3", "AAPL-above-3pct", "AAPL-change-up-3pct", "aapl-change-above-3pct"]
)
def test_a_change_id_without_its_parts_is_refused(rule_id):
    with pytest.raises(ValueError, match="is not a rule id"):
        split_rule_id(rule_id)


def test_price_rule_ids_still_read_back_with_dashes_in_the_symbol():
    assert split_rule_id("BRK-B-below-450.5") == "BRK-B"


@pytest.mark.parametrize(
    ("text", "value"), [("3%", Decimal(3)), ("+3%", Decimal(3)), ("-2.5 %", Decimal("-2.5")), ("0%", Decimal(0))]
)
def test_a_change_is_a_signed_percentage(text, value):
    assert parse_change(text) == value


@pytest.mark.parametrize("text", ["3", "three%", "-100%", "1001%", "3%%"])
def test_a_change_that_is_not_a_percentage_in_range_is_refused(text):
    with pytest.raises(ValueError, match="change"):
        parse_change(text)


def test_a_late_trade_of_the_session_before_is_skipped_and_keeps_the_current_open():
    hours = TradingHours(time(0, 0), time(23, 59), "UTC")
    rule = replace(UP_3, hours=hours)
    today, yesterday = T0, T0 - timedelta(days=1)
    opened = apply_updates(rule, RuleState(), [update(1, "100", start=today)], session_opens={DAY: Decimal(100)})
    state = opened[-1][0]
    # A trade of yesterday's session arrives late, then today's 103.5 (+3.5 % on today's 100).
    late = QuoteUpdate("AAPL", "002", (Trade(Decimal(50), yesterday), Trade(Decimal("103.5"), today)))
    after, firings = apply_update(rule, state, late)
    assert [(str(f.price), str(f.reference)) for f in firings] == [("103.5", "100")]
    assert (after.reference_day, after.reference_open) == (DAY, Decimal(100))


def test_a_session_whose_start_the_clock_jumps_over_opens_at_the_jump():
    # 02:30 does not exist in New York on 2026-03-08: the clocks go from 02:00 EST to 03:00 EDT.
    hours = TradingHours(time(2, 30), time(4, 0), "America/New_York")
    assert hours.session_start(date(2026, 3, 8)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert hours.session_of(datetime(2026, 3, 8, 7, 5, tzinfo=UTC)) == date(2026, 3, 8)
    assert hours.session_start(date(2026, 3, 9)) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
