"""Part 9 of `make bench`: the scheduled producer (ProducerFunction).

The handler (loaded under the template's environment, its schedule's event) runs for 8 symbols
with Twelve Data (one `/price` call for all 8) and with Finnhub (one `/quote` call each), against a
loopback stand-in of both providers. AWS is answered by in-memory stand-ins (the run's own work:
the ledger's arithmetic, the HTTP calls over loopback, validating and encoding the ticks) and by
moto, whose runs count the requests: GetSecretValue in a container's first run only (the key is
cached), an UpdateItem per credit window and one for the rotation, a PutRecords. A third case is
Twelve Data once the day's credits are spent (the template's default of 800 a day, Twelve Data's
free plan, lasts 100 runs of 8 symbols): the ledger grants nothing, no call is made, the adds are
given back.

Each run is a minute after the one before (a fake clock), as rate(1 minute) would run it. The cost
is per month of a schedule: Lambda, the ledger's write units, Secrets Manager, Kinesis PUT payload
units; the provider's plan is the user's own.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeKinesis
from tickwatch.bench.measure import RequestCounter, invoke, load_handler, moto_pipeline, percentiles_ms
from tickwatch.local.schedules import read_schedules
from tickwatch.template import Template
from tickwatch_core.aws import AwsClients
from tickwatch_core.sources.credits import CreditLedger
from tickwatch_core.sources.kinesis_put import RetryPolicy
from tickwatch_core.sources.producer import ScheduledProducer

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "NFLX")
PRICES = {symbol: f"{100 + 37.25 * index:.5f}" for index, symbol in enumerate(SYMBOLS)}
SECRET = "tickwatch-bench/producer-api-key"
API_KEY = "bench-provider-key"
START = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
FREE_PLAN_CREDITS_PER_DAY = 800  # the template's default: Twelve Data's free plan


@dataclass(frozen=True)
class Case:
    label: str
    provider: str
    credits_per_day: int  # the day's credits spent when it is 8: the first run takes them all


# Credits a minute: 8 symbols need 8 (Twelve Data's free plan); a day: enough for every run of a
# month at rate(1 minute), but in the last case.
CASES = [
    Case("Twelve Data: 8 symbols, one /price call", "twelvedata", len(SYMBOLS) * 1440),
    Case("Finnhub: 8 symbols, a /quote call each", "finnhub", len(SYMBOLS) * 1440),
    Case("Twelve Data, the day's credits spent", "twelvedata", len(SYMBOLS)),
]


@dataclass
class ProducerFigures:
    provider: str
    quoting: bool  # whether the runs measured quote (False: the day's credits are spent)
    provider_calls: int = 0  # per run
    ticks: int = 0  # per run
    seconds_fake: list[float] = field(default_factory=list)
    seconds_moto: list[float] = field(default_factory=list)
    first_run_requests: dict[str, int] = field(default_factory=dict)  # what a container's first run adds
    requests: dict[str, float] = field(default_factory=dict)  # per run, but for those
    write_units: float = 0.0  # per run


def measure_producer(runs: int) -> dict[str, ProducerFigures]:
    """Each case: a container's first run and `runs` more, on the in-memory stand-ins and on moto."""
    figures: dict[str, ProducerFigures] = {}
    clock = _Clock()
    with moto_pipeline() as (session, created, _, _), _serving(_FakeQuoteProvider(clock)) as provider:
        session.client("secretsmanager").create_secret(Name=SECRET, SecretString=API_KEY)
        for number, case in enumerate(CASES):
            template = Template.load(
                stack_name=created.stack_name,
                parameter_overrides={
                    "ProducerProvider": case.provider,
                    "ProducerSymbols": ",".join(SYMBOLS),
                    "ProducerApiKeySecret": SECRET,
                    "ProducerProviderUrl": provider.url,
                    "ProducerCreditsPerMinute": str(len(SYMBOLS)),
                    "ProducerCreditsPerDay": str(case.credits_per_day),
                },
                physical=created.physical,  # the resources moto_pipeline created: the names do not change
            )
            container = _Container(template, case, clock)
            entry = figures[case.label] = ProducerFigures(case.provider, quoting=container.quoting)

            clock.reset()
            asked = len(provider.requests)
            fakes = AwsClients(
                kinesis=FakeKinesis(), dynamodb=_FakeLedgerTable(), secretsmanager=_FakeSecrets({SECRET: API_KEY})
            )
            entry.seconds_fake = container.runs(fakes, fakes.dynamodb, runs)[1:]
            entry.provider_calls, spare = divmod(len(provider.requests) - asked, runs + 1)
            entry.ticks, unequal = divmod(len(fakes.kinesis.records), runs + 1)
            if spare or unequal:
                raise AssertionError(f"producer, {case.label}: the runs did not all make the same calls")

            # moto: another day (a ledger of its own), a new container.
            clock.reset(days=1 + number)
            counter = RequestCounter()
            counted = AwsClients(
                **{name: counter.attach(session.client(name)) for name in ("kinesis", "dynamodb", "secretsmanager")}
            )
            entry.seconds_moto = container.runs(counted, session.client("dynamodb"), runs)[1:]
            _check_ledger(session, template.physical["MarketTable"].ref, entry, clock)
            total = counter.by_operation()
            reads = total.pop("secretsmanager:GetSecretValue", 0)
            if reads != 1:
                raise AssertionError(f"producer, {case.label}: the secret was read {reads} times, not once")
            # Every run makes the same requests, but the container's first, which also reads the secret.
            entry.requests = {op: n / (runs + 1) for op, n in total.items()}
            entry.first_run_requests = {"secretsmanager:GetSecretValue": reads}
            entry.write_units = counter.write_units / (runs + 1)
    return figures


class _Container:
    """The handler module of one case, loaded under the template's environment, and its schedule."""

    def __init__(self, template: Template, case: Case, clock: _Clock) -> None:
        (self.schedule,) = [s for s in read_schedules(template) if s.function_id == "ProducerFunction"]
        self.module = load_handler(template, "ProducerFunction")
        self.case = case
        self.quoting = case.credits_per_day > len(SYMBOLS)
        self.clock = clock

    def runs(self, clients: AwsClients, table: Any, runs: int) -> list[float]:
        """Seconds of a container's first run (it reads the secret) and of `runs` more (the key
        cached), a minute apart, the producer using `clients`; `table` spends the day's credits
        first when the case wants them spent."""
        module, clock = self.module, self.clock
        module.producer = ScheduledProducer(
            module.settings, clients, clock=clock, retry_policy=RetryPolicy(sleep=lambda _: None)
        )
        if not self.quoting:  # a run of another container spent them (its requests are not counted)
            limits = module.producer.ledger.limits
            CreditLedger(lambda: table, module.settings.table_name, limits, clock=clock).reserve(SYMBOLS)
        seconds = []
        for _ in range(runs + 1):
            clock.advance()
            response, duration = invoke(module, self.schedule.event(clock()))
            expected = len(SYMBOLS) if self.quoting else 0
            problems = [response.get(name) for name in ("provider_error", "secret_error") if response.get(name)]
            if response.get("sent") != expected or response.get("credits_granted") != expected or problems:
                raise AssertionError(f"producer, {self.case.label}: {response}")
            seconds.append(duration)
        return seconds


def report(figures: dict[str, ProducerFigures], prices: dict[str, Any], memory_gb: float, architecture: str) -> dict:
    """The measured runs, and the cost of a month of each schedule for 8 symbols."""
    rows, priced = [], {}
    for label, entry in figures.items():
        cpu = statistics.median(entry.seconds_fake)
        aws_wait, provider_wait = cost.producer_wait(entry.requests, entry.provider_calls)
        secret_wait, _ = cost.producer_wait(entry.first_run_requests, 0)
        seconds = cpu + aws_wait + provider_wait
        priced[label] = cost.ProducerRun(seconds, entry.write_units, entry.ticks)
        rows.append(
            {
                "case": label,
                "provider": entry.provider,
                "provider_calls": entry.provider_calls,
                "ticks": entry.ticks,
                "in_memory_fake": percentiles_ms(entry.seconds_fake),
                "moto": percentiles_ms(entry.seconds_moto),
                "requests": entry.requests,
                "first_run_adds": entry.first_run_requests,
                "write_units": entry.write_units,
                "modelled_aws_wait_ms": round(aws_wait * 1000, 1),
                "first_run_adds_wait_ms": round(secret_wait * 1000, 1),
                "assumed_provider_wait_ms": round(provider_wait * 1000, 1),
                "modelled_seconds_per_run": round(seconds, 4),
            }
        )

    quoting = {entry.provider: priced[label] for label, entry in figures.items() if entry.quoting}
    spent = next((priced[label] for label, entry in figures.items() if not entry.quoting), None)
    month = []
    for schedule, runs in cost.PRODUCER_SCHEDULES.items():
        for provider, run in quoting.items():
            month.append(_month_row(schedule, provider, [(runs, run)], prices, memory_gb, architecture))
        if spent is not None and "twelvedata" in quoting:
            # The free plan's day buys 100 runs of 8 symbols; the day's other runs are granted nothing.
            quoting_runs = min(runs, FREE_PLAN_CREDITS_PER_DAY // len(SYMBOLS) * 30)
            mix = [(quoting_runs, quoting["twelvedata"]), (runs - quoting_runs, spent)]
            month.append(_month_row(schedule, "twelvedata, free plan", mix, prices, memory_gb, architecture))
    return {
        "symbols": len(SYMBOLS),
        "runs_per_case": len(next(iter(figures.values())).seconds_fake) if figures else 0,
        "provider_latency_assumed_ms": round(cost.PROVIDER_LATENCY * 1000),
        "container_hours_assumed": cost.PRODUCER_CONTAINER_HOURS,
        "secret_month_usd": prices["secrets_manager"]["secret_month"],
        "runs": rows,
        "month": month,
    }


def _month_row(
    schedule: str,
    provider: str,
    runs: list[tuple[int, cost.ProducerRun]],
    prices: dict[str, Any],
    memory_gb: float,
    architecture: str,
) -> dict[str, Any]:
    usd = cost.producer_month_cost(runs, memory_gb, prices, architecture=architecture)
    ticks = round(sum(count * run.ticks for count, run in runs))
    return {
        "schedule": schedule,
        "provider": provider,
        "runs": sum(count for count, _ in runs),
        "quoting_runs": sum(count for count, run in runs if run.ticks),
        "ticks": ticks,
        "usd_per_month": usd,
        "usd_per_million_ticks": round(usd["total"] / ticks * 1e6, 3) if ticks else None,
    }


def render(part: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### 9. Scheduled producer: one run for {part['symbols']} symbols (handler time, AWS requests; "
        f"the provider's latency assumed: {part['provider_latency_assumed_ms']} ms per HTTPS call)",
        "",
        "| run | provider calls | in-memory AWS, loopback provider p50 / p95 | moto p50 / p95 | AWS requests "
        "| modelled AWS wait | provider wait (assumed) | billed time (modelled) |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in part["runs"]:
        fake, moto = row["in_memory_fake"], row["moto"]
        requests = ", ".join(f"{n:g} {op.split(':')[1]}" for op, n in row["requests"].items())
        added = ", ".join(f"{n:g} {op.split(':')[1]}" for op, n in row["first_run_adds"].items())
        lines.append(
            f"| {row['case']} | {row['provider_calls']} | {fake['p50_ms']} / {fake['p95_ms']} ms "
            f"| {moto['p50_ms']} / {moto['p95_ms']} ms | {requests}; a container's first run: + {added} "
            f"| {row['modelled_aws_wait_ms']} ms | {row['assumed_provider_wait_ms']} ms "
            f"| {row['modelled_seconds_per_run'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        "| schedule | provider | runs a month (quoting) | ticks a month | Lambda | DynamoDB | Secrets Manager "
        "| Kinesis PUT units | total (USD a month) | USD per million ticks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["month"]:
        usd = row["usd_per_month"]
        per_million = "" if row["usd_per_million_ticks"] is None else f"{row['usd_per_million_ticks']:.2f}"
        lines.append(
            f"| {row['schedule']} | {row['provider']} | {row['runs']:,} ({row['quoting_runs']:,}) | {row['ticks']:,} "
            f"| {usd['lambda_requests'] + usd['lambda_duration']:.3f} | {usd['dynamodb']:.3f} "
            f"| {usd['secrets_manager']:.3f} | {usd['kinesis_put_units']:.4f} | **{usd['total']:.2f}** "
            f"| {per_million} |"
        )
    lines += [
        "",
        f"Not in these figures: the provider's plan, which is yours. Secrets Manager is mostly the secret's month "
        f"(USD {part['secret_month_usd']:.2f}); the key is read once per container, taken to be a new one every "
        f"{part['container_hours_assumed']} h.",
    ]
    return lines


# --- stand-ins ------------------------------------------------------------------------------------


class _Clock:
    """The producer's clock: a minute later at each run, as rate(1 minute) runs it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> None:
        self.now += timedelta(minutes=1)

    def reset(self, **later: float) -> None:
        self.now = START + timedelta(**later)


class _FakeSecrets:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:
        return {"Name": SecretId, "SecretString": self.secrets[SecretId]}


class _FakeLedgerTable:
    """The credit ledger's UpdateItems (`tickwatch_core.sources.credits`): `ADD #n :v`, with or without
    `SET expires_at = if_not_exists(expires_at, :expires)`, returning the whole item."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ExpressionAttributeNames: dict[str, str],
        ReturnValues: str,
    ) -> dict[str, Any]:
        if not UpdateExpression.startswith("ADD "):
            raise NotImplementedError(f"update {UpdateExpression!r} is not supported")
        name_token, value_token = UpdateExpression.split()[1:3]
        name = ExpressionAttributeNames[name_token]
        item = self.items.setdefault((Key["pk"]["S"], Key["sk"]["S"]), dict(Key))
        total = int(item.get(name, {"N": "0"})["N"]) + int(ExpressionAttributeValues[value_token]["N"])
        item[name] = {"N": str(total)}
        if ":expires" in ExpressionAttributeValues:
            item.setdefault("expires_at", ExpressionAttributeValues[":expires"])
        return {"Attributes": dict(item)}


@dataclass
class _FakeQuoteProvider:
    """Twelve Data's `/price` (several symbols: an object by symbol) and Finnhub's `/api/v1/quote`
    (`t`: a few seconds before the producer's clock), in their shapes, for the symbols of PRICES."""

    clock: Callable[[], datetime]
    url: str = ""
    requests: list[str] = field(default_factory=list)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        self.requests.append(path)
        if path == "/price" and query.get("apikey") == API_KEY:
            quotes = {symbol: {"price": PRICES[symbol]} for symbol in query["symbol"].split(",")}
            return 200, next(iter(quotes.values())) if len(quotes) == 1 else quotes
        if path == "/api/v1/quote" and query.get("token") == API_KEY:
            price = float(PRICES[query["symbol"]])
            traded = int(self.clock().timestamp()) - 5
            return 200, {"c": price, "d": 0.5, "dp": 0.2, "h": price, "l": price, "o": price, "pc": price, "t": traded}
        return 401, {"error": "Invalid API key"}


@contextmanager
def _serving(provider: _FakeQuoteProvider) -> Iterator[_FakeQuoteProvider]:
    """`provider` on 127.0.0.1 (a free port) until the block ends; its `url` is set."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, body = provider.answer(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
            text = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


# --- checks ---------------------------------------------------------------------------------------


def _check_ledger(session: Any, table: str, entry: ProducerFigures, clock: _Clock) -> None:
    """The minute's counter holds what the last run was granted: every excess was given back."""
    minute = f"CREDITS#MINUTE#{clock():%Y-%m-%dT%H:%M}"
    item = session.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "PRODUCER"}, "sk": {"S": minute}})
    used = int(item["Item"]["used"]["N"])
    if used != (len(SYMBOLS) if entry.quoting else 0):
        raise AssertionError(f"producer, {entry.provider}: the ledger's minute holds {used} credits")
