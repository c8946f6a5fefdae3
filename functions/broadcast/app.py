"""Broadcast Lambda: quote, bar and alert changes from the market table's stream -> one `update`
message per WebSocket connection following their symbols (`tickwatch_core.apps.live.broadcast`).

The template's FilterCriteria lets only latest quotes, one-minute bars and new alert-history items
through.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.apps.live.broadcast import Broadcaster, BroadcastReport
from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.apps.live.messages import TableChange
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import BroadcastSettings
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

settings = BroadcastSettings.from_environment()
clients = AwsClients(
    options={
        # One attempt per call: the broadcaster retries throttled posts itself, and a gone
        # connection's 410 must not be retried at all.
        "apigatewaymanagementapi": {
            "endpoint_url": settings.live_api_endpoint,
            "config": {"retries": {"mode": "standard", "max_attempts": 1}, "read_timeout": 5},
        }
    }
)
broadcaster = Broadcaster(
    ConnectionStore(clients, settings.connection_table_name),
    lambda **post: clients.apigatewaymanagementapi.post_to_connection(**post),
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    changes = [
        TableChange(
            sort_key=record.dynamodb.keys["sk"],
            new_image=record.dynamodb.new_image,
            inserted=record.event_name is DynamoDBRecordEventName.INSERT,
        )
        for record in event.records
        if record.event_name is not DynamoDBRecordEventName.REMOVE and record.dynamodb and record.dynamodb.new_image
    ]
    report = broadcaster.broadcast(changes)
    _observe(report)
    return {}


def _observe(report: BroadcastReport) -> None:
    metrics.add_metric(name="Connections", unit=MetricUnit.Count, value=report.connections)
    metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=report.messages)
    metrics.add_metric(name="Gone", unit=MetricUnit.Count, value=report.gone)
    metrics.add_metric(name="Failures", unit=MetricUnit.Count, value=len(report.failures))
    metrics.add_metric(name="PostsThrottled", unit=MetricUnit.Count, value=report.throttled)
    for connection_id, error in report.failures[:20]:  # a storm of failures logs a sample, counted in full above
        logger.warning("posting to a connection failed", connection_id=connection_id, error=error)
    logger.info(
        "broadcast",
        records=report.records,
        symbols=report.symbols,
        connections=report.connections,
        messages=report.messages,
        posts=report.posts,
        throttled=report.throttled,
        gone=report.gone,
        failures=len(report.failures),
    )
