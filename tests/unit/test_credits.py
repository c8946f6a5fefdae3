"""The credit ledger's decisions, without AWS: which counters a moment falls in, what fits under a
limit after an atomic add, and which symbols a run takes in the rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tickwatch_core.sources.credits import CreditLimits, Grant, allowed, rotation, windows

LIMITS = CreditLimits(per_minute=8, per_day=800)


def test_a_moment_falls_in_its_utc_minute_and_utc_day():
    minute, day = windows(datetime(2026, 11, 20, 23, 59, 59, 999000, tzinfo=UTC), LIMITS)
    assert (minute.sort_key, minute.limit) == ("CREDITS#MINUTE#2026-11-20T23:59", 8)
    assert (day.sort_key, day.limit) == ("CREDITS#DAY#2026-11-20", 800)
    # Expiry: an hour after the minute began, a day after the day ended (TTL deletes within days;
    # the counters' keys moved on long before, so a late delete never matters).
    assert datetime.fromtimestamp(minute.expires_at, UTC) == datetime(2026, 11, 21, 0, 59, tzinfo=UTC)
    assert datetime.fromtimestamp(day.expires_at, UTC) == datetime(2026, 11, 22, tzinfo=UTC)


def test_a_moment_in_another_zone_counts_in_utc():
    new_york = timezone(timedelta(hours=-5))
    minute, day = windows(datetime(2026, 11, 20, 21, 30, tzinfo=new_york), LIMITS)
    assert minute.sort_key == "CREDITS#MINUTE#2026-11-21T02:30"
    assert day.sort_key == "CREDITS#DAY#2026-11-21"


@pytest.mark.parametrize(
    ("total_after_add", "added", "limit", "expected"),
    [
        (5, 5, 8, 5),  # all fit
        (8, 8, 8, 8),  # exactly the limit
        (10, 5, 8, 3),  # 5 were taken: 3 of the 5 fit
        (16, 8, 8, 0),  # another run took the minute
        (20, 4, 8, 0),  # over already (an excess not given back yet): nothing
    ],
)
def test_what_fits_under_the_limit_after_an_atomic_add(total_after_add, added, limit, expected):
    assert allowed(total_after_add, added, limit) == expected


def test_grants_never_sum_past_the_limit_when_a_give_back_comes_late():
    # Three runs want 5 credits each of a minute's 8, and the third adds before the second has
    # given back its excess (the worst interleaving): it sees more taken than is, never less.
    total = 5
    first = allowed(total, 5, 8)
    total += 5
    second = allowed(total, 5, 8)
    total += 5
    third = allowed(total, 5, 8)
    total -= (5 - second) + (5 - third)  # the give-backs, late
    assert (first, second, third) == (5, 3, 0)
    assert total == first + second + third == 8


def test_the_rotation_hands_out_the_next_symbols_and_wraps():
    symbols = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
    assert rotation(symbols, 2, 2) == ("AAPL", "MSFT")
    assert rotation(symbols, 4, 2) == ("NVDA", "TSLA")
    assert rotation(symbols, 6, 2) == ("AMZN", "AAPL")
    assert rotation(symbols, 5, 5) == tuple(symbols)
    assert rotation(symbols, 3, 0) == ()
    assert rotation([], 3, 2) == ()


def test_successive_rotations_cover_every_symbol_evenly():
    symbols = [f"S{n}" for n in range(20)]
    handed_out, taken = 0, []
    for _ in range(5):  # five runs of 8 credits: 40 quotes of 20 symbols
        handed_out += 8
        taken += rotation(symbols, handed_out, 8)
    assert {symbol: taken.count(symbol) for symbol in symbols} == dict.fromkeys(symbols, 2)


def test_a_grant_says_what_was_skipped():
    assert Grant(wanted=5, credits=2, symbols=("A", "B")).skipped == 3
