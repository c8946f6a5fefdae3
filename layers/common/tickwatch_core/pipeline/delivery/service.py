"""The delivery function's work: pending deliveries from the delivery table's stream -> messages.

For one batch of stream records (each a delivery the alerts function wrote as `pending`):

1. group them by receiver (pacing key); receivers are served side by side, each in stream order;
2. re-read each delivery (strongly consistent): one already finished by an earlier attempt is
   skipped, so a redelivered stream record sends nothing twice;
3. plan messages within the receiver's limits from its send log: one per alert when they fit,
   else digests (per symbol for e-mail when those fit, else one per destination); wait for the
   next slot when there is none, never longer than the invocation allows;
4. send each message with retries (backoff with jitter, Retry-After honoured); after each
   answer, put its deliveries' outcome and the send log in one batch write, before the next send.

So a failure can repeat at most the one message (one alert or one digest) per receiver that was
sent and not yet recorded: the documented window. A delivery that the receiver refuses, or that
fails past the retry budget, is parked (`failed`), never dropped: `tickwatch deliveries replay`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwatch_core.aws import AWS_ERRORS, AwsClients, describe_aws_error
from tickwatch_core.config import DeliverySettings
from tickwatch_core.domain.delivery.destinations import (
    Destination,
)
from tickwatch_core.domain.delivery.messages import CHANNEL_TEXT_LIMITS, Message, compose
from tickwatch_core.domain.delivery.notices import AlertNotice
from tickwatch_core.domain.delivery.pacing import SendLog, plan_round
from tickwatch_core.domain.delivery.retry import Outcome, RetryPolicy
from tickwatch_core.pipeline.delivery.directory import DestinationDirectory, load_destinations
from tickwatch_core.pipeline.delivery.senders import Channels, HttpClient, SendResult, Urllib3Client, send
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.dynamodb import batch_get, batch_put
from tickwatch_core.store.items import deserialize, serialize

_RECEIVER_THREADS = 8
# A send starts only with this much of the invocation left, plus the longest send so far: a
# container killed between a receiver's answer and its record is what would repeat a message.
SEND_TIME_RESERVE = timedelta(seconds=5)
SECRETS_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class StreamDelivery:
    """A pending delivery and the stream record that carried it."""

    stream_sequence: str
    values: dict[str, Any]  # the item as the stream saw it (deserialized)

    @property
    def key(self) -> tuple[str, str]:
        return self.values["pk"], self.values["sk"]


@dataclass(slots=True)
class DeliveryReport:
    deliveries: int = 0
    already_finished: int = 0
    messages: int = 0
    delivered: int = 0
    in_digests: int = 0
    retries: int = 0
    parked: int = 0
    waited_seconds: float = 0.0
    by_channel: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, sent|failed|retried|digested)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (what, error, stream sequence)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def first_failed_sequence(self) -> str | None:
        if not self.failures:
            return None
        return min((sequence for _, _, sequence in self.failures), key=int)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def count(self, channel: str, what: str, amount: int = 1) -> None:
        with self._lock:
            self.by_channel[(channel, what)] += amount

    def fail(self, what: str, error: str, sequence: str) -> None:
        with self._lock:
            self.failures.append((what, error, sequence))


class DeliveryService:
    """Delivers pending deliveries. Clients, the HTTP client, the clock and sleep are injectable."""

    def __init__(
        self,
        settings: DeliverySettings,
        clients: AwsClients | None = None,
        *,
        http: HttpClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.clients = clients or AwsClients()
        self._http = http
        self.clock = clock
        self.sleep = sleep
        self.retry = retry or RetryPolicy()
        self.draw = draw
        self._directory = DestinationDirectory(
            lambda: load_destinations(self.clients.dynamodb, settings.delivery_table_name), clock
        )
        self._secrets: dict[str, tuple[datetime, str]] = {}
        self._cache_lock = threading.Lock()

    @property
    def channels(self) -> Channels:
        if self._http is None:
            self._http = Urllib3Client()
        return Channels(self.clients.sns, self._http, self.settings.alert_topic_arn, self.settings.telegram_api)

    # --- the batch ------------------------------------------------------------------------------

    def process(
        self, records: Sequence[StreamDelivery], time_left: Callable[[], timedelta] | None = None
    ) -> DeliveryReport:
        report = DeliveryReport(deliveries=len(records))
        by_receiver: dict[str, list[StreamDelivery]] = defaultdict(list)
        for record in records:
            by_receiver[record.values["pk"]].append(record)
        with ThreadPoolExecutor(max_workers=min(_RECEIVER_THREADS, max(1, len(by_receiver)))) as pool:
            for _ in pool.map(lambda entries: self._serve_guarded(entries, report, time_left), by_receiver.values()):
                pass
        return report

    def _serve_guarded(
        self, records: list[StreamDelivery], report: DeliveryReport, time_left: Callable[[], timedelta] | None
    ) -> None:
        """One receiver's share; an unexpected error there is that receiver's failure (retried from its
        first record, and logged), not every other receiver's in the batch."""
        try:
            self._serve_receiver(records, report, time_left)
        except Exception as error:
            what = f"deliveries of {records[0].values['pk']}"
            report.fail(what, f"{type(error).__name__}: {error}", min((r.stream_sequence for r in records), key=int))

    def _serve_receiver(
        self, records: list[StreamDelivery], report: DeliveryReport, time_left: Callable[[], timedelta] | None
    ) -> None:
        pacing_key = records[0].values["pk"].removeprefix("PACE#")
        sequence_of = {record.key: record.stream_sequence for record in records}
        table = self.settings.delivery_table_name
        try:
            # One key once: a replayed delivery can come twice in a batch (its INSERT and the replay's
            # MODIFY), and BatchGetItem refuses a request that names a key twice.
            keys = list({record.key: _key(record.values) for record in records}.values())
            current = batch_get(self.clients.dynamodb, table, keys)
            log_item = self.clients.dynamodb.get_item(
                TableName=table, Key=stored.send_log_key(pacing_key), ConsistentRead=True
            ).get("Item")
        except AWS_ERRORS as error:
            report.fail(f"deliveries of {pacing_key}", describe_aws_error(error), records[0].stream_sequence)
            return
        log = stored.SendLog.decode(deserialize(log_item).get("sent") if log_item else None)
        # Dict keys keep stream order; a record the stream carried twice is one delivery.
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        unreadable: list[tuple[dict[str, Any], stored.DeliveryStatus, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for record in records:
            if record.key in seen:
                continue  # the stream carried it twice (an INSERT and a replay's MODIFY): one delivery
            seen.add(record.key)
            values = current.get(record.key)
            if values is None or not stored.DeliveryStatus(values["status"]).deliverable:
                report.add(already_finished=1)
                continue
            try:
                AlertNotice.from_json(_json(values["notice"]))
            except (ValueError, KeyError, TypeError) as error:
                # Written by another version, or damaged: parked with the reason, never retried forever.
                unreadable.append((values, stored.DeliveryStatus.FAILED, {"error": f"unreadable notice: {error}"}))
                continue
            pending[record.key] = values
        receiver = _Receiver(self, pacing_key, log, sequence_of, report, time_left)
        if unreadable:
            report.add(parked=len(unreadable))
            receiver.record(unreadable, log_send=False)
        receiver.deliver(list(pending.values()))

    # --- a test message --------------------------------------------------------------------------

    def send_probe(self, name: str) -> dict[str, Any]:
        """What `tickwatch destinations test NAME` asks for: a test message, and the receiver's answer."""
        from tickwatch_core.domain.delivery.messages import probe_message

        destination = self.destination(name)
        if destination is None:
            return {"destination": name, "delivered": False, "status": None, "answer": f"no destination named {name!r}"}
        secret = self.secret(destination)
        now = self.clock()
        message = probe_message(name, now, self.settings.dashboard_url)
        identity = f"test-{int(now.timestamp())}.{name}"
        result = send(self.channels, destination, secret, message, delivery_id=identity, now=now)
        return {
            "destination": name,
            "kind": destination.kind.value,
            "delivered": result.outcome is Outcome.DELIVERED,
            "status": result.status,
            "answer": result.error or "accepted",
            "message_id": result.message_id,
        }

    # --- destinations and secrets ---------------------------------------------------------------

    def destination(self, name: str) -> Destination | None:
        return self._directory.get(name)

    def secret(self, destination: Destination) -> str | None:
        if destination.secret_name is None:
            return None
        now = self.clock()
        with self._cache_lock:
            cached = self._secrets.get(destination.secret_name)
            if cached is not None and now - cached[0] < SECRETS_TTL:
                return cached[1]
        try:
            value = self.clients.secretsmanager.get_secret_value(SecretId=destination.secret_name)["SecretString"]
        except AWS_ERRORS as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            if code == "ResourceNotFoundException":
                return None
            raise
        with self._cache_lock:
            self._secrets[destination.secret_name] = (now, value)
        return value


def delivery_id(destination: str, alert_ids: Sequence[str]) -> str:
    """The same for every try of one message: a receiver's idempotency key."""
    if len(alert_ids) == 1:
        return f"{alert_ids[0]}.{destination}"
    digest = hashlib.sha256(("|".join(alert_ids) + "|" + destination).encode()).hexdigest()[:20]
    return f"digest-{digest}.{destination}"


class _Receiver:
    """One receiver's share of a batch: its deliveries, its send log, its limits."""

    def __init__(
        self,
        service: DeliveryService,
        pacing_key: str,
        log: SendLog,
        sequence_of: dict[tuple[str, str], str],
        report: DeliveryReport,
        time_left: Callable[[], timedelta] | None,
    ) -> None:
        self.service = service
        self.pacing_key = pacing_key
        self.log = log
        self.sequence_of = sequence_of
        self.report = report
        self.time_left = time_left
        self.longest_send = timedelta()

    def deliver(self, pending_items: list[dict[str, Any]]) -> None:
        service = self.service
        by_destination: dict[str, list[dict[str, Any]]] = defaultdict(list)
        destinations: dict[str, Destination] = {}
        missing: list[dict[str, Any]] = []
        for values in pending_items:
            name = values["destination"]
            if name not in destinations:
                try:
                    found = service.destination(name)
                except AWS_ERRORS as error:
                    self._fail([values], f"destinations: {describe_aws_error(error)}")
                    continue
                if found is None:
                    missing.append(values)
                    continue
                destinations[name] = found
            by_destination[name].append(values)
        if missing:
            self.report.add(parked=len(missing))
            self.record(
                [
                    (values, stored.DeliveryStatus.FAILED, {"error": f"no destination named {values['destination']!r}"})
                    for values in missing
                ],
                log_send=False,
            )
        if not by_destination:
            return
        limits = next(iter(destinations.values())).limits
        group_of = (lambda values: values["symbol"]) if self.pacing_key == "email" else None
        while any(by_destination.values()):
            now = service.clock()
            available = self.log.available(limits, now)
            if available == 0:
                wait = (self.log.next_free(limits, now) - now).total_seconds()
                if not self._has_time_for(timedelta(seconds=wait)):
                    self._defer([], by_destination, "the next free slot is past the invocation's time")
                    return
                service.sleep(wait)
                self.report.add(waited_seconds=wait)
                continue
            planned = plan_round(dict(by_destination), available, group_of)
            taken = {id(values) for _, batch in planned for values in batch}
            by_destination = {name: [v for v in rest if id(v) not in taken] for name, rest in by_destination.items()}
            for index, (name, batch) in enumerate(planned):
                # A retry of an earlier message may have used a planned slot: wait for a free one.
                now = service.clock()
                wait = (self.log.next_free(limits, now) - now).total_seconds()
                if not self._has_time_for(timedelta(seconds=wait)):
                    self._defer(planned[index:], by_destination, "too little of the invocation left to send")
                    return
                if wait > 0:
                    service.sleep(wait)
                    self.report.add(waited_seconds=wait)
                if not self._send(destinations[name], batch):
                    self._defer(planned[index + 1 :], by_destination, "an earlier send could not be recorded")
                    return

    def _send(self, destination: Destination, batch: list[dict[str, Any]]) -> bool:
        """Send one message (retrying) and record the outcome; False if the record failed."""
        service = self.service
        notices = [AlertNotice.from_json(_json(values["notice"])) for values in batch]
        channel = destination.kind.value
        try:
            secret = service.secret(destination)
        except AWS_ERRORS as error:
            self._fail(batch, f"secret: {describe_aws_error(error)}")
            return False
        message = compose(
            notices,
            destination_template=destination.template,
            dashboard_url=service.settings.dashboard_url,
            limit=CHANNEL_TEXT_LIMITS[channel],
        )
        identity = delivery_id(destination.name, message.alert_ids)
        attempts = max(int(values.get("attempts", 0)) for values in batch)
        while True:
            started = service.clock()
            result = send(service.channels, destination, secret, message, delivery_id=identity, now=started)
            finished = service.clock()
            self.longest_send = max(self.longest_send, finished - started)
            attempts += 1
            # After the answer: the receiver had the message by then, so the next one, a window
            # later, reaches it a window later at least, whatever the network did in between.
            self.log = self.log.record(finished, destination.limits)
            self.report.add(messages=1)
            if result.outcome is Outcome.DELIVERED:
                return self._finish(destination, message, batch, stored.DeliveryStatus.DELIVERED, attempts, result)
            wait = None
            if result.outcome is Outcome.RETRY:
                wait = service.retry.wait_before_retry(attempts, result.retry_after, service.draw)
            if wait is None:
                return self._finish(destination, message, batch, stored.DeliveryStatus.FAILED, attempts, result)
            # Wait for the backoff and for a free slot: a retry is a message like any other.
            free_at = self.log.next_free(destination.limits, finished + timedelta(seconds=wait))
            wait = (free_at - finished).total_seconds()
            if not self._has_time_for(timedelta(seconds=wait)):
                # Out of time, not out of tries: left `retrying` for the stream to bring back.
                self.record(
                    [
                        (values, stored.DeliveryStatus.RETRYING, {"error": result.error, "attempts": attempts})
                        for values in batch
                    ],
                    log_send=True,
                )
                self._fail(batch, f"retry deferred: {result.error}")
                return False
            if not self.record(
                [
                    (values, stored.DeliveryStatus.RETRYING, {"error": result.error, "attempts": attempts})
                    for values in batch
                ],
                log_send=True,
            ):
                return False
            self.report.add(retries=1)
            self.report.count(channel, "retried")
            service.sleep(wait)
            self.report.add(waited_seconds=wait)

    def _finish(
        self,
        destination: Destination,
        message: Message,
        batch: list[dict[str, Any]],
        status: stored.DeliveryStatus,
        attempts: int,
        result: SendResult,
    ) -> bool:
        channel = destination.kind.value
        digest_of = len(batch) if len(batch) > 1 else None
        details = {"attempts": attempts, "error": result.error, "message_id": result.message_id, "digest_of": digest_of}
        recorded = self.record([(values, status, details) for values in batch], log_send=True)
        if status is stored.DeliveryStatus.DELIVERED:
            self.report.add(delivered=len(batch), in_digests=len(batch) if digest_of else 0)
            self.report.count(channel, "sent")
            if digest_of:
                self.report.count(channel, "digested", len(batch))
        else:
            self.report.add(parked=len(batch))
            self.report.count(channel, "failed", len(batch))
        return recorded

    def record(
        self, outcomes: list[tuple[dict[str, Any], stored.DeliveryStatus, dict[str, Any]]], *, log_send: bool
    ) -> bool:
        """Put the outcomes and (after a send) the send log, in one batch write."""
        now = self.service.clock()
        new_items = []
        for values, status, details in outcomes:
            updated = stored.with_outcome(
                values,
                status,
                attempts=int(details.get("attempts", values.get("attempts", 0))),
                at=now,
                error=details.get("error"),
                message_id=details.get("message_id"),
                digest_of=details.get("digest_of"),
            )
            values.clear()
            values.update(updated)  # a retry continues from what was recorded
            new_items.append(serialize(updated))
        if log_send:
            # First: if a later write of a large digest's outcomes fails, the sends are still counted.
            new_items.insert(0, stored.send_log_item(self.pacing_key, self.log))
        try:
            batch_put(self.service.clients.dynamodb, self.service.settings.delivery_table_name, new_items)
        except AWS_ERRORS as error:
            self._fail([values for values, _, _ in outcomes], f"record: {describe_aws_error(error)}")
            return False
        return True

    def _has_time_for(self, wait: timedelta) -> bool:
        if self.time_left is None:
            return True
        return self.time_left() >= wait + SEND_TIME_RESERVE + self.longest_send

    def _defer(
        self,
        planned: list[tuple[str, list[dict[str, Any]]]],
        by_destination: dict[str, list[dict[str, Any]]],
        reason: str,
    ) -> None:
        rest = [values for _, batch in planned for values in batch]
        rest += [values for batch in by_destination.values() for values in batch]
        self._fail(rest, f"deferred: {reason}")

    def _fail(self, batch: list[dict[str, Any]], error: str) -> None:
        """Leave `batch` for the stream to bring back: one failure at its earliest record."""
        sequences = [
            self.sequence_of[key] for values in batch if (key := (values["pk"], values["sk"])) in self.sequence_of
        ]
        if sequences:
            self.report.fail(f"deliveries of {self.pacing_key}", error, min(sequences, key=int))


def _key(values: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {"pk": {"S": values["pk"]}, "sk": {"S": values["sk"]}}


def _json(text: str) -> dict[str, Any]:
    import json

    return json.loads(text)
