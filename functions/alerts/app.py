"""Alerts Lambda: latest-quote changes from the DynamoDB stream -> threshold alerts on SNS.

The template's FilterCriteria lets only quote items (sk = QUOTE) through. The handler parses the
typed records and hands them to `AlertDispatcher`, which publishes each crossing exactly once and
reports the first stream record whose alerts are not all delivered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.config import AlertsSettings
from tickwatch_core.pipeline.alerts import AlertDispatcher, AlertsReport, StreamQuoteUpdate, quote_update_from_image
from tickwatch_core.store.items import QUOTE_SORT_KEY
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

settings = AlertsSettings.from_environment()
dispatcher = AlertDispatcher(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    updates = []
    for record in event.records:
        stream = record.dynamodb
        if record.event_name is DynamoDBRecordEventName.REMOVE or stream is None or not stream.new_image:
            continue
        if stream.keys.get("sk") != QUOTE_SORT_KEY:
            # FilterCriteria should have kept this away; say so rather than guess.
            logger.warning("ignoring a stream record that is not a latest quote", keys=stream.keys)
            continue
        updates.append(StreamQuoteUpdate(stream.sequence_number, quote_update_from_image(stream.new_image)))
    report = dispatcher.process(
        updates, time_left=lambda: timedelta(milliseconds=context.get_remaining_time_in_millis())
    )
    _observe(report)
    failed = report.first_failed_sequence
    return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}


def _observe(report: AlertsReport) -> None:
    metrics.add_metric(name="QuoteUpdates", unit=MetricUnit.Count, value=report.updates)
    metrics.add_metric(name="AlertsFired", unit=MetricUnit.Count, value=report.firings)
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=report.published)
    metrics.add_metric(name="AlertsDeferred", unit=MetricUnit.Count, value=report.deferred)
    metrics.add_metric(name="AlertFailures", unit=MetricUnit.Count, value=len(report.failures))
    for what, error, sequence in report.failures:
        logger.error(
            "alert step failed; batch will resume at this record", target=what, error=error, sequence_number=sequence
        )
    logger.info(
        "alerts batch processed",
        updates=report.updates,
        rules_evaluated=report.rules_evaluated,
        firings=report.firings,
        published=report.published,
        already_published=report.already_published,
        deferred=report.deferred,
        rules_saved=report.rules_saved,
        first_failed_sequence=report.first_failed_sequence,
    )
