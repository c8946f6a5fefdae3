"""What a rule is (kind, level, options), what it remembers, and what it reads and fires on."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules.calendars import check_market, is_holiday
from tickwatch_core.domain.rules.series import BarSeries, MovingAverage, PriceWindow, check_window
from tickwatch_core.domain.rules.text import (
    _EXACT,
    format_change,
    format_decimal,
    format_duration,
    parse_change,
    parse_duration,
    parse_expiry,
    parse_hours,
    parse_margin,
    parse_move,
    parse_threshold,
    parse_zone,
    validate_symbol,
)


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


class RuleKind(StrEnum):
    PRICE = "price"  # the price crosses `threshold`
    CHANGE = "change"  # the change from the day's (or session's) open crosses `threshold` percent
    MOVE = "move"  # a move of `threshold` percent from the window's low (high), `window` long
    CROSS = "cross"  # the price crosses `average`; `threshold` is unused (0)


@dataclass(frozen=True, slots=True)
class TradingHours:
    """When a rule may fire: from `start` to `end`, wall-clock times in `zone` (daylight saving
    followed), optionally on weekdays only and not on a market's holidays. An `end` before `start`
    runs past midnight."""

    start: time
    end: time
    zone: str
    weekdays_only: bool = False
    holidays: str | None = None  # a market calendar (NYSE): no session on its holidays

    def contains(self, moment: datetime) -> bool:
        return self.session_of(moment) is not None

    def session_of(self, moment: datetime) -> date | None:
        """The day the session `moment` falls in started, or None outside every session."""
        local = moment.astimezone(ZoneInfo(self.zone))
        clock, day = local.time().replace(tzinfo=None), local.date()
        if self.start < self.end:
            inside = self.start <= clock < self.end
        elif clock >= self.start:
            inside = True
        else:  # the small hours belong to the session that started the evening before
            inside, day = clock < self.end, day - timedelta(days=1)
        if not inside or (self.weekdays_only and day.weekday() >= 5):
            return None
        return None if self.holidays is not None and is_holiday(self.holidays, day) else day

    def session_start(self, day: date) -> datetime:
        """The instant the session of `day` opens (its `start` on that day in the zone), in UTC.
        A `start` the clock jumps over that day (daylight saving begins) opens at the jump."""
        zone, wall = ZoneInfo(self.zone), datetime.combine(day, self.start)
        instant = wall.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            return instant
        instant = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the jump
        while instant.astimezone(zone).replace(tzinfo=None) < wall:
            instant += timedelta(minutes=1)
        return instant

    def describe(self) -> str:
        days = " on weekdays" if self.weekdays_only else ""
        closed = f", not on {self.holidays} holidays" if self.holidays else ""
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}{days}{closed}"


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition on one symbol's price (`kind`: a price, day-change, move or moving-average
    level), with its re-arm margin and lifecycle."""

    rule_id: str
    symbol: str
    direction: Direction
    threshold: Decimal
    cooldown: timedelta | None = None
    rearm_margin: Decimal | None = None  # a fraction: 0.005 for 0.5 %
    once: bool = False
    expires_at: datetime | None = None
    hours: TradingHours | None = None
    kind: RuleKind = RuleKind.PRICE
    window: timedelta | None = None  # a move rule's `within`
    average: MovingAverage | None = None  # a cross rule's
    notify: tuple[str, ...] = ()  # destinations by name; none: the alert topic's e-mail, as ever
    template: str | None = None  # the rule's own message words (delivery's placeholders)

    def describe(self) -> str:
        match self.kind:
            case RuleKind.CHANGE:
                return f"{self.symbol} {self.direction.value} {format_change(self.threshold)} on the day"
            case RuleKind.MOVE:
                return f"{self.symbol} {self.move_word} {format_decimal(self.threshold)}% within {self.within_text}"
            case RuleKind.CROSS:
                return f"{self.symbol} crosses {self.direction.value} {self.average_text}"
        return f"{self.symbol} {self.direction.value} {format_decimal(self.threshold)}"

    @property
    def level_text(self) -> str:
        """A price threshold as it is; a day change as `+3%/day`; a move as `2%/15m`; an average."""
        match self.kind:
            case RuleKind.CHANGE:
                return f"{format_change(self.threshold)}/day"
            case RuleKind.MOVE:
                return f"{format_decimal(self.threshold)}%/{self.within_text}"
            case RuleKind.CROSS:
                return self.average_text
        return format_decimal(self.threshold)

    @property
    def move_word(self) -> str:
        return "moves up" if self.direction is Direction.ABOVE else "moves down"

    @property
    def within_text(self) -> str:
        assert self.window is not None
        return format_duration(self.window)

    @property
    def average_text(self) -> str:
        assert self.average is not None
        return self.average.text

    @property
    def starts_armed(self) -> bool:
        """A cross rule first needs a trade on the other side of its average; the rest start armed."""
        return self.kind is not RuleKind.CROSS

    def active_at(self, moment: datetime) -> bool:
        """Whether a trade at `moment` is evaluated: before the expiry, inside the trading hours."""
        if self.expires_at is not None and moment >= self.expires_at:
            return False
        return self.hours is None or self.hours.contains(moment)

    @property
    def rearm_level(self) -> Decimal:
        """The price (a price rule) or percentage (a day-change or move rule: the change from the
        open, the move from the window's low or high) a trade must be beyond (below, for `above`)
        to re-arm the rule. A cross rule's is its average × (1 ∓ margin), which moves."""
        if self.kind is RuleKind.CHANGE:
            # level × (1 ∓ m) as a change from the open: ((1 + p/100)(1 ∓ m) − 1) × 100
            return ((1 + self.threshold / 100) * self.rearm_factor - 1) * 100
        if self.kind is RuleKind.MOVE:
            sign = 1 if self.direction is Direction.ABOVE else -1
            return abs(((1 + sign * self.threshold / 100) * self.rearm_factor - 1) * 100)
        return (self.threshold * self.rearm_factor).normalize(_EXACT)

    def level_at(self, reference: Decimal | None) -> Decimal:
        """The price this rule fires at: its threshold; for a day-change rule the open moved by it;
        for a move rule the window's low (high) moved by it; for a cross rule the average."""
        if self.kind is RuleKind.PRICE:
            return self.threshold
        assert reference is not None
        if self.kind is RuleKind.CHANGE or (self.kind is RuleKind.MOVE and self.direction is Direction.ABOVE):
            return reference * (1 + self.threshold / 100)
        if self.kind is RuleKind.MOVE:
            return reference * (1 - self.threshold / 100)
        return reference

    @property
    def rearm_factor(self) -> Decimal:
        """What a level is multiplied by to re-arm: 1 − m for `above`, 1 + m for `below`."""
        if self.rearm_margin is None:
            return Decimal(1)
        return 1 - self.rearm_margin if self.direction is Direction.ABOVE else 1 + self.rearm_margin


@dataclass(frozen=True, slots=True)
class RuleState:
    """What a rule remembers between updates."""

    armed: bool = True
    last_fired_at: datetime | None = None
    state_seq: str | None = None
    ended: bool = False  # a `once` rule that fired: it never fires again
    # A day-change rule's open: the day (or session) it is of, and the price.
    reference_day: date | None = None
    reference_open: Decimal | None = None
    window: PriceWindow | None = None  # a move rule's recent minutes
    series: BarSeries | None = None  # a cross rule's bars; None until seeded from the stored bars


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """The trades one quote write applied, identified by the key of its last tick."""

    symbol: str
    update_seq: str
    trades: tuple[Trade, ...]
    # The quote's UTC day and that day's open (the first trade by timestamp), for day-change rules.
    day: date | None = None
    day_open: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """One alert: a rule fired on one trade of one update."""

    rule: Rule
    price: Decimal
    at: datetime
    update_seq: str
    trade_index: int
    # What the level was measured from: a day-change rule's open, a move rule's low (high) of
    # the window, a cross rule's average.
    reference: Decimal | None = None

    @property
    def alert_id(self) -> str:
        """Deterministic, so a redelivered update yields the same id and can be recognised."""
        identity = f"{self.rule.rule_id}|{self.update_seq}|{self.trade_index}"
        return hashlib.sha256(identity.encode()).hexdigest()[:20]


def make_rule_id(
    symbol: str,
    direction: Direction,
    threshold: Decimal,
    kind: RuleKind = RuleKind.PRICE,
    *,
    window: timedelta | None = None,
    average: MovingAverage | None = None,
) -> str:
    """Readable and unique per (symbol, kind, direction, level): `AAPL-above-200.5`,
    `AAPL-change-above-3pct`, `TSLA-change-below--2pct`, `TSLA-move-down-2pct-15m`,
    `NVDA-cross-above-sma20-1m`."""
    match kind:
        case RuleKind.CHANGE:
            return f"{symbol}-change-{direction.value}-{format_decimal(threshold)}pct"
        case RuleKind.MOVE:
            assert window is not None
            way = "up" if direction is Direction.ABOVE else "down"
            return f"{symbol}-move-{way}-{format_decimal(threshold)}pct-{format_duration(window)}"
        case RuleKind.CROSS:
            assert average is not None
            return f"{symbol}-cross-{direction.value}-{average.name}{average.period}-{average.interval}"
    return f"{symbol}-{direction.value}-{format_decimal(threshold)}"


# Symbols hold '-' too, but never lowercase: the shortest symbol that leaves a valid rest is the one.
_RULE_ID = re.compile(
    r"^(?P<symbol>[A-Z][A-Z0-9.-]{0,9}?)-(?:"
    r"(?P<direction>above|below)-(?P<price>[0-9]+(?:\.[0-9]+)?)"
    r"|change-(?P<change_direction>above|below)-(?P<change>-?[0-9]+(?:\.[0-9]+)?)pct"
    r"|move-(?P<way>up|down)-(?P<move>[0-9]+(?:\.[0-9]+)?)pct-(?P<within>(?:[0-9]+[dhm])+)"
    r"|cross-(?P<cross_direction>above|below)-(?P<average>(?:sma|ema)[0-9]+)-(?P<interval>[0-9]+[mhd])"
    r")$"
)


def split_rule_id(rule_id: str) -> str:
    """The symbol of a rule id `make_rule_id` could have made; raises ValueError for anything else."""
    found = _RULE_ID.match(rule_id)
    problem = ValueError(f"{rule_id!r} is not a rule id (like AAPL-above-200 or AAPL-change-above-3pct)")
    if found is None:
        raise problem
    try:
        if found["price"] is not None:
            parse_threshold(found["price"])
        elif found["change"] is not None:
            parse_change(found["change"] + "%")
        elif found["move"] is not None:
            parse_move(found["move"] + "%")
            check_window(parse_duration(found["within"]))
        else:
            MovingAverage.parse(f"{found['average'][:3]}:{found['average'][3:]}@{found['interval']}")
        return validate_symbol(found["symbol"])
    except ValueError:
        raise problem from None


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
    notify: tuple[str, ...] = ()
    template: str | None = None


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
    holidays: str | None = None,
    notify: str | list[str] | None = None,
    template: str | None = None,
) -> RuleOptions:
    """The options as the CLI (`--rearm 0.5% --once --expires T | --for 7d --hours 09:30-16:00
    --tz ZONE --weekdays --holidays NYSE`) and the API (`rearm`, `once`, `expires`, `for`, `hours`,
    `tz`, `weekdays`, `holidays`), with where its alerts go (`--notify ops,phone`, `notify`) and its
    own message template (`--template`, `template`). Raises RuleOptionError naming the option."""

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
        market = check("holidays", lambda: check_market(holidays)) if holidays is not None else None
        trading_hours = TradingHours(start, end, check("tz", lambda: parse_zone(zone or "UTC")), weekdays, market)
    elif zone is not None or weekdays or holidays is not None:
        raise RuleOptionError(
            "tz" if zone is not None else "holidays" if holidays is not None else "hours",
            "a time zone, weekdays and holidays only go with hours, like 09:30-16:00",
        )
    from tickwatch_core.domain.delivery.destinations import parse_notify
    from tickwatch_core.domain.delivery.templates import check_template

    destinations = check("notify", lambda: parse_notify(notify))
    own_words = check("template", lambda: check_template(template)) if template is not None else None
    return RuleOptions(margin, once, expires_at, trading_hours, destinations, own_words)


@dataclass(frozen=True, slots=True)
class Condition:
    """What a rule watches, as `RuleStore.add` takes it: kind, direction and level."""

    kind: RuleKind
    direction: Direction
    threshold: Decimal  # a price; the percentage of a change or a move; 0 for a cross
    window: timedelta | None = None
    average: MovingAverage | None = None


def parse_condition(
    *,
    direction: str,
    threshold: str | Decimal | int | float | None = None,
    change: str | None = None,
    move: str | None = None,
    within: str | None = None,
    cross: str | None = None,
) -> Condition:
    """One of a price `threshold`, a day `change` ("3%"), a `move` ("2%") `within` a window
    ("15m"), or a moving-average `cross` ("sma:20@1m"), as the API's and the rule file's fields
    give them. Raises RuleOptionError naming the field."""

    def check(field: str, parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except ValueError as error:
            raise RuleOptionError(field, str(error)) from None

    levels = (("threshold", threshold), ("change", change), ("move", move), ("cross", cross))
    given = [name for name, value in levels if value is not None]
    if len(given) != 1:
        raise RuleOptionError(
            given[1] if len(given) > 1 else "threshold",
            "give one of threshold (a price), change (like 3%), move (like 2%, with within) or cross (like sma:20@1m)",
        )
    if within is not None and move is None:
        raise RuleOptionError("within", "within goes with move, like move 2% within 15m")
    way = check("direction", lambda: Direction(direction))
    if change is not None:
        return Condition(RuleKind.CHANGE, way, check("change", lambda: parse_change(change)))
    if move is not None:
        if within is None:
            raise RuleOptionError("within", "a move needs a window, like within 15m")
        window = check("within", lambda: check_window(parse_duration(within)))
        return Condition(RuleKind.MOVE, way, check("move", lambda: parse_move(move)), window=window)
    if cross is not None:
        return Condition(RuleKind.CROSS, way, Decimal(0), average=check("cross", lambda: MovingAverage.parse(cross)))
    return Condition(RuleKind.PRICE, way, check("threshold", lambda: parse_threshold(threshold)))


def rule_status(rule: Rule, state: RuleState, now: datetime) -> str:
    """What `rules list` and the API show: ended (a once rule that fired), expired, armed or disarmed."""
    if state.ended:
        return "ended"
    if rule.expires_at is not None and now >= rule.expires_at:
        return "expired"
    return "armed" if state.armed else "disarmed"
