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

Each quote update carries the sortable sequence key of the last tick it applied (`update_seq`). A
rule remembers `state_seq`, the update that last changed its state; an update at or before it is
skipped, which makes reprocessing a redelivered stream record a no-op. Updates that did not change
the state need no marker: replaying them from the same state changes nothing again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum

from tickwatch_core.market import Trade
from tickwatch_core.numbers import storable_decimal

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.-]{0,9}$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Decimal's default context rounds to 28 digits; formatting must never change a number.
_EXACT = Context(prec=100)


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True, slots=True)
class Rule:
    """A threshold on one symbol's price."""

    rule_id: str
    symbol: str
    direction: Direction
    threshold: Decimal
    cooldown: timedelta | None = None

    def describe(self) -> str:
        return f"{self.symbol} {self.direction.value} {format_decimal(self.threshold)}"


@dataclass(frozen=True, slots=True)
class RuleState:
    """What a rule remembers between updates."""

    armed: bool = True
    last_fired_at: datetime | None = None
    state_seq: str | None = None


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
    armed, last_fired_at = state.armed, state.last_fired_at
    firings: list[Firing] = []
    for index, trade in enumerate(update.trades):
        if armed:
            if _on_firing_side(rule, trade.price):
                firings.append(Firing(rule, trade.price, trade.at, update.update_seq, index))
                armed, last_fired_at = False, trade.at
        elif not _on_firing_side(rule, trade.price) and _cooled_down(rule, last_fired_at, trade.at):
            armed = True
    if not firings and armed == state.armed and last_fired_at == state.last_fired_at:
        return state, firings
    return replace(state, armed=armed, last_fired_at=last_fired_at, state_seq=update.update_seq), firings


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


def _cooled_down(rule: Rule, last_fired_at: datetime | None, at: datetime) -> bool:
    if rule.cooldown is None or last_fired_at is None:
        return True
    return at >= last_fired_at + rule.cooldown
