"""`tickwatch history compact`: the compactor's code, run by hand against AWS or the local stack.

Without options it does what the hourly schedule does: the hours that ended within the look-back
window and whose raw objects changed. `--since` also takes the hour in progress (compacted again
once it changes), `--hour` compacts one hour whatever its state.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tickwatch.analytics.output import format_bytes
from tickwatch.resources import AwsContext, CliError, InputError
from tickwatch.template import Template
from tickwatch_core.aws import AwsClients
from tickwatch_core.history.compaction import HistoryCompactor, HourReport
from tickwatch_core.history.engine import ParquetEngine
from tickwatch_core.history.layout import ONE_HOUR, hour_of, parse_hour


def parse_since(text: str) -> datetime:
    """An hour (2026-11-20T14) or a day (2026-11-20, from its first hour)."""
    try:
        return parse_hour(text if "T" in text.upper() else f"{text}T00")
    except ValueError:
        raise InputError(f"--since {text!r} is not an hour like 2026-11-20T14 or a day like 2026-11-20") from None


def command_history_compact(args: argparse.Namespace, context: AwsContext) -> int:
    now = datetime.now(UTC)
    force = bool(args.force)
    if args.hour is not None:
        try:
            first = last = parse_hour(args.hour)
        except ValueError as error:
            raise InputError(f"--hour: {error}") from None
        force = True
    elif args.since is not None:
        first, last = parse_since(args.since), hour_of(now)
        if first > last:
            raise InputError(f"--since {args.since} is in the future")
    else:
        lookback = timedelta(hours=int(Template.load().parameter("CompactionLookbackHours")))
        last = hour_of(now) - ONE_HOUR
        first = last - lookback + ONE_HOUR

    bucket = context.resource("bucket")
    compactor = HistoryCompactor(
        AwsClients(s3=context.client("s3")),
        bucket,
        engine=ParquetEngine(),
        scratch=Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "tickwatch-compact",
    )
    work = compactor.pending(first, last, force=force)
    span = f"{first:%Y-%m-%dT%H}" + ("" if first == last else f" to {last:%Y-%m-%dT%H}")
    if not work:
        print(f"nothing to compact in {span} UTC: every hour with raw ticks is up to date")
        return 0
    print(f"compacting {len(work)} hour{'s' if len(work) != 1 else ''} of {span} UTC in s3://{bucket}/history/")
    report = compactor.run(work, log=lambda hour: print(describe(hour)))
    for hour, error in report.failed:
        print(f"{hour:%Y-%m-%dT%H}  failed: {error}")
    print(
        f"{len(report.compacted)} compacted, {report.rows:,} ticks, {report.duplicates:,} duplicates removed"
        + (f", {report.unreadable} unreadable raw objects recorded in quarantine/" if report.unreadable else "")
    )
    if report.failed:
        raise CliError(f"{len(report.failed)} hours failed; run the command again to retry them")
    return 0


def describe(hour: HourReport) -> str:
    line = (
        f"{hour.hour:%Y-%m-%dT%H}  {hour.reason:<9}  {hour.raw_objects:,} raw objects ({format_bytes(hour.raw_bytes)})"
        f" -> {hour.rows:,} ticks ({hour.duplicates:,} duplicates) in {format_bytes(hour.parquet_bytes)} of Parquet,"
        f" {hour.seconds:.1f} s"
    )
    for key, reason in hour.unreadable:
        line += f"\n    unreadable, recorded in quarantine/: {key}: {reason}"
    return line
