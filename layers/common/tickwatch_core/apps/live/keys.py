"""The API key check of `$connect`: is this one of the query API's keys?

Browsers cannot set headers on a WebSocket, so the dashboard passes its key as a query parameter,
and the WebSocket API (which has no usage plans) checks it against the keys of the query API's usage
plan: the same key works for both, and removing it from the plan locks out both. The plan's keys are
read with GetUsagePlanKeys and kept for a minute; an unknown key rereads them at most every few
seconds, so a new key works at once without letting a stream of bad keys hammer API Gateway.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from tickwatch_core.aws import AwsClients

KEYS_FRESH_FOR = 60.0  # seconds a read of the plan's keys is trusted for a key it holds
REREAD_AT_MOST_EVERY = 5.0  # seconds between rereads caused by unknown keys


class ApiKeyCheck:
    def __init__(self, clients: AwsClients, usage_plan_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients  # its `apigateway` (REST API Gateway) client, created on first use
        self.usage_plan_id = usage_plan_id
        self.clock = clock
        self._values: tuple[str, ...] = ()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def valid(self, key: str | None) -> bool:
        if not key:
            return False
        with self._lock:
            now = self.clock()
            stale = self._read_at is None or now - self._read_at >= KEYS_FRESH_FOR
            if stale or (not self._holds(key) and now - self._read_at >= REREAD_AT_MOST_EVERY):
                self._values = self._read()
                self._read_at = now
            return self._holds(key)

    def _holds(self, key: str) -> bool:
        # Compared in constant time, every one of them: a key's value is a secret.
        return any([hmac.compare_digest(key.encode(), value.encode()) for value in self._values])  # noqa: C419

    def _read(self) -> tuple[str, ...]:
        values: list[str] = []
        arguments: dict[str, Any] = {"usagePlanId": self.usage_plan_id, "limit": 500}
        while True:
            page = self.clients.apigateway.get_usage_plan_keys(**arguments)
            values += [entry["value"] for entry in page.get("items", []) if entry.get("type") == "API_KEY"]
            if not page.get("position"):
                return tuple(values)
            arguments["position"] = page["position"]
