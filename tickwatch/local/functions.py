"""Running the template's functions in-process, as Lambda would run them.

Each function's handler module is loaded from its CodeUri and Handler, under the environment
variables the template gives it (references resolved to the local names). A loaded module is a
"container": it serves one invocation at a time, and more containers are loaded when invocations
overlap (ParallelizationFactor). An invocation gets a Lambda-like context and the function's
timeout; one that runs past it fails as a timeout, and its container is discarded, as Lambda does.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools import Metrics

from tickwatch.dlq import Invocation as ReplayInvocation
from tickwatch.template import Template
from tickwatch_core.aws import AwsClients

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent.parent
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Invocation:
    """The outcome of one invocation: a response, or an error as Lambda would report it."""

    request_id: str
    response: Any = None
    error: str | None = None  # "Unhandled" (an exception) or "TimedOut"
    error_message: str | None = None
    duration: float = 0.0


class LambdaContext:
    """The context object handlers receive (the attributes Powertools and user code read)."""

    def __init__(self, function: LocalFunction, request_id: str, deadline: float) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"local/{request_id}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """One function of the template, invocable in-process."""

    def __init__(
        self,
        template: Template,
        logical_id: str,
        *,
        extra_environment: Mapping[str, str] | None = None,
        timeout: float | None = None,
        before_invoke: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        properties = template.resources[logical_id]["Properties"]
        defaults = template.body.get("Globals", {}).get("Function", {})
        self.logical_id = logical_id
        self.name = template.physical_name(logical_id)
        self.arn = f"arn:aws:lambda:{template.region}:{template.account_id}:function:{self.name}"
        self.timeout = timeout or float(properties.get("Timeout", defaults.get("Timeout", 3)))
        self.before_invoke = before_invoke  # fault injection: runs in the function's thread
        self.memory = int(properties.get("MemorySize", defaults.get("MemorySize", 128)))
        module_name, self.handler_name = properties.get("Handler", defaults.get("Handler", "")).rsplit(".", 1)
        self.source = REPOSITORY_ROOT / properties["CodeUri"] / f"{module_name.replace('.', '/')}.py"
        self.environment = {**template.function_environment(logical_id), **(extra_environment or {})}
        self._idle: list[ModuleType] = []
        self._lock = threading.Lock()
        self._loaded = 0
        self.invocations = 0
        self.errors = 0
        self.durations: list[float] = []  # seconds, of every invocation

    def invoke(self, event: dict[str, Any]) -> Invocation:
        request_id = str(uuid.uuid4())
        container = self._acquire()
        started = time.monotonic()
        outcome: dict[str, Any] = {}

        def run() -> None:
            context = LambdaContext(self, request_id, started + self.timeout)
            try:
                if self.before_invoke is not None:
                    self.before_invoke(event)
                outcome["response"] = getattr(container, self.handler_name)(event, context)
            except BaseException as error:  # a crash is the function's error, reported like Lambda
                outcome["error"] = f"{type(error).__name__}: {error}"
                outcome["trace"] = traceback.format_exc()

        worker = threading.Thread(target=run, name=f"{self.logical_id}-{request_id[:8]}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        duration = time.monotonic() - started
        with self._lock:
            self.invocations += 1
            self.durations.append(duration)
        if worker.is_alive():
            # Like Lambda: the invocation fails and its container is not reused. Lambda also kills
            # it; a thread cannot be killed, so its AWS clients refuse any further call instead.
            _stop_clients(container)
            with self._lock:
                self.errors += 1
            return Invocation(
                request_id,
                error="TimedOut",
                error_message=f"Task timed out after {self.timeout:.2f} seconds",
                duration=duration,
            )
        self._release(container)
        if "error" in outcome:
            with self._lock:
                self.errors += 1
            return Invocation(request_id, error="Unhandled", error_message=outcome["error"], duration=duration)
        return Invocation(request_id, response=outcome.get("response"), duration=duration)

    def load_container(self) -> ModuleType:
        """A fresh container (the handler module, loaded under the function's environment), for
        callers that invoke the handler themselves (the benchmark)."""
        return self._acquire()

    def _acquire(self) -> ModuleType:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._loaded += 1
            number = self._loaded
        return self._load(number)

    def _release(self, container: ModuleType) -> None:
        with self._lock:
            self._idle.append(container)

    def _load(self, number: int) -> ModuleType:
        """Import the handler module afresh, with the function's environment in place."""
        name = f"tickwatch_local_{self.logical_id}_{number}"
        spec = importlib.util.spec_from_file_location(name, self.source)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {self.source}")
        module = importlib.util.module_from_spec(spec)
        with _IMPORT_LOCK, _environment(self.environment):
            spec.loader.exec_module(module)
        _own_metric_state(module)
        return module


def _own_metric_state(container: ModuleType) -> None:
    """Give each container's Powertools Metrics its own metric, dimension and metadata sets.

    Powertools keeps them in class-level dicts shared by every Metrics object of a process. On
    Lambda each container is a process of its own; here containers share one, and one function's
    flush would clear (or publish) what another is adding.
    """
    for value in vars(container).values():
        if isinstance(value, Metrics):
            value.metric_set = value.provider.metric_set = {}
            value.metadata_set = value.provider.metadata_set = {}
            value.dimension_set = value.provider.dimension_set = dict(value.dimension_set)
            value.default_dimensions = value.provider.default_dimensions = dict(value.default_dimensions)


def _stop_clients(container: ModuleType) -> None:
    """Stop every AwsClients the handler module holds (directly, or on its service objects)."""
    for value in list(vars(container).values()):
        # AwsClients answers any attribute with a client: never ask it for `.clients`.
        candidate = value if isinstance(value, AwsClients) else getattr(value, "clients", None)
        if isinstance(candidate, AwsClients):
            candidate.stop()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LocalInvoker:
    """`tickwatch dlq replay`'s way to run the functions of a local stack: in-process."""

    def __init__(self, functions: Mapping[str, LocalFunction]) -> None:
        self.functions = functions  # by the names `dlq` uses: processor, alerts

    def __call__(self, function: str, event: dict[str, Any]) -> ReplayInvocation:
        outcome = self.functions[function].invoke(event)
        if outcome.error:
            return ReplayInvocation(error=f"{outcome.error} ({outcome.error_message})")
        return ReplayInvocation(response=outcome.response)
