"""GET /bars: checking the request, reading pages of bars, and computing their indicators.

A page holds up to `limit` bars: minute bars are read in key order only until the first minute of
bar `limit + 1` shows up, so a page is never empty while later bars exist, and whole intervals are
read (a bar that starts before `to` holds all of its interval's minutes). Indicators need bars
before the first one returned: counted in bars, not in time, the read reaches further back (four
times as far each round) until it has them or MAX_WARMUP_SPAN is covered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwatch_core.apps.query_api.errors import ApiError, checked, invalid
from tickwatch_core.apps.query_api.views import bar_view, decode_cursor, encode_cursor
from tickwatch_core.domain import indicators
from tickwatch_core.domain.indicators import BarPoint, Indicator
from tickwatch_core.domain.intervals import INTERVALS, OhlcvBar, aggregate, interval_start
from tickwatch_core.domain.rules import SYMBOL_PATTERN
from tickwatch_core.store.market_reader import MarketReader

MAX_BARS = 1000
DEFAULT_BARS_SPAN = timedelta(hours=2)
MAX_MINUTE_BARS_SPAN = timedelta(days=31)
MAX_SPAN = timedelta(days=366)
MAX_WARMUP_SPAN = timedelta(days=62)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_INDICATORS = 10
_RFC_3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class BarsQuery:
    symbol: str
    interval: str
    first: datetime  # the start of the first bar that may be returned
    end: datetime  # bars start before this
    limit: int
    indicators: tuple[Indicator, ...]
    indicators_text: str | None

    @property
    def length(self) -> timedelta:
        return INTERVALS[self.interval]


def parse_time(field: str, text: str) -> datetime:
    """An RFC 3339 time with a zone, as UTC; 422 naming `field` otherwise."""
    if not _RFC_3339.match(text):
        raise invalid(field, f"{field} is not an RFC 3339 time with a zone, like 2026-11-20T14:30:00Z")
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise invalid(field, f"{field} {text!r} is not a real date and time") from None
    if not EARLIEST <= moment < LATEST:
        raise invalid(field, f"{field} must be between 1970 and 2100")
    return moment


def bars_query(
    symbol: str,
    *,
    interval: str,
    from_text: str | None,
    to_text: str | None,
    limit: int,
    indicators_text: str | None,
    now: datetime,
) -> BarsQuery:
    """The checked request; every problem is a 422 naming its parameter."""
    if interval not in INTERVALS:
        raise invalid("interval", f"interval must be one of {', '.join(INTERVALS)}")
    if not 1 <= limit <= MAX_BARS:
        raise invalid("limit", f"limit must be between 1 and {MAX_BARS}")
    length = INTERVALS[interval]
    end = parse_time("to", to_text) if to_text is not None else now
    if from_text is not None:
        start = parse_time("from", from_text)
        first = interval_start(start, length)
        if first < start:
            first += length  # bars start at or after `from`
    else:
        first = interval_start(end - DEFAULT_BARS_SPAN, length)  # the interval holding `to` - 2 h, on
        start = first
    if start >= end:
        raise invalid("from", "from must be before to")
    if interval == "1m" and end - start > MAX_MINUTE_BARS_SPAN:
        raise invalid("from", "a range of 1m bars is at most 31 days: page through it, or ask for 5m or longer")
    if end - start > MAX_SPAN:
        raise invalid("from", "a range of bars is at most 366 days")
    return BarsQuery(symbol, interval, first, end, limit, _parse_indicators(indicators_text), indicators_text)


def bars_query_from_cursor(symbol: str, cursor: str, now: datetime) -> BarsQuery:
    """The next page's request, checked like the first one's: a cursor is not trusted."""
    page = decode_cursor(cursor, "bars")
    try:
        if page.get("symbol") != symbol or not SYMBOL_PATTERN.match(symbol):
            raise invalid("cursor", "cursor belongs to another symbol")
        values = {name: page.get(name) for name in ("interval", "from", "to", "limit", "indicators")}
        if not (isinstance(values["limit"], int) and isinstance(values["interval"], str)):
            raise invalid("cursor", "cursor is not one this API gave out")
        for name in ("from", "to", "indicators"):
            if values[name] is not None and not isinstance(values[name], str):
                raise invalid("cursor", "cursor is not one this API gave out")
        return bars_query(
            symbol,
            interval=values["interval"],
            from_text=values["from"],
            to_text=values["to"],
            limit=values["limit"],
            indicators_text=values["indicators"],
            now=now,
        )
    except ApiError as error:
        raise invalid("cursor", f"cursor is not one this API gave out ({error.message})") from None


def bars_page(reader: MarketReader, query: BarsQuery) -> dict[str, Any]:
    """The answer of GET /bars for `query`: its bars with their indicators, and the next cursor."""
    length = query.length
    # Whole intervals: the last bar that starts before `end` is read to its end.
    read_end = interval_start(query.end - timedelta(microseconds=1), length) + length
    # The warm-up is read in the same Query as the page, twice as far back as it needs when no
    # interval is empty; only a gappy history needs another read (`_earlier_warmup`).
    needed = max((indicator.warmup_bars for indicator in query.indicators), default=0)
    read_from = query.first - 2 * needed * length
    if any(indicator.name == "vwap" for indicator in query.indicators):
        read_from = min(read_from, interval_start(query.first, INTERVALS["1d"]))
    warm_minutes: list[OhlcvBar] = []
    minutes: list[OhlcvBar] = []
    next_start: datetime | None = None
    intervals_seen, current = 0, None
    for minute in reader.iter_minute_bars(query.symbol, read_from, read_end):
        if minute.start < query.first:
            warm_minutes.append(minute)
            continue
        start = interval_start(minute.start, length)
        if start != current:
            intervals_seen, current = intervals_seen + 1, start
            if intervals_seen > query.limit:
                next_start = start
                break
        minutes.append(minute)
    bars = aggregate(minutes, length)
    views = [bar_view(bar) for bar in bars]
    if query.indicators:
        warmup = _warmup(reader, query, aggregate(warm_minutes, length), read_from)
        points = [_point(bar) for bar in (*warmup, *bars)]
        for indicator in query.indicators:
            values, key = indicators.compute(indicator, points), indicator.key
            for view, value in zip(views, values[len(warmup) :], strict=True):
                view[key] = value
    following = None
    if next_start is not None:
        following = encode_cursor(
            {
                "kind": "bars",
                "symbol": query.symbol,
                "interval": query.interval,
                "limit": query.limit,
                "indicators": query.indicators_text,
                "from": next_start.isoformat(),
                "to": query.end.isoformat(),
            }
        )
    return {
        "symbol": query.symbol,
        "interval": query.interval,
        "from": query.first,
        "to": next_start or query.end,
        "bars": views,
        "next": following,
    }


def _warmup(reader: MarketReader, query: BarsQuery, bars: list[OhlcvBar], read_from: datetime) -> list[OhlcvBar]:
    """The bars before `first` the indicators need: the longest warm-up counted in bars (reading
    further back, four times as far each round, while a gappy history has too few), and for VWAP
    the bars of the first bar's UTC day."""
    length = query.length
    needed = max(indicator.warmup_bars for indicator in query.indicators)
    span, lower = query.first - read_from, read_from
    while len(bars) < needed and span < MAX_WARMUP_SPAN and lower > EARLIEST:
        span = min(span * 4, MAX_WARMUP_SPAN)
        reach = max(query.first - span, EARLIEST)
        bars = aggregate([*reader.iter_minute_bars(query.symbol, reach, lower)], length) + bars
        lower = reach
    keep = max(0, len(bars) - needed)
    if any(indicator.name == "vwap" for indicator in query.indicators):
        day_start = interval_start(query.first, INTERVALS["1d"])
        keep = min(keep, next((i for i, bar in enumerate(bars) if bar.start >= day_start), len(bars)))
    return bars[keep:]


def _parse_indicators(text: str | None) -> tuple[Indicator, ...]:
    if not text:
        return ()
    specs = [part for part in text.split(",") if part.strip()]
    if len(specs) > MAX_INDICATORS:
        raise invalid("indicators", f"at most {MAX_INDICATORS} indicators")
    parsed = [checked("indicators", Indicator.parse, spec) for spec in specs]
    if len({indicator.key for indicator in parsed}) != len(parsed):
        raise invalid("indicators", "an indicator is asked for twice")
    return tuple(parsed)


def _point(bar: OhlcvBar) -> BarPoint:
    return BarPoint(bar.start, float(bar.high), float(bar.low), float(bar.close), float(bar.volume))
