"""Destinations on the local stack, as a person uses them: `tickwatch destinations add|list|test|
remove`, a rule with `--notify`, ticks through Kinesis, and the alert at the loopback receivers;
`tickwatch deliveries failed` and `replay` for one the receiver refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tickwatch.local.receivers import Fault
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.state import LocalState, process_start, state_path

TELEGRAM_TOKEN = "123456789:AAHfakeTelegramTokenForTests_0123456789"
SIGNING_SECRET = "whsec-local-0123456789abcdef"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("destinations")
    options = LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.1, dynamodb_poll_interval=0.1)
    started = LocalStack(options).start()
    yield started
    started.stop()


@pytest.fixture
def running(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """The stack, findable by the CLI as `tickwatch local up` leaves it. Its functions run in this
    process and make their clients on first use, from this process's environment, which each test
    starts without the emulator's endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    pid = os.getpid()
    names = stack.names()
    outbox = str(stack.options.outbox)  # absolute, as `local up` writes it
    LocalState(stack.endpoint_url, stack.template.region, pid, names, outbox, started=process_start(pid)).write()
    return stack


def cli(_: object, *argv: str) -> tuple[int, str, str]:
    """The command in a process of its own, as a person runs it next to `tickwatch local up`."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "tickwatch", *argv], env=environment, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def put_ticks(stack: LocalStack, symbol: str, *prices: float) -> None:
    kinesis = stack.session.client("kinesis")
    now = datetime.now(UTC)
    records = [
        {
            "Data": json.dumps({"symbol": symbol, "price": price, "timestamp": stamp(now, index)}).encode(),
            "PartitionKey": symbol,
        }
        for index, price in enumerate(prices)
    ]
    kinesis.put_records(StreamName=stack.names()["TickStreamName"], Records=records)


def stamp(now: datetime, milliseconds: int) -> str:
    return (now + timedelta(milliseconds=milliseconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_add_list_test_and_remove_a_destination_with_secrets_masked(running, capsys):
    receivers = running.receivers
    url = receivers.slack_url("team")

    code, out, err = cli(capsys, "destinations", "add", "team", "slack", "--url", url)
    assert code == 0, err
    assert "added destination team (slack http://127.0.0.1:" in out

    code, out, _ = cli(capsys, "destinations", "list")
    assert code == 0
    assert "team" in out
    assert "email" in out
    assert "1/s" in out
    assert url.rsplit("/", 1)[1] not in out  # the webhook's token part

    code, out, err = cli(capsys, "destinations", "test", "team")
    assert code == 0, err
    assert out == "sent a test message to team: the receiver accepted it (HTTP 200)\n"
    (probe,) = receivers.accepted("slack", "BTEAM")
    assert "tickwatch test message for destination 'team'" in probe.json()["text"]

    code, out, _ = cli(capsys, "destinations", "list", "--output", "json")
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert listed["team"]["target"].endswith("/slack/…")

    assert cli(capsys, "destinations", "remove", "team")[0] == 0
    code, _, err = cli(capsys, "destinations", "test", "team")
    assert code == 1
    assert "no destination named 'team'" in err
    assert url not in state_path().read_text()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("x", "slack", "--url", "http://example.com/hook"), "--url: url must be https://"),
        (("x", "webhook", "--url", "https://example.com/hook"), "--secret: a webhook needs a signing secret"),
        (("x", "telegram", "--token", "nope", "--chat-id", "1"), "--token: token is not a Telegram bot token"),
        (("Bad Name", "slack", "--url", "https://example.com/h"), "--name: destination name"),
        (
            ("x", "slack", "--url", "https://example.com/h", "--template", "{volume}"),
            "--template: template placeholder",
        ),
        (("email", "email", "--email", "me@example.com"), "'email' is the alert topic's own"),
    ],
)
def test_a_bad_destination_is_one_line_and_exit_code_2(running, capsys, argv, says):
    code, out, err = cli(capsys, "destinations", "add", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith(f"tickwatch: {says}") or says in err
    assert err.count("\n") == 1


def test_a_rules_alerts_reach_its_destinations_and_a_refused_one_is_parked_then_replayed(running, capsys):
    receivers = running.receivers
    assert (
        cli(
            capsys,
            "destinations",
            "add",
            "ops",
            "webhook",
            "--url",
            receivers.webhook_url("ops"),
            "--secret",
            SIGNING_SECRET,
        )[0]
        == 0
    )
    assert cli(capsys, "destinations", "add", "phone", "telegram", "--token", TELEGRAM_TOKEN, "--chat-id", "77")[0] == 0
    code, out, err = cli(capsys, "rules", "add", "ACME", "--above", "100", "--notify", "ops,phone")
    assert code == 0, err
    assert "to ops, phone" in out
    receivers.fail_next("telegram", "chat:77", Fault(403))  # "bot was blocked by the user"

    put_ticks(running, "ACME", 99.5, 100.5)

    assert wait_for(lambda: len(receivers.accepted("webhook", "ops")) == 1)
    assert json.loads(receivers.accepted("webhook", "ops")[0].body)["alerts"][0]["symbol"] == "ACME"
    assert wait_for(lambda: "phone" in cli(capsys, "deliveries", "failed")[1])
    code, out, err = cli(capsys, "deliveries", "failed", "--output", "json")
    assert code == 0, err
    (parked,) = json.loads(out)
    assert (parked["destination"], parked["symbol"], parked["status"]) == ("phone", "ACME", "failed")
    assert parked["last_error"].startswith("Telegram 403")
    assert TELEGRAM_TOKEN not in out

    code, out, _ = cli(capsys, "deliveries", "replay")
    assert (code, out) == (0, "put 1 failed deliveries back; the delivery function sends them again\n")
    assert wait_for(lambda: len(receivers.accepted("telegram", "chat:77")) == 1)
    assert "ACME traded at 100.5" in receivers.accepted("telegram", "chat:77")[0].json()["text"]
    assert cli(capsys, "deliveries", "failed")[1].startswith("no failed deliveries")
    assert len(receivers.accepted("webhook", "ops")) == 1  # the replay sent only what was parked
    # Every invocation succeeded: nothing was sent by a retry of a failed one.
    assert running.functions["DeliveryFunction"].errors == 0
    assert running.functions["AlertsFunction"].errors == 0
