"""Technical indicators over a series of bars: pure functions, one value per bar (None until enough
history exists). The definitions are the README's (*Query API*, *Indicators*):

* SMA(n): the mean of the last n closes.
* EMA(n): seeded with the SMA of the first n closes, then ema = a * close + (1 - a) * previous, with
  a = 2 / (n + 1).
* RSI(n), Wilder's: over the close-to-close changes, the first average gain and loss are the means
  of the first n changes, then avg = (previous * (n - 1) + current) / n; RSI = 100 - 100 / (1 + gain
  / loss), 100 when there was no loss (50 when there was no change at all).
* VWAP: per UTC day, the running sum of typical price ((high + low + close) / 3) times volume over
  the running volume, from the day's first bar; None while the day has no volume.
* Bollinger(n, k): middle = SMA(n), upper and lower = middle +/- k population standard deviations of
  the same n closes.

Recursive indicators (EMA, RSI) depend on where they start: the query API starts them at the first
bar it reads, `warmup_bars` before the first bar it returns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

# How many bars before the first returned one an indicator of period n reads: enough for SMA and
# Bollinger to have a value at once, and for EMA and RSI to settle (three periods).
WARMUP_PERIODS = {"sma": 1, "bollinger": 1, "ema": 3, "rsi": 3}
MAX_PERIOD = 500
DECIMALS = 6  # indicator values are rounded to this many decimal places

_SPEC = re.compile(r"^(?P<name>sma|ema|rsi|vwap|bollinger)(?::(?P<period>\d{1,3}))?(?::(?P<width>\d+(?:\.\d+)?))?$")


@dataclass(frozen=True, slots=True)
class Indicator:
    """One requested indicator: `sma:20`, `ema:12`, `rsi:14`, `vwap`, `bollinger:20:2`."""

    name: str
    period: int | None = None
    width: Decimal | None = None

    @property
    def key(self) -> str:
        """The name of its field on a bar: `sma_20`, `vwap`, `bollinger_20_2`."""
        parts = [
            self.name,
            *(format(p, "f") if isinstance(p, Decimal) else str(p) for p in (self.period, self.width) if p is not None),
        ]
        return "_".join(parts)

    @property
    def warmup_bars(self) -> int:
        return 0 if self.period is None else WARMUP_PERIODS[self.name] * self.period

    @classmethod
    def parse(cls, text: str) -> Indicator:
        """Raises ValueError with a message naming what is wrong."""
        match = _SPEC.match(text.strip().lower())
        if not match:
            raise ValueError(f"indicator {text!r} is not one of sma:N, ema:N, rsi:N, vwap, bollinger:N:K (like sma:20)")
        name, period, width = match["name"], match["period"], match["width"]
        if name == "vwap":
            if period or width:
                raise ValueError("vwap takes no period (it runs over each UTC day)")
            return cls(name)
        if period is None:
            raise ValueError(f"indicator {text!r} needs a period, like {name}:20")
        if not 2 <= int(period) <= MAX_PERIOD:
            raise ValueError(f"indicator {text!r}: the period must be between 2 and {MAX_PERIOD}")
        if name == "bollinger":
            if width is None:
                raise ValueError(f"indicator {text!r} needs a width in standard deviations, like bollinger:20:2")
            if not 0 < Decimal(width) <= 10:
                raise ValueError(f"indicator {text!r}: the width must be above 0 and at most 10")
            return cls(name, int(period), Decimal(width).normalize())
        if width is not None:
            raise ValueError(f"indicator {text!r}: only bollinger takes a width")
        return cls(name, int(period))


@dataclass(frozen=True, slots=True)
class BarPoint:
    """What indicators read of a bar."""

    start: datetime
    high: float
    low: float
    close: float
    volume: float


def compute(indicator: Indicator, bars: Sequence[BarPoint]) -> list[float | dict[str, float] | None]:
    """The indicator's value at each bar (Bollinger: {"middle", "upper", "lower"})."""
    closes = [bar.close for bar in bars]
    match indicator.name:
        case "sma":
            return _rounded(sma(closes, indicator.period or 0))
        case "ema":
            return _rounded(ema(closes, indicator.period or 0))
        case "rsi":
            return _rounded(rsi(closes, indicator.period or 0))
        case "vwap":
            return _rounded(vwap(bars))
        case "bollinger":
            return [
                None if band is None else {name: round(value, DECIMALS) for name, value in band.items()}
                for band in bollinger(closes, indicator.period or 0, float(indicator.width or 0))
            ]
    raise ValueError(f"unknown indicator {indicator.name}")


def sma(closes: Sequence[float], period: int) -> list[float | None]:
    values: list[float | None] = [None] * len(closes)
    for index in range(period - 1, len(closes)):
        # Summed afresh at each point rather than carried along: no drift over long series.
        values[index] = math.fsum(closes[index - period + 1 : index + 1]) / period
    return values


def ema(closes: Sequence[float], period: int) -> list[float | None]:
    values: list[float | None] = [None] * len(closes)
    if len(closes) < period:
        return values
    alpha = 2 / (period + 1)
    current = math.fsum(closes[:period]) / period
    values[period - 1] = current
    for index in range(period, len(closes)):
        current = alpha * closes[index] + (1 - alpha) * current
        values[index] = current
    return values


def rsi(closes: Sequence[float], period: int) -> list[float | None]:
    values: list[float | None] = [None] * len(closes)
    if len(closes) <= period:
        return values
    changes = [closes[i] - closes[i - 1] for i in range(1, len(closes))]
    gain = math.fsum(max(change, 0.0) for change in changes[:period]) / period
    loss = math.fsum(max(-change, 0.0) for change in changes[:period]) / period
    values[period] = _rsi_value(gain, loss)
    for index in range(period + 1, len(closes)):
        change = changes[index - 1]
        gain = (gain * (period - 1) + max(change, 0.0)) / period
        loss = (loss * (period - 1) + max(-change, 0.0)) / period
        values[index] = _rsi_value(gain, loss)
    return values


def _rsi_value(gain: float, loss: float) -> float:
    if loss == 0:
        return 50.0 if gain == 0 else 100.0
    return 100 - 100 / (1 + gain / loss)


def vwap(bars: Sequence[BarPoint]) -> list[float | None]:
    values: list[float | None] = []
    day = None
    priced = volume = 0.0
    for bar in bars:
        if bar.start.date() != day:
            day, priced, volume = bar.start.date(), 0.0, 0.0
        priced += (bar.high + bar.low + bar.close) / 3 * bar.volume
        volume += bar.volume
        values.append(priced / volume if volume else None)
    return values


def bollinger(closes: Sequence[float], period: int, width: float) -> list[dict[str, float] | None]:
    middles = sma(closes, period)
    bands: list[dict[str, float] | None] = []
    for index, middle in enumerate(middles):
        if middle is None:
            bands.append(None)
            continue
        window = closes[index - period + 1 : index + 1]
        deviation = math.sqrt(math.fsum((close - middle) ** 2 for close in window) / period)
        bands.append({"middle": middle, "upper": middle + width * deviation, "lower": middle - width * deviation})
    return bands


def _rounded(values: list[float | None]) -> list[float | None]:
    return [None if value is None else round(value, DECIMALS) for value in values]
