"""Retries: what a receiver's answer means, backoff with full jitter, Retry-After honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tickwatch_core.domain.delivery.retry import Outcome, RetryPolicy, classify, parse_retry_after


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (None, Outcome.RETRY),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (410, Outcome.REJECTED),
        (302, Outcome.REJECTED),
    ],
)
def test_classify(status, outcome):
    assert classify(status) is outcome


def test_retry_after_in_seconds_or_as_an_http_date():
    now = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_backoff_doubles_is_capped_and_is_drawn_below_its_ceiling():
    policy = RetryPolicy(attempts=10, base_seconds=0.5, cap_seconds=4)
    ceilings = [policy.wait_before_retry(n, None, draw=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert policy.wait_before_retry(3, None, draw=lambda: 0.25) == 0.5


def test_retry_after_is_a_floor_and_a_long_one_parks():
    policy = RetryPolicy(max_retry_after=60)
    assert policy.wait_before_retry(1, 7.5, draw=lambda: 1.0) == 7.5
    assert policy.wait_before_retry(4, 0.1, draw=lambda: 1.0) == 4.0
    assert policy.wait_before_retry(1, 61, draw=lambda: 0.0) is None


def test_the_budget_of_attempts_parks_the_delivery():
    policy = RetryPolicy(attempts=3)
    assert policy.wait_before_retry(2, None) is not None
    assert policy.wait_before_retry(3, None) is None
