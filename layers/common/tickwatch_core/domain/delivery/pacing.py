"""Pacing: never more than a receiver's documented limit, and digests instead of a backlog. Pure.

Each channel's limits and their sources (also in the README's delivery section):

| channel | limit | source |
|---|---|---|
| e-mail (SNS) | 5 a second per topic | SNS suspends an e-mail subscription sent over 10 a second (half: margin) |
| Slack | 1 a second per webhook | Slack's incoming webhooks: 1 message a second, short bursts allowed |
| Discord | 5 per 2 s, 30 a minute | Discord's webhook limits (`X-RateLimit-*`), 30 a minute per channel |
| Telegram | 1 a second per chat; 20 a minute in a group | Telegram Bot API FAQ |
| webhook | 10 a second, or the destination's `--rate` | the receiver's to choose |

A destination's recent sends are kept as a `SendLog`; `available` says how many more may go now
under every limit, `next_free` when the next may. `plan_messages` turns what is pending into
messages that fit: one message each when they fit, else digests (one per group when the groups
fit, else one for all), so a burst is never dropped and never waits behind more than one slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_RATE = re.compile(r"\s*(\d{1,4})\s*/\s*(\d{0,4})\s*(s|sec|second|m|min|minute|h|hour)\s*")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
MAX_RATE_PER_SECOND = 50


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` messages in any window of `seconds`."""

    count: int
    seconds: int

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def text(self) -> str:
        if self.seconds % 3600 == 0:
            unit, amount = "h", self.seconds // 3600
        elif self.seconds % 60 == 0:
            unit, amount = "min", self.seconds // 60
        else:
            unit, amount = "s", self.seconds
        return f"{self.count}/{'' if amount == 1 else amount}{unit}"


def parse_rate(text: str) -> RateLimit:
    """`"10/s"`, `"5/2s"`, `"30/min"` -> RateLimit. Raises ValueError."""
    found = _RATE.fullmatch(text.lower())
    if not found:
        raise ValueError(f"rate {text!r} is not like 10/s, 5/2s or 30/min")
    count, amount, unit = int(found.group(1)), int(found.group(2) or 1), found.group(3)
    seconds = amount * _UNIT_SECONDS[unit]
    if count < 1 or not 1 <= seconds <= 3600:
        raise ValueError(f"rate {text!r}: at least 1 message in a window of 1 s to 1 h")
    if count / seconds > MAX_RATE_PER_SECOND:
        raise ValueError(f"rate {text!r} is over {MAX_RATE_PER_SECOND} a second")
    return RateLimit(count, seconds)


EMAIL_LIMITS = (RateLimit(5, 1),)
SLACK_LIMITS = (RateLimit(1, 1),)
DISCORD_LIMITS = (RateLimit(5, 2), RateLimit(30, 60))
TELEGRAM_CHAT_LIMITS = (RateLimit(1, 1),)
TELEGRAM_GROUP_LIMITS = (RateLimit(1, 1), RateLimit(20, 60))
WEBHOOK_LIMITS = (RateLimit(10, 1),)


def channel_limits(kind: str, target: str = "") -> tuple[RateLimit, ...]:
    """The documented limits of a channel; a Telegram group or channel (a negative chat id or an
    @name) has the group limit besides the per-chat one."""
    if kind == "telegram":
        return TELEGRAM_GROUP_LIMITS if target.startswith(("-", "@")) else TELEGRAM_CHAT_LIMITS
    return {"email": EMAIL_LIMITS, "slack": SLACK_LIMITS, "discord": DISCORD_LIMITS}.get(kind, WEBHOOK_LIMITS)


@dataclass(frozen=True, slots=True)
class SendLog:
    """When a destination was last sent messages, oldest first, as far back as its longest window."""

    sent: tuple[datetime, ...] = ()

    def in_window(self, limit: RateLimit, now: datetime) -> int:
        start = now - limit.window
        return sum(1 for at in self.sent if start < at <= now)

    def available(self, limits: Sequence[RateLimit], now: datetime) -> int:
        """How many messages may go at `now` without breaking any limit."""
        return max(0, min(limit.count - self.in_window(limit, now) for limit in limits))

    def next_free(self, limits: Sequence[RateLimit], now: datetime) -> datetime:
        """The first instant at or after `now` when one more message may go."""
        moment = now
        for _ in range(len(limits) + 1):
            blocked = [limit for limit in limits if self.in_window(limit, moment) >= limit.count]
            if not blocked:
                return moment
            # Under a full window, a slot frees when the oldest send inside it leaves the window.
            moment = max(self._frees_at(limit, moment) for limit in blocked)
        return moment

    def _frees_at(self, limit: RateLimit, now: datetime) -> datetime:
        inside = [at for at in self.sent if now - limit.window < at <= now]
        oldest_counted = inside[len(inside) - limit.count]
        # `in_window` counts sends after `now - window`: the slot frees a microsecond after
        # the send that fills it leaves the window.
        return oldest_counted + limit.window + timedelta(microseconds=1)

    def record(self, at: datetime, limits: Sequence[RateLimit]) -> SendLog:
        """This log with a send at `at`, trimmed to what the longest window still counts."""
        keep_from = at - max(limit.window for limit in limits)
        return SendLog(tuple(sorted(when for when in (*self.sent, at) if when > keep_from)))

    def encode(self) -> str:
        """Epoch milliseconds, comma-separated: a few bytes a send in the destination's item."""
        return ",".join(str(round(at.timestamp() * 1000)) for at in self.sent)

    @classmethod
    def decode(cls, text: str | None) -> SendLog:
        from datetime import UTC

        if not text:
            return cls()
        return cls(tuple(datetime.fromtimestamp(int(ms) / 1000, UTC) for ms in text.split(",")))


def plan_messages[T](
    pending: Sequence[T], available: int, group_of: Callable[[T], Hashable] | None = None
) -> list[list[T]]:
    """Split `pending` (in order) into at most `available` messages: one alert each when they all
    fit; otherwise digests, one per group (`group_of`, e.g. the symbol, so an e-mail subscriber's
    symbol filter still applies) when the groups fit, else one digest of everything. Nothing is
    left out: with nothing available the caller waits for `next_free` and plans again."""
    if not pending or available <= 0:
        return []
    if len(pending) <= available:
        return [[item] for item in pending]
    if group_of is not None:
        groups = _groups(pending, group_of)
        if len(groups) <= available:
            return groups
    return [list(pending)]


def plan_round[K, T](
    pending: dict[K, list[T]], available: int, group_of: Callable[[T], Hashable] | None = None
) -> list[tuple[K, list[T]]]:
    """`plan_messages` for a receiver several destinations share (every e-mail destination is a
    subscription of one topic): (destination, alerts) messages, at most `available`. When even one
    digest per destination does not fit, the first destinations' go now and the rest wait for
    the next slot (the caller plans again); nothing is left out."""
    total = sum(len(alerts) for alerts in pending.values())
    if available <= 0 or total == 0:
        return []
    if total <= available:
        return [(destination, [alert]) for destination, alerts in pending.items() for alert in alerts]
    if group_of is not None:
        grouped = [
            (destination, group) for destination, alerts in pending.items() for group in _groups(alerts, group_of)
        ]
        if len(grouped) <= available:
            return grouped
    whole = [(destination, list(alerts)) for destination, alerts in pending.items() if alerts]
    return whole[:available]


def _groups[T](alerts: Sequence[T], group_of: Callable[[T], Hashable]) -> list[list[T]]:
    groups: dict[Hashable, list[T]] = {}
    for alert in alerts:
        groups.setdefault(group_of(alert), []).append(alert)
    return list(groups.values())
