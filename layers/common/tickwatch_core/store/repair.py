"""Repair: folding replayed ticks into bars and quotes that later ticks have already moved past.

Items skip every tick at or below their `applied_seq` (that is what makes redelivery safe). A batch
Lambda gave up on, replayed later from its on-failure queue (`tickwatch dlq replay`), therefore
holds ticks that its bars and quotes may already be past, some applied before the batch failed and
some not. Which is which is not recorded anywhere cheap, so a replay rebuilds instead of adding:

* a bar is folded again from the raw data of its minute, every stored tick up to the bar's
  `applied_seq`, deduplicated by sequence number. The processor only applies ticks whose raw line is
  stored, so raw data holds every tick a bar has applied, and the replay stores the replayed ticks'
  lines first;
* a quote's day fields are the sum of its day's bars (open of the first, highest high, lowest low,
  total volume), and its latest trade is the latest of its own and the replayed ticks by (time,
  sequence), both orders the in-order fold also produces.

Every function here is pure; the processor does the reads and conditional writes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from tickwatch_core.domain.market import Bar, Quote, ReceivedTick, bar_start, fold_bar, with_latest_trade
from tickwatch_core.domain.sequence import sortable_sequence
from tickwatch_core.domain.ticks import Tick
from tickwatch_core.store.items import parse_time

# The event key `tickwatch dlq replay` sets on the events it sends, so the processor repairs.
REPLAY_FLAG = "tickwatchReplay"
_PROVENANCE = ("sequence_number", "shard_id", "arrival_time")


def ticks_from_raw(body: bytes) -> list[ReceivedTick]:
    """The ticks of one raw object (gzip JSON Lines written by the processor)."""
    ticks = []
    for line in gzip.decompress(body).decode("utf-8").splitlines():
        if not line.strip():
            continue
        document = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        sequence_number = document["sequence_number"]
        volume = document.get("volume")
        ticks.append(
            ReceivedTick(
                tick=Tick(
                    symbol=document["symbol"],
                    price=document["price"],
                    timestamp=parse_time(document["timestamp"]),
                    volume=None if volume is None else int(volume),
                    bid=document.get("bid"),
                    ask=document.get("ask"),
                    source=document.get("source"),
                ),
                sequence_number=sequence_number,
                sequence_key=sortable_sequence(sequence_number),
                shard_id=document["shard_id"],
                arrival=parse_time(document["arrival_time"]),
            )
        )
    return ticks


def rebuild_bar(symbol: str, start: datetime, raw_ticks: Iterable[ReceivedTick], applied_seq: str) -> Bar | None:
    """The bar as the in-order fold of every stored tick of its minute up to `applied_seq`."""
    ticks = {
        received.sequence_key: received
        for received in raw_ticks
        if received.tick.symbol == symbol
        and bar_start(received.tick.timestamp) == start
        and received.sequence_key <= applied_seq
    }
    return fold_bar(None, sorted(ticks.values(), key=lambda received: received.sequence_key))


def latest_trade_day(quote: Quote, replayed: Iterable[ReceivedTick]) -> date:
    """The UTC day of the latest trade once the replayed ticks count: the day the quote covers."""
    latest = max((quote.at, *(received.tick.timestamp for received in replayed)))
    return latest.astimezone(UTC).date()


def rebuild_quote(quote: Quote, replayed: Sequence[ReceivedTick], day_bars: Sequence[Bar]) -> Quote:
    """The quote with the replayed ticks counted: latest trade by (time, sequence), day fields from
    the bars of the latest trade's day. The update carries no trades: replayed ticks are not
    evaluated against alert rules (README, "Replaying failed batches")."""
    rebuilt = quote
    for received in sorted(replayed, key=lambda received: received.sequence_key):
        tick = received.tick
        if received.sequence_key <= quote.applied_seq and (tick.timestamp, received.sequence_key) > (
            rebuilt.at,
            rebuilt.at_seq,
        ):
            rebuilt = with_latest_trade(rebuilt, received)
    day = rebuilt.at.astimezone(UTC).date()
    bars = sorted((bar for bar in day_bars if bar.start.date() == day), key=lambda bar: bar.start)
    if not bars:  # nothing stored for the day yet (bars expired early): keep what the quote has
        return replace(rebuilt, trades=())
    return replace(
        rebuilt,
        day=day,
        day_open=bars[0].open,
        day_open_at=bars[0].open_at,
        day_high=max(bar.high for bar in bars),
        day_low=min(bar.low for bar in bars),
        day_volume=sum(bar.volume for bar in bars),
        trades=(),
    )


def same_bar(first: Bar | None, second: Bar | None) -> bool:
    if first is None or second is None:
        return first is second
    return replace(first, revision=0) == replace(second, revision=0)


def same_quote(first: Quote, second: Quote) -> bool:
    return replace(first, revision=0, trades=()) == replace(second, revision=0, trades=())
