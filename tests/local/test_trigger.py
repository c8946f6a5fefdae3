"""`tickwatch local trigger`: a scheduled function of the running local stack, invoked now from
another command, against the stack's emulator; and `local up`'s producer key and parameters."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.fake_provider import API_KEY, FakeQuoteProvider, serving
from tickwatch.cli import main
from tickwatch.local.run import LOCAL_PRODUCER_SECRET, producer_api_key_secret
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.state import LocalState, process_start, state_path
from tickwatch.local.verify import read_stream


@pytest.fixture
def provider() -> Iterator[FakeQuoteProvider]:
    with serving(FakeQuoteProvider({"AAPL": "228.51", "MSFT": "415.30"})) as fake:
        yield fake


def test_trigger_runs_the_producer_now_on_the_running_stack(tmp_path, provider, capsys, monkeypatch):
    # Given a local stack started as `local up --parameter ProducerProviderUrl=...` starts it,
    # with the key from TWELVEDATA_API_KEY (the stack runs in this process, without its functions)
    monkeypatch.setenv("TWELVEDATA_API_KEY", API_KEY)
    parameters = {"ProducerProviderUrl": provider.url, "ProducerSymbols": "AAPL,MSFT"}
    secrets = producer_api_key_secret(parameters)
    workdir = tmp_path / "work"
    options = LocalStackOptions(
        parameter_overrides=parameters, secrets=secrets, outbox=workdir / "outbox", run_functions=False
    )
    stack = LocalStack(options).start()
    try:
        pid = os.getpid()
        LocalState(
            stack.endpoint_url,
            stack.template.region,
            pid,
            stack.names(),
            str(workdir / "outbox"),
            parameters=parameters,
            started=process_start(pid),
        ).write()

        # When
        exit_code = main(["local", "trigger", "ProducerFunction"])

        # Then the quotes are in the stack's stream, and the run's summary is printed
        output = capsys.readouterr()
        assert exit_code == 0, output.err
        summary = json.loads(output.out)
        assert (summary["sent"], summary["secret_error"], summary["provider_error"]) == (2, None, None)
        records = read_stream(stack.session.client("kinesis"), stack.names()["TickStreamName"])
        assert [json.loads(record["data"])["symbol"] for record in records] == ["AAPL", "MSFT"]
        assert provider.requests == [{"path": "/price", "symbol": "AAPL,MSFT", "apikey": API_KEY}]
        # Its metrics went to the stack's function log. (Its log lines do too in a process of its
        # own; here Powertools may keep the handler an earlier test's logger of that name made.)
        log = (workdir / "logs" / "functions.log").read_text()
        assert '"ProducerTicksSent":[2.0]' in log
        # The key is only in the emulator's Secrets Manager: not in the log, the output or the state file.
        assert API_KEY not in log + output.out + output.err + state_path().read_text()
    finally:
        stack.stop()


def test_trigger_refuses_a_function_without_a_schedule_and_needs_a_running_stack(capsys):
    assert main(["local", "trigger", "ProcessorFunction"]) == 2
    assert capsys.readouterr().err == (
        "tickwatch: ProcessorFunction has no schedule (scheduled functions: CompactorFunction, ProducerFunction)\n"
    )
    assert main(["local", "trigger", "NoSuchFunction"]) == 2
    assert "NoSuchFunction is not a function of template.yaml" in capsys.readouterr().err
    assert main(["local", "trigger", "ProducerFunction"]) == 1
    assert capsys.readouterr().err == "tickwatch: no local stack is running; start one with: tickwatch local up\n"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("NoSuchParameter=1", "--parameter NoSuchParameter: template.yaml has no such parameter"),
        ("ProducerProvider=polygon", "--parameter ProducerProvider='polygon': must be one of twelvedata, finnhub"),
        ("ProducerSymbols=aapl", "--parameter ProducerSymbols='aapl': must be comma-separated uppercase symbols"),
        ("ProducerSchedule=rate(1 minutes)", "rate(1 minutes): a value of 1 takes the singular unit, rate(1 minute)"),
        ("ProducerSchedule", "--parameter 'ProducerSchedule': expected NAME=VALUE"),
    ],
)
def test_local_up_refuses_a_parameter_a_deploy_would_refuse(capsys, argument, message):
    assert main(["local", "up", "--parameter", argument]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1


def test_the_producers_local_key_comes_from_the_variable_tickwatch_fetch_reads():
    parameters = {"ProducerProvider": "finnhub"}
    assert producer_api_key_secret(parameters, {"TWELVEDATA_API_KEY": "td", "FINNHUB_API_KEY": " fh\n"}) == {
        LOCAL_PRODUCER_SECRET: "fh"
    }
    assert parameters["ProducerApiKeySecret"] == LOCAL_PRODUCER_SECRET
    # No key: nothing stored (each run then reports the missing secret); a secret named already is kept.
    assert producer_api_key_secret({}, {}) == {}
    named = {"ProducerApiKeySecret": "mine"}
    assert producer_api_key_secret(named, {"TWELVEDATA_API_KEY": "td"}) == {}
    assert named == {"ProducerApiKeySecret": "mine"}
