"""Threshold rules and the crossing decision: pure, no AWS.

Semantics (also in the README):

* A rule `above X` fires on a trade at or above X while the rule is armed, then disarms. It re-arms
  on a trade below X, but only on one at or after `last fired + cooldown` when it has a cooldown.
  A trade below X during the cooldown does not re-arm it.
* `below X` mirrors it: fires on a trade at or below X, re-arms on a trade above X.
* A new rule starts armed, so it fires on the first trade on its side of X.
* Trades are evaluated one by one, in stream order, using the `trades` list each quote update
  carries; batching never merges or hides crossings. A price wobbling around X gives one alert per
  real crossing (and with a cooldown, at most one per cooldown), never one per tick.
* A re-arm margin m (`--rearm 0.5%`) moves the re-arming level away from X: an `above X` rule
  re-arms only on a trade below X × (1 − m), a `below X` rule only above X × (1 + m). A price
  hovering at X then gives one alert, not a pair each time it wobbles across.
* Lifecycle. `once`: the rule ends with its first alert and never fires again. `expires_at`: no
  alert on a trade at or after that instant (the rule is listed as expired). Trading hours (`09:30
  to 16:00` in a time zone, optionally weekdays only; a session ending before it starts runs past
  midnight and belongs to the day it started): trades outside are not evaluated at all, they
  neither fire nor re-arm the rule. Each uses the trade's own timestamp, never the clock, so a
  redelivered update is evaluated exactly as the first time.

Each quote update carries the sortable sequence key of the last tick it applied (`update_seq`). A
rule remembers `state_seq`, the update that last changed its state; an update at or before it is
skipped, which makes reprocessing a redelivered stream record a no-op. Updates that did not change
the state need no marker: replaying them from the same state changes nothing again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tickwatch_core.market import Trade
from tickwatch_core.numbers import storable_decimal

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.-]{0,9}$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")
# A re-arm margin beyond this would move an above rule's re-arming level to zero or below.
MAX_REARM_MARGIN = Decimal("0.5")
# Decimal's default context rounds to 28 digits; formatting must never change a number.
_EXACT = Context(prec=100)


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True, slots=True)
class TradingHours:
    """When a rule may fire: from `start` to `end`, wall-clock times in `zone` (daylight saving
    followed), optionally on weekdays only. An `end` before `start` runs past midnight."""

    start: time
    end: time
    zone: str
    weekdays_only: bool = False

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.zone))
        clock, day = local.time().replace(tzinfo=None), local.date()
        if self.start < self.end:
            inside = self.start <= clock < self.end
        elif clock >= self.start:
            inside = True
        else:  # the small hours belong to the session that started the evening before
            inside, day = clock < self.end, day - timedelta(days=1)
        return inside and (not self.weekdays_only or day.weekday() < 5)

    def describe(self) -> str:
        days = " on weekdays" if self.weekdays_only else ""
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}{days}"


@dataclass(frozen=True, slots=True)
class Rule:
    """A threshold on one symbol's price, with its re-arm margin and lifecycle."""

    rule_id: str
    symbol: str
    direction: Direction
    threshold: Decimal
    cooldown: timedelta | None = None
    rearm_margin: Decimal | None = None  # a fraction: 0.005 for 0.5 %
    once: bool = False
    expires_at: datetime | None = None
    hours: TradingHours | None = None

    def describe(self) -> str:
        return f"{self.symbol} {self.direction.value} {format_decimal(self.threshold)}"

    def active_at(self, moment: datetime) -> bool:
        """Whether a trade at `moment` is evaluated: before the expiry, inside the trading hours."""
        if self.expires_at is not None and moment >= self.expires_at:
            return False
        return self.hours is None or self.hours.contains(moment)

    @property
    def rearm_level(self) -> Decimal:
        """The price a trade must be beyond (below, for `above`) to re-arm the rule."""
        if self.rearm_margin is None:
            return self.threshold
        factor = 1 - self.rearm_margin if self.direction is Direction.ABOVE else 1 + self.rearm_margin
        return (self.threshold * factor).normalize(_EXACT)


@dataclass(frozen=True, slots=True)
class RuleState:
    """What a rule remembers between updates."""

    armed: bool = True
    last_fired_at: datetime | None = None
    state_seq: str | None = None
    ended: bool = False  # a `once` rule that fired: it never fires again


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """The trades one quote write applied, identified by the key of its last tick."""

    symbol: str
    update_seq: str
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class Firing:
    """One alert: a rule fired on one trade of one update."""

    rule: Rule
    price: Decimal
    at: datetime
    update_seq: str
    trade_index: int

    @property
    def alert_id(self) -> str:
        """Deterministic, so a redelivered update yields the same id and can be recognised."""
        identity = f"{self.rule.rule_id}|{self.update_seq}|{self.trade_index}"
        return hashlib.sha256(identity.encode()).hexdigest()[:20]


def make_rule_id(symbol: str, direction: Direction, threshold: Decimal) -> str:
    """Readable and unique per (symbol, direction, threshold): `AAPL-above-200.5`."""
    return f"{symbol}-{direction.value}-{format_decimal(threshold)}"


def split_rule_id(rule_id: str) -> tuple[str, Direction, Decimal]:
    """Inverse of `make_rule_id`; raises ValueError for anything else. Symbols may contain '-'."""
    parts = rule_id.rsplit("-", 2)
    if len(parts) != 3:
        raise ValueError(f"{rule_id!r} is not a rule id (like AAPL-above-200)")
    symbol, direction, threshold = parts
    try:
        return validate_symbol(symbol), Direction(direction), parse_threshold(threshold)
    except ValueError:
        raise ValueError(f"{rule_id!r} is not a rule id (like AAPL-above-200)") from None


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
    return timedelta(seconds=seconds)


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


class RuleOptionError(ValueError):
    """A rule option that is not valid; `field` names it as the CLI and the API spell it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """A rule's re-arm margin and lifecycle, as `Rule` keeps them."""

    rearm_margin: Decimal | None = None
    once: bool = False
    expires_at: datetime | None = None
    hours: TradingHours | None = None


def parse_options(
    *,
    now: datetime,
    rearm: str | None = None,
    once: bool = False,
    expires: str | None = None,
    lasts: str | None = None,
    hours: str | None = None,
    zone: str | None = None,
    weekdays: bool = False,
) -> RuleOptions:
    """The options as the CLI (`--rearm 0.5% --once --expires T | --for 7d --hours 09:30-16:00
    --tz ZONE --weekdays`) and the API (`rearm`, `once`, `expires`, `for`, `hours`, `tz`,
    `weekdays`) take them. Raises RuleOptionError naming the option."""

    def check(field: str, parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except RuleOptionError:
            raise
        except ValueError as error:
            raise RuleOptionError(field, str(error)) from None

    margin = check("rearm", lambda: parse_margin(rearm)) if rearm is not None else None
    if expires is not None and lasts is not None:
        raise RuleOptionError("for", "give an expiry or a duration (for), not both")
    expires_at = check("expires", lambda: parse_expiry(expires, now=now)) if expires is not None else None
    if lasts is not None:
        expires_at = now + check("for", lambda: parse_duration(lasts))
    trading_hours = None
    if hours is not None:
        start, end = check("hours", lambda: parse_hours(hours))
        trading_hours = TradingHours(start, end, check("tz", lambda: parse_zone(zone or "UTC")), weekdays)
    elif zone is not None or weekdays:
        raise RuleOptionError(
            "hours" if weekdays else "tz", "a time zone and weekdays only go with hours, like 09:30-16:00"
        )
    return RuleOptions(margin, once, expires_at, trading_hours)


def rule_status(rule: Rule, state: RuleState, now: datetime) -> str:
    """What `rules list` and the API show: ended (a once rule that fired), expired, armed or disarmed."""
    if state.ended:
        return "ended"
    if rule.expires_at is not None and now >= rule.expires_at:
        return "expired"
    return "armed" if state.armed else "disarmed"


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


def apply_update(rule: Rule, state: RuleState, update: QuoteUpdate) -> tuple[RuleState, list[Firing]]:
    """Evaluate every trade of one update against one rule."""
    if state.state_seq is not None and update.update_seq <= state.state_seq:
        return state, []
    armed, last_fired_at, ended = state.armed, state.last_fired_at, state.ended
    firings: list[Firing] = []
    for index, trade in enumerate(update.trades):
        if ended:
            break
        if not rule.active_at(trade.at):
            continue
        if armed:
            if _on_firing_side(rule, trade.price):
                firings.append(Firing(rule, trade.price, trade.at, update.update_seq, index))
                armed, last_fired_at, ended = False, trade.at, rule.once
        elif _back_past_rearm_level(rule, trade.price) and _cooled_down(rule, last_fired_at, trade.at):
            armed = True
    if not firings and (armed, last_fired_at, ended) == (state.armed, state.last_fired_at, state.ended):
        return state, firings
    changed = replace(state, armed=armed, last_fired_at=last_fired_at, ended=ended, state_seq=update.update_seq)
    return changed, firings


def apply_updates(rule: Rule, state: RuleState, updates: Sequence[QuoteUpdate]) -> list[tuple[RuleState, list[Firing]]]:
    """The state after, and the firings of, each update in turn."""
    results = []
    for update in updates:
        state, firings = apply_update(rule, state, update)
        results.append((state, firings))
    return results


def _on_firing_side(rule: Rule, price: Decimal) -> bool:
    if rule.direction is Direction.ABOVE:
        return price >= rule.threshold
    return price <= rule.threshold


def _back_past_rearm_level(rule: Rule, price: Decimal) -> bool:
    if rule.direction is Direction.ABOVE:
        return price < rule.rearm_level
    return price > rule.rearm_level


def _cooled_down(rule: Rule, last_fired_at: datetime | None, at: datetime) -> bool:
    if rule.cooldown is None or last_fired_at is None:
        return True
    return at >= last_fired_at + rule.cooldown
