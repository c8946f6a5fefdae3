"""The query API on this machine, as API Gateway serves it, derived from template.yaml.

Each `Api` event of a function on the template's REST API (`AWS::Serverless::Api`) becomes a route
under `/<StageName>`. A request is checked as API Gateway checks it (the `x-api-key` header when the
route needs a key, the usage plan's rate and burst, the monthly quota), turned into the REST proxy
event (payload 1.0) API Gateway would send, and handed to the function in-process (`LocalFunction`,
the template's environment). The function's answer goes back as it is. CORS preflights are answered
from the API's `Cors` setting, as SAM's mock integration does.

What API Gateway itself answers, the gateway answers alike: 403 `{"message": "Forbidden"}` for a
missing or wrong key, 403 `Missing Authentication Token` for a route that does not exist, 429 `Too
Many Requests` or `Limit Exceeded`, 502 `Internal server error` when the function fails.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tickwatch.local.events import api_gateway_rest_event
from tickwatch.local.functions import LocalFunction
from tickwatch.template import Template

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # like /quotes/{symbol}
    function: str  # logical id
    needs_key: bool
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters, percent-decoded as API Gateway passes them, or None."""
        found = self.pattern.match(path)
        return None if found is None else {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass(frozen=True)
class RestApi:
    """One REST API of the template, as the gateway serves it."""

    logical_id: str
    stage: str
    routes: list[Route]
    rate_limit: float | None
    burst_limit: int | None
    monthly_quota: int | None
    cors: dict[str, str]
    # Headers API Gateway adds to its own answers, by response type (DEFAULT_4XX, DEFAULT_5XX).
    gateway_responses: dict[str, dict[str, str]] = field(default_factory=dict)

    def headers_for(self, status: int) -> dict[str, str]:
        return dict(self.gateway_responses.get(f"DEFAULT_{status // 100}XX", {}))

    @classmethod
    def from_template(cls, template: Template, logical_id: str) -> RestApi:
        raw = template.resources[logical_id].get("Properties", {})
        # Only what the gateway needs: the rest (log group ARNs, ...) names resources moto lacks.
        wanted = ("StageName", "Auth", "Cors", "GatewayResponses")
        properties = {name: template.resolve(raw[name]) for name in wanted if name in raw}
        auth = properties.get("Auth", {})
        default_needs_key = bool(auth.get("ApiKeyRequired", False))
        routes = []
        for function in template.logical_ids("AWS::Serverless::Function"):
            events = template.resources[function].get("Properties", {}).get("Events", {})
            for event in events.values():
                if event["Type"] != "Api" or event["Properties"].get("RestApiId") != {"Ref": logical_id}:
                    continue
                event_properties = {
                    name: template.resolve(value)
                    for name, value in event["Properties"].items()
                    if name in ("Path", "Method", "Auth")
                }
                resource = event_properties["Path"]
                needs_key = event_properties.get("Auth", {}).get("ApiKeyRequired", default_needs_key)
                pattern = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$")
                routes.append(Route(event_properties["Method"].upper(), resource, function, bool(needs_key), pattern))
        plan = auth.get("UsagePlan", {})
        throttle, quota = plan.get("Throttle", {}), plan.get("Quota", {})
        cors = properties.get("Cors", {})
        if isinstance(cors, str):
            cors = {"AllowOrigin": cors}
        return cls(
            logical_id,
            str(properties.get("StageName", "Prod")),
            routes,
            float(throttle["RateLimit"]) if "RateLimit" in throttle else None,
            int(throttle["BurstLimit"]) if "BurstLimit" in throttle else None,
            int(quota["Limit"]) if "Limit" in quota else None,
            {name: str(value).strip("'") for name, value in cors.items()},
            {
                response_type: {
                    name: str(value).strip("'")
                    for name, value in response.get("ResponseParameters", {}).get("Headers", {}).items()
                }
                for response_type, response in properties.get("GatewayResponses", {}).items()
            },
        )


class TokenBucket:
    """API Gateway's throttling: `rate` requests a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    from_function: bool = False  # else API Gateway's own answer, which its GatewayResponses dress


def _gateway_message(status: int, message: str, extra: dict[str, str] | None = None) -> Answer:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": message.replace(" ", ""), **(extra or {})}
    return Answer(status, headers, json.dumps({"message": message}).encode())


def _with_gateway_headers(api: RestApi, answer: Answer) -> Answer:
    """API Gateway's own answer with the headers the API's GatewayResponses add to it."""
    return Answer(answer.status, {**answer.headers, **api.headers_for(answer.status)}, answer.body)


class RestGateway:
    """Serves one REST API of the template over HTTP on a loopback address."""

    def __init__(
        self,
        template: Template,
        functions: dict[str, LocalFunction],
        *,
        api_logical_id: str,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = RestApi.from_template(template, api_logical_id)
        self.functions = functions
        # The key create_resources made in the emulator (which the WebSocket API checks too).
        created_key = template.physical.get(f"{api_logical_id}ApiKey")
        self.api_key = api_key or (created_key.attributes["Value"] if created_key else secrets.token_urlsafe(30))
        self.api_key_id = created_key.ref if created_key else template.physical_name(f"{api_logical_id}ApiKey")
        self.account = template.account_id
        self.bucket = (
            TokenBucket(self.api.rate_limit, self.api.burst_limit or int(self.api.rate_limit), clock)
            if self.api.rate_limit
            else None
        )
        self.requests_this_month = 0
        self._month = datetime.now(UTC).strftime("%Y-%m")
        self._lock = threading.Lock()
        self._serial: dict[str, threading.Lock] = {}
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.api.stage}"

    def start(self) -> RestGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- one request ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes | None, source_ip: str) -> Answer:
        parts = urlsplit(target)
        prefix = f"/{self.api.stage}"
        if parts.path != prefix and not parts.path.startswith(prefix + "/"):
            return _gateway_message(403, "Missing Authentication Token")
        path = parts.path[len(prefix) :] or "/"
        lowered = {name.lower(): value for name, value in headers.items()}
        if method == "OPTIONS" and self.api.cors:
            return self._preflight(path)
        route, parameters = self._route(method, path)
        if route is None:
            return _gateway_message(403, "Missing Authentication Token")
        if route.needs_key:
            if lowered.get("x-api-key") != self.api_key:
                return _gateway_message(403, "Forbidden")
            refused = self._usage_plan()
            if refused is not None:
                return refused
        request_id = str(uuid.uuid4())
        event = api_gateway_rest_event(
            method=method,
            path=path,
            resource=route.resource,
            path_parameters=parameters,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            stage=self.api.stage,
            api_key_id=self.api_key_id if route.needs_key else None,
            source_ip=source_ip,
            request_id=request_id,
            account=self.account,
        )
        # Powertools' resolver keeps the request it serves on its class: Lambda runs one request
        # per process at a time, so the gateway hands each function one request at a time too.
        with self._serial.setdefault(route.function, threading.Lock()):
            outcome = self.functions[route.function].invoke(event)
        if outcome.error or not isinstance(outcome.response, dict) or "statusCode" not in outcome.response:
            return _gateway_message(502, "Internal server error", {"x-amzn-RequestId": request_id})
        return self._answer(outcome.response, request_id)

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.api.routes:
            if route.method in (method, "ANY"):
                parameters = route.match(path)
                if parameters is not None:
                    return route, parameters
        return None, {}

    def _usage_plan(self) -> Answer | None:
        if self.bucket is not None and not self.bucket.take():
            return _gateway_message(429, "Too Many Requests")
        if self.api.monthly_quota is not None:
            with self._lock:
                month = datetime.now(UTC).strftime("%Y-%m")
                if month != self._month:
                    self._month, self.requests_this_month = month, 0
                if self.requests_this_month >= self.api.monthly_quota:
                    return _gateway_message(429, "Limit Exceeded")
                self.requests_this_month += 1
        return None

    def _preflight(self, path: str) -> Answer:
        if not any(route.match(path) is not None for route in self.api.routes):
            return _gateway_message(403, "Missing Authentication Token")
        cors = self.api.cors
        headers = {
            "Access-Control-Allow-Origin": cors.get("AllowOrigin", "*"),
            "Access-Control-Allow-Methods": cors.get("AllowMethods", "*"),
            "Access-Control-Allow-Headers": cors.get("AllowHeaders", "*"),
        }
        if "MaxAge" in cors:
            headers["Access-Control-Max-Age"] = cors["MaxAge"]
        return Answer(200, headers)

    @staticmethod
    def _answer(response: dict[str, Any], request_id: str) -> Answer:
        headers = {name: str(value) for name, value in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(value) for value in values)
        headers.setdefault("x-amzn-RequestId", request_id)
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return Answer(int(response["statusCode"]), headers, data, from_function=True)


def _handler_for(gateway: RestGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tickwatch-local-apigateway"
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._send(_gateway_message(400, "Bad Request"))
                return
            if length > MAX_BODY:
                self._send(_gateway_message(413, "Request Too Long"))
                return
            body = self.rfile.read(length) if length else None
            # A repeated header reaches the function joined, as API Gateway's single-value map has it.
            headers = {name: ", ".join(self.headers.get_all(name) or []) for name in dict(self.headers.items())}
            self._send(gateway.handle(self.command, self.path, headers, body, self.client_address[0]))

        def _send(self, answer: Answer) -> None:
            if not answer.from_function:
                answer = _with_gateway_headers(gateway.api, answer)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up (a browser leaving the page): nobody is left to answer

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are not printed on the terminal; the function logs them

    return Handler
