"""Bars of any interval, aggregated exactly from the stored one-minute bars (pure).

An interval's bar starts at a multiple of its length since the Unix epoch, in UTC (so days start at
00:00 UTC and hours on the hour). It has the open of its first minute, the close of its last, the
highest high, the lowest low, and the sums of volume and trades; minutes without trades have no bar
and add nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tickwatch_core.domain.market import Bar

INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OhlcvBar:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trades: int

    @classmethod
    def of_minute(cls, minute: Bar) -> OhlcvBar:
        """A stored one-minute bar as the query API serves it."""
        return cls(minute.start, minute.open, minute.high, minute.low, minute.close, minute.volume, minute.trades)


def interval_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the interval of `length` that holds `moment`."""
    elapsed = moment.astimezone(UTC) - _EPOCH
    return _EPOCH + (elapsed // length) * length


def aggregate(minute_bars: Iterable[Bar], length: timedelta) -> list[OhlcvBar]:
    """One bar per interval that has trades, oldest first. `minute_bars` must be oldest first."""
    aggregated: list[OhlcvBar] = []
    for minute in minute_bars:
        start = interval_start(minute.start, length)
        if aggregated and aggregated[-1].start == start:
            current = aggregated[-1]
            aggregated[-1] = OhlcvBar(
                start,
                current.open,
                max(current.high, minute.high),
                min(current.low, minute.low),
                minute.close,
                current.volume + minute.volume,
                current.trades + minute.trades,
            )
        else:
            if aggregated and start < aggregated[-1].start:
                raise ValueError("minute bars must be oldest first")
            aggregated.append(
                OhlcvBar(start, minute.open, minute.high, minute.low, minute.close, minute.volume, minute.trades)
            )
    return aggregated
