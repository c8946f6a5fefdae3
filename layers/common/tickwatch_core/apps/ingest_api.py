"""`POST /ticks` on the query API: the ingest route's one app, for Lambda, the local stack and tests.

A separate function from the query routes, so that it alone may put records into the stream (and
the query function alone may read the table). Errors have the query API's shape, `{"error":
{"code", "message", "field"}, "request_id"}`; the per-tick answer is `ingest.IngestResult`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit

from tickwatch_core.apps.query_api.errors import ApiError, internal, unknown_route
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import IngestSettings
from tickwatch_core.domain import exact_json
from tickwatch_core.sources.ingest import BodyError, ingest, parse_body
from tickwatch_core.sources.kinesis_put import StreamUnavailable

logger = Logger(child=True)

RETRY_AFTER_SECONDS = 1
# API Gateway gives up on an integration after 29 s, whatever the function's timeout.
GATEWAY_TIMEOUT_SECONDS = 29.0


@dataclass
class IngestService:
    settings: IngestSettings
    clients: AwsClients = field(default_factory=AwsClients)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def _json(payload: Any, status: int = HTTPStatus.OK, headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", exact_json.dumps(payload), headers=headers)


def build_ingest_app(service: IngestService, metrics: Metrics, *, allowed_origin: str = "*") -> APIGatewayRestResolver:
    """The resolver with `POST /ticks`, putting into `service`'s stream and counting into `metrics`."""
    app = APIGatewayRestResolver(
        cors=CORSConfig(allow_origin=allowed_origin, allow_headers=["x-api-key", "content-type"], max_age=600)
    )

    def request_id() -> str | None:
        try:
            return app.current_event.request_context.request_id
        except (AttributeError, KeyError, TypeError):
            return None

    def time_left() -> float:
        remaining = app.lambda_context.get_remaining_time_in_millis() / 1000
        return min(remaining, GATEWAY_TIMEOUT_SECONDS)

    @app.post("/ticks")
    def put_ticks() -> Response:
        event = app.current_event
        body = event.body or ""
        raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
        candidates = parse_body(raw, event.headers.get("content-type"))
        result = ingest(
            candidates,
            kinesis=service.clients.kinesis,
            stream_name=service.settings.stream_name,
            time_left=time_left,
            now=service.clock(),
        )
        metrics.add_metric(name="TicksIngested", unit=MetricUnit.Count, value=result.accepted)
        metrics.add_metric(name="TicksRejected", unit=MetricUnit.Count, value=len(result.rejected))
        metrics.add_metric(name="TicksFailed", unit=MetricUnit.Count, value=len(result.failed))
        if result.rejected or result.failed:
            # What was refused, and why, for the operator too (the client has it in the answer).
            logger.info(
                "ticks not accepted",
                request_id=request_id(),
                accepted=result.accepted,
                rejected=result.rejected[:10],
                failed=result.failed[:10],
            )
        return _json({**result.body(), "request_id": request_id()}, result.status)

    def answer(error: ApiError) -> Response:
        return _json(error.body(request_id()), error.status, headers=error.headers or None)

    @app.exception_handler(BodyError)
    def not_ticks(error: BodyError) -> Response:
        metrics.add_metric(name="BodiesRefused", unit=MetricUnit.Count, value=1)
        code = {
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "too_large",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
        }.get(error.status, "invalid_request")
        return answer(ApiError(error.status, code, error.message, field="body"))

    @app.exception_handler(StreamUnavailable)
    def stream_unavailable(error: StreamUnavailable) -> Response:
        logger.error("the stream refused every record", request_id=request_id(), error=str(error))
        metrics.add_metric(name="StreamUnavailable", unit=MetricUnit.Count, value=1)
        return answer(
            ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "stream_unavailable",
                "the tick stream cannot take records now; nothing was sent, send the body again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        )

    @app.not_found
    def no_route(_: NotFoundError) -> Response:
        return answer(unknown_route(app.current_event.path))

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("ingest failed", request_id=request_id(), error_type=type(error).__name__)
        return answer(internal(request_id()))

    return app
