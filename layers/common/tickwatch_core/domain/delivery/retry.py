"""Retries of a delivery: what an answer means, and how long to wait before the next try. Pure.

A 2xx is delivered. A 429, a 5xx, a 408 or no answer at all (a timeout, a refused or reset
connection) is worth another try after exponential backoff with full jitter, or after the
receiver's Retry-After when it gives one (longer waits than the policy's `max_retry_after` park
the delivery instead of holding the function). Any other 4xx will not change by trying again:
the delivery is parked at once with the receiver's answer (a deleted Slack webhook answers 404 or
410, a wrong Telegram token 401). Parked deliveries are listed by `tickwatch deliveries failed`
and sent again by `tickwatch deliveries replay`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify(status: int | None) -> Outcome:
    """What an HTTP status (None: no answer) means for a delivery."""
    if status is None or status in (408, 429) or status >= 500:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    return Outcome.REJECTED


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110). None if absent or
    unreadable; never negative."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` tries in all; before try n+1 a wait of up to base × 2^(n-1) seconds (capped),
    drawn uniformly (full jitter, so receivers recovering from an outage are not hit in step)."""

    attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 20.0
    max_retry_after: float = 60.0

    def wait_before_retry(
        self, attempts_made: int, retry_after: float | None, draw: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before the next try after `attempts_made` tries, or None to park."""
        if attempts_made >= self.attempts:
            return None
        backoff = draw() * min(self.cap_seconds, self.base_seconds * 2 ** (attempts_made - 1))
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after:
            return None
        return max(retry_after, backoff)
