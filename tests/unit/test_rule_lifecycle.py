"""Re-arm margin and lifecycle (once, expiry, trading hours) of a rule: decisions on crafted series."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import (
    Direction,
    QuoteUpdate,
    Rule,
    RuleOptionError,
    RuleState,
    TradingHours,
    apply_update,
    apply_updates,
    parse_expiry,
    parse_hours,
    parse_margin,
    parse_options,
    parse_zone,
)

T0 = datetime(2026, 11, 20, 14, 30, 0, tzinfo=UTC)  # a Friday; 09:30 in New York
ABOVE_200 = Rule("AAPL-above-200", "AAPL", Direction.ABOVE, Decimal("200"))
BELOW_150 = Rule("AAPL-below-150", "AAPL", Direction.BELOW, Decimal("150"))
NEW_YORK_SESSION = TradingHours(time(9, 30), time(16, 0), "America/New_York", weekdays_only=True)


def at(*prices_and_times: tuple[str, datetime], seq: int = 1) -> QuoteUpdate:
    return QuoteUpdate("AAPL", f"{seq:03d}", tuple(Trade(Decimal(p), moment) for p, moment in prices_and_times))


def series(*prices: str, start: datetime = T0, seq: int = 1) -> QuoteUpdate:
    return at(*((p, start + timedelta(seconds=i)) for i, p in enumerate(prices)), seq=seq)


def fired(rule: Rule, *updates: QuoteUpdate, state: RuleState | None = None) -> list[str]:
    return [str(f.price) for _, firings in apply_updates(rule, state or RuleState(), list(updates)) for f in firings]


# --- re-arm margin ------------------------------------------------------------------------------


def test_a_price_hovering_at_the_level_gives_one_alert_with_a_margin_and_a_pair_per_wobble_without():
    hovering = series("199.9", "200.1", "199.95", "200.05", "199.8", "200.2", "199.9", "200")
    assert fired(ABOVE_200, hovering) == ["200.1", "200.05", "200.2", "200"]
    with_margin = replace(ABOVE_200, rearm_margin=parse_margin("0.5%"))
    assert fired(with_margin, hovering) == ["200.1"]


def test_the_margin_re_arms_strictly_below_the_level_times_one_minus_the_margin():
    rule = replace(ABOVE_200, rearm_margin=Decimal("0.005"))
    assert rule.rearm_level == Decimal("199")
    assert fired(rule, series("201", "199", "201")) == ["201"]  # 199 is not below 199
    assert fired(rule, series("201", "198.99", "201")) == ["201", "201"]


def test_a_below_rule_re_arms_above_the_level_times_one_plus_the_margin():
    rule = replace(BELOW_150, rearm_margin=Decimal("0.01"))
    assert rule.rearm_level == Decimal("151.5")
    assert fired(rule, series("149", "151", "149", "151.51", "150")) == ["149", "150"]


def test_the_margin_and_the_cooldown_must_both_allow_re_arming():
    rule = replace(ABOVE_200, rearm_margin=Decimal("0.01"), cooldown=timedelta(seconds=10))
    early = series("200", "197", "201")  # far enough below, but within the cooldown
    assert fired(rule, early) == ["200"]
    late = at(("200", T0), ("197", T0 + timedelta(seconds=11)), ("201", T0 + timedelta(seconds=12)))
    assert fired(rule, late) == ["200", "201"]


@pytest.mark.parametrize("text", ["0.5", "-1%", "0%", "51%", "abc%", "1e2%"])
def test_a_margin_that_is_not_a_small_positive_percentage_is_refused(text):
    with pytest.raises(ValueError, match="re-arm margin"):
        parse_margin(text)


# --- once ---------------------------------------------------------------------------------------


def test_a_once_rule_ends_with_its_first_alert_even_when_the_price_crosses_again_in_the_same_update():
    rule = replace(ABOVE_200, once=True)
    state, firings = apply_update(rule, RuleState(), series("201", "199", "202"))
    assert [str(f.price) for f in firings] == ["201"]
    assert state.ended
    assert not state.armed
    assert fired(rule, series("199", "203", seq=2), state=state) == []


def test_a_redelivered_update_of_a_once_rule_changes_nothing():
    rule = replace(ABOVE_200, once=True)
    first = series("201", seq=1)
    state, _ = apply_update(rule, RuleState(), first)
    assert apply_update(rule, state, first) == (state, [])


# --- expiry -------------------------------------------------------------------------------------


def test_no_alert_on_a_trade_at_or_after_the_expiry_by_the_trade_s_own_time():
    rule = replace(ABOVE_200, expires_at=T0 + timedelta(seconds=2))
    assert fired(rule, series("199", "201", "202")) == ["201"]  # 201 at T0+1; 202 at the expiry
    assert fired(rule, series("199", "199", "202")) == []
    assert fired(rule, series("201", start=T0 + timedelta(seconds=2))) == []


def test_an_expiry_is_an_instant_with_its_offset_in_the_future():
    now = T0
    assert parse_expiry("2026-12-31T21:00Z", now=now) == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
    assert parse_expiry("2026-12-31T16:00-05:00", now=now) == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
    for text, problem in (
        ("2026-12-31T21:00", "no time zone"),
        ("2026-01-01T00:00Z", "not in the future"),
        ("friday", "not a time"),
    ):
        with pytest.raises(ValueError, match=problem):
            parse_expiry(text, now=now)


# --- trading hours ------------------------------------------------------------------------------


def test_outside_the_session_trades_neither_fire_nor_re_arm():
    rule = replace(ABOVE_200, hours=NEW_YORK_SESSION)
    before_open = T0 - timedelta(minutes=1)  # 09:29 New York
    assert fired(rule, at(("201", before_open))) == []
    assert fired(rule, at(("201", before_open), ("201", T0))) == ["201"]  # fires at the open
    # Fired in the session, the price dips below after the close: the rule stays disarmed.
    after_close = T0 + timedelta(hours=6, minutes=30)  # 16:00 New York
    state, _ = apply_update(rule, RuleState(), at(("201", T0), ("199", after_close)))
    assert not state.armed


def test_the_session_follows_daylight_saving_and_skips_weekends():
    rule = replace(ABOVE_200, hours=NEW_YORK_SESSION)
    summer_open = datetime(2026, 7, 1, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert fired(rule, at(("201", summer_open))) == ["201"]
    assert fired(rule, at(("201", summer_open - timedelta(seconds=1)))) == []
    saturday = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    assert fired(rule, at(("201", saturday))) == []
    assert fired(replace(rule, hours=replace(NEW_YORK_SESSION, weekdays_only=False)), at(("201", saturday))) == ["201"]


def test_a_session_past_midnight_belongs_to_the_day_it_started():
    overnight = TradingHours(time(22, 0), time(6, 0), "UTC", weekdays_only=True)
    friday_night = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    saturday_small_hours = datetime(2026, 11, 21, 5, 59, tzinfo=UTC)  # still Friday's session
    sunday_small_hours = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # Saturday's session: none
    monday_small_hours = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Sunday's session: none
    assert [
        overnight.contains(m) for m in (friday_night, saturday_small_hours, sunday_small_hours, monday_small_hours)
    ] == [
        True,
        True,
        False,
        False,
    ]
    assert not overnight.contains(datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    assert overnight.contains(datetime(2026, 11, 24, 2, 0, tzinfo=UTC))  # Monday's session


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:30-16:00", (time(9, 30), time(16, 0))),
        ("22:00-06:00", (time(22), time(6))),
        ("18:00-24:00", (time(18), time(0))),
    ],
)
def test_hours_are_two_times_of_day(text, expected):
    assert parse_hours(text) == expected


@pytest.mark.parametrize("text", ["9-16", "09:30-09:30", "25:00-26:00", "09:60-10:00", "09:30–16:00"])
def test_hours_that_are_not_two_times_of_day_are_refused(text):
    with pytest.raises(ValueError, match="hours"):
        parse_hours(text)


def test_a_time_zone_must_be_an_iana_name():
    assert parse_zone("America/New_York") == "America/New_York"
    with pytest.raises(ValueError, match="IANA"):
        parse_zone("EST5EDT-ish")


# --- market holidays ----------------------------------------------------------------------------


def test_no_session_on_the_market_s_holidays_and_the_next_day_trades_as_usual():
    hours = replace(NEW_YORK_SESSION, holidays="NYSE")
    rule = replace(ABOVE_200, hours=hours)
    thanksgiving = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # a Thursday, 10:00 in New York
    friday = thanksgiving + timedelta(days=1)
    assert hours.session_of(thanksgiving) is None
    assert hours.session_of(friday) == friday.date()
    assert fired(rule, series("210", start=thanksgiving), series("205", start=friday, seq=2)) == ["205"]
    # Without the calendar, Thanksgiving is a weekday like another.
    assert fired(replace(ABOVE_200, hours=NEW_YORK_SESSION), series("210", start=thanksgiving)) == ["210"]


def test_an_overnight_session_belongs_to_its_start_day_s_calendar():
    hours = TradingHours(time(18, 0), time(17, 0), "America/New_York", holidays="CME")
    # 2026-12-25 is a CME holiday: the session that would start Christmas evening has no trades,
    # nor do the small hours after it; the evening of the 24th belongs to the 24th.
    christmas_evening = datetime(2026, 12, 25, 23, 30, tzinfo=UTC)  # 18:30 in New York
    assert hours.session_of(christmas_evening) is None
    assert hours.session_of(christmas_evening + timedelta(hours=6)) is None
    assert hours.session_of(christmas_evening - timedelta(days=1)) == datetime(2026, 12, 24).date()


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"hours": "09:30-16:00", "holidays": "MOON"}, "holidays", "not a market calendar like NYSE"),
        ({"holidays": "NYSE"}, "holidays", "only go with hours"),
    ],
)
def test_a_bad_calendar_names_the_holidays_field(options, field, message):
    with pytest.raises(RuleOptionError) as error:
        parse_options(now=T0, **options)
    assert error.value.field == field
    assert message in str(error.value)


def test_a_calendar_code_is_read_in_any_case_and_described():
    options = parse_options(now=T0, hours="09:30-16:00", zone="America/New_York", weekdays=True, holidays="xnys")
    assert options.hours is not None
    assert options.hours.describe() == "09:30-16:00 America/New_York on weekdays, not on XNYS holidays"
