"""The scheduled producer: functions/producer/app.py, imported with the environment template.yaml
gives it, run with its schedule's event against moto resources built from the template and a
loopback fake of Twelve Data and Finnhub. What it puts into the stream, what it reports when the
provider, the secret or the stream fail, and how it keeps within the plan's credits."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from tests.fake_provider import API_KEY, FakeQuoteProvider, serving
from tests.support import LambdaContext
from tickwatch.local.schedules import read_schedules
from tickwatch.local.verify import read_stream
from tickwatch.template import Template, create_resources
from tickwatch_core.sources.credits import CreditLedger, CreditLedgerUnavailable, CreditLimits
from tickwatch_core.sources.kinesis_put import RetryPolicy
from tickwatch_core.sources.producer import ScheduledProducer

SECRET = "tickwatch/producer-api-key"
START = datetime(2026, 11, 20, 14, 30, 0, tzinfo=UTC)
PRICES = {"AAPL": "228.51000", "MSFT": "415.30000", "NVDA": "181.20", "TSLA": "301.10", "AMZN": "226.00"}


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Run:
    """One invocation: the handler's response, its log lines and its metrics (name -> value)."""

    response: dict[str, Any]
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def logged(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.logs if line.get("message") == message]


@dataclass
class Producer:
    """The handler module, the template it was configured from, and a way to run it."""

    app: ModuleType
    template: Template
    session: Any
    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    clock: FakeClock

    def run(self) -> Run:
        (schedule,) = [s for s in read_schedules(self.template) if s.function_id == "ProducerFunction"]
        self.caplog.clear()
        response = self.app.lambda_handler(schedule.event(self.clock()), LambdaContext())
        # Log lines as CloudWatch gets them: Powertools' JSON. (Its handler keeps the stdout of the
        # first test that created the logger, so the records are taken from pytest instead.)
        formatter = self.app.logger.registered_formatter
        logs = [json.loads(formatter.format(record)) for record in self.caplog.records if record.name == "producer"]
        output = self.capsys.readouterr().out  # the metrics (EMF), printed at the end of the invocation
        assert API_KEY not in output + json.dumps(logs)  # the key never reaches a log line or a metric
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        run = Run(response, logs=logs)
        for line in lines:
            for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in directive["Metrics"]:
                    value = line[metric["Name"]]
                    run.metrics[metric["Name"]] = sum(value) if isinstance(value, list) else value
        return run

    def stream(self) -> list[dict[str, Any]]:
        """The ticks in the stream, oldest first, with their partition keys checked."""
        records = read_stream(self.session.client("kinesis"), self.template.physical["TickStream"].ref)
        ticks = [json.loads(record["data"]) for record in records]
        assert [record["key"] for record in records] == [tick["symbol"] for tick in ticks]
        return ticks


@pytest.fixture
def provider() -> Iterator[FakeQuoteProvider]:
    with serving(FakeQuoteProvider(dict(PRICES))) as fake:
        yield fake


@pytest.fixture
def load_producer(aws, provider, monkeypatch, capsys, caplog) -> Iterator[Any]:
    """Build the template's resources with these parameters (the provider URL pointing at the fake,
    the key in SECRET unless `secret` says otherwise) and import the handler under its environment;
    its clock is fake and the stream writer's retries do not sleep."""

    def load(*, secret: str | None = API_KEY, kinesis: Any = None, **parameters: str) -> Producer:
        overrides = {
            "ProducerProviderUrl": provider.url,
            "ProducerApiKeySecret": SECRET,
            "ProducerSymbols": "AAPL,MSFT",
            **parameters,
        }
        template = Template.load(parameter_overrides=overrides)
        create_resources(template, aws)
        if secret is not None:
            aws.client("secretsmanager").create_secret(Name=SECRET, SecretString=secret)
        for name, value in template.function_environment("ProducerFunction").items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("functions.producer.app", None)
        app = importlib.import_module("functions.producer.app")
        clock = FakeClock()
        if kinesis is not None:
            app.clients = type(app.clients)(kinesis=kinesis(aws.client("kinesis")))
        app.producer = ScheduledProducer(
            app.settings, app.clients, clock=clock, retry_policy=RetryPolicy(sleep=lambda _: None)
        )
        capsys.readouterr()  # what importing printed
        caplog.set_level("INFO", logger="producer")
        return Producer(app, template, aws, capsys, caplog, clock)

    yield load
    sys.modules.pop("functions.producer.app", None)


# --- a run --------------------------------------------------------------------------------------


def test_a_scheduled_run_puts_the_latest_price_of_every_symbol_into_the_stream(load_producer, provider):
    producer = load_producer()
    run = producer.run()
    assert producer.stream() == [
        {"symbol": "AAPL", "price": 228.51, "timestamp": "2026-11-20T14:30:00.000Z", "source": "twelvedata"},
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2026-11-20T14:30:00.000Z", "source": "twelvedata"},
    ]
    assert provider.requests == [{"path": "/price", "symbol": "AAPL,MSFT", "apikey": API_KEY}]
    assert run.response["sent"] == 2
    assert run.metrics["ProducerTicksFetched"] == 2
    assert run.metrics["ProducerTicksSent"] == 2
    assert run.metrics["ProducerCreditsUsed"] == 2
    assert run.metrics["ProducerTicksFailed"] == run.metrics["ProducerProviderErrors"] == 0
    (summary,) = run.logged("producer run")
    assert (summary["fetched"], summary["sent"], summary["scheduled"]) == (2, 2, "2026-11-20T14:30:00Z")


def test_finnhub_quotes_each_symbol_at_its_last_trade_time(load_producer, provider):
    producer = load_producer(ProducerProvider="finnhub", ProducerCreditsPerMinute="60")
    run = producer.run()
    assert producer.stream() == [
        {"symbol": "AAPL", "price": 228.51, "timestamp": "2026-11-20T14:30:05.000Z", "source": "finnhub"},
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2026-11-20T14:30:05.000Z", "source": "finnhub"},
    ]
    assert [request["path"] for request in provider.requests] == ["/api/v1/quote", "/api/v1/quote"]
    assert run.metrics["ProducerTicksSent"] == 2


def test_a_symbol_the_provider_does_not_know_is_reported_and_the_others_are_sent(load_producer):
    producer = load_producer(ProducerSymbols="AAPL,NOPE")
    run = producer.run()
    assert [tick["symbol"] for tick in producer.stream()] == ["AAPL"]
    assert run.metrics["ProducerQuotesMissing"] == 1
    (missing,) = run.logged("no price from the provider")
    assert (missing["symbol"], missing["reason"]) == ("NOPE", "**symbol** not found: NOPE")


def test_an_invalid_tick_from_the_provider_is_rejected_with_the_pipelines_reason(load_producer, provider):
    provider.prices["MSFT"] = "0"
    producer = load_producer()
    run = producer.run()
    assert [tick["symbol"] for tick in producer.stream()] == ["AAPL"]
    assert run.metrics["ProducerTicksRejected"] == 1
    (rejected,) = run.logged("invalid tick from the provider not sent")
    assert rejected["symbol"] == "MSFT"
    assert "price" in rejected["reason"]


# --- failures are reported, never raised -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, "Internal Server Error", "twelvedata: HTTP 500"),
        (429, "", "twelvedata: rate limited (HTTP 429)"),
        (
            200,
            json.dumps({"code": 429, "message": "You have run out of API credits for the day.", "status": "error"}),
            "twelvedata: rate limited (You have run out of API credits for the day.)",
        ),
    ],
)
def test_a_provider_failure_is_logged_and_counted_and_the_run_ends_normally(
    load_producer, provider, status, body, error
):
    provider.failures.append((status, body))
    producer = load_producer()
    run = producer.run()
    assert producer.stream() == []
    assert run.response["provider_error"] == error
    assert run.metrics["ProducerProviderErrors"] == 1
    assert run.metrics["ProducerSecretErrors"] == 0
    (line,) = run.logged("the provider failed; the next run tries again")
    assert (line["level"], line["error"], line["left"]) == ("ERROR", error, ["AAPL", "MSFT"])


@pytest.mark.parametrize(
    ("parameters", "secret", "error"),
    [
        ({}, None, f"secret '{SECRET}' does not exist in this account and region"),
        (
            {"ProducerApiKeySecret": ""},
            None,
            "no API key secret is set: deploy with the ProducerApiKeySecret parameter",
        ),
        ({}, json.dumps({"token": API_KEY}), f"secret '{SECRET}' is JSON without an 'twelvedata' or 'api_key' field"),
    ],
)
def test_a_missing_or_unusable_secret_is_reported_before_any_credit_or_call(
    load_producer, provider, parameters, secret, error
):
    producer = load_producer(secret=secret, **parameters)
    run = producer.run()
    assert provider.requests == []
    assert run.response["secret_error"] == error
    assert (run.metrics["ProducerSecretErrors"], run.metrics["ProducerCreditsUsed"]) == (1, 0)
    (line,) = run.logged("no usable API key; nothing fetched")
    assert (line["level"], line["error"]) == ("ERROR", error)


def test_a_rejected_key_is_reported_and_the_secret_read_again_next_run(load_producer, provider):
    producer = load_producer(secret="sk-revoked-key")
    run = producer.run()
    assert (
        run.response["secret_error"]
        == "twelvedata rejected the API key: **apikey** parameter is incorrect or not specified."
    )
    assert run.metrics["ProducerSecretErrors"] == 1
    assert "sk-revoked-key" not in json.dumps(run.logs)

    # The operator puts the right key into the secret: the next run uses it, no redeploy.
    producer.session.client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=API_KEY)
    producer.clock.advance(minutes=1)
    run = producer.run()
    assert run.response["secret_error"] is None
    assert run.metrics["ProducerTicksSent"] == 2


def test_the_secret_is_read_once_per_container(load_producer, provider):
    producer = load_producer()
    producer.run()
    producer.session.client("secretsmanager").delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    producer.clock.advance(minutes=1)
    assert producer.run().response["sent"] == 2


class PartlyFailingKinesis:
    """Kinesis whose PutRecords reports the first record of a request as throttled, `times` times."""

    def __init__(self, client: Any, times: int | None) -> None:
        self._client, self._times = client, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_records(self, **request: Any) -> dict[str, Any]:
        if self._times is not None and self._times <= 0:
            return self._client.put_records(**request)
        if self._times is not None:
            self._times -= 1
        _throttled, *rest = request["Records"]
        sent = self._client.put_records(**{**request, "Records": rest})["Records"] if rest else []
        throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
        return {"FailedRecordCount": 1, "Records": [throttled, *sent]}


def test_records_kinesis_reports_as_failed_are_retried(load_producer):
    producer = load_producer(kinesis=lambda client: PartlyFailingKinesis(client, times=2))
    run = producer.run()
    assert sorted(tick["symbol"] for tick in producer.stream()) == ["AAPL", "MSFT"]
    assert (run.metrics["ProducerTicksSent"], run.metrics["ProducerTicksFailed"]) == (2, 0)


def test_a_record_that_still_fails_after_the_retries_is_logged_and_counted(load_producer):
    producer = load_producer(kinesis=lambda client: PartlyFailingKinesis(client, times=None))
    run = producer.run()
    assert [tick["symbol"] for tick in producer.stream()] == ["MSFT"]
    assert (run.metrics["ProducerTicksSent"], run.metrics["ProducerTicksFailed"]) == (1, 1)
    (line,) = run.logged("tick not delivered to the stream after retries")
    assert (line["level"], line["symbol"]) == ("ERROR", "AAPL")
    assert line["error"] == "ProvisionedThroughputExceededException: Rate exceeded for shard"


# --- credits ------------------------------------------------------------------------------------


def test_a_run_asks_only_for_the_minutes_credits_and_the_rotation_covers_every_symbol(load_producer, provider):
    producer = load_producer(ProducerSymbols="AAPL,MSFT,NVDA,TSLA,AMZN", ProducerCreditsPerMinute="2")
    first = producer.run()
    assert provider.symbols_asked == ["AAPL", "MSFT"]
    assert (first.metrics["ProducerCreditsUsed"], first.metrics["ProducerCreditsSkipped"]) == (2, 3)

    # A manual trigger or an overlapping run in the same minute: nothing left to spend.
    again = producer.run()
    assert provider.symbols_asked == ["AAPL", "MSFT"]
    assert (again.metrics["ProducerCreditsUsed"], again.metrics["ProducerCreditsSkipped"]) == (0, 5)
    assert again.logged("credits spent for this minute or day; the rotation quotes the other symbols in later runs")

    for _ in range(2):
        producer.clock.advance(minutes=1)
        producer.run()
    assert provider.symbols_asked == ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "AAPL"]
    assert [tick["symbol"] for tick in producer.stream()] == provider.symbols_asked


def test_finnhub_makes_one_call_per_credit(load_producer, provider):
    producer = load_producer(ProducerProvider="finnhub", ProducerSymbols="AAPL,MSFT,NVDA", ProducerCreditsPerMinute="2")
    producer.run()
    assert [request["symbol"] for request in provider.requests] == ["AAPL", "MSFT"]


def test_the_days_credits_bound_the_runs_of_every_minute(load_producer, provider):
    producer = load_producer(ProducerCreditsPerMinute="2", ProducerCreditsPerDay="3")
    granted = []
    for _ in range(3):
        granted.append(producer.run().metrics["ProducerCreditsUsed"])
        producer.clock.advance(minutes=1)
    assert granted == [2, 1, 0]
    assert len(provider.symbols_asked) == 3
    producer.clock.advance(days=1)
    assert producer.run().metrics["ProducerCreditsUsed"] == 2  # a new UTC day


def test_overlapping_runs_together_stay_within_the_minutes_credits(stack, aws):
    table = stack.physical["MarketTable"].ref
    dynamodb = aws.client("dynamodb")

    class AtomicUpdates:
        """DynamoDB applies each UpdateItem atomically; in-process moto does not, so a lock does
        here. The runs still interleave freely between their calls."""

        lock = threading.Lock()

        def update_item(self, **request: Any) -> Any:
            with self.lock:
                return dynamodb.update_item(**request)

    table_client = AtomicUpdates()
    ledger = CreditLedger(lambda: table_client, table, CreditLimits(per_minute=12, per_day=800), clock=lambda: START)
    symbols = [f"S{n}" for n in range(5)]
    grants = []
    threads = [threading.Thread(target=lambda: grants.append(ledger.reserve(symbols))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(grants) == 8  # no run failed
    assert 0 < sum(grant.credits for grant in grants) <= 12
    # What the ledger holds is what was granted: every excess was given back.
    minute = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": "PRODUCER"}, "sk": {"S": "CREDITS#MINUTE#2026-11-20T14:30"}}
    )["Item"]
    assert int(minute["used"]["N"]) == sum(grant.credits for grant in grants)
    assert int(minute["expires_at"]["N"]) == int((START + timedelta(hours=1)).timestamp())
    # Each run got the symbols of its credits from the rotation.
    handed_out = [symbol for grant in grants for symbol in grant.symbols]
    assert len(handed_out) == sum(grant.credits for grant in grants)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_ledger_that_cannot_be_written_fails_the_invocation_before_any_call(load_producer, provider):
    from botocore.exceptions import ClientError

    producer = load_producer()

    class ThrottledTable:
        def update_item(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    producer.app.producer.ledger._dynamodb = ThrottledTable
    with pytest.raises(CreditLedgerUnavailable, match="ThrottlingException: slow down"):
        producer.run()
    assert provider.requests == []


# --- the template -------------------------------------------------------------------------------


def _producer_statements(template: Template) -> list[dict[str, Any]]:
    """The statements of the function's role: its Policies, and the secret's policy when the
    template's condition creates it."""
    policies = template.resolve(template.resources["ProducerFunction"]["Properties"]["Policies"])
    statements = [statement for policy in policies for statement in policy["Statement"]]
    secret_policy = template.resources["ProducerApiKeyPolicy"]
    if template.condition(secret_policy["Condition"]):
        assert secret_policy["Properties"]["Roles"] == [{"Ref": "ProducerFunctionRole"}]  # SAM's role of the function
        statements += template.resolve(secret_policy["Properties"]["PolicyDocument"])["Statement"]
    return statements


def test_the_producer_may_put_ticks_reserve_credits_and_read_its_one_secret_only(aws):
    def statements(**parameters: str) -> list[dict[str, Any]]:
        template = Template.load(parameter_overrides=parameters)
        create_resources(template, aws)
        return _producer_statements(template)

    stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/tickwatch-local-tickstream"
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-local-markettable"
    without_secret = statements()
    assert {(s["Action"], s["Resource"]) for s in without_secret} == {
        ("kinesis:PutRecords", stream_arn),
        ("dynamodb:UpdateItem", table_arn),
    }
    (ledger,) = [s for s in without_secret if s["Action"] == "dynamodb:UpdateItem"]
    assert ledger["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["PRODUCER"]}}

    # A name: that secret with any of Secrets Manager's six-character suffixes; an ARN: that one.
    (read,) = [s for s in statements(ProducerApiKeySecret="tickwatch/twelvedata") if s["Action"].startswith("secrets")]
    assert (read["Action"], read["Resource"]) == (
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:tickwatch/twelvedata-??????",
    )
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tickwatch/twelvedata-AbC123"
    (read,) = [s for s in statements(ProducerApiKeySecret=arn) if s["Action"].startswith("secrets")]
    assert read["Resource"] == arn


def test_the_schedule_is_off_until_a_parameter_sets_it_and_a_failed_run_is_not_retried():
    (default,) = [s for s in read_schedules(Template.load()) if s.function_id == "ProducerFunction"]
    assert not default.enabled
    overridden = Template.load(parameter_overrides={"ProducerSchedule": "rate(1 minute)"})
    (scheduled,) = [s for s in read_schedules(overridden) if s.function_id == "ProducerFunction"]
    assert (scheduled.enabled, scheduled.expression) == (True, "rate(1 minute)")
    properties = Template.load().resources["ProducerFunction"]["Properties"]
    assert properties["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "ProducerLogGroup"}}
    assert "ProducerFunctionName" in Template.load().body["Outputs"]


def test_an_alarm_tells_the_operator_when_the_producer_cannot_deliver():
    alarm = Template.load().resources["ProducerNotDeliveringAlarm"]["Properties"]
    watched = {query["MetricStat"]["Metric"]["MetricName"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert watched == {"ProducerTicksFailed", "ProducerSecretErrors"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
