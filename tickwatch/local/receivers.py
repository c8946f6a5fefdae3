"""Loopback stand-ins for the services alerts are delivered to, speaking each one's documented
protocol and keeping what they received, as the outbox does for e-mail:

- `/webhook/<name>`: any HTTPS endpoint; takes JSON, answers 200; no limit of its own.
- `/slack/services/<team>/<hook>/<token>`: Slack's incoming webhooks; answers `ok`, or
  `invalid_payload` and `no_text`; 1 a second per webhook, else 429 with Retry-After.
- `/discord/api/webhooks/<id>/<token>`: Discord's execute webhook (`?wait=true` returns the
  message); 5 per 2 s per webhook, else 429 with `retry_after`.
- `/telegram/bot<token>/sendMessage`: Telegram's Bot API; 1 a second per chat and 20 a minute per
  group, else 429 with `parameters.retry_after`; 401 for a token that is not one.

Each receiver answers a scripted fault instead when a test or `--faults` asks for one (a status,
a 429 with a wait, or a timeout), and records every request with the time it arrived, so a test
can check that nothing went past a limit (`busiest`) and what each receiver accepted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLACK_TEAM = "T0LOCAL"
TELEGRAM_TOKEN_PATTERN = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{20,100}")
MAX_BODY = 1024 * 1024
# Discord's and Telegram's own text limits, so a message too long for them fails here too.
DISCORD_CONTENT_LIMIT = 2000
TELEGRAM_TEXT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Received:
    """One request a receiver got, and what it answered."""

    channel: str  # webhook | slack | discord | telegram
    target: str  # the webhook's name, the Slack hook, the Discord webhook id, the Telegram chat
    arrived: float  # time.monotonic() on arrival
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Fault:
    """What a receiver answers instead of its own answer: a status (with Retry-After seconds for
    a 429), or a timeout (no answer for `hang` seconds, longer than the sender waits)."""

    status: int = 500
    retry_after: float | None = None
    hang: float = 0.0


@dataclass
class _Limiter:
    """A receiver's documented limit, as the service enforces it: `count` in any `seconds`."""

    count: int
    seconds: float
    accepted: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def wait(self, target: str, now: float) -> float:
        """0 if a message to `target` may be accepted now, else seconds until it may."""
        recent = self.accepted[target]
        while recent and recent[0] <= now - self.seconds:
            recent.popleft()
        return 0.0 if len(recent) < self.count else recent[0] + self.seconds - now

    def take(self, target: str, now: float) -> None:
        self.accepted[target].append(now)


class Receivers:
    """The four fakes behind one loopback HTTP server. `directory`, if given, gets one JSON Lines
    file per channel of what was accepted (the local stack's `receivers/`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.received: list[Received] = []
        self.base_url = ""
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._limits = {
            "slack": [_Limiter(1, 1.0)],
            "discord": [_Limiter(5, 2.0)],
            "telegram": [_Limiter(1, 1.0)],
            "telegram-group": [_Limiter(1, 1.0), _Limiter(20, 60.0)],
        }
        self._message_ids = 0
        self._server: ThreadingHTTPServer | None = None

    # --- where destinations point ----------------------------------------------------------------

    def webhook_url(self, name: str) -> str:
        return f"{self.base_url}/webhook/{name}"

    def slack_url(self, name: str) -> str:
        return f"{self.base_url}/slack/services/{SLACK_TEAM}/B{name.upper()}/xoxlocal{name}secret0000"

    def discord_url(self, name: str) -> str:
        return f"{self.base_url}/discord/api/webhooks/1{abs(hash(name)) % 10**17:017d}/localtoken{name}"

    @property
    def telegram_api(self) -> str:
        return f"{self.base_url}/telegram"

    # --- what tests and the run's summary read ----------------------------------------------------

    def fail_next(self, channel: str, target: str, *faults: Fault) -> None:
        """Answer the next requests to `target` with `faults`, in order, then normally again."""
        with self._lock:
            self._faults[(channel, target)].extend(faults)

    def accepted(self, channel: str | None = None, target: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.accepted and (channel is None or r.channel == channel) and (target is None or r.target == target)
            ]

    def busiest(self, channel: str, target: str, seconds: float) -> int:
        """The most requests `target` received within any `seconds`: what its limit is about."""
        with self._lock:
            times = sorted(r.arrived for r in self.received if r.channel == channel and r.target == target)
        most, start = 0, 0
        for end, moment in enumerate(times):
            while times[start] <= moment - seconds:
                start += 1
            most = max(most, end - start + 1)
        return most

    def refused_for_rate(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 429 and r.headers.get("x-fault") != "scripted"]

    def targets(self) -> dict[tuple[str, str], int]:
        """Accepted messages per (channel, target)."""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for received in self.accepted():
            counts[(received.channel, received.target)] += 1
        return dict(counts)

    # --- serving ------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Receivers:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length < 0 or length > MAX_BODY:
                    self._answer(413, "text/plain", b"too large")
                    return
                body = self.rfile.read(length)
                status, content_type, answer, extra = receivers.answer(self.path, dict(self.headers.items()), body)
                if status == 0:  # a scripted timeout: hold the connection, answer nothing
                    return
                self._answer(status, content_type, answer, extra)

            def _answer(
                self, status: int, content_type: str, answer: bytes, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="receivers", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the protocols ------------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, headers) for one POST; status 0: answer nothing."""
        parts = urlsplit(path)
        route = self._route(parts.path)
        if route is None:
            return 404, "text/plain", b"not found", {}
        channel, target, limit_kind = route
        document: Any = None
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if channel == "telegram":
            if not TELEGRAM_TOKEN_PATTERN.fullmatch(target.removeprefix("bot:")):
                body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
                return 401, "application/json", json.dumps(body).encode(), {}
            # Telegram's limits are per chat: the chat is the target; the token stays out of records.
            chat = str(document.get("chat_id", "")) if isinstance(document, dict) else ""
            target = f"chat:{chat}"
            limit_kind = "telegram-group" if chat.startswith(("-", "@")) else "telegram"
        now = time.monotonic()
        with self._lock:
            scripted = self._faults[(channel, target)].popleft() if self._faults[(channel, target)] else None
            if scripted is not None:
                status, content_type, answer, extra = self._fault_answer(channel, scripted)
                self._keep(channel, target, now, status, {**headers, "x-fault": "scripted"}, body)
            else:
                wait = max((limit.wait(target, now) for limit in self._limits.get(limit_kind, [])), default=0.0)
                if wait > 0:
                    status, content_type, answer, extra = self._rate_answer(channel, wait)
                else:
                    status, content_type, answer, extra = self._protocol_answer(channel, parts.query, document)
                    if 200 <= status < 300:
                        for limit in self._limits.get(limit_kind, []):
                            limit.take(target, now)
                self._keep(channel, target, now, status, headers, body)
        if scripted is not None and scripted.hang:
            time.sleep(scripted.hang)
            return 0, "", b"", {}
        return status, content_type, answer, extra

    def _route(self, path: str) -> tuple[str, str, str] | None:
        if found := re.fullmatch(r"/webhook/([A-Za-z0-9_-]{1,64})", path):
            return "webhook", found.group(1), "webhook"
        if found := re.fullmatch(r"/slack/services/([A-Z0-9]+)/([A-Z0-9_-]+)/([A-Za-z0-9]+)", path):
            return "slack", found.group(2), "slack"
        if found := re.fullmatch(r"/discord/api/webhooks/(\d{1,20})/([A-Za-z0-9_.-]+)", path):
            return "discord", found.group(1), "discord"
        if found := re.fullmatch(r"/telegram/bot([^/]+)/sendMessage", path):
            return "telegram", f"bot:{found.group(1)}", "telegram"
        return None

    def _protocol_answer(self, channel: str, query: str, document: Any) -> tuple[int, str, bytes, dict[str, str]]:
        self._message_ids += 1
        if channel == "webhook":
            return 200, "application/json", b'{"received":true}', {}
        if channel == "slack":
            if not isinstance(document, dict):
                return 400, "text/plain", b"invalid_payload", {}
            if not document.get("text") and not document.get("blocks"):
                return 400, "text/plain", b"no_text", {}
            return 200, "text/plain", b"ok", {}
        if channel == "discord":
            content = document.get("content") if isinstance(document, dict) else None
            if not content or len(content) > DISCORD_CONTENT_LIMIT:
                body = {"message": "Invalid Form Body", "code": 50035}
                return 400, "application/json", json.dumps(body).encode(), {}
            if parse_qs(query).get("wait") != ["true"]:
                return 204, "application/json", b"", {}
            message = {"id": str(10**17 + self._message_ids), "content": content}
            return 200, "application/json", json.dumps(message).encode(), {}
        return self._telegram_answer(document)

    def _telegram_answer(self, document: Any) -> tuple[int, str, bytes, dict[str, str]]:
        def error(code: int, description: str) -> tuple[int, str, bytes, dict[str, str]]:
            body = {"ok": False, "error_code": code, "description": description}
            return code, "application/json", json.dumps(body).encode(), {}

        if not isinstance(document, dict) or "chat_id" not in document:
            return error(400, "Bad Request: chat_id is empty")
        text = document.get("text") or ""
        if not text:
            return error(400, "Bad Request: message text is empty")
        if len(text) > TELEGRAM_TEXT_LIMIT:
            return error(400, "Bad Request: message is too long")
        result = {"message_id": self._message_ids, "chat": {"id": document["chat_id"]}, "text": text}
        return 200, "application/json", json.dumps({"ok": True, "result": result}).encode(), {}

    def _rate_answer(self, channel: str, wait: float) -> tuple[int, str, bytes, dict[str, str]]:
        seconds = max(1, round(wait + 0.5))
        if channel == "telegram":
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {seconds}",
                "parameters": {"retry_after": seconds},
            }
            return 429, "application/json", json.dumps(body).encode(), {}
        if channel == "discord":
            body = {"message": "You are being rate limited.", "retry_after": round(wait, 3), "global": False}
            headers = {"Retry-After": str(seconds), "X-RateLimit-Remaining": "0", "X-RateLimit-Scope": "shared"}
            return 429, "application/json", json.dumps(body).encode(), headers
        return 429, "text/plain", b"rate_limited", {"Retry-After": str(seconds)}

    def _fault_answer(self, channel: str, fault: Fault) -> tuple[int, str, bytes, dict[str, str]]:
        if fault.hang:
            return 0, "", b"", {}
        if fault.status == 429:
            return self._rate_answer(channel, fault.retry_after or 1.0)
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return fault.status, "text/plain", f"fault {fault.status}".encode(), extra

    def _keep(self, channel: str, target: str, now: float, status: int, headers: dict[str, str], body: bytes) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        received = Received(channel, target, now, status, lowered, body)
        self.received.append(received)
        if self.directory is not None and received.accepted:
            self.directory.mkdir(parents=True, exist_ok=True)
            line = {"target": target, "status": status, "body": body.decode(errors="replace")}
            with (self.directory / f"{channel}.jsonl").open("a") as out:
                out.write(json.dumps(line) + "\n")


@contextmanager
def serving(directory: Path | None = None) -> Iterator[Receivers]:
    receivers = Receivers(directory).start()
    try:
        yield receivers
    finally:
        receivers.stop()
