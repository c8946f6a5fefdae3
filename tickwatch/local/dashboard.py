"""The dashboard's static site on this machine, as CloudFront serves it from `DashboardBucket`.

Files come from the repository's `dashboard/` folder as they are (no build step); `config.json`
points the page at the local stack's query API and WebSocket API (never the key). Every answer
carries the security headers of the template's `DashboardHeadersPolicy`, with the content security
policy's AWS endpoints replaced by the local ones, so the browser tests hold the page to the same
policy it gets on AWS.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tickwatch.template import Template

SITE = Path(__file__).resolve().parent.parent.parent / "dashboard"
HEADERS_POLICY = "DashboardHeadersPolicy"
CONFIG_FILE = "config.json"


def site_config(query_api_url: str, live_api_url: str) -> dict[str, str]:
    """What the page reads from `config.json`: where the APIs are (the key is the user's)."""
    return {"queryApiUrl": query_api_url, "liveApiUrl": live_api_url}


def content_type(path: Path) -> str:
    if path.suffix in (".js", ".mjs"):
        return "text/javascript; charset=utf-8"  # what a module script must be served as
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") or guessed.endswith("json") else guessed


def security_headers(template: Template, origin_rewrites: dict[str, str]) -> dict[str, str]:
    """The response headers `DashboardHeadersPolicy` adds on CloudFront, with each AWS origin in
    the content security policy replaced by its local one."""
    config = template.resolve(template.resources[HEADERS_POLICY]["Properties"]["ResponseHeadersPolicyConfig"])
    security = config.get("SecurityHeadersConfig", {})
    headers: dict[str, str] = {}
    if "ContentSecurityPolicy" in security:
        policy = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
        for aws_origin, local_origin in origin_rewrites.items():
            policy = policy.replace(aws_origin, local_origin)
        headers["Content-Security-Policy"] = policy
    if "ContentTypeOptions" in security:
        headers["X-Content-Type-Options"] = "nosniff"
    if "FrameOptions" in security:
        headers["X-Frame-Options"] = security["FrameOptions"]["FrameOption"]
    if "ReferrerPolicy" in security:
        headers["Referrer-Policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
    if "StrictTransportSecurity" in security:
        hsts = security["StrictTransportSecurity"]
        value = f"max-age={hsts['AccessControlMaxAgeSec']}"
        value += "; includeSubDomains" if hsts.get("IncludeSubdomains") else ""
        headers["Strict-Transport-Security"] = value  # ignored by browsers over http, as it should be
    return headers


class DashboardServer:
    """Serves the site and its `config.json` on a loopback address."""

    def __init__(
        self,
        config: dict[str, str],
        headers: dict[str, str],
        *,
        site: Path = SITE,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.site = site.resolve()
        self.config = json.dumps(config).encode()
        self.headers = headers
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> DashboardServer:
        threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, target: str) -> tuple[int, dict[str, str], bytes]:
        path = unquote(urlsplit(target).path).lstrip("/") or "index.html"
        if path == CONFIG_FILE:
            return 200, {"Content-Type": "application/json", "Cache-Control": "no-cache"}, self.config
        file = (self.site / path).resolve()
        if not file.is_relative_to(self.site) or not file.is_file() or path.startswith("."):
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n"
        return 200, {"Content-Type": content_type(file), "Cache-Control": "no-cache"}, file.read_bytes()


def _handler_for(server: DashboardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tickwatch-local-cloudfront"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._send(include_body=True)

        def do_HEAD(self) -> None:
            self._send(include_body=False)

        def _send(self, *, include_body: bool) -> None:
            status, headers, body = server.answer(self.path)
            self.send_response(status)
            for name, value in {**headers, **server.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if include_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
