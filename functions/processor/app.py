"""Processor Lambda: Kinesis ticks -> raw JSON Lines in S3, latest quotes and 1-minute bars in DynamoDB.

Thin by design: parse the typed event, hand the batch to `TickBatchProcessor`, turn its report into
logs, metrics and the partial batch response. Powertools' BatchProcessor is not used because it
calls a handler per record, and this function must fold the whole batch before writing (one object
per batch and hour, one write per quote and bar).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.config import ProcessorSettings
from tickwatch_core.pipeline.processor import BatchReport, StreamRecord, TickBatchProcessor
from tickwatch_core.store.repair import REPLAY_FLAG
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

# Read once at cold start: a missing variable fails the init, naming the variable.
settings = ProcessorSettings.from_environment()
# Clients are created on first use; tests and the local stack replace `processor.clients`.
processor = TickBatchProcessor(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=KinesisStreamEvent)
def lambda_handler(event: KinesisStreamEvent, context: LambdaContext) -> dict[str, Any]:
    records = [
        StreamRecord(
            data=record.kinesis.data_as_bytes(),
            sequence_number=record.kinesis.sequence_number,
            shard_id=record.event_id.split(":", 1)[0],
            partition_key=record.kinesis.partition_key,
            arrival=datetime.fromtimestamp(record.kinesis.approximate_arrival_timestamp, UTC),
        )
        for record in event.records
    ]
    # Set by `tickwatch dlq replay`: the batch is one Lambda gave up on, replayed late.
    report = processor.process(records, replay=bool(event.raw_event.get(REPLAY_FLAG)))
    _observe(report)
    failed = report.first_failed_sequence
    return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}


def _observe(report: BatchReport) -> None:
    metrics.add_metric(name="Batches", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="TicksProcessed", unit=MetricUnit.Count, value=report.ticks)
    metrics.add_metric(name="TicksQuarantined", unit=MetricUnit.Count, value=len(report.quarantined))
    metrics.add_metric(name="RawObjectsWritten", unit=MetricUnit.Count, value=report.raw_objects_written)
    metrics.add_metric(name="ItemsWritten", unit=MetricUnit.Count, value=report.items_written)
    metrics.add_metric(name="WriteFailures", unit=MetricUnit.Count, value=len(report.failures))
    for entry in report.quarantined:
        logger.warning(
            "tick quarantined",
            reason=entry.reason,
            sequence_number=entry.record.sequence_number,
            shard_id=entry.record.shard_id,
        )
    for failure in report.failures:
        logger.error(
            "write failed; batch will resume at the first record not fully applied",
            target=failure.what,
            error=failure.error,
            records=len(failure.records),
        )
    logger.info(
        "batch processed",
        records=report.records,
        ticks=report.ticks,
        quarantined=len(report.quarantined),
        raw_objects=report.raw_objects_written,
        items_written=report.items_written,
        items_unchanged=report.items_unchanged,
        items_repaired=report.items_repaired,
        first_failed_sequence=report.first_failed_sequence,
    )
