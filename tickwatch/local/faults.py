"""Fault injection for the local stack: `tickwatch local --faults s3=0.05,dynamodb=0.05,...`.

Faults take the paths real failures take:

* AWS errors (throttling and 5xx) are HTTP error responses returned from botocore's `before-send`
  hook of the functions' own clients, so botocore parses them into the same exceptions, retries
  them with its own policy, and hands the function the ones that survive, exactly as with AWS;
* a crash raises from inside an AWS call in the middle of a batch, so the function fails with an
  unhandled exception after some of its writes happened (Lambda sees a function error);
* a timeout makes the call hang past the function's timeout (the container is then killed: the
  hung call never returns to the handler);
* a poison pill is a record whose presence makes the function fail every time it is in a batch,
  until the faults are switched off (what a bug triggered by one record looks like).

Rates are per AWS call (crash and timeout too: a crash hits a function in the middle of its
work), and per record for poison pills. A crash or timeout can be aimed at one service or one
operation (`crash:sns=0.1`, `timeout:dynamodb.BatchWriteItem=0.05`): its rate is then per call of
that target. Each kind of fault hits its planned share of calls at seeded random places (see
`_RateStream`).

The injector also keeps the books the alert proof needs (`AlertAccounting`): which alerts SNS
accepted without their history item being written by the same invocation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse

SERVICES = ("s3", "dynamodb", "sns")
KINDS = ("crash", "timeout", "poison")
AIMABLE = ("crash", "timeout")  # kinds that take a target: crash:sns, timeout:dynamodb.BatchWriteItem


class InjectedCrash(RuntimeError):
    """The function 'crashed' here; nothing in tickwatch catches it (it is not an AWS error)."""


@dataclass(frozen=True)
class FaultPlan:
    """Rates per AWS call (services, crash, timeout) and per record (poison)."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> FaultPlan:
        """`"aws=0.05,crash=0.02"`, per service: `"s3=0.05,dynamodb=0.1,sns=0.05,timeout=0.01,poison=0.001"`,
        or a crash or timeout aimed at a service or an operation: `"crash:sns.PublishBatch=0.1"`."""
        rates: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, _, value = part.partition("=")
            name = name.strip()
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault rate {part!r} is not NAME=RATE (like s3=0.05)") from None
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate {part!r} must be between 0 and 1")
            kind, _, target = name.partition(":")
            kind = kind.lower()
            if target:
                if kind not in AIMABLE:
                    raise ValueError(f"fault {name!r}: only {' and '.join(AIMABLE)} take a target (like crash:sns)")
                rates[f"{kind}:{_check_target(target)}"] = rate
            elif kind == "aws":
                rates.update(dict.fromkeys(SERVICES, rate))
            elif kind in SERVICES or kind in KINDS:
                rates[kind] = rate
            else:
                raise ValueError(f"unknown fault {kind!r}: use aws, {', '.join(SERVICES)}, {', '.join(KINDS)}")
        return cls(rates, seed)

    def rate(self, name: str) -> float:
        return self.rates.get(name, 0.0)


def _check_target(target: str) -> str:
    """`sns` or `dynamodb.BatchWriteItem`, checked against botocore's own service models."""
    service, _, operation = target.partition(".")
    service = service.lower()
    if service not in SERVICES:
        raise ValueError(f"fault target {target!r}: the service must be one of {', '.join(SERVICES)}")
    if operation:
        operations = botocore.session.get_session().get_service_model(service).operation_names
        if operation not in operations:
            raise ValueError(f"fault target {target!r}: {service} has no operation {operation!r}")
        return f"{service}.{operation}"
    return service


def _aimed_at(stream_name: str, service: str, operation: str) -> bool:
    """Whether a crash or timeout stream (`crash`, `crash:sns`, `crash:sns.PublishBatch`) covers a call."""
    _, _, target = stream_name.partition(":")
    return target in ("", service, f"{service}.{operation}")


class _RateStream:
    """Hits at a steady share `rate` of calls, at seeded random places.

    Each call adds `rate` to a running total; a hit happens when it passes a threshold drawn
    between 0.5 and 1.5, and takes 1 off. Over N calls there are N * rate hits, give or take one:
    every run gets the faults it asks for, unlike independent coin flips over few calls.
    """

    def __init__(self, rate: float, seed: str) -> None:
        self.rate = rate
        self._random = random.Random(seed)
        self._total = self._random.random() * rate
        self._threshold = self._random.uniform(0.5, 1.5)

    def hit(self) -> bool:
        if self.rate <= 0:
            return False
        if self.rate >= 1:  # every call, from the first
            return True
        self._total += self.rate
        if self._total < self._threshold:
            return False
        self._total -= 1.0
        self._threshold = self._random.uniform(0.5, 1.5)
        return True


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content


class FaultInjector:
    """Applies a FaultPlan to every client the functions create, until `disable()`."""

    def __init__(self, plan: FaultPlan, *, hang_seconds: float = 5.0) -> None:
        self.plan = plan
        self.hang_seconds = hang_seconds  # how long a timed-out call hangs: past the function's timeout
        self.enabled = True
        self.poison_enabled = True
        self.injected: Counter[str] = Counter()
        self.injected_by_operation: Counter[tuple[str, str]] = Counter()  # (kind, service.Operation)
        self.calls = 0
        self.alerts = AlertAccounting()
        # One stream per service and one per function fault and target: how many faults the first
        # N calls of a target get does not depend on how threads interleave.
        self._streams = {name: _RateStream(plan.rate(name), f"{plan.seed}:{name}") for name in SERVICES}
        self._function_faults = {
            name: _RateStream(rate, f"{plan.seed}:{name}")
            for name, rate in sorted(plan.rates.items())
            if name.partition(":")[0] in AIMABLE
        }
        self._throttle_or_5xx = random.Random(f"{plan.seed}:kind")
        self.calls_by_service: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def interrupted_alert_writes(self) -> list[str]:
        """Alerts SNS accepted in an invocation that then ended (failed) before their history item
        was written: one entry per interruption."""
        return self.alerts.interrupted()

    @property
    def duplicates_allowed(self) -> list[str]:
        """The interruptions inside the window SNS makes unavoidable (nothing but the alert's own
        history write was started after SNS accepted it): each may reach the inbox once more."""
        return self.alerts.interrupted(inside_window_only=True)

    def disable(self, *, keep_poison: bool = False) -> None:
        """Stop injecting. `keep_poison`: AWS errors, crashes and timeouts stop, poison pills stay
        (the outage is over, the bug a record triggers is not fixed yet)."""
        self.enabled = False
        self.poison_enabled = keep_poison

    # -- AWS calls ------------------------------------------------------------------------------

    def customize(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        protocol = client.meta.service_model.protocol
        client.meta.events.register(
            "before-send",
            lambda request, **kwargs: self._before_send(service, protocol, request, kwargs.get("event_name", "")),
        )
        self.alerts.watch(client)

    def _before_send(self, service: str, protocol: str, request: Any, event_name: str) -> AWSResponse | None:
        if not self.enabled:
            return None
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls += 1
            self.calls_by_service[service] += 1
            # Every stream aimed at this call advances, so each keeps its own share.
            hits = {name for name, stream in self._function_faults.items() if _aimed_at(name, service, operation)}
            hits = {name for name in hits if self._function_faults[name].hit()}
            crash = any(name.startswith("crash") for name in hits)
            timeout = not crash and any(name.startswith("timeout") for name in hits)
            aws_fault = service in self._streams and self._streams[service].hit()
            throttle = self._throttle_or_5xx.random() < 0.5
        if crash:
            self._note("crash", service, operation)
            raise InjectedCrash(f"injected crash in {service}.{operation}")
        if timeout:
            self._note("timeout", service, operation)
            time.sleep(self.hang_seconds)
            raise InjectedCrash(f"injected timeout in {service}.{operation}: the container was killed")
        if aws_fault:
            self._note(f"{service} {'throttling' if throttle else '5xx'}", service, operation)
            return _error_response(service, protocol, request.url, throttle)
        return None

    def _note(self, kind: str, service: str, operation: str) -> None:
        with self._lock:
            self.injected[kind] += 1
            self.injected_by_operation[(kind, f"{service}.{operation}")] += 1

    # -- poison pills ---------------------------------------------------------------------------

    def is_poison(self, record: dict[str, Any]) -> bool:
        rate = self.plan.rate("poison")
        if not self.poison_enabled or rate <= 0 or "kinesis" not in record:
            return False
        digest = hashlib.sha256(f"{self.plan.seed}:{record['kinesis']['sequenceNumber']}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def before_invoke(self, event: dict[str, Any]) -> None:
        """Called in the function's thread before the handler: a batch with a poison pill fails."""
        self.alerts.begin_invocation()
        poisoned = [r for r in event.get("Records", []) if self.is_poison(r)]
        if poisoned:
            with self._lock:
                self.injected["poison invocations"] += 1
            raise InjectedCrash(f"poison pill {poisoned[0]['kinesis']['sequenceNumber']}")


@dataclass(slots=True)
class _Acceptance:
    """SNS accepted this alert; its history item is not written yet."""

    alert_id: str
    widened_by: str | None = None  # the first other call that started while it was open


class AlertAccounting:
    """Which alerts SNS accepted and which history items were written, per invocation.

    Watches the functions' own clients through botocore's events: `provide-client-params` gives a
    call's alert ids (the `alert_id` attribute of PublishBatch entries and of BatchWriteItem items),
    `after-call` what came of it (SNS's Successful entries; the items DynamoDB did not hand back
    unprocessed). A call belongs to the invocation whose thread makes it (`begin_invocation`).

    * An alert is *open* from SNS accepting it until its history item is written in the same
      invocation. One still open when the run is read was interrupted: the invocation ended (an
      AWS error after retries, a crash, a timeout) before the write. Each interruption allows one
      more delivery of that alert.
    * A call started while alerts are open that is not their own history write *widens* the window
      in which SNS has a message and the table has no record of it (publishing the next batch before
      recording the last one). The design never does; `widened` lists every case, and an
      interruption of a widened acceptance is not one SNS made unavoidable.
    """

    _HISTORY_WRITE = "BatchWriteItem"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = threading.local()
        self._numbers = itertools.count(1)
        self._open: dict[object, list[_Acceptance]] = defaultdict(list)
        self.accepted = 0
        self.widened: list[tuple[str, str]] = []  # (alert id, the call that started while it was open)
        self.publish_calls_per_invocation: Counter[object] = Counter()

    def begin_invocation(self) -> None:
        """Called in the function's thread as an invocation starts."""
        self._thread.invocation = next(self._numbers)

    def interrupted(self, *, inside_window_only: bool = False) -> list[str]:
        """One alert id per interruption; `inside_window_only`: only those whose invocation made no
        other call between SNS accepting them and failing (the window SNS makes unavoidable)."""
        with self._lock:
            return sorted(
                acceptance.alert_id
                for acceptances in self._open.values()
                for acceptance in acceptances
                if not (inside_window_only and acceptance.widened_by)
            )

    def interrupted_by_invocation(self) -> list[object]:
        """The invocation of each interruption (one entry per interrupted alert)."""
        with self._lock:
            return [invocation for invocation, acceptances in self._open.items() for _ in acceptances]

    def watch(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service == "sns":
            client.meta.events.register("provide-client-params.sns.PublishBatch", self._publish_starts)
            client.meta.events.register("after-call.sns.PublishBatch", self._publish_answered)
        elif service == "dynamodb":
            client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self._write_starts)
            client.meta.events.register("after-call.dynamodb.BatchWriteItem", self._write_answered)
        # Registered after the specific handlers above, which botocore calls first: they have put
        # the call's own alert ids in its context by the time this runs.
        client.meta.events.register("provide-client-params", self._any_call_starts)

    def _invocation(self) -> object:
        # A call from a thread no invocation began (a helper pool's) is counted under that thread.
        return getattr(self._thread, "invocation", None) or f"thread {threading.get_ident()}"

    def _any_call_starts(self, context: dict[str, Any], event_name: str, **_: Any) -> None:
        call = event_name.removeprefix("provide-client-params.")
        own = set(context.get("tickwatch_alert_ids", {}).values()) if call.endswith(self._HISTORY_WRITE) else set()
        with self._lock:
            for acceptance in self._open.get(self._invocation(), []):
                if acceptance.alert_id not in own and acceptance.widened_by is None:
                    acceptance.widened_by = call
                    self.widened.append((acceptance.alert_id, call))

    def _publish_starts(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["tickwatch_alert_ids"] = {
            entry["Id"]: entry["MessageAttributes"]["alert_id"]["StringValue"]
            for entry in params.get("PublishBatchRequestEntries", [])
            if "alert_id" in entry.get("MessageAttributes", {})
        }
        with self._lock:
            self.publish_calls_per_invocation[self._invocation()] += 1

    def _publish_answered(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        ids = context.get("tickwatch_alert_ids", {})
        accepted = [ids[entry["Id"]] for entry in parsed.get("Successful", []) if entry.get("Id") in ids]
        with self._lock:
            self.accepted += len(accepted)
            self._open[self._invocation()].extend(_Acceptance(alert_id) for alert_id in accepted)

    def _write_starts(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["tickwatch_alert_ids"] = {
            index: alert_id
            for index, entry in enumerate(_put_requests(params))
            if (alert_id := _alert_id_of(entry)) is not None
        }

    def _write_answered(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            return
        unprocessed = {
            _alert_id_of(entry) for entry in _put_requests({"RequestItems": parsed.get("UnprocessedItems", {})})
        }
        written = {
            alert_id for alert_id in context.get("tickwatch_alert_ids", {}).values() if alert_id not in unprocessed
        }
        with self._lock:
            acceptances = self._open[self._invocation()]
            for alert_id in written:
                index = next((i for i, a in enumerate(acceptances) if a.alert_id == alert_id), None)
                if index is not None:
                    del acceptances[index]


def _put_requests(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entries in params.get("RequestItems", {}).values() for entry in entries]


def _alert_id_of(entry: dict[str, Any]) -> str | None:
    return entry.get("PutRequest", {}).get("Item", {}).get("alert_id", {}).get("S")


def _error_response(service: str, protocol: str, url: str, throttle: bool) -> AWSResponse:
    request_id = "injected-fault"
    if protocol == "json":
        code = "ThrottlingException" if throttle else "InternalServerError"
        if service == "dynamodb" and throttle:
            code = "ProvisionedThroughputExceededException"
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": "injected fault"}).encode()
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/x-amz-json-1.0"}
    elif protocol == "rest-xml":
        code = "SlowDown" if throttle else "InternalError"
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>injected fault</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
    else:  # query
        code = "Throttling" if throttle else "InternalFailure"
        kind = "Sender" if throttle else "Receiver"
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{kind}</Type><Code>{code}</Code><Message>injected fault</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "text/xml"}
    status = (503 if service == "s3" else 400) if throttle else 500
    return AWSResponse(url, status, headers, _Body(body))
