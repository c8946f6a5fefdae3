"""The query API's two documents: `/openapi.json` and the Swagger UI page at `/docs`.

Powertools' OpenAPI models are some 150 pydantic classes that take about 150 ms to import, half the
query function's cold start. Only these two routes need them, so they are imported here, by the
first request for a document, and never by a cold start that serves quotes or bars. (The page is
what `APIGatewayRestResolver.enable_swagger` serves, with the bundled script and style inlined.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

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
    return app.get_openapi_json_schema(**_schema_arguments(app))


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
