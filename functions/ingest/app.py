"""Ingest Lambda: `POST /ticks` on the query API -> the tick stream.

The route lives in the layer (`tickwatch_core.apps.ingest_api`), so the local stack's HTTP gateway and
the tests serve the very same app; this handler only adds logging, metrics and tracing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.apps.ingest_api import IngestService, build_ingest_app
from tickwatch_core.config import IngestSettings
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

settings = IngestSettings.from_environment()
service = IngestService(settings)
app = build_ingest_app(service, metrics, allowed_origin=settings.allowed_origin)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
