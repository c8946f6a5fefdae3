"""The crossing decision: one alert per real crossing, cooldown, redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import (
    Direction,
    QuoteUpdate,
    Rule,
    RuleState,
    apply_update,
    apply_updates,
    format_duration,
    make_rule_id,
    parse_duration,
    parse_threshold,
    split_rule_id,
)

T0 = datetime(2026, 11, 20, 14, 30, 0, tzinfo=UTC)
ABOVE_200 = Rule("AAPL-above-200", "AAPL", Direction.ABOVE, Decimal("200"))
BELOW_150 = Rule("AAPL-below-150", "AAPL", Direction.BELOW, Decimal("150"))


def update(seq: int, *prices: str, start: float = 0) -> QuoteUpdate:
    trades = tuple(Trade(Decimal(p), T0 + timedelta(seconds=start + i)) for i, p in enumerate(prices))
    return QuoteUpdate("AAPL", f"{seq:03d}", trades)


def fired_prices(rule: Rule, updates: list[QuoteUpdate], state: RuleState | None = None) -> list[str]:
    results = apply_updates(rule, state or RuleState(), updates)
    return [str(f.price) for _, firings in results for f in firings]


def test_above_fires_at_or_above_the_threshold():
    assert fired_prices(ABOVE_200, [update(1, "199.99", "200")]) == ["200"]


def test_no_crossing_no_alert_and_no_state_change():
    state, firings = apply_update(ABOVE_200, RuleState(), update(1, "150", "199.99"))
    assert firings == []
    assert state == RuleState()


def test_wobble_gives_one_alert_per_real_crossing_not_per_tick():
    # above 200: fires at 201; 200.5 and 201.5 are still above, no new crossing; 199 re-arms; 202 fires again.
    assert fired_prices(ABOVE_200, [update(1, "199", "201", "200.5", "201.5", "199", "202", "203")]) == ["201", "202"]


def test_crossings_are_the_same_however_the_trades_are_batched():
    prices = ["199", "201", "199.5", "200.1", "198", "199", "205", "150", "210"]
    one_update = fired_prices(ABOVE_200, [update(1, *prices)])
    per_tick = fired_prices(ABOVE_200, [update(i + 1, p, start=i) for i, p in enumerate(prices)])
    assert one_update == per_tick == ["201", "200.1", "205", "210"]


def test_below_mirrors_above():
    assert fired_prices(BELOW_150, [update(1, "151", "150", "149", "150.01", "149.5")]) == ["150", "149.5"]


def test_cooldown_blocks_rearming_until_it_has_passed():
    rule = Rule("AAPL-above-200", "AAPL", Direction.ABOVE, Decimal("200"), cooldown=timedelta(seconds=60))
    # t=0 fires at 201; t=10 dips below (inside cooldown: no re-arm); t=20 up again: no alert;
    # t=70 below after the cooldown: re-arms; t=80 up: alert.
    trades = [("201", 0), ("199", 10), ("202", 20), ("199", 70), ("203", 80)]
    updates = [
        QuoteUpdate("AAPL", f"{i:03d}", (Trade(Decimal(p), T0 + timedelta(seconds=s)),))
        for i, (p, s) in enumerate(trades, 1)
    ]
    assert fired_prices(rule, updates) == ["201", "203"]


def test_a_new_rule_is_armed_and_fires_on_the_first_trade_on_its_side():
    assert fired_prices(ABOVE_200, [update(1, "250")]) == ["250"]


def test_state_records_the_update_that_changed_it_and_redelivery_is_a_no_op():
    state, firings = apply_update(ABOVE_200, RuleState(), update(7, "201"))
    assert (state.armed, state.last_fired_at, state.state_seq, len(firings)) == (False, T0, "007", 1)
    again, refired = apply_update(ABOVE_200, state, update(7, "201"))
    assert (again, refired) == (state, [])


def test_alert_ids_are_deterministic_and_distinct():
    first = apply_update(ABOVE_200, RuleState(), update(1, "201", "199", "201"))[1]
    second = apply_update(ABOVE_200, RuleState(), update(1, "201", "199", "201"))[1]
    assert [f.alert_id for f in first] == [f.alert_id for f in second]
    assert len({f.alert_id for f in first}) == 2


def test_rule_ids_are_readable_and_reversible():
    assert make_rule_id("BRK-B", Direction.BELOW, Decimal("412.50")) == "BRK-B-below-412.5"
    assert split_rule_id("BRK-B-below-412.5") == "BRK-B"
    with pytest.raises(ValueError, match="not a rule id"):
        split_rule_id("nonsense")


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "NaN", "Infinity"])
def test_thresholds_must_be_positive_numbers(bad):
    with pytest.raises(ValueError, match="threshold"):
        parse_threshold(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), (" 1H ", 3600)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "15", "m", "15x", "0m", "1h-5m"])
def test_bad_durations(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_thresholds_dynamodb_cannot_store_are_refused():
    with pytest.raises(ValueError, match=r"threshold .* significant digits; at most 38"):
        parse_threshold("1.234567890123456789012345678901234567891")
