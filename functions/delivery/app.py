"""Delivery Lambda: pending deliveries from the delivery table's stream -> e-mail, webhooks, chat.

The template's FilterCriteria passes only items whose new image is `pending` (written by the
alerts function, or put back by `tickwatch deliveries replay`). The handler parses the typed
records and hands them to `DeliveryService`, which sends each (alert, destination) once, paced
under the receiver's limits, and reports the first record it could not finish.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.config import DeliverySettings
from tickwatch_core.pipeline.delivery.service import DeliveryReport, DeliveryService, StreamDelivery
from tickwatch_core.store.deliveries import DELIVERY_PREFIX
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer(aws_calls_only=True)
metrics = Metrics()

PROBE = "test_destination"

settings = DeliverySettings.from_environment()
service = DeliveryService(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if PROBE in event:
        # `tickwatch destinations test NAME` invokes the function itself: the real path (its role,
        # its network, the secret it reads) is what the test proves.
        answer = service.send_probe(str(event[PROBE]))
        logger.info("test message sent", destination=answer["destination"], delivered=answer["delivered"])
        return answer
    return _deliver(event, context)


@event_source(data_class=DynamoDBStreamEvent)
def _deliver(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    records = []
    for record in event.records:
        stream = record.dynamodb
        if record.event_name is DynamoDBRecordEventName.REMOVE or stream is None or not stream.new_image:
            continue
        if not str(stream.keys.get("sk", "")).startswith(DELIVERY_PREFIX):
            # FilterCriteria should have kept this away; say so rather than guess.
            logger.warning("ignoring a stream record that is not a delivery", keys=stream.keys)
            continue
        records.append(StreamDelivery(stream.sequence_number, dict(stream.new_image)))
    report = service.process(records, time_left=lambda: timedelta(milliseconds=context.get_remaining_time_in_millis()))
    _observe(report)
    failed = report.first_failed_sequence
    return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}


def _observe(report: DeliveryReport) -> None:
    metrics.add_metric(name="Deliveries", unit=MetricUnit.Count, value=report.deliveries)
    metrics.add_metric(name="DeliveriesDelivered", unit=MetricUnit.Count, value=report.delivered)
    metrics.add_metric(name="DeliveriesInDigests", unit=MetricUnit.Count, value=report.in_digests)
    metrics.add_metric(name="DeliveryRetries", unit=MetricUnit.Count, value=report.retries)
    metrics.add_metric(name="DeliveriesFailed", unit=MetricUnit.Count, value=report.parked)
    metrics.add_metric(name="DeliveryFailures", unit=MetricUnit.Count, value=len(report.failures))
    # Per channel (sent, failed, retried, digested), for the ops dashboard and alarms on one channel.
    for (channel, what), count in sorted(report.by_channel.items()):
        with single_metric(
            name=f"Deliveries{what.title()}", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value="delivery")
            metric.add_dimension(name="channel", value=channel)
    for what, error, sequence in report.failures:
        logger.error(
            "delivery step failed; batch will resume at this record", target=what, error=error, sequence_number=sequence
        )
    logger.info(
        "delivery batch processed",
        deliveries=report.deliveries,
        already_finished=report.already_finished,
        messages=report.messages,
        delivered=report.delivered,
        in_digests=report.in_digests,
        retries=report.retries,
        parked=report.parked,
        waited_seconds=round(report.waited_seconds, 3),
        by_channel={f"{channel}.{what}": count for (channel, what), count in sorted(report.by_channel.items())},
        first_failed_sequence=report.first_failed_sequence,
    )
