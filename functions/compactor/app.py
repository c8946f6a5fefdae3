"""Compactor Lambda: hourly, the raw ticks of each hour that ended or changed -> one Parquet file.

Thin by design: the EventBridge schedule's time says which hours are due (the last complete hour
and the look-back window before it); `tickwatch_core.history` decides which of them changed and
compacts them. An hour that fails is logged, counted and left pending for the next run; the
invocation fails too, so the function's Errors metric shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.aws import AwsClients
from tickwatch_core.config import CompactorSettings
from tickwatch_core.history.compaction import CompactionReport, HistoryCompactor, HourReport
from tickwatch_core.history.engine import EngineSettings, ParquetEngine
from tickwatch_core.history.layout import ONE_HOUR, hour_of
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

settings = CompactorSettings.from_environment()
SCRATCH = Path("/tmp/compactor")
engine = ParquetEngine(EngineSettings.for_function(settings.memory_limit_mb, SCRATCH))
compactor = HistoryCompactor(AwsClients(), settings.raw_bucket, engine=engine, scratch=SCRATCH)


class HoursFailed(RuntimeError):
    """Some hours could not be compacted; they stay pending for the next run."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    scheduled = _scheduled_time(event)
    last = hour_of(scheduled) - ONE_HOUR  # the last hour that has ended
    first = last - settings.lookback + ONE_HOUR
    work = compactor.pending(first, last)
    logger.info("hours to compact", first=first.isoformat(), last=last.isoformat(), hours=len(work))
    report = compactor.run(
        work,
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000,
        log=_log_hour,
    )
    _observe(report)
    if report.failed:
        raise HoursFailed(f"{len(report.failed)} hours failed; they are compacted again next hour")
    return {
        "compacted": [hour.hour.isoformat() for hour in report.compacted],
        "left_for_later": [hour.isoformat() for hour in report.left_for_later],
    }


def _scheduled_time(event: EventBridgeEvent) -> datetime:
    """The schedule's time (the same hour on a retry or a late start); now for a manual invoke."""
    try:
        return datetime.fromisoformat(event.time.replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError, AttributeError):
        return datetime.now(UTC)


def _log_hour(hour: HourReport) -> None:
    logger.info(
        "hour compacted",
        hour=hour.hour.isoformat(),
        reason=hour.reason,
        raw_objects=hour.raw_objects,
        raw_bytes=hour.raw_bytes,
        rows=hour.rows,
        duplicates=hour.duplicates,
        parquet_bytes=hour.parquet_bytes,
        seconds=round(hour.seconds, 2),
    )
    for key, reason in hour.unreadable:
        logger.error("raw object could not be compacted; recorded in quarantine/", object=key, reason=reason)


def _observe(report: CompactionReport) -> None:
    metrics.add_metric(name="HoursCompacted", unit=MetricUnit.Count, value=len(report.compacted))
    metrics.add_metric(name="HoursFailed", unit=MetricUnit.Count, value=len(report.failed))
    metrics.add_metric(name="HoursLeftForLater", unit=MetricUnit.Count, value=len(report.left_for_later))
    metrics.add_metric(name="TicksCompacted", unit=MetricUnit.Count, value=report.rows)
    metrics.add_metric(name="DuplicatesRemoved", unit=MetricUnit.Count, value=report.duplicates)
    metrics.add_metric(name="RawObjectsUnreadable", unit=MetricUnit.Count, value=report.unreadable)
    for hour, error in report.failed:
        logger.error("hour not compacted; it stays pending", hour=hour.isoformat(), error=error)
    if report.left_for_later:
        logger.warning(
            "time ran out; the next run takes the remaining hours",
            hours=[hour.isoformat() for hour in report.left_for_later],
        )
