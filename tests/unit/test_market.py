"""Folding ticks into quotes and bars: exact values, idempotency, out-of-order ticks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tickwatch_core.domain.market import ReceivedTick, Trade, bar_start, fold_bar, fold_quote
from tickwatch_core.domain.sequence import sortable_sequence
from tickwatch_core.domain.ticks import Tick

T0 = datetime(2026, 11, 20, 14, 30, 0, tzinfo=UTC)


def received(
    n: int, price: str, seconds: float = 0, symbol: str = "AAPL", volume: int | None = 100, **extra
) -> ReceivedTick:
    tick = Tick(symbol, Decimal(price), T0 + timedelta(seconds=seconds), volume=volume, **extra)
    seq = str(10**55 + n)
    return ReceivedTick(tick, seq, sortable_sequence(seq), "shardId-000000000000", T0 + timedelta(seconds=seconds))


def test_first_quote_takes_the_latest_tick_and_the_day_range():
    ticks = [
        received(1, "100", 0),
        received(2, "103", 1, bid=Decimal("102.9"), ask=Decimal("103.1")),
        received(3, "99", 2, volume=50),
    ]
    quote = fold_quote(None, ticks)
    assert (quote.price, quote.at, quote.volume) == (Decimal("99"), T0 + timedelta(seconds=2), 50)
    assert (quote.day, quote.day_open, quote.day_high, quote.day_low, quote.day_volume) == (
        date(2026, 11, 20),
        Decimal("100"),
        Decimal("103"),
        Decimal("99"),
        250,
    )
    assert (quote.window_high, quote.window_low) == (Decimal("103"), Decimal("99"))
    assert quote.trades == (
        Trade(Decimal("100"), T0),
        Trade(Decimal("103"), T0 + timedelta(seconds=1)),
        Trade(Decimal("99"), T0 + timedelta(seconds=2)),
    )
    assert quote.applied_seq == ticks[-1].sequence_key


def test_window_covers_only_the_ticks_of_this_update():
    first = fold_quote(None, [received(1, "100", 0), received(2, "120", 1)])
    second = fold_quote(first, [received(3, "101", 2), received(4, "102", 3)])
    assert (second.window_high, second.window_low) == (Decimal("102"), Decimal("101"))
    assert (second.day_high, second.day_low) == (Decimal("120"), Decimal("100"))
    assert [t.price for t in second.trades] == [Decimal("101"), Decimal("102")]


def test_redelivered_ticks_are_not_applied_twice():
    ticks = [received(1, "100", 0), received(2, "101", 1)]
    quote = fold_quote(None, ticks)
    assert fold_quote(quote, ticks) is None


def test_overlapping_batch_applies_only_the_new_ticks():
    all_ticks = [received(n, str(100 + n), n) for n in range(1, 11)]
    once = fold_quote(None, all_ticks)
    overlapped = fold_quote(fold_quote(None, all_ticks[:6]), all_ticks[3:])
    assert overlapped.day_volume == once.day_volume == 1000
    assert (overlapped.price, overlapped.day_high, overlapped.day_low, overlapped.day_open) == (
        once.price,
        once.day_high,
        once.day_low,
        once.day_open,
    )
    assert [t.price for t in overlapped.trades] == [Decimal(str(100 + n)) for n in range(7, 11)]


def test_an_older_tick_never_moves_the_latest_quote_backwards():
    quote = fold_quote(None, [received(1, "100", 10)])
    late = fold_quote(quote, [received(2, "90", 5)])
    assert (late.price, late.at) == (Decimal("100"), T0 + timedelta(seconds=10))
    # ... but it did trade: it counts for the day's range and open, and is in the window.
    assert (late.day_low, late.day_open, late.day_volume) == (Decimal("90"), Decimal("90"), 200)
    assert late.window_low == Decimal("90")


def test_equal_timestamps_the_later_tick_in_the_stream_is_latest():
    quote = fold_quote(None, [received(1, "100", 0), received(2, "101", 0)])
    assert quote.price == Decimal("101")


def test_a_new_utc_day_resets_the_day_range():
    quote = fold_quote(None, [received(1, "100", 0), received(2, "150", 1)])
    next_day = fold_quote(quote, [received(3, "110", 86400)])
    assert (next_day.day, next_day.day_open, next_day.day_high, next_day.day_low, next_day.day_volume) == (
        date(2026, 11, 21),
        Decimal("110"),
        Decimal("110"),
        Decimal("110"),
        100,
    )
    # A straggler from yesterday arriving afterwards does not touch today's range.
    straggler = fold_quote(next_day, [received(4, "1", 2)])
    assert (straggler.day_low, straggler.day_volume, straggler.price) == (Decimal("110"), 100, Decimal("110"))


def test_bar_ohlcv_by_tick_time_with_a_late_tick():
    ticks = [received(1, "100", 1), received(2, "105", 20), received(3, "98", 40), received(4, "99", 0.5, volume=7)]
    bar = fold_bar(None, ticks)
    assert bar.start == T0
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades) == (
        Decimal("99"),
        Decimal("105"),
        Decimal("98"),
        Decimal("98"),
        307,
        4,
    )


def test_bar_redelivery_and_overlap_are_idempotent():
    ticks = [received(n, str(100 + (n % 5)), n) for n in range(1, 30)]
    once = fold_bar(None, ticks)
    assert fold_bar(once, ticks) is None
    assert fold_bar(fold_bar(None, ticks[:10]), ticks[5:]) == once


def test_bar_start_is_the_minute():
    assert bar_start(datetime(2026, 11, 20, 14, 30, 59, 999999, tzinfo=UTC)) == T0
