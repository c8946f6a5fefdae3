"""Where the history lives in the raw bucket: keys of raw objects and Parquet files by UTC hour.

Raw objects are `raw/year=YYYY/month=MM/day=DD/hour=HH/<batch>.jsonl.gz` (the processor writes
them), the Parquet history is `history/year=YYYY/month=MM/day=DD/hour=HH/ticks.parquet`. Every
part is zero-padded, so the keys sort in time order and a listing can start at an hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from tickwatch_core.pipeline.processor import QUARANTINE_PREFIX, RAW_PREFIX, hour_partition

HISTORY_PREFIX = "history/"
HISTORY_FILE = "ticks.parquet"
ONE_HOUR = timedelta(hours=1)

_PARTITION = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/", re.ASCII)
_HOUR_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})(?::00(?::00)?)?(?:Z|\+00:00)?$", re.ASCII)

__all__ = [
    "HISTORY_FILE",
    "HISTORY_PREFIX",
    "ONE_HOUR",
    "QUARANTINE_PREFIX",
    "RAW_PREFIX",
    "history_key",
    "hour_of",
    "hour_of_key",
    "hours_between",
    "parse_hour",
    "raw_prefix",
]


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def raw_prefix(hour: datetime) -> str:
    return f"{RAW_PREFIX}{hour_partition(hour)}/"


def history_key(hour: datetime) -> str:
    return f"{HISTORY_PREFIX}{hour_partition(hour)}/{HISTORY_FILE}"


def hour_of_key(key: str) -> datetime | None:
    """The hour of a raw, history or quarantine key; None for a key outside the layout."""
    match = _PARTITION.search(key)
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


def hours_between(first: datetime, last: datetime) -> Iterator[datetime]:
    """Every hour from the hour of `first` to the hour of `last`, both included."""
    hour = hour_of(first)
    while hour <= last:
        yield hour
        hour += ONE_HOUR


def parse_hour(text: str) -> datetime:
    """`2026-11-20T14` (also `...T14:00`, `...T14:00:00Z`) as that UTC hour; ValueError says why not."""
    match = _HOUR_TEXT.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an hour like 2026-11-20T14 (UTC)")
    year, month, day, hour = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a real hour: {error}") from None
