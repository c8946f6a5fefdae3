"""Pure market-data folding: ticks into latest quotes and one-minute OHLCV bars.

Every function here takes plain values and returns plain values; nothing talks to AWS. The
processor reads the previous state of each item, folds the batch's new ticks into it here, and
writes the result back once.

Idempotency rests on one invariant: each quote and bar remembers `applied_seq`, the sortable key
(see `sequence.py`) of the last tick folded into it. Ticks of a symbol always travel on one shard in
sequence order, so a tick whose key is not above `applied_seq` has already been applied to that item
and is skipped. Redelivered and overlapping batches therefore leave the state exactly as if every
tick had been applied once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tickwatch_core.domain.ticks import Tick

BAR_LENGTH = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ReceivedTick:
    """A valid tick with where and when it arrived in the stream."""

    tick: Tick
    sequence_number: str
    sequence_key: str  # sortable form of sequence_number
    shard_id: str
    arrival: datetime


@dataclass(frozen=True, slots=True)
class Trade:
    """A price at a moment: the unit rules are evaluated on."""

    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class Quote:
    """Latest state of one symbol.

    `price`, `bid`, `ask`, `volume` and `at` come from the tick with the latest timestamp (a late
    tick never moves them backwards). The `day_*` fields cover the UTC day of that tick. The
    `window_*` fields and `trades` describe every tick folded in by this update, in stream order,
    so that the alerts function sees each trade, including a crossing that happened and reversed
    inside one batch.
    """

    symbol: str
    price: Decimal
    at: datetime
    bid: Decimal | None
    ask: Decimal | None
    volume: int | None
    day: date
    day_open: Decimal
    day_open_at: datetime
    day_high: Decimal
    day_low: Decimal
    day_volume: int
    window_high: Decimal
    window_low: Decimal
    trades: tuple[Trade, ...]
    applied_seq: str
    # Sequence key of the tick `price` and `at` come from: breaks ties between equal timestamps
    # when a replayed tick is merged in after later ones (see `repair.py`).
    at_seq: str = ""
    # Bumped by every write; writes are conditional on it (optimistic concurrency).
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Bar:
    """One-minute OHLCV bar of one symbol, by tick time. `start` is the minute's first instant."""

    symbol: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trades: int
    open_at: datetime
    close_at: datetime
    applied_seq: str
    revision: int = 0


def bar_start(moment: datetime) -> datetime:
    """The minute a moment belongs to."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def new_ticks(ticks: Iterable[ReceivedTick], applied_seq: str | None) -> list[ReceivedTick]:
    """The ticks not yet applied to an item whose last applied tick is `applied_seq`, in stream order."""
    ordered = sorted(ticks, key=lambda received: received.sequence_key)
    if applied_seq is None:
        return ordered
    return [received for received in ordered if received.sequence_key > applied_seq]


def fold_quote(previous: Quote | None, ticks: Sequence[ReceivedTick]) -> Quote | None:
    """Apply one symbol's ticks to its latest quote; `None` when none of them is new."""
    fresh = new_ticks(ticks, previous.applied_seq if previous else None)
    if not fresh:
        return None
    quote = previous
    for received in fresh:
        quote = _apply_to_quote(quote, received)
    assert quote is not None
    prices = [received.tick.price for received in fresh]
    return replace(
        quote,
        window_high=max(prices),
        window_low=min(prices),
        trades=tuple(Trade(received.tick.price, received.tick.timestamp) for received in fresh),
    )


def _apply_to_quote(quote: Quote | None, received: ReceivedTick) -> Quote:
    tick = received.tick
    day = tick.timestamp.date()
    if quote is None or day > quote.day:
        return Quote(
            symbol=tick.symbol,
            price=tick.price,
            at=tick.timestamp,
            bid=tick.bid,
            ask=tick.ask,
            volume=tick.volume,
            day=day,
            day_open=tick.price,
            day_open_at=tick.timestamp,
            day_high=tick.price,
            day_low=tick.price,
            day_volume=tick.volume or 0,
            window_high=tick.price,
            window_low=tick.price,
            trades=(),
            applied_seq=received.sequence_key,
            at_seq=received.sequence_key,
            revision=quote.revision if quote else 0,
        )
    quote = replace(quote, applied_seq=received.sequence_key)
    if day == quote.day:
        quote = replace(
            quote,
            day_high=max(quote.day_high, tick.price),
            day_low=min(quote.day_low, tick.price),
            day_volume=quote.day_volume + (tick.volume or 0),
        )
        if tick.timestamp < quote.day_open_at:
            quote = replace(quote, day_open=tick.price, day_open_at=tick.timestamp)
    # Equal timestamps: the later tick in the stream is the latest.
    if tick.timestamp >= quote.at:
        quote = with_latest_trade(quote, received)
    return quote


def with_latest_trade(quote: Quote, received: ReceivedTick) -> Quote:
    """The quote with `received` as its latest trade (price, time, bid, ask, volume)."""
    tick = received.tick
    return replace(
        quote,
        price=tick.price,
        at=tick.timestamp,
        bid=tick.bid,
        ask=tick.ask,
        volume=tick.volume,
        at_seq=received.sequence_key,
    )


def fold_bar(previous: Bar | None, ticks: Sequence[ReceivedTick]) -> Bar | None:
    """Apply ticks of one symbol and one minute to that bar; `None` when none of them is new."""
    fresh = new_ticks(ticks, previous.applied_seq if previous else None)
    if not fresh:
        return None
    bar = previous
    for received in fresh:
        tick = received.tick
        if bar is None:
            bar = Bar(
                symbol=tick.symbol,
                start=bar_start(tick.timestamp),
                open=tick.price,
                high=tick.price,
                low=tick.price,
                close=tick.price,
                volume=tick.volume or 0,
                trades=1,
                open_at=tick.timestamp,
                close_at=tick.timestamp,
                applied_seq=received.sequence_key,
            )
            continue
        bar = replace(
            bar,
            high=max(bar.high, tick.price),
            low=min(bar.low, tick.price),
            volume=bar.volume + (tick.volume or 0),
            trades=bar.trades + 1,
            applied_seq=received.sequence_key,
        )
        # Open is the earliest trade of the minute, close the latest; on equal timestamps the
        # earlier tick in the stream opens and the later one closes.
        if tick.timestamp < bar.open_at:
            bar = replace(bar, open=tick.price, open_at=tick.timestamp)
        if tick.timestamp >= bar.close_at:
            bar = replace(bar, close=tick.price, close_at=tick.timestamp)
    return bar
