"""Calling the query API in-process as API Gateway would: REST proxy events, parsed answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from tests.support import LambdaContext
from tickwatch.local.events import api_gateway_rest_event
from tickwatch.local.gateway import RestApi
from tickwatch.template import Template

# The routes of template.yaml's QueryApi, for the event's `resource` and path parameters.
ROUTES = RestApi.from_template(Template.load(), "QueryApi").routes


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        # Decimals: the test sees the numbers exactly as written.
        return json.loads(self.text, parse_float=Decimal)


def route_of(method: str, path: str) -> tuple[str, dict[str, str]]:
    for route in ROUTES:
        parameters = route.match(path)
        if route.method == method and parameters is not None:
            return route.resource, parameters
    return "/{proxy+}", {"proxy": path.lstrip("/")}


def call(
    module: Any,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | list | None = None,
    body: Any = None,
    content_type: str = "application/json",
    context: LambdaContext | None = None,
) -> Answer:
    """Invoke the handler module with the event API Gateway would send for this request."""
    pairs = list(query.items()) if isinstance(query, dict) else list(query or [])
    resource, parameters = route_of(method, path)
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    event = api_gateway_rest_event(
        method=method,
        path=path,
        resource=resource,
        path_parameters=parameters,
        query=[(k, str(v)) for k, v in pairs],
        headers={"Content-Type": content_type} if data is not None else {},
        body=data,
        request_id="test-request",
    )
    response = module.lambda_handler(event, context or LambdaContext())
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[0]
    return Answer(response["statusCode"], headers, response["body"])


def query_string(values: dict[str, Any]) -> str:
    return urlencode(values)
