"""What move and cross rules remember of the trades they saw: compact, exact, pure.

* `PriceWindow`: the lowest and highest price of each recent UTC minute, for move rules. A trade's
  window is its own minute and the minutes before it, `within` in all (see the package docstring).
* `BarSeries`: the closes of the last closed bars of one interval, for moving-average cross rules,
  read from the stored bars with the query API's bar boundaries and indicator definitions
  (`intervals`, `indicators`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tickwatch_core.domain.intervals import INTERVALS, interval_start
from tickwatch_core.domain.market import Trade

MINUTE = timedelta(minutes=1)
MAX_WINDOW = timedelta(hours=4)
MAX_AVERAGE_PERIOD = 200
_AVERAGE = re.compile(r"^\s*(?P<name>sma|ema):(?P<period>\d{1,3})@(?P<interval>\d+[mhd])\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_window(window: timedelta) -> timedelta:
    """A move rule's `within`: whole minutes, 1m to 4h. Raises ValueError."""
    if window % MINUTE or not MINUTE <= window <= MAX_WINDOW:
        raise ValueError("within must be whole minutes from 1m to 4h, like 15m or 1h30m")
    return window


@dataclass(frozen=True, slots=True)
class MovingAverage:
    """`sma:20@1m`: the mean (or EMA) of the closes of the last 20 closed one-minute bars."""

    name: str  # "sma" or "ema"
    period: int
    interval: str  # a key of intervals.INTERVALS

    @classmethod
    def parse(cls, text: str) -> MovingAverage:
        found = _AVERAGE.match(text.lower())
        if found is None:
            raise ValueError(f"average {text!r} is not like sma:20@1m or ema:50@5m")
        period, interval = int(found["period"]), found["interval"]
        if interval not in INTERVALS:
            raise ValueError(f"average {text!r}: the interval must be one of {', '.join(INTERVALS)}")
        if not 2 <= period <= MAX_AVERAGE_PERIOD:
            raise ValueError(f"average {text!r}: the period must be between 2 and {MAX_AVERAGE_PERIOD}")
        return cls(found["name"], period, interval)

    @property
    def text(self) -> str:
        return f"{self.name}:{self.period}@{self.interval}"

    @property
    def length(self) -> timedelta:
        return INTERVALS[self.interval]

    @property
    def seed_bars(self) -> int:
        """How many stored bars before its first trade a new rule reads: the period, and for an EMA
        three periods more to settle, as the query API's warm-up."""
        return self.period if self.name == "sma" else 4 * self.period

    def describe(self) -> str:
        return f"{self.name.upper()}({self.period}) of {self.interval} bars"


@dataclass(frozen=True, slots=True)
class PriceWindow:
    """Per UTC minute (oldest first): (minute, lowest, highest) of the trades seen."""

    minutes: tuple[tuple[datetime, Decimal, Decimal], ...] = ()

    def extremes_before(self, moment: datetime, window: timedelta) -> tuple[Decimal, Decimal] | None:
        """(lowest, highest) of the trades seen in `moment`'s minute and the minutes before it,
        `window` in all; None when there were none."""
        last = interval_start(moment, MINUTE)
        first = last - window + MINUTE
        inside = [(low, high) for minute, low, high in self.minutes if first <= minute <= last]
        if not inside:
            return None
        return min(low for low, _ in inside), max(high for _, high in inside)

    def with_trade(self, trade: Trade, window: timedelta) -> PriceWindow:
        """This window with `trade` added, keeping only the minutes a later trade can still look at."""
        minute = interval_start(trade.at, MINUTE)
        newest = max(minute, self.minutes[-1][0]) if self.minutes else minute
        oldest = newest - window + MINUTE
        kept, placed = [], False
        for start, low, high in self.minutes:
            if start == minute:
                low, high, placed = min(low, trade.price), max(high, trade.price), True
            if start >= oldest:
                kept.append((start, low, high))
        if not placed and minute >= oldest:
            kept.append((minute, trade.price, trade.price))
            kept.sort(key=lambda entry: entry[0])
        return PriceWindow(tuple(kept))

    def encode(self) -> str:
        """Compact text for the rule item: `minute-since-epoch low high`, `;`-separated."""
        return ";".join(f"{(minute - _EPOCH) // MINUTE} {low} {high}" for minute, low, high in self.minutes)

    @classmethod
    def decode(cls, text: str) -> PriceWindow:
        if not text:
            return cls()
        entries = []
        for part in text.split(";"):
            minute, low, high = part.split(" ")
            entries.append((_EPOCH + int(minute) * MINUTE, Decimal(low), Decimal(high)))
        return cls(tuple(entries))


@dataclass(frozen=True, slots=True)
class BarSeries:
    """A cross rule's closed bars: the closes it still needs and its average, and up to where the
    stored bars have been read into it (`read_until`, an interval start, exclusive). The bars are
    the stored one-minute bars aggregated to the rule's interval, the query API's, so the rule's
    average is the chart's; nothing of the bar still open is kept, and the state changes once per
    bar, not per trade."""

    closes: tuple[Decimal, ...] = ()  # SMA: the last `period` closes; EMA: only until it is seeded
    ema: Decimal | None = None
    read_until: datetime | None = None

    def average(self, average: MovingAverage) -> Decimal | None:
        """The average of the closed bars; None while there are fewer than the period."""
        if average.name == "ema":
            return self.ema
        if len(self.closes) < average.period:
            return None
        return sum(self.closes, Decimal(0)) / average.period

    def with_close(self, close: Decimal, average: MovingAverage) -> BarSeries:
        """One more closed bar."""
        if average.name == "sma":
            return replace(self, closes=(*self.closes, close)[-average.period :])
        if self.ema is not None:
            alpha = Decimal(2) / (average.period + 1)
            return replace(self, ema=alpha * close + (1 - alpha) * self.ema)
        closes = (*self.closes, close)
        if len(closes) < average.period:
            return replace(self, closes=closes)
        return replace(self, closes=(), ema=sum(closes, Decimal(0)) / average.period)

    def closed_before(self, moment: datetime, bars: Sequence[ClosedBar], average: MovingAverage) -> BarSeries:
        """The series as a trade at `moment` sees it: every bar of `bars` (oldest first) that
        starts before `moment`'s interval and was not read yet. A trade of an interval already
        read (a late one) changes nothing."""
        before = interval_start(moment, average.length)
        if self.read_until is not None and before <= self.read_until:
            return self
        series = self
        first = 0 if self.read_until is None else bisect_left(bars, self.read_until, key=lambda bar: bar.start)
        for bar in bars[first:]:
            if bar.start >= before:
                break
            series = series.with_close(bar.close, average)
        return replace(series, read_until=before)


@dataclass(frozen=True, slots=True)
class ClosedBar:
    """A stored bar of a cross rule's interval: its start and close."""

    start: datetime
    close: Decimal
