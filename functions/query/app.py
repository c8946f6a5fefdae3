"""Query API Lambda: API Gateway REST proxy events -> the query API's routes.

The routes live in the layer (`tickwatch_core.apps.query_api`), so the local stack's HTTP gateway and the
tests serve the very same app; this handler only adds logging and tracing. (Request counts,
latency and 4xx/5xx rates per route are API Gateway's own metrics.)
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.apps.query_api.app import QueryService, build_app
from tickwatch_core.config import QuerySettings
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()

settings = QuerySettings.from_environment()
service = QueryService(settings)
app = build_app(service, allowed_origin=settings.allowed_origin)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
