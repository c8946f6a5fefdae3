"""The `tickwatch` command end to end against moto: help, happy paths, input errors and exit codes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse

from tests.support import BASE_TIME, LambdaContext, StreamReader, kinesis_event, kinesis_records, tick
from tickwatch.cli import main
from tickwatch_core.domain.ticks import validate_tick_document

STACK = "tickwatch-test"


@pytest.fixture
def deployed(aws, stack):
    """A CloudFormation stack whose Outputs name the moto resources, as `sam deploy` would."""
    outputs = {
        "TickStreamName": stack.physical["TickStream"].ref,
        "MarketTableName": stack.physical["MarketTable"].ref,
        "AlertTopicArn": stack.physical["AlertTopic"].ref,
        "RawBucketName": stack.physical["RawBucket"].ref,
        "DeliveryTableName": stack.physical["DeliveryTable"].ref,
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return stack


def tickwatch(aws, *argv: str) -> int:
    return main([*argv], session_factory=lambda: aws)


def stream_records(aws, stream: str) -> list[dict]:
    return [json.loads(record["Data"]) for record in kinesis_records(aws.client("kinesis"), stream)]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["fetch"],
        ["rules"],
        ["rules", "add"],
        ["rules", "list"],
        ["rules", "remove"],
        ["subscribe"],
        ["unsubscribe"],
        ["subscriptions"],
        ["quotes"],
        ["alerts"],
        ["api-key"],
        ["dashboard"],
        ["dashboard", "publish"],
    ],
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: tickwatch {' '.join(command)}".rstrip())


def test_dry_run_writes_valid_json_lines_to_stdout(capsys):
    assert main(["fetch", "--dry-run", "--count", "50", "--seed", "1", "--rate", "0"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 50
    for line in lines:
        validate_tick_document(json.loads(line), received_at=BASE_TIME.now(BASE_TIME.tzinfo))
    assert "sent       50 ticks to stdout" in captured.err


def test_fetch_finds_the_stream_from_the_stack_outputs(aws, deployed):
    assert (
        tickwatch(
            aws, "fetch", "--stack", STACK, "--count", "120", "--rate", "0", "--seed", "9", "--symbols", "AAPL,MSFT"
        )
        == 0
    )
    delivered = stream_records(aws, deployed.physical["TickStream"].ref)
    assert len(delivered) == 120
    assert {d["symbol"] for d in delivered} == {"AAPL", "MSFT"}


def test_fetch_replays_a_file_and_reports_invalid_ticks(aws, deployed, tmp_path, capsys):
    path = tmp_path / "day.csv"
    path.write_text(
        "symbol,timestamp,price,volume\nAAPL,2026-11-20T14:30:00Z,228.5,100\naapl,2026-11-20T14:30:01Z,228.6,100\nAAPL,2026-11-20T14:30:02Z,-1,5\n"
    )
    assert tickwatch(aws, "fetch", "--stack", STACK, "--provider", "replay", "--file", str(path)) == 0
    assert [d["price"] for d in stream_records(aws, deployed.physical["TickStream"].ref)] == [228.5]
    errors = capsys.readouterr().err
    assert "invalid tick not sent: symbol: 'aapl' does not match" in errors
    assert "invalid    2 ticks not sent" in errors


def test_move_and_cross_rules_are_added_and_listed_in_words(aws, deployed, capsys):
    argv = ("rules", "add", "TSLA", "--move-down", "2%", "--within", "15m", "--stack", STACK)
    assert tickwatch(aws, *argv) == 0
    assert "added rule TSLA-move-down-2pct-15m (TSLA moves down 2% within 15m); it is armed" in capsys.readouterr().out
    assert tickwatch(aws, "rules", "add", "NVDA", "--cross-above", "ema:50@5m", "--stack", STACK) == 0
    assert (
        "added rule NVDA-cross-above-ema50-5m (NVDA crosses above ema:50@5m); "
        "it arms once the price is on the other side of the average"
    ) in capsys.readouterr().out
    assert tickwatch(aws, "rules", "list", "--stack", STACK) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split() == ["NVDA-cross-above-ema50-5m", "NVDA", "above", "ema:50@5m", "-", "-", "disarmed", "-"]
    assert listing[2].split() == ["TSLA-move-down-2pct-15m", "TSLA", "down", "2%/15m", "-", "-", "armed", "-"]


def test_rules_add_list_remove(aws, deployed, capsys):
    assert tickwatch(aws, "rules", "add", "AAPL", "--above", "200", "--cooldown", "15m", "--stack", STACK) == 0
    assert tickwatch(aws, "rules", "add", "BRK-B", "--below", "450.5", "--stack", STACK) == 0
    assert "added rule AAPL-above-200 (AAPL above 200, cooldown 15m); it is armed" in capsys.readouterr().out
    assert tickwatch(aws, "rules", "list", "--stack", STACK) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == [
        "RULE", "SYMBOL", "DIRECTION", "LEVEL", "COOLDOWN", "OPTIONS", "STATE", "LAST", "FIRED"
    ]  # fmt: skip
    assert listing[1].split() == ["AAPL-above-200", "AAPL", "above", "200", "15m", "-", "armed", "-"]
    assert listing[2].split() == ["BRK-B-below-450.5", "BRK-B", "below", "450.5", "-", "-", "armed", "-"]
    assert tickwatch(aws, "rules", "remove", "AAPL-above-200", "--stack", STACK) == 0
    assert tickwatch(aws, "rules", "list", "AAPL", "--stack", STACK) == 0
    assert "no rules for AAPL" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rules", "add", "aapl", "--above", "200"], "'aapl' is not a symbol"),
        (["rules", "add", "AAPL", "--above", "0"], "threshold 0 must be a number greater than zero"),
        (["rules", "add", "AAPL", "--below", "-5"], "threshold -5 must be a number greater than zero"),
        (["rules", "add", "AAPL", "--above", "lots"], "threshold 'lots' is not a number"),
        (["rules", "add", "AAPL", "--above", "200", "--rearm", "half"], "--rearm: re-arm margin 'half' is not a"),
        (
            ["rules", "add", "AAPL", "--above", "200", "--tz", "UTC"],
            "--tz: a time zone, weekdays and holidays only go with",
        ),
        (["rules", "add", "AAPL", "--above", "200", "--hours", "9-5"], "--hours: hours '9-5' are not like 09:30-16:00"),
        (["rules", "add", "AAPL", "--above", "200", "--expires", "2020-01-01T00:00Z"], "--expires: expiry 2020-01-01"),
        (["rules", "add", "AAPL", "--below", "0"], "--below: threshold 0 must be"),
        (["rules", "add", "TSLA", "--move-up", "2%"], "--within: a move needs a window, like within 15m"),
        (["rules", "add", "TSLA", "--move-up", "2", "--within", "5m"], "--move-up: move '2' is not a percentage"),
        (["rules", "add", "TSLA", "--above", "2", "--within", "5m"], "--within: within goes with move"),
        (["rules", "add", "NVDA", "--cross-below", "sma:20@2m"], "--cross-below: average 'sma:20@2m': the interval"),
        (["rules", "remove", "AAPL-above-999"], "no rule AAPL-above-999"),
        (["rules", "remove", "not-a-rule"], "is not a rule id"),
        (["subscribe", "not-an-email"], "'not-an-email' is not an e-mail address"),
        (["subscribe", "a@example.com", "--symbols", "AAPL,msft"], "'msft' is not a symbol"),
        (["unsubscribe", "nobody@example.com"], "nobody@example.com has no e-mail subscription"),
        (["quotes", "A/B"], "'A/B' is not a symbol"),
        (["fetch", "--provider", "replay"], "replay needs --file"),
        (["fetch", "--symbols", "AAPL,../x"], "'../x' is not a symbol"),
    ],
)
def test_input_errors_exit_2_with_a_clear_message(aws, deployed, capsys, argv, message):
    assert tickwatch(aws, *argv, "--stack", STACK) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1
    assert "Traceback" not in error


def test_duplicate_rule_exits_2(aws, deployed, capsys):
    tickwatch(aws, "rules", "add", "AAPL", "--above", "200", "--stack", STACK)
    assert tickwatch(aws, "rules", "add", "AAPL", "--above", "200.00", "--stack", STACK) == 2
    assert "rule AAPL-above-200 already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["fetch", "--provider", "yahoo"],
        ["rules", "add", "AAPL"],
        ["fetch", "--count", "0"],
        ["fetch", "--duration", "soon"],
        ["fetch", "--rate", "-1"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_subscribe_with_a_symbol_filter_list_and_unsubscribe(aws, deployed, capsys):
    assert tickwatch(aws, "subscribe", "trader@example.com", "--symbols", "AAPL,MSFT", "--stack", STACK) == 0
    assert "confirmation e-mail" in capsys.readouterr().out
    sns = aws.client("sns")
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=deployed.physical["AlertTopic"].ref)["Subscriptions"]
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"symbol": ["AAPL", "MSFT"]}
    assert attributes["FilterPolicyScope"] == "MessageAttributes"

    assert tickwatch(aws, "subscriptions", "--stack", STACK) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["trader@example.com", "email"]
    assert tickwatch(aws, "unsubscribe", "trader@example.com", "--stack", STACK) == 0
    assert sns.list_subscriptions_by_topic(TopicArn=deployed.physical["AlertTopic"].ref)["Subscriptions"] == []


def test_quotes_and_alerts_show_what_the_pipeline_wrote(aws, deployed, processor_app, alerts_app, capsys):
    tickwatch(aws, "rules", "add", "AAPL", "--above", "200", "--stack", STACK)
    documents = [
        tick("AAPL", 199.5, BASE_TIME, volume=100),
        tick("AAPL", 201.25, BASE_TIME + timedelta(seconds=1), volume=50, bid=201.2, ask=201.3),
        tick("MSFT", 410, BASE_TIME, volume=10),
    ]
    processor_app.lambda_handler(kinesis_event(documents), LambdaContext())
    alerts_app.lambda_handler(
        StreamReader(aws, deployed.physical["MarketTable"].attributes["StreamArn"]).new_event(), LambdaContext()
    )
    capsys.readouterr()

    assert tickwatch(aws, "quotes", "--stack", STACK) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SYMBOL", "LAST", "CHANGE", "BID", "ASK", "DAY", "RANGE", "VOLUME", "AT"]
    assert lines[1].split()[:8] == ["AAPL", "201.25", "+0.88%", "201.2", "201.3", "199.5", "-", "201.25"]
    assert lines[2].split()[:2] == ["MSFT", "410"]

    assert tickwatch(aws, "alerts", "--stack", STACK) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "DELIVERIES"
    # A rule without destinations: its alert was published to the alert topic, as before.
    assert lines[1].split() == [
        "2026-11-20T14:30:01Z",
        "AAPL",
        "above",
        "200",
        "201.25",
        "AAPL-above-200",
        "email",
        "published",
    ]
    assert tickwatch(aws, "alerts", "MSFT", "--stack", STACK) == 0
    assert "no alerts yet for MSFT" in capsys.readouterr().out


def test_missing_stack_is_one_line_saying_what_to_do(aws, capsys):
    assert tickwatch(aws, "rules", "list", "--stack", "nope") == 1
    error = capsys.readouterr().err
    assert error == (
        "tickwatch: stack nope not found in us-east-1: deploy it (sam deploy --guided), "
        "pass --stack/--region, or name resources with --stream/--table/--topic-arn\n"
    )


def test_missing_credentials_is_one_line_saying_what_to_do(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["rules", "list", "--table", "t", "--region", "us-east-1"]) == 1
    assert (
        capsys.readouterr().err
        == "tickwatch: no AWS credentials found: run `aws configure`, set AWS_PROFILE, or pass --profile\n"
    )


def test_provider_without_a_key_says_where_to_put_it(aws, deployed, monkeypatch, capsys):
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    assert tickwatch(aws, "fetch", "--provider", "finnhub", "--stack", STACK) == 1
    assert "finnhub needs an API key: set FINNHUB_API_KEY" in capsys.readouterr().err


def test_explicit_flags_need_no_stack(aws, stack, capsys):
    assert (
        tickwatch(
            aws,
            "rules",
            "add",
            "AAPL",
            "--above",
            "1",
            "--table",
            stack.physical["MarketTable"].ref,
            "--stack",
            "does-not-exist",
        )
        == 0
    )


def test_dlq_list_shows_what_lambda_gave_up_on(aws, deployed, capsys):
    from datetime import UTC, datetime

    from tickwatch.local import events

    record = events.kinesis_record(
        data=b"{}",
        sequence_number="49590338271490256608559692538361571095921575989136588898",
        partition_key="AAPL",
        arrival=datetime.now(UTC),
        shard_id="shardId-000000000003",
        stream_arn="arn:aws:kinesis:us-east-1:123456789012:stream/ticks",
    )
    message = events.on_failure_message(
        records=[record],
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:processor",
        request_id="r-1",
        condition="RetryAttemptsExhausted",
        invoke_count=11,
        function_error="Unhandled",
        shard_id="shardId-000000000003",
    )
    queue = deployed.physical["ProcessorFailureQueue"].ref
    aws.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(message))
    # The stack outputs of `deployed` do not name the queues; the flags do.
    arguments = [
        "--processor-failure-queue",
        queue,
        "--alerts-failure-queue",
        deployed.physical["AlertsFailureQueue"].ref,
        "--delivery-failure-queue",
        deployed.physical["DeliveryFailureQueue"].ref,
    ]
    assert tickwatch(aws, "dlq", "list", "--stack", STACK, *arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FUNCTION", "SOURCE", "SHARD", "SEQUENCE", "RANGE", "RECORDS", "REASON", "AGE"]
    assert lines[1].split()[:5] == [
        "processor",
        "Kinesis",
        "shardId-000000000003",
        "49590338271490256608559692538361571095921575989136588898..49590338271490256608559692538361571095921575989136588898",
        "1",
    ]
    assert "RetryAttemptsExhausted (Unhandled, 11 invocations)" in lines[1]
    assert tickwatch(aws, "dlq", "list", "--stack", STACK, *arguments) == 0  # still there
    assert "processor" in capsys.readouterr().out


def test_local_options_given_before_up_are_kept():
    from pathlib import Path

    from tickwatch.cli import build_parser

    args = build_parser().parse_args(
        ["local", "--workdir", "/tmp/elsewhere", "--alert-symbols", "AAPL", "up", "--port", "5001"]
    )
    assert (args.local_command, args.workdir, args.alert_symbols, args.port) == (
        "up",
        Path("/tmp/elsewhere"),
        "AAPL",
        5001,
    )
    args = build_parser().parse_args(["local", "up"])
    assert (args.workdir, args.alert_symbols) == (Path(".tickwatch"), None)


def test_fetch_fails_when_ticks_stay_in_the_spool(aws, deployed, tmp_path, capsys):
    def throttle_every_record(params, **_):
        count = len(json.loads(params["body"])["Records"])
        failure = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
        answer = {"FailedRecordCount": count, "Records": [failure] * count}
        return AWSResponse(params["url"], 200, {}, None), answer

    aws.events.register("before-call.kinesis.PutRecords", throttle_every_record)
    try:
        code = tickwatch(aws, "fetch", "--stack", STACK, "--count", "20", "--rate", "0", "--spool-dir", str(tmp_path))
    finally:
        aws.events.unregister("before-call.kinesis.PutRecords", throttle_every_record)
    assert code == 1
    assert "20 ticks were not sent; the next fetch sends them first" in capsys.readouterr().err


def test_api_key_prints_the_value_of_the_stack_s_key(aws, capsys):
    gateway = aws.client("apigateway")
    key = gateway.create_api_key(name="tickwatch-query", enabled=True, value="k" * 30)
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"QueryApiKeyId": {"Value": key["id"]}},
    }
    aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    assert tickwatch(aws, "api-key", "--stack", STACK) == 0
    assert capsys.readouterr().out == "k" * 30 + "\n"


def test_api_key_of_a_stack_without_the_query_api_says_to_redeploy(aws, deployed, capsys):
    assert tickwatch(aws, "api-key", "--stack", STACK) == 1
    assert "has no output QueryApiKeyId" in capsys.readouterr().err


def test_rules_add_with_options_says_them_and_the_listing_shows_them(aws, deployed, capsys):
    argv = ["rules", "add", "NVDA", "--above", "150", "--rearm", "0.5%", "--once", "--for", "7d"]
    assert (
        tickwatch(
            aws,
            *argv,
            "--hours",
            "09:30-16:00",
            "--tz",
            "America/New_York",
            "--weekdays",
            "--holidays",
            "NYSE",
            "--stack",
            STACK,
        )
        == 0
    )
    added = capsys.readouterr().out
    assert "added rule NVDA-above-150 (NVDA above 150, re-arm 0.5%, once, until " in added
    assert "09:30-16:00 America/New_York on weekdays, not on NYSE holidays); it is armed" in added
    assert tickwatch(aws, "rules", "list", "NVDA", "--stack", STACK) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert "re-arm 0.5%, once, until " in row
    assert row.split()[-2:] == ["armed", "-"]


def test_rules_add_a_day_change_rule(aws, deployed, capsys):
    assert tickwatch(aws, "rules", "add", "AAPL", "--change-above", "3%", "--stack", STACK) == 0
    assert "added rule AAPL-change-above-3pct (AAPL above +3% on the day); it is armed" in capsys.readouterr().out
    assert tickwatch(aws, "rules", "list", "--stack", STACK) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:4] == ["AAPL-change-above-3pct", "AAPL", "above", "+3%/day"]
    assert tickwatch(aws, "rules", "add", "AAPL", "--change-below", "-2", "--stack", STACK) == 2
    assert "change '-2' is not a percentage like 3% or -2%" in capsys.readouterr().err
