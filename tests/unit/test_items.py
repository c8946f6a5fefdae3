"""Stored shapes: what the alerts function decodes is what the processor encoded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tickwatch_core.domain.delivery.texts import alert_message
from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules import Direction, Firing, Rule, RuleState
from tickwatch_core.store import items

T0 = datetime(2026, 11, 20, 14, 30, 0, 123000, tzinfo=UTC)


def test_trades_round_trip_with_millisecond_precision():
    trades = (
        Trade(Decimal("189.25"), T0),
        Trade(Decimal("0.00001234"), T0 + timedelta(milliseconds=1500)),
        Trade(Decimal("190"), T0 - timedelta(seconds=3)),
    )
    encoded = items.encode_trades(trades)
    assert items.decode_trades(encoded) == trades
    assert len(encoded) < 80


def test_empty_trades():
    assert items.decode_trades(items.encode_trades(())) == ()


def test_alert_message_is_readable():
    rule = Rule("AAPL-above-200", "AAPL", Direction.ABOVE, Decimal("200"), cooldown=timedelta(minutes=15))
    subject, body = alert_message(Firing(rule, Decimal("200.03"), T0, "001", 0))
    assert subject == "tickwatch: AAPL rose to 200.03 (above 200)"
    assert "AAPL traded at 200.03, at or above your threshold of 200." in body
    assert "Time:       2026-11-20 14:30:00.123 UTC" in body
    assert "Cooldown:   15m" in body
    assert "re-arms when AAPL trades below 200 at least 15m after this alert" in body


def test_alert_keys_sort_in_time_order_within_a_second():
    from tickwatch_core.store.items import key_timestamp

    whole_second = datetime(2026, 11, 20, 14, 30, 5, tzinfo=UTC)
    assert key_timestamp(whole_second) == "2026-11-20T14:30:05.000Z"
    assert key_timestamp(whole_second) < key_timestamp(whole_second + timedelta(milliseconds=120))


def test_trade_times_decode_exactly():
    moment = datetime(2026, 11, 20, 14, 30, 0, 44000, tzinfo=UTC)
    trades = (Trade(Decimal("1"), moment), Trade(Decimal("2"), moment - timedelta(days=400, milliseconds=1)))
    assert items.decode_trades(items.encode_trades(trades)) == trades


def test_a_rule_with_every_option_round_trips_through_its_item():
    from datetime import time

    from tickwatch_core.domain.rules import TradingHours

    rule = Rule(
        "AAPL-above-200",
        "AAPL",
        Direction.ABOVE,
        Decimal("200"),
        timedelta(minutes=15),
        rearm_margin=Decimal("0.005"),
        once=True,
        expires_at=datetime(2026, 12, 31, 21, 0, tzinfo=UTC),
        hours=TradingHours(time(9, 30), time(16, 0), "America/New_York", weekdays_only=True),
    )
    created = datetime(2026, 11, 20, tzinfo=UTC)
    stored = items.rule_from_values(items.deserialize(items.rule_to_item(rule, created_at=created)))
    assert stored.rule == rule
    assert stored.state == RuleState()
