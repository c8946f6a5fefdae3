"""The query API's two documents: `/openapi.json` and the Swagger UI page at `/docs`.

Powertools' OpenAPI models are some 150 pydantic classes that take about 150 ms to import, half the
query function's cold start. Only these two routes need them, so they are imported here, by the
first request for a document, and never by a cold start that serves quotes or bars. (The page is
what `APIGatewayRestResolver.enable_swagger` serves, with the bundled script and style inlined.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tickwatch_core.domain.ticks import tick_schema
from tickwatch_core.sources.ingest import JSON_LINES_TYPES, MAX_BODY_BYTES, MAX_TICKS

API_KEY_SCHEME = "apiKey"
API_KEY_HEADER = "x-api-key"

_DESCRIPTION = (
    "Quotes, bars with indicators, alert history and rules. Every route but the documents needs an "
    f"API key in the {API_KEY_HEADER} header."
)


def _schema_arguments(app: APIGatewayRestResolver) -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

    return {
        "title": "tickwatch query API",
        "version": "1",
        "description": _DESCRIPTION,
        "security_schemes": {API_KEY_SCHEME: APIKey(name=API_KEY_HEADER, in_=APIKeyIn.header)},
        "security": [{API_KEY_SCHEME: []}],
        # Relative to the stage (found as enable_swagger finds it), so that Swagger UI's "Try it
        # out" calls this very API.
        "servers": [Server(url=app._get_base_path() or "/")],
    }


def openapi_json(app: APIGatewayRestResolver) -> str:
    """The query routes' document (Powertools builds it from their declarations), with `POST
    /ticks` added: the ingest function serves that route, on the same API and key."""
    document = json.loads(app.get_openapi_json_schema(**_schema_arguments(app)))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Tick"] = {name: value for name, value in tick_schema().items() if not name.startswith("$")}
    schemas["IngestResult"] = _INGEST_RESULT
    document["paths"]["/ticks"] = _ingest_path()
    return json.dumps(document, indent=2)


_INGEST_RESULT = {
    "title": "IngestResult",
    "type": "object",
    "required": ["accepted", "rejected", "failed"],
    "properties": {
        "accepted": {"type": "integer", "description": "ticks now in the stream"},
        "rejected": {
            "type": "array",
            "description": "not valid ticks, with the reason the pipeline gives; sending them again will not help",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "reason": {"type": "string"}},
                "required": ["index", "reason"],
            },
        },
        "failed": {
            "type": "array",
            "description": "valid ticks the stream did not take in time (throttled); send these again",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "error": {"type": "string"}},
                "required": ["index", "error"],
            },
        },
        "request_id": {"type": ["string", "null"]},
    },
}


def _ingest_path() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    result = {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}
    ticks = {"type": "array", "items": {"$ref": "#/components/schemas/Tick"}, "minItems": 1, "maxItems": MAX_TICKS}
    lines = {"type": "string", "description": "one tick object per line"}
    return {
        "post": {
            "summary": "Put ticks into the stream",
            "description": (
                f"Up to {MAX_TICKS} ticks and {MAX_BODY_BYTES:,} bytes: a JSON array, or JSON Lines. Each tick "
                "is validated as the processor validates it; the answer says by index which were accepted, "
                "rejected (with the reason) or failed (send again)."
            ),
            "operationId": "put_ticks",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ticks}}
                | {kind: {"schema": lines} for kind in sorted(JSON_LINES_TYPES)},
            },
            "responses": {
                "200": {"description": "every tick accepted", "content": result},
                "207": {"description": "some ticks rejected or failed: see the lists", "content": result},
                "413": {"description": f"over {MAX_TICKS} ticks or {MAX_BODY_BYTES:,} bytes", "content": error},
                "415": {"description": "not JSON or JSON Lines", "content": error},
                "422": {"description": "the body is not ticks (not JSON, not an array, empty)", "content": error},
                "503": {"description": "the stream cannot take records: nothing was sent", "content": error},
            },
            "security": [{API_KEY_SCHEME: []}],
        }
    }


def openapi_document(app: APIGatewayRestResolver) -> Response:
    return Response(200, "application/json", openapi_json(app))


def swagger_page(app: APIGatewayRestResolver) -> Response:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    bundle = Path(swagger_ui.__file__).parent
    # `</` inside the inlined JSON would end the page's <script> element.
    spec = openapi_json(app).replace("</", "<\\/")
    page = generate_swagger_html(
        spec,
        (bundle / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (bundle / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )
    return Response(200, "text/html", page)
