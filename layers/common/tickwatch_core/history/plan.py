"""Which hours need compacting: pure decisions over listings of the raw bucket.

An hour is compacted when it has raw objects and either no Parquet file yet, or a Parquet file made
from a different set of raw objects. The Parquet object records that set as a fingerprint (S3 user
metadata); a replayed batch that adds a raw object to an hour already compacted changes it, and the
next run compacts the hour again. Clocks are never compared, so an object written in the same
second as the Parquet file is not missed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tickwatch_core.history.layout import hour_of_key

# The S3 user metadata key of a Parquet file's fingerprint (sent as x-amz-meta-source-fingerprint).
FINGERPRINT_METADATA = "source-fingerprint"
RAW_OBJECTS_METADATA = "source-objects"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class HourWork:
    """One hour to compact: its raw objects, and why it is compacted."""

    hour: datetime
    raw_objects: tuple[StoredObject, ...]
    reason: str  # "new", "late data" or "requested"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw_objects)

    @property
    def raw_bytes(self) -> int:
        return sum(stored.size for stored in self.raw_objects)


def fingerprint(raw_objects: Iterable[StoredObject]) -> str:
    """sha256 over the sorted keys and ETags: equal exactly when the same objects hold the same bytes."""
    digest = hashlib.sha256()
    for stored in sorted(raw_objects, key=lambda stored: stored.key):
        digest.update(f"{stored.key}\0{stored.etag.strip('"')}\n".encode())
    return digest.hexdigest()


def raw_objects_by_hour(listing: Iterable[StoredObject]) -> dict[datetime, tuple[StoredObject, ...]]:
    by_hour: dict[datetime, list[StoredObject]] = defaultdict(list)
    for stored in listing:
        hour = hour_of_key(stored.key)
        if hour is not None and stored.key.endswith(".jsonl.gz"):
            by_hour[hour].append(stored)
    return {hour: tuple(sorted(objects, key=lambda stored: stored.key)) for hour, objects in sorted(by_hour.items())}


def hours_to_compact(
    raw_by_hour: Mapping[datetime, tuple[StoredObject, ...]],
    compacted_from: Mapping[datetime, str | None],
    *,
    force: bool = False,
) -> list[HourWork]:
    """The hours whose Parquet file is missing or was made from other raw objects, oldest first.

    `compacted_from[hour]` is the fingerprint recorded on the hour's Parquet file (None or absent:
    no file). `force` compacts every hour with raw objects (`tickwatch history compact --hour`).
    """
    work = []
    for hour, raw_objects in sorted(raw_by_hour.items()):
        recorded = compacted_from.get(hour)
        if force:
            reason = "requested"
        elif recorded is None:
            reason = "new"
        elif recorded != fingerprint(raw_objects):
            reason = "late data"
        else:
            continue
        work.append(HourWork(hour=hour, raw_objects=raw_objects, reason=reason))
    return work
