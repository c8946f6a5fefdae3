"""WebSocket API Lambda: `$connect` (API key check), `$disconnect`, `subscribe`, `unsubscribe` and
`$default`, all served by `tickwatch_core.apps.live.routes` (the local emulator serves the same routes)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.apps.live.keys import ApiKeyCheck
from tickwatch_core.apps.live.routes import LiveRoutes
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import LiveSettings
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

settings = LiveSettings.from_environment()
clients = AwsClients()
routes = LiveRoutes(
    ConnectionStore(clients, settings.connection_table_name),
    ApiKeyCheck(clients, settings.usage_plan_id),
)


@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response, outcome = routes.handle(event)
    refused = outcome.status != 200
    if outcome.route == "$connect":
        metrics.add_metric(
            name="ConnectionsRefused" if refused else "ConnectionsOpened", unit=MetricUnit.Count, value=1
        )
    elif outcome.route == "$disconnect":
        metrics.add_metric(name="ConnectionsClosed", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="FramesRefused" if refused else "FramesServed", unit=MetricUnit.Count, value=1)
    if outcome.error:
        logger.info("frame refused", route=outcome.route, status=outcome.status, reason=outcome.error)
    else:
        logger.info("route served", route=outcome.route, status=outcome.status, symbols=outcome.symbols)
    return response
