"""boto3 clients: created lazily, once per container, and replaceable by tests and the local stack."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# Standard retry mode retries throttling and 5xx with jittered backoff; three attempts keep a
# throttled batch well inside the function timeout before it is reported as a partial failure.
CLIENT_SETTINGS: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 3},
    "connect_timeout": 5,
    "read_timeout": 10,
    "max_pool_connections": 32,
}


def client_config(**overrides: Any) -> Any:
    """botocore's Config of the functions' clients, with `overrides`. boto3 and botocore.config are
    imported when the first client is made, not at cold start: they are a third of a second, and
    only a handler that calls AWS needs them."""
    from botocore.config import Config

    return Config(**{**CLIENT_SETTINGS, **overrides})


class ContainerStopped(RuntimeError):
    """An AWS call from an invocation that already timed out."""


class AwsClients:
    """Holds one client per service, created on first use (with `options[service]` for
    create_client). `AwsClients(s3=fake)` injects a client for that service."""

    def __init__(self, *, options: dict[str, dict[str, Any]] | None = None, **clients: Any) -> None:
        self._clients: dict[str, Any] = dict(clients)
        self._options = options or {}  # create_client's endpoint_url and config, by service
        self._lock = threading.Lock()
        self._stopped = False

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        return self.get(service)

    def stop(self) -> None:
        """Refuse every further call: what a Lambda container killed at its timeout can do. Used by
        the local stack, whose timed-out invocations are threads that cannot be killed."""
        self._stopped = True

    def get(self, service: str) -> Any:
        if self._stopped:
            raise ContainerStopped("this container was stopped when its invocation timed out")
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = create_client(service, **self._options.get(service, {}))
                    # Also refuse calls through a client a caller already holds (and botocore's retries).
                    client.meta.events.register("before-send", self._refuse_when_stopped)
        return client

    def _refuse_when_stopped(self, **_: Any) -> None:
        if self._stopped:
            raise ContainerStopped("this container was stopped when its invocation timed out")


# Callbacks applied to every client the functions create. Empty in Lambda; the local stack adds
# one to inject faults through botocore's own event hooks (see tickwatch/local/faults.py).
_client_customizers: list[Callable[[Any], None]] = []


def add_client_customizer(customize: Callable[[Any], None]) -> None:
    _client_customizers.append(customize)


def remove_client_customizer(customize: Callable[[Any], None]) -> None:
    _client_customizers.remove(customize)


def create_client(service: str, *, endpoint_url: str | None = None, config: Any = None) -> Any:
    """A client of `endpoint_url` if given, else of AWS_ENDPOINT_URL when it is set (and not empty)
    for a local emulator, else of AWS. `config`: botocore's Config, or a dict of settings that
    override `CLIENT_SETTINGS` (default: `client_config()`)."""
    import boto3

    if config is None or isinstance(config, dict):
        config = client_config(**(config or {}))

    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    client = boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)
    for customize in _client_customizers:
        customize(client)
    return client


# What an AWS call raises when the service or the network fails (throttling, 5xx, timeouts,
# conditional check failures). Anything else is a bug and must fail the invocation loudly.
AWS_ERRORS = (ClientError, BotoCoreError)


def describe_aws_error(error: Exception) -> str:
    """One line: the error code and message."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"
