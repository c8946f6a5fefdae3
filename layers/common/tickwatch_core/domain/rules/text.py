"""Rules as text: parsing and formatting what users type and read (prices, percentages,
durations, hours, zones, instants). Pure, no model: `model` and the CLI and API build on it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tickwatch_core.domain.numbers import storable_decimal

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.-]{0,9}$")


_DURATION_PART = re.compile(r"(\d+)([smhd])")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")


# A re-arm margin beyond this would move an above rule's re-arming level to zero or below.
MAX_REARM_MARGIN = Decimal("0.5")


# Decimal's default context rounds to 28 digits; formatting must never change a number.
_EXACT = Context(prec=100)


def validate_symbol(symbol: str) -> str:
    if not SYMBOL_PATTERN.match(symbol):
        raise ValueError(
            f"{symbol!r} is not a symbol: 1-10 uppercase letters, digits, '.' or '-', starting with a letter"
        )
    return symbol


def parse_threshold(text: str | Decimal | int | float) -> Decimal:
    try:
        value = Decimal(repr(text)) if isinstance(text, float) else Decimal(text)
    except InvalidOperation:
        raise ValueError(f"threshold {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"threshold {text} must be a number greater than zero")
    try:
        return storable_decimal(value)
    except ValueError as error:
        raise ValueError(f"threshold {error}") from None


def parse_duration(text: str) -> timedelta:
    """`"90s"`, `"15m"`, `"1h30m"`, `"2d"` -> timedelta. Raises ValueError."""
    cleaned = text.strip().lower()
    if not cleaned or _DURATION_PART.sub("", cleaned):
        raise ValueError(f"duration {text!r} is not like 30s, 15m, 1h30m or 2d")
    seconds = sum(int(amount) * _DURATION_UNITS[unit] for amount, unit in _DURATION_PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None


# A change below -100 % is a price below zero; far above +1000 % is surely a typo.
_CHANGE_LIMITS = (Decimal(-100), Decimal(1000))


def parse_change(text: str | Decimal) -> Decimal:
    """`"3%"`, `"+3%"`, `"-2.5%"` -> the percentage (3, 3, -2.5); a Decimal is taken as the
    percentage already. Raises ValueError."""
    if isinstance(text, Decimal):
        value = text
    else:
        found = re.fullmatch(r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*%\s*", text)
        if not found:
            raise ValueError(f"change {text!r} is not a percentage like 3% or -2%")
        value = Decimal(found.group(1))
    low, high = _CHANGE_LIMITS
    if not low < value <= high:
        raise ValueError(f"change {text} must be above {format_decimal(low)}% and at most {format_decimal(high)}%")
    return storable_decimal(value).normalize(_EXACT) if value else Decimal(0)


def parse_move(text: str | Decimal) -> Decimal:
    """A move rule's size: `"2%"` -> 2; above 0 and below 100 %. A Decimal is taken as the
    percentage already. Raises ValueError."""
    if isinstance(text, Decimal):
        value = text
    else:
        found = _PERCENT.match(text)
        if not found:
            raise ValueError(f"move {text!r} is not a percentage like 2%")
        value = Decimal(found.group(1))
    if not 0 < value < 100:
        raise ValueError(f"move {text} must be above 0% and below 100%")
    return storable_decimal(value).normalize(_EXACT)


def format_change(percent: Decimal) -> str:
    """+3%, -2.5%, 0%."""
    sign = "+" if percent > 0 else ""
    return f"{sign}{format_decimal(percent)}%"


def parse_margin(text: str | Decimal) -> Decimal:
    """`"0.5%"` -> Decimal("0.005"): the re-arm margin as a fraction. Raises ValueError."""
    found = _PERCENT.match(str(text))
    if not found:
        raise ValueError(f"re-arm margin {text!r} is not a percentage like 0.5%")
    margin = (Decimal(found.group(1)) / 100).normalize(_EXACT)
    if not 0 < margin <= MAX_REARM_MARGIN:
        raise ValueError(f"re-arm margin {text} must be above 0% and at most {format_percent(MAX_REARM_MARGIN)}")
    return margin


def format_percent(fraction: Decimal) -> str:
    return format_decimal(fraction * 100) + "%"


def parse_hours(text: str) -> tuple[time, time]:
    """`"09:30-16:00"` -> (09:30, 16:00). Raises ValueError."""
    found = _HOURS.match(text.strip())
    if not found:
        raise ValueError(f"hours {text!r} are not like 09:30-16:00")
    hour1, minute1, hour2, minute2 = (int(part) for part in found.groups())
    if hour1 > 23 or hour2 > 24 or minute1 > 59 or minute2 > 59 or (hour2 == 24 and minute2):
        raise ValueError(f"hours {text!r} are not times of day")
    start, end = time(hour1, minute1), time(0, 0) if hour2 == 24 else time(hour2, minute2)
    if start == end:
        raise ValueError(f"hours {text!r} start and end at the same time")
    return start, end


def parse_zone(name: str) -> str:
    """An IANA time zone name like America/New_York. Raises ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} is not an IANA time zone like America/New_York") from None
    return name


def parse_expiry(text: str, *, now: datetime) -> datetime:
    """An instant with its offset (`2026-12-31T21:00Z`), after `now`. Raises ValueError."""
    try:
        moment = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expiry {text!r} is not a time like 2026-12-31T21:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"expiry {text!r} has no time zone: add Z or an offset like -05:00")
    if moment <= now:
        raise ValueError(f"expiry {text} is not in the future")
    return moment.astimezone(UTC)


MAX_COOLDOWN = timedelta(days=366)


def parse_cooldown(value: int | str | None) -> timedelta | None:
    """A cooldown as the API and rule files take it: whole seconds, or a duration like `15m`."""
    if value is None:
        return None
    try:
        cooldown = timedelta(seconds=value) if isinstance(value, int) else parse_duration(value)
    except OverflowError:
        cooldown = MAX_COOLDOWN + timedelta(seconds=1)
    if not timedelta(seconds=1) <= cooldown <= MAX_COOLDOWN:
        raise ValueError(f"cooldown must be between 1 second and {MAX_COOLDOWN.days} days")
    return cooldown


def format_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def format_decimal(value: Decimal) -> str:
    """Plain notation without trailing zeros: 200, 200.5, 0.0001."""
    return format(value.normalize(_EXACT), "f")
