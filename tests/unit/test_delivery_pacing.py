"""Pacing: a destination is never sent more than its limits; bursts become digests, never a backlog."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tickwatch_core.domain.delivery.pacing import (
    DISCORD_LIMITS,
    EMAIL_LIMITS,
    TELEGRAM_CHAT_LIMITS,
    TELEGRAM_GROUP_LIMITS,
    RateLimit,
    SendLog,
    channel_limits,
    parse_rate,
    plan_messages,
    plan_round,
)

T0 = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_email_stays_at_half_of_what_sns_suspends_for():
    # Given AWS's rule (an e-mail subscription sent more than 10 messages in a second is
    # suspended), when we read the e-mail limit, then it is 5 a second: two adjacent seconds'
    # sends delivered within one second stay at 10.
    assert channel_limits("email") == EMAIL_LIMITS == (RateLimit(5, 1),)


def test_telegram_groups_have_the_per_minute_limit_and_chats_do_not():
    assert channel_limits("telegram", "-1001234567890") == TELEGRAM_GROUP_LIMITS
    assert channel_limits("telegram", "@channelname") == TELEGRAM_GROUP_LIMITS
    assert channel_limits("telegram", "123456789") == TELEGRAM_CHAT_LIMITS
    assert RateLimit(20, 60) in TELEGRAM_GROUP_LIMITS


def test_available_counts_sends_inside_every_window():
    log = SendLog((at(0), at(0.5)))
    assert log.available(EMAIL_LIMITS, at(0.9)) == 3
    # 1.0 s after the first send it has left the window (a window is (now - 1 s, now]).
    assert log.available(EMAIL_LIMITS, at(1.0)) == 4
    assert log.available(EMAIL_LIMITS, at(1.6)) == 5


def test_next_free_is_when_the_oldest_counted_send_leaves_the_window():
    log = SendLog(tuple(at(i * 0.1) for i in range(5)))
    assert log.available(EMAIL_LIMITS, at(0.5)) == 0
    free = log.next_free(EMAIL_LIMITS, at(0.5))
    assert at(1.0) < free <= at(1.0) + timedelta(milliseconds=1)
    assert log.available(EMAIL_LIMITS, free) == 1


def test_next_free_honours_the_longest_of_several_limits():
    # A Telegram group: 20 sends a second apart fill the minute; the per-second limit alone would
    # allow the next one a second later.
    log = SendLog(tuple(at(i) for i in range(20)))
    free = log.next_free(TELEGRAM_GROUP_LIMITS, at(19.5))
    assert free > at(60)
    assert log.available(TELEGRAM_GROUP_LIMITS, free) == 1


@pytest.mark.parametrize("limits", [EMAIL_LIMITS, DISCORD_LIMITS, TELEGRAM_GROUP_LIMITS, (RateLimit(3, 10),)])
def test_a_sender_that_follows_the_log_never_breaks_a_limit(limits):
    # Given random arrivals sent as soon as the log allows, then no window of any limit ever
    # holds more than its count: the property the receivers' limits need.
    rng = random.Random(7)
    log, sent, now = SendLog(), [], T0
    for _ in range(300):
        now += timedelta(milliseconds=rng.randint(0, 400))
        now = max(now, log.next_free(limits, now))
        assert log.available(limits, now) >= 1
        log = log.record(now, limits)
        sent.append(now)
    for limit in limits:
        for index, start in enumerate(sent):
            inside = [moment for moment in sent[index:] if moment < start + limit.window]
            assert len(inside) <= limit.count, (limit, start)


def test_the_log_keeps_only_what_its_longest_window_counts_and_survives_encoding():
    log = SendLog()
    for second in range(100):
        log = log.record(at(second), TELEGRAM_GROUP_LIMITS)
    assert len(log.sent) == 60
    again = SendLog.decode(log.encode())
    assert again == log
    assert SendLog.decode(None) == SendLog() == SendLog.decode("")


def test_alerts_that_fit_go_one_message_each():
    assert plan_messages(["a", "b", "c"], 5) == [["a"], ["b"], ["c"]]


def test_a_burst_past_the_budget_is_one_digest_of_everything():
    burst = [f"alert-{i}" for i in range(500)]
    messages = plan_messages(burst, 1)
    assert messages == [burst]


def test_a_burst_is_grouped_per_symbol_when_the_groups_fit():
    burst = [("AAPL", 1), ("TSLA", 2), ("AAPL", 3), ("NVDA", 4), ("TSLA", 5), ("AAPL", 6)]
    messages = plan_messages(burst, 3, group_of=lambda alert: alert[0])
    assert messages == [[("AAPL", 1), ("AAPL", 3), ("AAPL", 6)], [("TSLA", 2), ("TSLA", 5)], [("NVDA", 4)]]
    # More groups than slots: one digest, nothing dropped.
    assert plan_messages(burst, 2, group_of=lambda alert: alert[0]) == [burst]


def test_nothing_is_planned_without_a_slot():
    assert plan_messages(["a"], 0) == []
    assert plan_messages([], 3) == []


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("10/s", RateLimit(10, 1)),
        ("5/2s", RateLimit(5, 2)),
        ("30/min", RateLimit(30, 60)),
        ("100/h", RateLimit(100, 3600)),
    ],
)
def test_parse_rate(text, limit):
    assert parse_rate(text) == limit
    assert parse_rate(limit.text) == limit


@pytest.mark.parametrize("text", ["", "fast", "0/s", "10", "1000/s", "5/0s", "1/2h"])
def test_parse_rate_refuses_what_is_not_a_rate(text):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_destinations_sharing_a_receiver_share_its_slots():
    pending = {"email": ["a1", "a2"], "me": ["b1"]}
    assert plan_round(pending, 3) == [("email", ["a1"]), ("email", ["a2"]), ("me", ["b1"])]
    # Too many for one each: a digest per destination, per symbol when those fit.
    by_symbol = {"email": [("AAPL", 1), ("TSLA", 2), ("AAPL", 3)], "me": [("AAPL", 4)]}
    assert plan_round(by_symbol, 3, group_of=lambda alert: alert[0]) == [
        ("email", [("AAPL", 1), ("AAPL", 3)]),
        ("email", [("TSLA", 2)]),
        ("me", [("AAPL", 4)]),
    ]
    assert plan_round(by_symbol, 2, group_of=lambda alert: alert[0]) == [
        ("email", [("AAPL", 1), ("TSLA", 2), ("AAPL", 3)]),
        ("me", [("AAPL", 4)]),
    ]
    # Fewer slots than destinations: the first go now, the others at the next slot.
    assert plan_round({"x": [1, 2], "y": [3, 4], "z": [5, 6]}, 2) == [("x", [1, 2]), ("y", [3, 4])]
    assert plan_round({"x": [1]}, 0) == []
