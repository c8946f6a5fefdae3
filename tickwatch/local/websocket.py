"""The live WebSocket API on this machine, as API Gateway serves it, derived from template.yaml.

The template's `AWS::ApiGatewayV2::Api` (WEBSOCKET) gives the route selection expression; its
`Route`s, `Integration`s and `RouteResponse`s give, for each route key, the function that serves it
and whether the function's answer goes back to the client; its `Stage` gives the path. Each
handshake becomes a `$connect` event (a refusal ends the handshake with the function's status),
each text frame the event of the route its body selects, and each close a `$disconnect` event, with
the `requestContext` API Gateway sends (`routeKey`, `eventType`, `connectionId`, `domainName`,
`stage`, ...). The handlers run in-process (`LocalFunction`).

Next to it, the management API that `BroadcastFunction`'s client reaches through its endpoint URL:
`POST /<stage>/@connections/{id}` sends a frame, `GET` describes the connection, `DELETE` closes it,
and a connection that is not open answers 410 `GoneException`, as AWS does (moto's version accepts
any id and never answers 410, so it cannot stand in here).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from tickwatch.local.functions import LocalFunction
from tickwatch.template import Template

MAX_POST_BYTES = 128 * 1024  # API Gateway's message payload limit (frames are 32 KB each)
_SELECTION = re.compile(r"^\$request\.body\.(\w+)$")
_FUNCTION_IN_URI = re.compile(r"\$\{(\w+)\.Arn\}")


@dataclass(frozen=True)
class WebSocketRoute:
    key: str  # $connect, $disconnect, $default or an action
    function: str  # logical id
    answers: bool  # the route has a route response: the function's body goes back to the client


@dataclass(frozen=True)
class WebSocketApi:
    logical_id: str
    stage: str
    selection_field: str  # the body field of `$request.body.<field>`
    routes: dict[str, WebSocketRoute]

    @classmethod
    def from_template(cls, template: Template, logical_id: str) -> WebSocketApi:
        properties = template.resources[logical_id]["Properties"]
        expression = properties.get("RouteSelectionExpression", "")
        selection = _SELECTION.match(expression)
        if selection is None:
            raise ValueError(
                f"{logical_id}: only `$request.body.<field>` route selection is emulated, not {expression!r}"
            )

        def of_api(resource_type: str) -> dict[str, dict[str, Any]]:
            return {
                resource_id: template.resources[resource_id]["Properties"]
                for resource_id in template.logical_ids(resource_type)
                if template.resources[resource_id]["Properties"].get("ApiId") == {"Ref": logical_id}
            }

        answered = {p["RouteId"]["Ref"] for p in of_api("AWS::ApiGatewayV2::RouteResponse").values()}
        integrations = of_api("AWS::ApiGatewayV2::Integration")
        routes = {}
        for route_id, route in of_api("AWS::ApiGatewayV2::Route").items():
            target = route["Target"]["Fn::Sub"] if isinstance(route.get("Target"), dict) else route.get("Target", "")
            integration_id = target.removeprefix("integrations/${").removesuffix("}")
            uri = integrations[integration_id]["IntegrationUri"]
            function = _FUNCTION_IN_URI.search(uri["Fn::Sub"] if isinstance(uri, dict) else uri)
            if function is None:
                raise ValueError(f"{route_id}: its integration does not invoke a function of the template")
            key = route["RouteKey"]
            routes[key] = WebSocketRoute(key, function.group(1), route_id in answered)
        (stage,) = [template.resolve(p["StageName"]) for p in of_api("AWS::ApiGatewayV2::Stage").values()]
        return cls(logical_id, str(stage), selection.group(1), routes)

    def route_of(self, body: str) -> str:
        """The route key a frame selects: its `selection_field`, when that names a route."""
        try:
            frame = json.loads(body)
        except ValueError:
            return "$default"
        selected = frame.get(self.selection_field) if isinstance(frame, dict) else None
        if isinstance(selected, str) and selected in self.routes and not selected.startswith("$"):
            return selected
        return "$default"


@dataclass
class _Connection:
    connection_id: str
    socket: ServerConnection | None
    source_ip: str
    user_agent: str
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_active_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class LiveStats:
    connections_opened: int = 0
    connections_refused: int = 0
    frames_in: int = 0
    posts: int = 0  # management API posts delivered
    gone: int = 0  # management API calls answered 410


class WebSocketGateway:
    """Serves one WebSocket API of the template on a loopback port, with its management API on
    another (`management_url`, the endpoint the functions' management client is given)."""

    def __init__(
        self,
        template: Template,
        functions: dict[str, LocalFunction],
        *,
        api_logical_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api = WebSocketApi.from_template(template, api_logical_id)
        self.functions = functions
        self.account = template.account_id
        self.api_id = template.physical_name(api_logical_id)
        self.stats = LiveStats()
        self._connections: dict[str, _Connection] = {}
        self._pending: dict[int, _Connection] = {}  # handshakes accepted, by id() of their socket
        self._lock = threading.Lock()
        self._server: Server = serve(self._session, host, port, process_request=self._handshake, compression=None)
        self._management = ThreadingHTTPServer((host, 0), _management_handler(self))
        self._management.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/{self.api.stage}"

    @property
    def management_url(self) -> str:
        host, port = self._management.server_address[:2]
        return f"http://{host}:{port}/{self.api.stage}"

    @property
    def domain_name(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> WebSocketGateway:
        for target, name in ((self._server.serve_forever, "websocket"), (self._management.serve_forever, "manage")):
            thread = threading.Thread(target=target, name=f"live-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._management.shutdown()
        self._management.server_close()
        with self._lock:
            open_sockets = [c.socket for c in self._connections.values() if c.socket is not None]
        for socket in open_sockets:
            socket.close(1001, "going away")  # each session then runs $disconnect
        self._server.shutdown()

    def open_connections(self) -> list[str]:
        with self._lock:
            return sorted(self._connections)

    # -- the WebSocket side ---------------------------------------------------------------------

    def _handshake(self, socket: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") != f"/{self.api.stage}":
            return socket.respond(403, '{"message": "Forbidden"}\n')
        connection = _Connection(
            _connection_id(),
            None,
            str(socket.remote_address[0]),
            request.headers.get("User-Agent", ""),
        )
        headers = dict(request.headers.raw_items())
        event = self._event("$connect", "CONNECT", connection, headers=headers, query=parts.query)
        status = self._invoke_status("$connect", event)
        if status // 100 != 2:
            with self._lock:
                self.stats.connections_refused += 1
            message = "Forbidden" if status in (401, 403) else "Internal server error" if status >= 500 else "Refused"
            return socket.respond(status, json.dumps({"message": message}) + "\n")
        with self._lock:
            self._pending[id(socket)] = connection
            self.stats.connections_opened += 1
        return None

    def _session(self, socket: ServerConnection) -> None:
        with self._lock:
            connection = self._pending.pop(id(socket))
            connection.socket = socket
            self._connections[connection.connection_id] = connection
        close_code, reason = 1000, ""
        try:
            for frame in socket:
                text = frame if isinstance(frame, str) else frame.decode(errors="replace")
                with self._lock:
                    self.stats.frames_in += 1
                connection.last_active_at = datetime.now(UTC)
                self._frame(connection, text)
        except ConnectionClosed as closed:
            close_code = closed.rcvd.code if closed.rcvd else 1006
            reason = closed.rcvd.reason if closed.rcvd else ""
        else:
            if socket.close_code is not None:
                close_code, reason = socket.close_code, socket.close_reason or ""
        finally:
            with self._lock:
                self._connections.pop(connection.connection_id, None)
            event = self._event("$disconnect", "DISCONNECT", connection)
            event["requestContext"].update(disconnectStatusCode=close_code, disconnectReason=reason)
            self._invoke_status("$disconnect", event)

    def _frame(self, connection: _Connection, text: str) -> None:
        route_key = self.api.route_of(text)
        route = self.api.routes.get(route_key)
        if route is None:  # no $default route: API Gateway answers this itself
            self._send(connection, {"message": "Forbidden", "connectionId": connection.connection_id})
            return
        event = self._event(route_key, "MESSAGE", connection, body=text)
        outcome = self.functions[route.function].invoke(event)
        if outcome.error or not isinstance(outcome.response, dict):
            request_id = event["requestContext"]["requestId"]
            message = {
                "message": "Internal server error",
                "connectionId": connection.connection_id,
                "requestId": request_id,
            }
            self._send(connection, message)
            return
        body = outcome.response.get("body")
        if route.answers and body:
            self._send(connection, body)

    def _send(self, connection: _Connection, payload: str | dict[str, Any]) -> None:
        if connection.socket is None:
            return
        text = payload if isinstance(payload, str) else json.dumps(payload)
        with contextlib.suppress(ConnectionClosed):  # closing: its session runs $disconnect
            connection.socket.send(text)

    def _invoke_status(self, route_key: str, event: dict[str, Any]) -> int:
        route = self.api.routes.get(route_key)
        if route is None:
            return 200  # no $connect route: every connection is accepted
        outcome = self.functions[route.function].invoke(event)
        if outcome.error or not isinstance(outcome.response, dict):
            return 500
        return int(outcome.response.get("statusCode", 200))

    def _event(
        self,
        route_key: str,
        event_type: str,
        connection: _Connection,
        *,
        headers: dict[str, str] | None = None,
        query: str = "",
        body: str | None = None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": secrets.token_urlsafe(12),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": int(connection.connected_at.timestamp() * 1000),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "requestId": str(uuid.uuid4()),
            "domainName": self.domain_name,
            "connectionId": connection.connection_id,
            "apiId": self.api_id,
        }
        if event_type == "MESSAGE":
            context["messageId"] = secrets.token_urlsafe(12)
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if event_type == "CONNECT":
            event["headers"] = headers or {}
            event["multiValueHeaders"] = {name: [value] for name, value in (headers or {}).items()}
            pairs = parse_qsl(query, keep_blank_values=True)
            if pairs:
                event["queryStringParameters"] = dict(pairs)
                event["multiValueQueryStringParameters"] = {
                    name: [v for n, v in pairs if n == name] for name in dict(pairs)
                }
        if body is not None:
            event["body"] = body
        return event

    # -- the management API ---------------------------------------------------------------------

    def manage(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        prefix = f"/{self.api.stage}/@connections/"
        if not path.startswith(prefix):
            return _error(403, "ForbiddenException", "Forbidden")
        connection_id = path[len(prefix) :]
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or connection.socket is None:
            with self._lock:
                self.stats.gone += 1
            return _error(410, "GoneException", f"connection {connection_id} is not open")
        if method == "POST":
            if len(body) > MAX_POST_BYTES:
                return _error(413, "PayloadTooLargeException", f"{len(body)} bytes is over {MAX_POST_BYTES}")
            try:
                connection.socket.send(body.decode() if _is_text(body) else body)
            except ConnectionClosed:
                with self._lock:
                    self.stats.gone += 1
                return _error(410, "GoneException", f"connection {connection_id} is closing")
            with self._lock:
                self.stats.posts += 1
            return 200, {}, b""
        if method == "GET":
            description = {  # the wire names of GetConnection's answer
                "connectedAt": connection.connected_at.isoformat().replace("+00:00", "Z"),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": connection.last_active_at.isoformat().replace("+00:00", "Z"),
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(description).encode()
        if method == "DELETE":
            connection.socket.close(1000, "closed through the management API")
            return 204, {}, b""
        return _error(405, "MethodNotAllowed", f"{method} is not a management API method")


def _connection_id() -> str:
    """An id shaped like API Gateway's (12 random bytes, base64: `L0SM9cOFvHcCIhw=`)."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": code,
        "Date": format_datetime(datetime.now(UTC), usegmt=True),
    }
    return status, headers, json.dumps({"message": message}).encode()


def _management_handler(gateway: WebSocketGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tickwatch-local-apigateway-management"
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, data = gateway.manage(self.command, unquote(urlsplit(self.path).path), body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
