"""Market holidays for trading hours (`--holidays NYSE`): the days a market is closed all day,
from the `holidays` library's financial calendars. Imported on first use: only rules that name a
calendar pay for it (about 0.2 s for the library, once per container, and a cached lookup per
market and year after that)."""

from __future__ import annotations

from datetime import date
from functools import cache


@cache
def supported_markets() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_financial())


def check_market(code: str) -> str:
    """A calendar code like NYSE, XLON or JPX, uppercased. Raises ValueError."""
    market = code.strip().upper()
    if market not in supported_markets():
        raise ValueError(f"holidays {code!r} is not a market calendar like NYSE, XNAS, LSE, XETR or JPX")
    return market


def is_holiday(market: str, day: date) -> bool:
    """Whether `market` is closed all day on `day` (early closes are trading days)."""
    return day in _closed_days(market, day.year)


@cache
def _closed_days(market: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.financial_holidays(market, years=year))
