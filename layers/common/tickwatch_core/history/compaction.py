"""The compactor: find the hours whose raw objects changed, compact each into its Parquet file.

Used by the hourly CompactorFunction and by `tickwatch history compact` (against AWS or the local
stack) alike. An hour is compacted in a scratch directory: its raw objects are downloaded in
parallel, DuckDB writes the Parquet file (`engine`), and one PutObject replaces the hour's file
with the fingerprint of the raw objects it was made from (`plan`). A raw object DuckDB cannot read
is left in place, recorded in `quarantine/` with the reason and counted; the rest of the hour is
compacted all the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import duckdb

from tickwatch_core.aws import AWS_ERRORS, AwsClients, describe_aws_error
from tickwatch_core.history.engine import IncompleteLines, ParquetEngine, UnreadableObject
from tickwatch_core.history.layout import (
    HISTORY_PREFIX,
    ONE_HOUR,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    history_key,
    hour_of_key,
)
from tickwatch_core.history.plan import (
    FINGERPRINT_METADATA,
    RAW_OBJECTS_METADATA,
    HourWork,
    StoredObject,
    hours_to_compact,
    raw_objects_by_hour,
)
from tickwatch_core.pipeline.processor import hour_partition

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
_DOWNLOAD_THREADS = 32


@dataclass(frozen=True, slots=True)
class HourReport:
    hour: datetime
    reason: str
    raw_objects: int
    raw_bytes: int
    lines: int
    rows: int
    parquet_bytes: int
    seconds: float
    unreadable: tuple[tuple[str, str], ...] = ()  # (key, reason) of raw objects left out

    @property
    def duplicates(self) -> int:
        return self.lines - self.rows


@dataclass(slots=True)
class CompactionReport:
    compacted: list[HourReport] = field(default_factory=list)
    failed: list[tuple[datetime, str]] = field(default_factory=list)
    left_for_later: list[datetime] = field(default_factory=list)  # the time budget ran out first

    @property
    def rows(self) -> int:
        return sum(hour.rows for hour in self.compacted)

    @property
    def duplicates(self) -> int:
        return sum(hour.duplicates for hour in self.compacted)

    @property
    def unreadable(self) -> int:
        return sum(len(hour.unreadable) for hour in self.compacted)


class HistoryCompactor:
    def __init__(self, clients: AwsClients, bucket: str, *, engine: ParquetEngine, scratch: Path) -> None:
        self.clients = clients
        self.bucket = bucket
        self.engine = engine
        self.scratch = scratch

    # --- deciding ---------------------------------------------------------------------------

    def pending(self, first: datetime, last: datetime, *, force: bool = False) -> list[HourWork]:
        """The hours from `first` to `last` (both included) that need compacting, oldest first."""
        raw_by_hour = raw_objects_by_hour(self._list(RAW_PREFIX, first, last))
        recorded: dict[datetime, str | None] = {}
        if not force:
            # Listed first, so only files that exist are read (a HEAD of a missing key needs
            # more permission than the compactor has to say 404 rather than 403).
            for stored in self._list(HISTORY_PREFIX, first, last):
                hour = hour_of_key(stored.key)
                if hour in raw_by_hour and stored.key == history_key(hour):
                    recorded[hour] = self._recorded_fingerprint(stored.key)
        return hours_to_compact(raw_by_hour, recorded, force=force)

    def _list(self, prefix: str, first: datetime, last: datetime) -> Iterator[StoredObject]:
        """Objects under `prefix` of the hours `first` to `last`: one listing, in key (= time) order."""
        start, end = f"{prefix}{hour_partition(first)}/", f"{prefix}{hour_partition(last + ONE_HOUR)}/"
        paginator = self.clients.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=start):
            for entry in page.get("Contents", ()):
                if entry["Key"] >= end:
                    return
                yield StoredObject(entry["Key"], entry["ETag"], entry["Size"], entry["LastModified"])

    def _recorded_fingerprint(self, key: str) -> str:
        head = self.clients.s3.head_object(Bucket=self.bucket, Key=key)
        return head.get("Metadata", {}).get(FINGERPRINT_METADATA, "")

    # --- doing ------------------------------------------------------------------------------

    def run(
        self,
        work: list[HourWork],
        *,
        seconds_left: Callable[[], float] | None = None,
        log: Callable[[HourReport], None] | None = None,
    ) -> CompactionReport:
        """Compact each hour of `work`; an AWS or engine failure of one hour does not stop the others.
        With `seconds_left`, no hour is started that might not finish (twice the slowest so far,
        at least a minute): those are left for the next run, which finds them still pending."""
        report = CompactionReport()
        slowest = 30.0
        for index, hour_work in enumerate(work):
            if seconds_left is not None and seconds_left() < max(60.0, 2 * slowest):
                report.left_for_later = [later.hour for later in work[index:]]
                break
            try:
                hour_report = self.compact(hour_work)
            except (*AWS_ERRORS, duckdb.Error, OSError) as error:
                report.failed.append((hour_work.hour, describe_aws_error(error)))
                continue
            slowest = max(slowest, hour_report.seconds)
            report.compacted.append(hour_report)
            if log is not None:
                log(hour_report)
        return report

    def compact(self, work: HourWork) -> HourReport:
        started = time.monotonic()
        self.scratch.mkdir(parents=True, exist_ok=True)
        with TemporaryDirectory(prefix="compact-", dir=self.scratch) as directory:
            folder = Path(directory)
            paths = self._download(work, folder)
            unreadable: list[tuple[str, str]] = []
            output = folder / "ticks.parquet"
            try:
                compacted = self.engine.compact(list(paths), output)
            except (duckdb.Error, IncompleteLines):
                # Find the objects at fault, set them aside with their reasons, compact the rest.
                for path, stored in list(paths.items()):
                    try:
                        self.engine.check(path)
                    except UnreadableObject as bad:
                        unreadable.append((stored.key, bad.reason))
                        del paths[path]
                if not unreadable:
                    raise
                self._quarantine(work.hour, unreadable)
                compacted = self.engine.compact(list(paths), output)
            self._upload(work, output)
        return HourReport(
            hour=work.hour,
            reason=work.reason,
            raw_objects=len(work.raw_objects),
            raw_bytes=work.raw_bytes,
            lines=compacted.lines,
            rows=compacted.rows,
            parquet_bytes=compacted.size,
            seconds=time.monotonic() - started,
            unreadable=tuple(unreadable),
        )

    def _download(self, work: HourWork, folder: Path) -> dict[Path, StoredObject]:
        def fetch(numbered: tuple[int, StoredObject]) -> tuple[Path, StoredObject]:
            index, stored = numbered
            path = folder / f"{index:06d}.jsonl.gz"
            body = self.clients.s3.get_object(Bucket=self.bucket, Key=stored.key)["Body"]
            with path.open("wb") as file:
                for chunk in body.iter_chunks(1024 * 1024):
                    file.write(chunk)
            return path, stored

        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            return dict(pool.map(fetch, enumerate(work.raw_objects)))

    def _upload(self, work: HourWork, output: Path) -> None:
        with output.open("rb") as body:
            self.clients.s3.put_object(
                Bucket=self.bucket,
                Key=history_key(work.hour),
                Body=body,
                ContentType=PARQUET_CONTENT_TYPE,
                Metadata={FINGERPRINT_METADATA: work.fingerprint, RAW_OBJECTS_METADATA: str(len(work.raw_objects))},
            )

    def _quarantine(self, hour: datetime, unreadable: list[tuple[str, str]]) -> None:
        """One JSON line per unreadable raw object, under the hour in quarantine/, like bad records."""
        lines = "".join(
            json.dumps({"reason": f"raw object could not be compacted: {reason}", "object": key}) + "\n"
            for key, reason in unreadable
        )
        self.clients.s3.put_object(
            Bucket=self.bucket,
            Key=f"{QUARANTINE_PREFIX}{hour_partition(hour)}/compactor.jsonl",
            Body=lines.encode("utf-8"),
            ContentType="application/x-ndjson",
        )
