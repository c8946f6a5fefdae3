"""The end of `tickwatch local` (make run): the run's hours compacted to Parquet, then SQL over them,
with the same code as `tickwatch history compact` and `tickwatch sql`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from tickwatch.analytics.local import LocalHistory
from tickwatch.analytics.output import format_bytes, render
from tickwatch.analytics.result import QueryError
from tickwatch.local.stack import LocalStack
from tickwatch_core.aws import AwsClients
from tickwatch_core.history.compaction import HistoryCompactor
from tickwatch_core.history.engine import ParquetEngine
from tickwatch_core.history.layout import RAW_PREFIX, hour_of, hour_of_key

# Athena's SQL, translated to DuckDB's like every local query.
SAMPLE_QUERY = """
SELECT symbol, count(*) AS ticks, min(price) AS low, max(price) AS high, sum(volume) AS volume
FROM ticks
WHERE concat(year, '-', month, '-', day, 'T', hour) >= '{first}'
GROUP BY symbol
ORDER BY volume DESC, symbol
LIMIT 5
"""


def compact_and_query(stack: LocalStack, since: datetime, now: datetime, workdir: Path) -> list[str]:
    """Lines for the run's summary: what compaction wrote, and a query's first rows."""
    bucket = stack.names()["RawBucketName"]
    s3 = stack.session.client("s3")
    compactor = HistoryCompactor(AwsClients(s3=s3), bucket, engine=ParquetEngine(), scratch=workdir / "compact")
    # The hours of the ticks, not of the clock: a replay sends ticks of other days. The stack's
    # bucket is the run's own, so every raw hour in it is this run's.
    hours = sorted(hour for key in _raw_keys(s3, bucket) if (hour := hour_of_key(key)) is not None)
    first, last = (hours[0], hours[-1]) if hours else (hour_of(since), hour_of(now))
    report = compactor.run(compactor.pending(first, last, force=True))
    raw_bytes = sum(hour.raw_bytes for hour in report.compacted)
    parquet_bytes = sum(hour.parquet_bytes for hour in report.compacted)
    lines = [
        f"  history            {len(report.compacted)} hour(s) compacted: {report.rows:,} ticks "
        f"({report.duplicates:,} duplicates removed), {format_bytes(parquet_bytes)} of Parquet "
        f"from {format_bytes(raw_bytes)} of gzip JSON Lines"
    ]
    lines += [f"  history failed     {hour:%Y-%m-%dT%H}: {error}" for hour, error in report.failed]
    if not report.compacted:
        return lines
    query = SAMPLE_QUERY.format(first=f"{first:%Y-%m-%dT%H}")
    try:
        result = LocalHistory(s3, bucket, workdir / "history-cache", stack.template).run(query)
    except QueryError as error:
        return [*lines, f"  sql failed: {error}"]
    lines.append("  the most traded symbols, by SQL over the Parquet history (tickwatch sql, DuckDB here):")
    lines += [f"    {line}" for line in render(result, "table").splitlines()]
    lines.append("  more: tickwatch local up, then tickwatch sql --list (README: Analytics)")
    return lines


def _raw_keys(s3: Any, bucket: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=RAW_PREFIX):
        yield from (entry["Key"] for entry in page.get("Contents", ()))
