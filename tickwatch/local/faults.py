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
work), and per record for poison pills. Each kind of fault hits its planned share of calls at
seeded random places (see `_RateStream`).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

SERVICES = ("s3", "dynamodb", "sns")
KINDS = ("crash", "timeout", "poison")


class InjectedCrash(RuntimeError):
    """The function 'crashed' here; nothing in tickwatch catches it (it is not an AWS error)."""


@dataclass(frozen=True)
class FaultPlan:
    """Rates per AWS call (services, crash, timeout) and per record (poison)."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> FaultPlan:
        """`"aws=0.05,crash=0.02"` or per service: `"s3=0.05,dynamodb=0.1,sns=0.05,timeout=0.01,poison=0.001"`."""
        rates: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, _, value = part.partition("=")
            name = name.strip().lower()
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault rate {part!r} is not NAME=RATE (like s3=0.05)") from None
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate {part!r} must be between 0 and 1")
            if name == "aws":
                rates.update(dict.fromkeys(SERVICES, rate))
            elif name in SERVICES or name in KINDS:
                rates[name] = rate
            else:
                raise ValueError(f"unknown fault {name!r}: use aws, {', '.join(SERVICES)}, {', '.join(KINDS)}")
        return cls(rates, seed)

    def rate(self, name: str) -> float:
        return self.rates.get(name, 0.0)


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
        self.calls = 0
        # Alerts published to SNS whose history item a crash or timeout then kept from being
        # written: the one window in which a retry publishes an alert a second time.
        self.interrupted_alert_writes: list[str] = []
        # One stream per service and one per function fault: how many faults the first N calls of a
        # service get does not depend on how threads interleave.
        self._streams = {
            name: _RateStream(plan.rate(name), f"{plan.seed}:{name}") for name in (*SERVICES, "crash", "timeout")
        }
        self._throttle_or_5xx = random.Random(f"{plan.seed}:kind")
        self.calls_by_service: Counter[str] = Counter()
        self._lock = threading.Lock()

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

    def _before_send(self, service: str, protocol: str, request: Any, event_name: str) -> AWSResponse | None:
        if not self.enabled:
            return None
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls += 1
            self.calls_by_service[service] += 1
            crash = self._streams["crash"].hit()
            timeout = not crash and self._streams["timeout"].hit()
            aws_fault = service in self._streams and self._streams[service].hit()
            throttle = self._throttle_or_5xx.random() < 0.5
        if crash:
            self._note("crash", service, operation, request)
            raise InjectedCrash(f"injected crash in {service}.{operation}")
        if timeout:
            self._note("timeout", service, operation, request)
            time.sleep(self.hang_seconds)
            raise InjectedCrash(f"injected timeout in {service}.{operation}: the container was killed")
        if aws_fault:
            self._note(f"{service} {'throttling' if throttle else '5xx'}", service, operation, request)
            return _error_response(service, protocol, request.url, throttle)
        return None

    def _note(self, kind: str, service: str, operation: str, request: Any) -> None:
        with self._lock:
            self.injected[kind] += 1
            # The only writes of alert history are BatchWriteItems just after SNS accepted them.
            if service == "dynamodb" and operation == "BatchWriteItem":
                body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
                if "ALERT#" in body:
                    document = json.loads(body)
                    for requests in document.get("RequestItems", {}).values():
                        for entry in requests:
                            alert_id = entry.get("PutRequest", {}).get("Item", {}).get("alert_id", {}).get("S")
                            if alert_id:
                                self.interrupted_alert_writes.append(alert_id)

    # -- poison pills ---------------------------------------------------------------------------

    def is_poison(self, record: dict[str, Any]) -> bool:
        rate = self.plan.rate("poison")
        if not self.poison_enabled or rate <= 0 or "kinesis" not in record:
            return False
        digest = hashlib.sha256(f"{self.plan.seed}:{record['kinesis']['sequenceNumber']}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def before_invoke(self, event: dict[str, Any]) -> None:
        """Called in the function's thread before the handler: a batch with a poison pill fails."""
        poisoned = [r for r in event.get("Records", []) if self.is_poison(r)]
        if poisoned:
            with self._lock:
                self.injected["poison invocations"] += 1
            raise InjectedCrash(f"poison pill {poisoned[0]['kinesis']['sequenceNumber']}")


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
