"""A market simulator: realistic trades for any number of symbols, reproducible with a seed.

Each symbol's price follows a random walk in log space whose step has momentum (it leans towards
the previous step) and mean reversion (it is pulled back towards the symbol's start price), so
prices trend for a while without wandering off over a long run. Trades are quoted in cents with a
bid/ask spread of about 0.02 % around the price (at least one cent), and their volume varies around
a base size, with about 5 % of trades 5 to 20 times larger.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

DEFAULT_SYMBOLS: dict[str, Decimal] = {
    "AAPL": Decimal("228.50"),
    "TSLA": Decimal("251.40"),
    "GOOGL": Decimal("171.20"),
    "MSFT": Decimal("415.30"),
    "AMZN": Decimal("197.80"),
    "META": Decimal("563.10"),
    "NVDA": Decimal("138.60"),
    "AMD": Decimal("142.90"),
    "NFLX": Decimal("697.20"),
    "DIS": Decimal("99.60"),
    "PYPL": Decimal("78.40"),
    "INTC": Decimal("22.80"),
    "CSCO": Decimal("57.30"),
    "ADBE": Decimal("512.70"),
    "CRM": Decimal("289.10"),
    "ORCL": Decimal("171.40"),
    "IBM": Decimal("208.90"),
    "UBER": Decimal("72.10"),
    "LYFT": Decimal("13.60"),
    "SPOT": Decimal("377.50"),
}

CENT = Decimal("0.01")
SPREAD_FRACTION = 0.0002  # full bid/ask spread, relative to the price
LARGE_TRADE_SHARE = 0.05
LARGE_TRADE_MULTIPLE = (5, 20)
BASE_VOLUME = 100


@dataclass(frozen=True, slots=True)
class WalkParameters:
    """Per-tick dynamics of the log price."""

    volatility: float = 0.0006  # standard deviation of a step's random part
    momentum: float = 0.25  # share of the previous step carried into the next
    # Pull towards the anchor, per tick, on the log distance: prices then stay within a few
    # percent of their start (about 2 % standard deviation), like an ordinary trading day.
    reversion: float = 0.001


@dataclass(slots=True)
class _SymbolState:
    anchor: float
    log_price: float
    last_step: float = 0.0


@dataclass
class MarketSimulator:
    """Yields tick documents (dicts matching the tick schema). Not thread-safe."""

    symbols: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_SYMBOLS))
    seed: int | None = None
    walk: WalkParameters = field(default_factory=WalkParameters)
    base_volume: int = BASE_VOLUME
    source: str = "simulator"

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("the simulator needs at least one symbol")
        self._random = random.Random(self.seed)
        self._states = {
            symbol: _SymbolState(anchor=math.log(float(price)), log_price=math.log(float(price)))
            for symbol, price in self.symbols.items()
        }
        self._order: Sequence[str] = list(self.symbols)

    def next_tick(self, at: datetime | None = None) -> dict:
        """The next trade of a randomly chosen symbol, stamped `at` (default: now)."""
        symbol = self._order[self._random.randrange(len(self._order))]
        return self.tick_for(symbol, at)

    def tick_for(self, symbol: str, at: datetime | None = None) -> dict:
        state = self._states[symbol]
        step = (
            self.walk.momentum * state.last_step
            + self.walk.reversion * (state.anchor - state.log_price)
            + self._random.gauss(0.0, self.walk.volatility)
        )
        state.last_step = step
        state.log_price += step
        price = max(CENT, Decimal(math.exp(state.log_price)).quantize(CENT, rounding=ROUND_HALF_UP))
        half_spread = max(CENT, (price * Decimal(SPREAD_FRACTION / 2)).quantize(CENT, rounding=ROUND_HALF_UP))
        volume = max(1, round(self.base_volume * self._random.uniform(0.5, 1.5)))
        if self._random.random() < LARGE_TRADE_SHARE:
            volume *= self._random.randint(*LARGE_TRADE_MULTIPLE)
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        return {
            "symbol": symbol,
            "price": float(price),
            "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "volume": volume,
            "bid": float(price - half_spread),
            "ask": float(price + half_spread),
            "source": self.source,
        }

    def ticks(self, count: int, at: datetime | None = None) -> Iterator[dict]:
        for _ in range(count):
            yield self.next_tick(at)


def parse_symbols(text: str) -> dict[str, Decimal]:
    """`AAPL,MSFT=410.5,XYZ` -> symbols with start prices (known ones keep theirs, others 100)."""
    from tickwatch_core.domain.rules import validate_symbol

    symbols: dict[str, Decimal] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, _, price = entry.partition("=")
        symbol = validate_symbol(name.strip())
        if price:
            try:
                start = Decimal(price)
            except ArithmeticError:
                raise ValueError(f"start price {price!r} of {symbol} is not a number") from None
            if not start.is_finite() or start <= 0:
                raise ValueError(f"start price of {symbol} must be greater than zero")
        else:
            start = DEFAULT_SYMBOLS.get(symbol, Decimal("100.00"))
        symbols[symbol] = start
    if not symbols:
        raise ValueError("no symbols given")
    return symbols
