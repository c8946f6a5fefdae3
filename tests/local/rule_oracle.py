"""The alerts every rule kind should give, computed from the README's definitions alone.

Nothing here imports the pipeline's rule code (`tickwatch_core.domain.rules`, `tickwatch_core.pipeline.alerts`):
rules are read from the entries of a rule file (the fields of `POST /rules`) with parsers of
their own, and each rule is evaluated with plain loops over the trades, written to be obviously
the definition rather than fast:

* every rule sees its symbol's trades one by one in stream order; it fires on a trade at or beyond
  its level while armed, which disarms it, and re-arms on a trade strictly back past the re-arm
  level (level × (1 − m) for above/up, × (1 + m) for below/down), not before last alert + cooldown;
  `once` ends it with its first alert; trades at or after `expires` and outside `hours` are not
  evaluated (but still count in move windows and cross bars);
* price: the level is the threshold;
* change: the level is the open × (1 + C/100); the open is the UTC day's first trade by timestamp
  (ties: the earlier in the stream), or with hours the first trade of the session the rule evaluates;
* move: the level is the lowest price of the trade's window × (1 + X/100) (up) or the highest
  × (1 − X/100) (down); the window is the trades before it in the stream stamped in its own UTC
  minute or the `within` − 1 minutes before; an empty window neither fires nor re-arms;
* cross: the level is the SMA or EMA of the closes of the last N bars closed before the trade's
  interval; fewer than N closes: no level; the rule starts disarmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
INTERVALS = {"1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": timedelta(hours=1), "1d": timedelta(days=1)}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Alert = tuple[str, str, str]  # (rule id, price as the e-mail writes it, time as the e-mail writes it)


@dataclass(frozen=True, slots=True)
class Hours:
    start: time
    end: time
    zone: str = "UTC"
    weekdays_only: bool = False

    def session_of(self, moment: datetime) -> date | None:
        """The day the session holding `moment` started (in the zone), or None outside every session.
        The end is exclusive; an end before the start runs past midnight."""
        local = moment.astimezone(ZoneInfo(self.zone))
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            day = local.date() if self.start <= clock < self.end else None
        elif clock >= self.start:
            day = local.date()
        elif clock < self.end:
            day = local.date() - timedelta(days=1)
        else:
            day = None
        if day is not None and self.weekdays_only and day.weekday() >= 5:
            return None
        return day


@dataclass(frozen=True, slots=True)
class OracleRule:
    kind: str  # "price", "change", "move" or "cross"
    symbol: str
    direction: str  # "above" or "below" (for move rules: up or down)
    level: Decimal | None = None  # price: the threshold; change: C (percent); move: X (percent)
    window: timedelta | None = None  # move: within
    average: tuple[str, int, str] | None = None  # cross: ("sma" | "ema", N, interval like "1m")
    cooldown: timedelta | None = None
    rearm: Decimal | None = None  # the margin as a fraction: 0.005 for 0.5 %
    once: bool = False
    expires_at: datetime | None = None
    hours: Hours | None = None

    @property
    def rule_id(self) -> str:
        if self.kind == "price":
            return f"{self.symbol}-{self.direction}-{number_text(self.level)}"
        if self.kind == "change":
            return f"{self.symbol}-change-{self.direction}-{number_text(self.level)}pct"
        if self.kind == "move":
            way = "up" if self.direction == "above" else "down"
            return f"{self.symbol}-move-{way}-{number_text(self.level)}pct-{duration_text(self.window)}"
        name, period, interval = self.average
        return f"{self.symbol}-cross-{self.direction}-{name}{period}-{interval}"

    def without(self, option: str) -> OracleRule:
        """The same rule without one option: to show an option changed what the series gives."""
        return replace(self, **{option: False if option == "once" else None})


def number_text(value: Decimal) -> str:
    return f"{value.normalize():f}"


def duration_text(length: timedelta) -> str:
    """15m, 1h, 1h30m."""
    hours, minutes = divmod(int(length.total_seconds()) // 60, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def alert_time_text(moment: datetime) -> str:
    """As the e-mail's `Time:` line: 2026-11-20 22:30:02.125 UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


# --- rule file entries ---------------------------------------------------------------------------


def rule_from_entry(entry: Mapping[str, Any], *, now: datetime) -> OracleRule:
    """An entry of a rule file (as YAML loads it) read with this module's own parsers."""
    known = {"symbol", "direction", "threshold", "change", "move", "within", "cross", "cooldown", "rearm", "once"}
    known |= {"expires", "for", "hours", "tz", "weekdays"}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"the oracle does not know the fields {sorted(unknown)}")
    given = [name for name in ("threshold", "change", "move", "cross") if name in entry]
    if len(given) != 1:
        raise ValueError(f"one of threshold, change, move, cross, not {given}")
    kind = {"threshold": "price"}.get(given[0], given[0])
    direction = entry["direction"]
    assert direction in ("above", "below"), direction
    level = window = average = None
    if kind == "price":
        level = _decimal(entry["threshold"])
    elif kind in ("change", "move"):
        level = _percent(entry[kind])
        if kind == "move":
            window = _duration(entry["within"])
            assert window % MINUTE == timedelta(0), window
    else:
        found = re.fullmatch(r"(sma|ema):(\d+)@(1m|5m|15m|1h|1d)", entry["cross"])
        assert found, entry["cross"]
        average = (found[1], int(found[2]), found[3])
    cooldown = entry.get("cooldown")
    expires_at = None
    if "expires" in entry:
        expires = entry["expires"]
        expires_at = (
            expires if isinstance(expires, datetime) else datetime.fromisoformat(expires.replace("Z", "+00:00"))
        ).astimezone(UTC)
    if "for" in entry:
        expires_at = now + _duration(entry["for"])
    hours = None
    if "hours" in entry:
        start, end = (time.fromisoformat(part.zfill(5)) for part in entry["hours"].split("-"))
        hours = Hours(start, end, entry.get("tz", "UTC"), bool(entry.get("weekdays", False)))
    return OracleRule(
        kind=kind,
        symbol=entry["symbol"],
        direction=direction,
        level=level,
        window=window,
        average=average,
        cooldown=None
        if cooldown is None
        else timedelta(seconds=cooldown)
        if isinstance(cooldown, int)
        else _duration(cooldown),
        rearm=_percent(entry["rearm"]) / 100 if "rearm" in entry else None,
        once=bool(entry.get("once", False)),
        expires_at=expires_at,
        hours=hours,
    )


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _percent(text: str) -> Decimal:
    found = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)%", str(text).strip())
    assert found, text
    return Decimal(found[1])


def _duration(text: str) -> timedelta:
    parts = re.findall(r"(\d+)([smhd])", text)
    assert "".join(amount + unit for amount, unit in parts) == text, text
    return timedelta(seconds=sum(int(amount) * UNITS[unit] for amount, unit in parts))


# --- the alerts ----------------------------------------------------------------------------------


def oracle_alerts(ticks: Iterable[Mapping[str, Any]], rules: Iterable[OracleRule]) -> list[Alert]:
    """(rule id, price, time) of every alert, sorted. `ticks`: dicts with `symbol`, `price` (Decimal),
    `at` (aware datetime) and `sequence` (the stream's order), like `verify.valid_ticks` gives."""
    ordered = sorted(ticks, key=lambda tick: tick["sequence"])
    alerts: list[Alert] = []
    for rule in rules:
        trades = [(tick["price"], tick["at"]) for tick in ordered if tick["symbol"] == rule.symbol]
        alerts += [(rule.rule_id, number_text(price), alert_time_text(at)) for price, at in _firings(rule, trades)]
    return sorted(alerts)


def _firings(rule: OracleRule, trades: list[tuple[Decimal, datetime]]) -> list[tuple[Decimal, datetime]]:
    """The trades (price, time) `rule` fires on; `trades` are its symbol's, in stream order."""
    up = rule.direction == "above"
    margin = rule.rearm or Decimal(0)
    levels = _levels(rule, trades)
    armed = rule.kind != "cross"
    last_fired: datetime | None = None
    fired: list[tuple[Decimal, datetime]] = []
    for (price, at), level in zip(trades, levels, strict=True):
        if rule.once and fired:
            break
        if rule.expires_at is not None and at >= rule.expires_at:
            continue
        if rule.hours is not None and rule.hours.session_of(at) is None:
            continue
        if level is None:
            continue
        if armed:
            if (price >= level) if up else (price <= level):
                fired.append((price, at))
                armed, last_fired = False, at
        else:
            back = price < level * (1 - margin) if up else price > level * (1 + margin)
            cooled = rule.cooldown is None or last_fired is None or at >= last_fired + rule.cooldown
            armed = back and cooled
    return fired


def _levels(rule: OracleRule, trades: list[tuple[Decimal, datetime]]) -> list[Decimal | None]:
    """The level each trade is compared with (None: the trade has nothing to be measured against)."""
    if rule.kind == "price":
        return [rule.level] * len(trades)
    if rule.kind == "change":
        return _change_levels(rule, trades)
    if rule.kind == "move":
        return _move_levels(rule, trades)
    return _cross_levels(rule, trades)


def _change_levels(rule: OracleRule, trades: list[tuple[Decimal, datetime]]) -> list[Decimal | None]:
    factor = 1 + rule.level / 100
    if rule.hours is None:
        day_open: dict[date, tuple[datetime, int, Decimal]] = {}
        for position, (price, at) in enumerate(trades):
            day = at.astimezone(UTC).date()
            if day not in day_open or (at, position) < day_open[day][:2]:
                day_open[day] = (at, position, price)
        return [day_open[at.astimezone(UTC).date()][2] * factor for _, at in trades]
    # The session's open: its first trade the rule evaluates (before expiry; inside the hours).
    session_open: dict[date, Decimal] = {}
    levels: list[Decimal | None] = []
    for price, at in trades:
        session = rule.hours.session_of(at)
        if session is None or (rule.expires_at is not None and at >= rule.expires_at):
            levels.append(None)
            continue
        session_open.setdefault(session, price)
        levels.append(session_open[session] * factor)
    return levels


def _move_levels(rule: OracleRule, trades: list[tuple[Decimal, datetime]]) -> list[Decimal | None]:
    minutes = rule.window // MINUTE
    levels: list[Decimal | None] = []
    for position, (_, at) in enumerate(trades):
        own_minute = at.astimezone(UTC).replace(second=0, microsecond=0)
        first_minute = own_minute - (minutes - 1) * MINUTE
        window = [
            price
            for price, earlier in trades[:position]
            if first_minute <= earlier.astimezone(UTC).replace(second=0, microsecond=0) <= own_minute
        ]
        if not window:
            levels.append(None)
        elif rule.direction == "above":
            levels.append(min(window) * (1 + rule.level / 100))
        else:
            levels.append(max(window) * (1 - rule.level / 100))
    return levels


def _cross_levels(rule: OracleRule, trades: list[tuple[Decimal, datetime]]) -> list[Decimal | None]:
    name, period, interval_name = rule.average
    interval = INTERVALS[interval_name]
    bars: dict[int, tuple[datetime, Decimal]] = {}  # interval number -> (time, price) of its close
    current: int | None = None
    levels: list[Decimal | None] = []
    for price, at in trades:
        number = (at - EPOCH) // interval
        if current is None or number >= current:
            current = number
            # The close is the latest trade by timestamp; on equal timestamps the later in the stream.
            if number not in bars or at >= bars[number][0]:
                bars[number] = (at, price)
        # else: a late trade, measured against the current average; the bars stay as they are.
        closes = [bars[n][1] for n in sorted(bars) if n < current]
        levels.append(_average(name, period, closes))
    return levels


def _average(name: str, period: int, closes: list[Decimal]) -> Decimal | None:
    if len(closes) < period:
        return None
    if name == "sma":
        return sum(closes[-period:], Decimal(0)) / period
    alpha = Decimal(2) / (period + 1)
    ema = sum(closes[:period], Decimal(0)) / period
    for close in closes[period:]:
        ema = alpha * close + (1 - alpha) * ema
    return ema
