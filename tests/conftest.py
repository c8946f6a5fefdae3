"""Shared fixtures: moto resources built from template.yaml, handlers imported with the template's
environment, and a guard that keeps every test off the network."""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tickwatch.local import moto_patches
from tickwatch.template import Template, create_resources

# No credentials or region from the developer's machine may leak in, and nothing may reach AWS.
_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # botocore >= 1.44 would otherwise call account-scoped DynamoDB endpoints moto does not serve.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "false",
}


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Spools and local-stack state of the developer's own runs are never read or touched.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to an address outside loopback fails the test."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and not (host.startswith("127.") or host in ("::1", "localhost"))
            and self.family != socket.AF_UNIX
        ):
            raise OSError(f"test tried to reach {address!r}; tests must stay offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


# One session for the run: it loads each service model once. Its credentials are the fake ones above.
_shared_session: boto3.session.Session | None = None


@pytest.fixture
def aws() -> Iterator[boto3.session.Session]:
    """An in-process moto AWS, with the local stack's fixes of moto's races applied: the functions
    write the table from several threads, and unpatched moto can then number two stream records
    alike (tickwatch/local/moto_patches.py)."""
    global _shared_session
    moto_patches.apply()
    with mock_aws():
        if _shared_session is None:
            _shared_session = boto3.session.Session(region_name="us-east-1")
        yield _shared_session


@pytest.fixture
def stack(aws: boto3.session.Session) -> Template:
    """Every data resource of template.yaml, created in moto from the template's own definitions."""
    template = Template.load()
    create_resources(template, aws)
    return template


def _import_handler(module_name: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(module_name, None)
    return importlib.import_module(module_name)


@pytest.fixture
def processor_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/processor/app.py imported with the environment the template gives it."""
    module = _import_handler("functions.processor.app", stack.function_environment("ProcessorFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.processor.app", None)


@pytest.fixture
def alerts_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/alerts/app.py imported with the environment the template gives it."""
    module = _import_handler("functions.alerts.app", stack.function_environment("AlertsFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.alerts.app", None)


@pytest.fixture
def delivery_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/delivery/app.py imported with the template's environment, plus what the local
    stack adds: its destinations may be loopback receivers over plain HTTP."""
    environment = {**stack.function_environment("DeliveryFunction"), "ALLOW_LOOPBACK_DESTINATIONS": "true"}
    module = _import_handler("functions.delivery.app", environment, monkeypatch)
    yield module
    sys.modules.pop("functions.delivery.app", None)


@pytest.fixture
def query_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/query/app.py imported with the environment the template gives it."""
    module = _import_handler("functions.query.app", stack.function_environment("QueryFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.query.app", None)


@pytest.fixture
def ingest_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/ingest/app.py (POST /ticks) imported with the environment the template gives it."""
    module = _import_handler("functions.ingest.app", stack.function_environment("IngestFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.ingest.app", None)


@pytest.fixture
def live_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/live/app.py (the WebSocket routes) imported with the template's environment."""
    module = _import_handler("functions.live.app", stack.function_environment("LiveFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.live.app", None)


@pytest.fixture
def broadcast_app(stack: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """functions/broadcast/app.py imported with the template's environment."""
    module = _import_handler("functions.broadcast.app", stack.function_environment("BroadcastFunction"), monkeypatch)
    yield module
    sys.modules.pop("functions.broadcast.app", None)


@pytest.fixture
def compactor_app(
    stack: Template, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """functions/compactor/app.py imported with the template's environment; its scratch directory
    is the test's own rather than the /tmp/compactor a Lambda container uses."""
    module = _import_handler("functions.compactor.app", stack.function_environment("CompactorFunction"), monkeypatch)
    module.compactor.scratch = tmp_path_factory.mktemp("compactor")
    yield module
    sys.modules.pop("functions.compactor.app", None)
