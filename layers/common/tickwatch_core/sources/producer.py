"""One run of the scheduled producer: credits, quotes, validation, PutRecords, and its report.

A run (1) reads the provider's API key from Secrets Manager, once per container (again after the
provider rejects it, so a rotated key is picked up without a redeploy); (2) reserves credits for
one quote of each symbol in the shared ledger (`tickwatch_core.sources.credits`: the plan's per-minute and
per-day limits hold across overlapping runs, and a rotation shares them out when there are more
symbols than credits); (3) asks the provider (`tickwatch_core.sources.quotes`) for the granted symbols;
(4) validates each tick with the processor's own parser and puts the valid ones into the stream
with the writer every producer uses (`tickwatch_core.sources.kinesis_put`: batching, retries of failed
records within the time left).

What goes wrong with the provider or the key ends the run early and is reported, never raised:
the next scheduled run tries again, and an exception would only make EventBridge retry a run that
already spent its credits. Credits reserved for calls not made after a provider error are not
given back (the provider may have counted them). Records that still failed after the writer's
retries come back in the report with their error, to be logged and counted: nothing is dropped
silently. Only a ledger that cannot be written raises (`CreditLedgerUnavailable`): without it no
credit can be spent safely, and the invocation's error is the signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tickwatch_core.config import ProducerSettings
from tickwatch_core.domain.ticks import TickRejected
from tickwatch_core.sources.credits import CreditLedger, CreditLimits
from tickwatch_core.sources.kinesis_put import Record, RetryPolicy, StreamUnavailable, put_records, tick_record
from tickwatch_core.sources.provider_keys import ApiKeyError, key_from_secret
from tickwatch_core.sources.quotes import KeyRejected, QuoteClient, RateLimited, ServiceProblem, quote_client

# A provider call waits this long at most; a call is not started unless it and the PutRecords after
# it fit in the invocation's time left.
PROVIDER_TIMEOUT_SECONDS = 10.0
PUT_RESERVE_SECONDS = 5.0


@dataclass
class ProducerReport:
    """What one run did; `summary()` is what the handler returns and logs."""

    provider: str
    symbols_wanted: int
    credits_granted: int = 0
    symbols_quoted: list[str] = field(default_factory=list)
    symbols_left: list[str] = field(default_factory=list)  # granted, not asked for: an error or no time left
    fetched: int = 0
    sent: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (symbol, why the provider gave no price)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (symbol, reason): invalid ticks, not sent
    failed: list[tuple[str, str]] = field(default_factory=list)  # (symbol, error): not delivered to the stream
    provider_error: str | None = None  # rate limited, or the service failed
    secret_error: str | None = None  # no secret set, unreadable, no key in it, or the key was rejected
    time_ran_out: bool = False

    @property
    def credits_skipped(self) -> int:
        """Symbols not quoted this run because the minute's or the day's credits are spent."""
        return self.symbols_wanted - self.credits_granted

    def summary(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "credits_granted": self.credits_granted,
            "credits_skipped": self.credits_skipped,
            "symbols_quoted": list(self.symbols_quoted),
            "symbols_left": list(self.symbols_left),
            "fetched": self.fetched,
            "sent": self.sent,
            "missing": len(self.missing),
            "rejected": len(self.rejected),
            "failed": len(self.failed),
            "provider_error": self.provider_error,
            "secret_error": self.secret_error,
            "time_ran_out": self.time_ran_out,
        }


QuoteClientFactory = Callable[..., QuoteClient]


class ScheduledProducer:
    """Runs of the producer in one container: the API key is cached here between runs."""

    def __init__(
        self,
        settings: ProducerSettings,
        clients: Any,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client_for: QuoteClientFactory = quote_client,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients  # AwsClients: dynamodb, kinesis, secretsmanager, created on first use
        self._clock = clock
        self._client_for = client_for
        self._retry_policy = retry_policy
        self._api_key: str | None = None
        self.ledger = CreditLedger(
            lambda: self.clients.dynamodb,
            settings.table_name,
            CreditLimits(settings.credits_per_minute, settings.credits_per_day),
            clock=clock,
        )

    def run(self, *, time_left: Callable[[], float]) -> ProducerReport:
        """One run; see the module docstring. `time_left()`: seconds the invocation may still take."""
        settings = self.settings
        report = ProducerReport(settings.provider, symbols_wanted=len(settings.symbols))
        key = self._key(report)
        if key is None:
            return report
        grant = self.ledger.reserve(settings.symbols)
        report.credits_granted = grant.credits
        client = self._client_for(
            settings.provider, key, url=settings.provider_url, timeout=PROVIDER_TIMEOUT_SECONDS, now=self._clock
        )
        ticks: list[dict[str, Any]] = []
        calls = client.calls(grant.symbols)
        for index, call in enumerate(calls):
            if time_left() < PROVIDER_TIMEOUT_SECONDS + PUT_RESERVE_SECONDS:
                report.time_ran_out = True
            else:
                try:
                    batch = client.fetch(call)
                except KeyRejected as rejected:
                    self._api_key = None  # read the secret again next run: the key may have been rotated
                    report.secret_error = str(rejected)
                except RateLimited as limited:
                    report.provider_error = f"{settings.provider}: rate limited ({limited})"
                except ServiceProblem as problem:
                    report.provider_error = f"{settings.provider}: {problem}"
                else:
                    report.symbols_quoted += call
                    report.missing += batch.missing
                    ticks += batch.ticks
                    continue
            report.symbols_left = [symbol for rest in calls[index:] for symbol in rest]
            break
        report.fetched = len(ticks)
        self._send(ticks, report, time_left)
        return report

    def _key(self, report: ProducerReport) -> str | None:
        """The cached key, or the secret's; None (and `report.secret_error`) when there is none."""
        if self._api_key is not None:
            return self._api_key
        secret = self.settings.api_key_secret
        if not secret:
            report.secret_error = "no API key secret is set: deploy with the ProducerApiKeySecret parameter"
            return None
        try:
            self._api_key = key_from_secret(self.settings.provider, secret, self.clients.secretsmanager)
        except ApiKeyError as error:
            report.secret_error = str(error)
            return None
        return self._api_key

    def _send(self, ticks: list[dict[str, Any]], report: ProducerReport, time_left: Callable[[], float]) -> None:
        records: list[Record] = []
        symbols: list[str] = []
        received = self._clock()
        for document in ticks:
            try:
                records.append(tick_record(document, received_at=received))
            except TickRejected as rejection:
                report.rejected.append((str(document.get("symbol", "?")), rejection.reason))
                continue
            symbols.append(records[-1].partition_key)
        if not records:
            return
        try:
            outcome = put_records(
                self.clients.kinesis,
                self.settings.stream_name,
                records,
                policy=self._retry_policy,
                time_left=time_left,
            )
        except StreamUnavailable as unavailable:
            report.failed = [(symbol, str(unavailable)) for symbol in symbols]
            return
        report.sent = outcome.sent
        report.failed = [(symbols[index], error) for index, error in sorted(outcome.failed.items())]
