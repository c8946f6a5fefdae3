"""The `tickwatch` command: feed the pipeline and manage alerts from a terminal.

Exit codes: 0 success, 1 a problem with AWS or the environment (one line says what to do), 2 bad
input (a bad symbol, threshold, e-mail address, rule id, provider or option).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.dlq import (
    FAILURE_QUEUES,
    FUNCTIONS,
    LambdaInvoker,
    describe_age,
    failed_batches,
    replay_queue,
    template_filters,
)
from tickwatch.resources import REPOSITORY_ROOT, AwsContext, CliError, InputError, explain
from tickwatch.template import load_template
from tickwatch_core import items
from tickwatch_core.dynamodb import batch_get, keys_by_kind
from tickwatch_core.rule_store import RuleStore, UnknownRuleError
from tickwatch_core.rules import (
    Direction,
    format_decimal,
    format_duration,
    parse_duration,
    parse_threshold,
    validate_symbol,
)

PROVIDERS = ("simulator", "replay", "finnhub", "twelvedata")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def default_spool_dir() -> Path:
    """Where ticks wait while the stream is unreachable: $XDG_CACHE_HOME/tickwatch/spool."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwatch" / "spool"


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    aws = argparse.ArgumentParser(add_help=False)
    group = aws.add_argument_group("AWS")
    group.add_argument("--stack", help="stack whose outputs name the resources (default: samconfig.toml's stack)")
    group.add_argument("--region", help="AWS region (default: your AWS configuration)")
    group.add_argument("--profile", help="AWS profile")

    parser = argparse.ArgumentParser(
        prog="tickwatch",
        description="Feed the tickwatch pipeline with ticks and manage price alerts.",
        epilog="Set AWS_ENDPOINT_URL to use a local emulator instead of AWS.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser(
        "fetch",
        parents=[aws],
        help="put ticks into the stream",
        description=FETCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_fetch_options(fetch)
    fetch.add_argument("--stream", help="Kinesis stream name (default: the stack's TickStreamName)")
    fetch.add_argument("--dry-run", action="store_true", help="write JSON Lines to stdout instead of Kinesis")
    fetch.add_argument(
        "--spool-dir",
        type=Path,
        help="where ticks wait while the stream is unreachable (default $XDG_CACHE_HOME/tickwatch/spool)",
    )

    local = commands.add_parser(
        "local",
        help="run the whole pipeline on this machine",
        description=LOCAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_fetch_options(local)
    local.add_argument("--no-demo-rules", action="store_true", help="do not add the demo alert rules")
    local.add_argument(
        "--faults",
        help="inject faults at these rates: aws=RATE (or s3=, dynamodb=, sns=) for throttling and 5xx on each call, "
        "crash= and timeout= per AWS call of a function, poison= per record; like aws=0.05,crash=0.01",
    )
    local.add_argument("--fault-seed", type=int, default=0, help="seed of the injected faults (default 0)")
    local.add_argument("--function-timeout", type=_positive_float, help="seconds, instead of the template's Timeout")
    _add_local_options(local)
    local.add_argument(
        "--kinesis-poll-interval",
        type=_positive_float,
        help="seconds between reads of an idle Kinesis shard (default 1, as AWS)",
    )
    local.add_argument(
        "--dynamodb-poll-interval",
        type=_positive_float,
        help="seconds between reads of an idle DynamoDB stream shard (default 0.25)",
    )
    local_commands = local.add_subparsers(dest="local_command", metavar="SUBCOMMAND")
    up = local_commands.add_parser(
        "up", help="keep a local stack running for the other commands", description=LOCAL_UP_HELP
    )
    up.add_argument(
        "--port",
        type=_positive_int,
        default=5000,
        help="port of the emulator (default 5000, as events/env.json says); the query API listens on the next one",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    _add_local_options(up, subcommand=True)
    local_commands.add_parser(
        "down", help="stop the stack `local up` started", description="Stop the running local stack."
    )

    rules = commands.add_parser(
        "rules", help="add, list and remove alert rules", description="Threshold rules: see README 'Alert semantics'."
    )
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    add = rule_commands.add_parser("add", parents=[aws], help="add a rule", description="Add a rule; it starts armed.")
    add.add_argument("symbol", help="ticker, e.g. AAPL")
    side = add.add_mutually_exclusive_group(required=True)
    side.add_argument("--above", metavar="PRICE", help="fire when the price trades at or above PRICE")
    side.add_argument("--below", metavar="PRICE", help="fire when the price trades at or below PRICE")
    add.add_argument("--cooldown", type=_duration, help="do not re-arm until this long after an alert, like 15m")
    add.add_argument("--table", help="market table (default: the stack's MarketTableName)")
    listing = rule_commands.add_parser(
        "list", parents=[aws], help="list rules", description="List rules and their state."
    )
    listing.add_argument("symbol", nargs="?", help="only this symbol's rules")
    listing.add_argument("--table", help="market table (default: the stack's MarketTableName)")
    remove = rule_commands.add_parser(
        "remove", parents=[aws], help="remove a rule", description="Remove a rule by its id."
    )
    remove.add_argument("rule_id", help="rule id as `rules list` shows it, e.g. AAPL-above-200")
    remove.add_argument("--table", help="market table (default: the stack's MarketTableName)")

    subscribe = commands.add_parser(
        "subscribe",
        parents=[aws],
        help="e-mail alerts to an address",
        description="Subscribe an e-mail address to alerts.",
    )
    subscribe.add_argument("email")
    subscribe.add_argument("--symbols", help="comma-separated symbols to receive alerts for (default: all)")
    subscribe.add_argument("--topic-arn", help="alert topic (default: the stack's AlertTopicArn)")
    unsubscribe = commands.add_parser(
        "unsubscribe", parents=[aws], help="stop e-mailing an address", description="Remove an e-mail subscription."
    )
    unsubscribe.add_argument("email")
    unsubscribe.add_argument("--topic-arn", help="alert topic (default: the stack's AlertTopicArn)")
    subscriptions = commands.add_parser(
        "subscriptions", parents=[aws], help="list subscriptions", description="List the alert topic's subscriptions."
    )
    subscriptions.add_argument("--topic-arn", help="alert topic (default: the stack's AlertTopicArn)")

    dlq = commands.add_parser(
        "dlq",
        help="batches the functions gave up on",
        description="The functions' on-failure queues (dead-letter queues).",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="SUBCOMMAND")
    dlq_list = dlq_commands.add_parser(
        "list",
        parents=[aws],
        help="what is in each function's on-failure queue",
        description="List the batches Lambda gave up on: function, shard, sequence range, reason and age. "
        "Nothing is removed from the queues.",
    )
    dlq_list.add_argument("--function", choices=sorted(FAILURE_QUEUES), help="only this function's queue")
    dlq_list.add_argument("--processor-failure-queue", help="queue URL (default: the stack's ProcessorFailureQueueUrl)")
    dlq_list.add_argument("--alerts-failure-queue", help="queue URL (default: the stack's AlertsFailureQueueUrl)")
    dlq_replay = dlq_commands.add_parser(
        "replay",
        parents=[aws],
        help="process the failed batches again",
        description="Re-read the records of each failed batch from its Kinesis or DynamoDB stream and run them "
        "through the function again (Lambda Invoke on AWS, in-process on the local stack). A batch that succeeds "
        "is deleted from the queue; one that fails again stays, from its first failed record, with the reason; "
        "records past the stream's retention are reported and their message stays. Exit code 1 if any batch "
        "is left.",
    )
    dlq_replay.add_argument("--function", choices=sorted(FAILURE_QUEUES), help="only this function's queue")
    dlq_replay.add_argument("--dry-run", action="store_true", help="read and report; invoke and delete nothing")
    dlq_replay.add_argument(
        "--processor-failure-queue", help="queue URL (default: the stack's ProcessorFailureQueueUrl)"
    )
    dlq_replay.add_argument("--alerts-failure-queue", help="queue URL (default: the stack's AlertsFailureQueueUrl)")
    dlq_replay.add_argument("--processor-function", help="function name (default: the stack's ProcessorFunctionName)")
    dlq_replay.add_argument("--alerts-function", help="function name (default: the stack's AlertsFunctionName)")

    quotes = commands.add_parser(
        "quotes", parents=[aws], help="latest quotes and today's range", description="Latest quotes as a table."
    )
    quotes.add_argument("symbols", nargs="*", help="symbols (default: every symbol with a quote)")
    quotes.add_argument("--table", help="market table (default: the stack's MarketTableName)")
    alerts = commands.add_parser(
        "alerts", parents=[aws], help="recent alert history", description="Recent alerts, newest first."
    )
    alerts.add_argument("symbol", nargs="?", help="only this symbol's alerts")
    alerts.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")
    alerts.add_argument("--table", help="market table (default: the stack's MarketTableName)")
    api_key = commands.add_parser(
        "api-key",
        parents=[aws],
        help="print the query API's key",
        description="Print the value of the query API's key (send it as the x-api-key header): the stack's "
        "QueryApiKeyId through API Gateway, or the key of a running `tickwatch local up`.",
    )
    api_key.add_argument("--key-id", dest="query_api_key_id", help="API key id (default: the stack's QueryApiKeyId)")
    return parser


def _add_fetch_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and shape the tick provider (shared by `fetch` and `local`)."""
    parser.add_argument(
        "--provider", choices=PROVIDERS, default="simulator", help="where ticks come from (default: simulator)"
    )
    parser.add_argument(
        "--symbols",
        help="comma-separated symbols; for the simulator SYMBOL=PRICE sets a start price (default: 20 large US stocks)",
    )
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument(
        "--rate",
        type=_non_negative_float,
        default=None,
        help="simulator: ticks per second in total, 0 for as fast as possible (default 50)",
    )
    rate.add_argument("--rate-per-symbol", type=_positive_float, help="simulator: ticks per second for each symbol")
    parser.add_argument("--seed", type=int, help="simulator: seed for a reproducible run")
    parser.add_argument(
        "--file", type=Path, help="replay: CSV (symbol,timestamp,price[,volume,bid,ask]) or JSON Lines file"
    )
    parser.add_argument(
        "--speed",
        type=_non_negative_float,
        default=0.0,
        help="replay: N times the recorded pace (default 0: as fast as possible)",
    )
    parser.add_argument("--shift-to-now", action="store_true", help="replay: move timestamps so the first tick is now")
    parser.add_argument(
        "--api-key-secret",
        help="finnhub/twelvedata: Secrets Manager secret with the API key (default: the FINNHUB_API_KEY "
        "or TWELVEDATA_API_KEY variable)",
    )
    parser.add_argument(
        "--credits-per-minute",
        type=_positive_int,
        default=8,
        help="twelvedata: API credits your plan allows a minute (free plan: 8)",
    )
    parser.add_argument("--duration", type=_duration, help="stop after this long, like 30s, 10m, 1h")
    parser.add_argument("--count", type=_positive_int, help="stop after this many ticks")


def _add_local_options(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    # On `local up` these repeat `local`'s options; SUPPRESS keeps them from resetting what was
    # given before the subcommand (`tickwatch local --workdir X up`).
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if subcommand else {}
    parser.add_argument(
        "--alert-symbols",
        **default,
        help="symbols the local inbox gets alerts for, like the AlertSymbols parameter (default: all)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        **(default or {"default": Path(".tickwatch")}),
        help="where the outbox, logs and spool go (default .tickwatch)",
    )


LOCAL_HELP = """Run the whole pipeline on this machine, on an embedded AWS (moto), with no AWS account.

Creates every resource template.yaml declares, runs both functions in-process with emulated event
source mappings, feeds the stream with `tickwatch fetch`'s providers (the simulator by default), and
shows the alerts an e-mail subscriber would get (saved as .eml files in WORKDIR/outbox).
Runs for --duration or until Ctrl-C, then summarises. `local up` keeps a stack running instead."""

LOCAL_UP_HELP = """Keep a local stack running until Ctrl-C or `tickwatch local down`.

Its endpoint and resource names go to a state file, so every other tickwatch command uses it
without flags, and `sam local invoke --env-vars events/env.json` can reach it."""


FETCH_HELP = """Put ticks into the Kinesis stream.

providers:
  simulator   realistic trades (random walk with momentum and mean reversion, 0.02 % spread,
              occasional large trades); --rate, --rate-per-symbol, --seed, --symbols
  replay      a CSV or JSON Lines file; --file, --speed, --shift-to-now
  finnhub     real-time trades over Finnhub's WebSocket API; key in FINNHUB_API_KEY
  twelvedata  quotes polled from Twelve Data's REST API within --credits-per-minute;
              key in TWELVEDATA_API_KEY

Every tick is validated against the tick schema before it is sent; invalid ones are reported.
If the stream is unreachable, ticks wait in a spool file and are sent when it is back.
Ctrl-C or SIGTERM flush before exiting."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than zero")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than zero")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of at least zero")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


FAULT_FUNCTION_TIMEOUT = 5.0

# --- entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, session_factory: Any = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    context = AwsContext(
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        stack=getattr(args, "stack", None),
        overrides={
            name: getattr(args, name, None)
            for name in (
                "stream",
                "table",
                "topic_arn",
                "processor_failure_queue",
                "alerts_failure_queue",
                "processor_function",
                "alerts_function",
                "query_api_key_id",
            )
        },
        session_factory=session_factory,
    )
    subcommand = {"rules": "rules_command", "dlq": "dlq_command"}.get(args.command)
    handler = COMMANDS[f"{args.command} {getattr(args, subcommand)}" if subcommand else args.command]
    try:
        return handler(args, context)
    except KeyboardInterrupt:
        print("tickwatch: interrupted", file=sys.stderr)
        return 130
    except CliError as error:
        print(f"tickwatch: {error}", file=sys.stderr)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        print(f"tickwatch: {explain(error)}", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


# --- fetch --------------------------------------------------------------------------------------


def command_fetch(args: argparse.Namespace, context: AwsContext) -> int:
    from tickwatch.fetch.runner import Progress, describe, run_fetch, stop_on_signals
    from tickwatch.fetch.writer import DryRunWriter, KinesisWriter, Spool, StreamUnavailable

    progress = Progress()
    provider = _build_provider(args, context, progress)
    if args.dry_run:
        writer: Any = DryRunWriter()
        destination, spool_path = "stdout", None
    else:
        stream = context.resource("stream")
        # The writer retries failed records itself, with backoff and a spool; SDK retries on top
        # would only delay noticing an outage.
        kinesis = context.client("kinesis", config=Config(retries={"mode": "standard", "max_attempts": 1}))
        spool_dir = args.spool_dir or default_spool_dir()
        try:
            spool = Spool(spool_dir / f"{stream}.jsonl")
        except OSError as error:
            raise CliError(f"cannot use the spool directory {spool_dir}: {error.strerror}; pass --spool-dir") from None
        if spool.pending:
            progress.problem(f"sending {spool.pending:,} ticks spooled by an earlier run first")
        try:
            writer = KinesisWriter(kinesis, stream, spool)
        except StreamUnavailable as error:
            raise CliError(f"{error}: check --stream/--stack/--region") from None
        destination, spool_path = stream, spool.path

    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            summary = run_fetch(provider, writer, progress, count=args.count, duration=args.duration, stop=stop)
    except StreamUnavailable as error:
        waiting = writer.spool.pending if getattr(writer, "spool", None) is not None else 0
        raise CliError(f"{error}; {waiting:,} unsent ticks wait in {spool_path} for the next run") from None
    except _provider_errors() as error:
        raise CliError(str(error)) from None
    pending = writer.spool.pending if writer.spool is not None else 0
    progress.finish(describe(summary, writer.stats, destination, spool_path, pending))
    if pending:
        # Nothing is lost, but the run did not do its job: a script or CI step must see that.
        print(f"tickwatch: {pending:,} ticks were not sent; the next fetch sends them first", file=sys.stderr)
        return 1
    return 0


def _provider_errors() -> tuple[type[Exception], ...]:
    from tickwatch.fetch.keys import ApiKeyError
    from tickwatch.fetch.providers import ProviderError

    return (ProviderError, ApiKeyError)


def _build_provider(args: argparse.Namespace, context: AwsContext, progress: Any) -> Any:
    from tickwatch.fetch.keys import ApiKeyError, api_key
    from tickwatch.fetch.providers import (
        FinnhubTradesProvider,
        ReplayProvider,
        SimulatorProvider,
        TwelveDataQuotesProvider,
    )
    from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator, parse_symbols

    try:
        symbols = parse_symbols(args.symbols) if args.symbols else dict(DEFAULT_SYMBOLS)
    except ValueError as error:
        raise InputError(str(error)) from None
    if args.provider != "simulator" and (args.seed is not None or args.rate is not None or args.rate_per_symbol):
        raise InputError(f"--seed, --rate and --rate-per-symbol are simulator options, not {args.provider}'s")
    if args.provider == "simulator":
        rate = (
            args.rate_per_symbol * len(symbols) if args.rate_per_symbol else (50.0 if args.rate is None else args.rate)
        )
        return SimulatorProvider(MarketSimulator(symbols=symbols, seed=args.seed), rate=rate)
    if args.provider == "replay":
        if args.file is None:
            raise InputError("replay needs --file (a CSV or JSON Lines file of ticks)")
        if not args.file.is_file():
            raise InputError(f"replay file {args.file} does not exist")
        return ReplayProvider(args.file, speed=args.speed, shift_to_now=args.shift_to_now, report=_report(progress))
    try:
        key = api_key(args.provider, secret_id=args.api_key_secret, session=context.session)
    except ApiKeyError as error:
        raise CliError(str(error)) from None
    if args.provider == "finnhub":
        url = os.environ.get("TICKWATCH_FINNHUB_URL", "wss://ws.finnhub.io")
        return FinnhubTradesProvider(key, list(symbols), url=url, report=_report(progress))
    url = os.environ.get("TICKWATCH_TWELVEDATA_URL", "https://api.twelvedata.com")
    return TwelveDataQuotesProvider(
        key, list(symbols), credits_per_minute=args.credits_per_minute, url=url, report=_report(progress)
    )


# --- local --------------------------------------------------------------------------------------


def command_local(args: argparse.Namespace, context: AwsContext) -> int:
    from tickwatch.local import run

    overrides = {}
    if args.alert_symbols:
        symbols = [_check_symbol(s.strip()) for s in args.alert_symbols.split(",") if s.strip()]
        overrides["AlertSymbols"] = ",".join(symbols)
    if args.local_command == "up":
        return run.run_up(workdir=args.workdir, host=args.host, port=args.port, parameter_overrides=overrides)
    if args.local_command == "down":
        return run.run_down()

    from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, parse_symbols

    try:
        symbols = parse_symbols(args.symbols) if args.symbols else dict(DEFAULT_SYMBOLS)
    except ValueError as error:
        raise InputError(str(error)) from None
    _build_provider(args, context, None)  # check the provider's options before starting anything
    faults = None
    if args.faults:
        from tickwatch.local.faults import FaultPlan

        try:
            faults = FaultPlan.parse(args.faults, seed=args.fault_seed)
        except ValueError as error:
            raise InputError(str(error)) from None
        if faults.rate("timeout") > 0 and args.function_timeout is None:
            # An injected timeout hangs past the function's timeout: the template's would stall
            # the run for a minute at every one.
            args.function_timeout = FAULT_FUNCTION_TIMEOUT
            print(f"tickwatch: --faults timeout=: functions time out after {FAULT_FUNCTION_TIMEOUT:.0f} s "
                  "(pass --function-timeout to change)", file=sys.stderr)  # fmt: skip
    try:
        return run.run_demo(
            workdir=args.workdir,
            build_provider=lambda screen: _build_provider(args, context, screen.progress),
            start_prices=symbols if args.provider == "simulator" else {},
            demo_rules=not args.no_demo_rules,
            count=args.count,
            duration=args.duration,
            parameter_overrides=overrides,
            kinesis_poll_interval=args.kinesis_poll_interval,
            dynamodb_poll_interval=args.dynamodb_poll_interval,
            faults=faults,
            function_timeout=args.function_timeout,
        )
    except _provider_errors() as error:
        raise CliError(str(error)) from None


# --- rules --------------------------------------------------------------------------------------


def _report(progress: Any) -> Any:
    return progress.provider_problem if progress is not None else (lambda message: None)


def _rule_store(context: AwsContext) -> RuleStore:
    return RuleStore(context.client("dynamodb"), context.resource("table"))


def command_rules_add(args: argparse.Namespace, context: AwsContext) -> int:
    direction, threshold = (Direction.ABOVE, args.above) if args.above is not None else (Direction.BELOW, args.below)
    cooldown = timedelta(seconds=args.cooldown) if args.cooldown else None
    # Check the input before looking up the stack, so a typo is reported as such.
    _check_symbol(args.symbol)
    try:
        parse_threshold(threshold)
        rule = _rule_store(context).add(args.symbol, direction, threshold, cooldown=cooldown)
    except ValueError as error:  # including RuleExistsError
        raise InputError(str(error)) from None
    extra = f", cooldown {format_duration(rule.cooldown)}" if rule.cooldown else ""
    print(f"added rule {rule.rule_id} ({rule.describe()}{extra}); it is armed")
    return 0


def command_rules_list(args: argparse.Namespace, context: AwsContext) -> int:
    if args.symbol:
        _check_symbol(args.symbol)
    stored = _rule_store(context).list(args.symbol)
    if not stored:
        print(
            "no rules"
            + (f" for {args.symbol}" if args.symbol else "")
            + "; add one with: tickwatch rules add SYMBOL --above PRICE"
        )
        return 0
    rows = [
        (
            entry.rule.rule_id,
            entry.rule.symbol,
            entry.rule.direction.value,
            format_decimal(entry.rule.threshold),
            format_duration(entry.rule.cooldown) if entry.rule.cooldown else "-",
            "armed" if entry.state.armed else "disarmed",
            _time(entry.state.last_fired_at) if entry.state.last_fired_at else "-",
        )
        for entry in stored
    ]
    print(format_table(("RULE", "SYMBOL", "DIRECTION", "THRESHOLD", "COOLDOWN", "STATE", "LAST FIRED"), rows))
    return 0


def command_rules_remove(args: argparse.Namespace, context: AwsContext) -> int:
    try:
        rule = _rule_store(context).remove(args.rule_id)
    except (UnknownRuleError, ValueError) as error:
        raise InputError(str(error)) from None
    print(f"removed rule {rule.rule_id} ({rule.describe()})")
    return 0


# --- subscriptions ------------------------------------------------------------------------------


def command_subscribe(args: argparse.Namespace, context: AwsContext) -> int:
    email = _check_email(args.email)
    symbols = [_check_symbol(s.strip()) for s in args.symbols.split(",") if s.strip()] if args.symbols else []
    if args.symbols is not None and not symbols:
        raise InputError("--symbols is empty; leave it out to receive alerts for every symbol")
    topic_arn = context.resource("topic_arn")
    sns = context.client("sns")
    attributes = {}
    if symbols:
        attributes = {"FilterPolicy": json.dumps({"symbol": symbols}), "FilterPolicyScope": "MessageAttributes"}
    existing = _email_subscription(sns, topic_arn, email)
    if existing and existing["SubscriptionArn"] != "PendingConfirmation":
        sns.set_subscription_attributes(
            SubscriptionArn=existing["SubscriptionArn"],
            AttributeName="FilterPolicy",
            AttributeValue=attributes.get("FilterPolicy", "{}"),
        )
        print(f"{email} is already subscribed; it now receives alerts for {_symbols_text(symbols)}")
        return 0
    sns.subscribe(
        TopicArn=topic_arn, Protocol="email", Endpoint=email, Attributes=attributes, ReturnSubscriptionArn=True
    )
    print(
        f"subscribed {email} to alerts for {_symbols_text(symbols)}.\n"
        "AWS has sent it a confirmation e-mail ('AWS Notification - Subscription Confirmation'): open it and "
        "click 'Confirm subscription'. No alert is delivered before that; the link is valid for 3 days."
    )
    return 0


def command_unsubscribe(args: argparse.Namespace, context: AwsContext) -> int:
    email = _check_email(args.email)
    sns = context.client("sns")
    existing = _email_subscription(sns, context.resource("topic_arn"), email)
    if existing is None:
        raise InputError(f"{email} has no e-mail subscription to the alert topic")
    if existing["SubscriptionArn"] == "PendingConfirmation":
        raise CliError(
            f"{email} has not confirmed its subscription yet; SNS cannot remove a pending subscription, "
            "it lapses by itself 3 days after it was requested"
        )
    sns.unsubscribe(SubscriptionArn=existing["SubscriptionArn"])
    print(f"unsubscribed {email}")
    return 0


def command_subscriptions(args: argparse.Namespace, context: AwsContext) -> int:
    sns = context.client("sns")
    rows = []
    for subscription in _subscriptions(sns, context.resource("topic_arn")):
        arn = subscription["SubscriptionArn"]
        symbols = "all"
        if arn != "PendingConfirmation" and arn.startswith("arn:"):
            attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            policy = json.loads(attributes.get("FilterPolicy") or "{}")
            symbols = ",".join(policy.get("symbol", [])) or "all"
        status = "pending confirmation" if arn == "PendingConfirmation" else "confirmed"
        rows.append((subscription["Endpoint"], subscription["Protocol"], status, symbols))
    if not rows:
        print("no subscriptions; add one with: tickwatch subscribe EMAIL")
        return 0
    print(format_table(("ENDPOINT", "PROTOCOL", "STATUS", "SYMBOLS"), rows))
    return 0


def _subscriptions(sns: Any, topic_arn: str) -> list[dict]:
    found = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        found += page.get("Subscriptions", [])
    return found


def _email_subscription(sns: Any, topic_arn: str, email: str) -> dict | None:
    for subscription in _subscriptions(sns, topic_arn):
        if subscription["Protocol"] == "email" and subscription["Endpoint"].lower() == email.lower():
            return subscription
    return None


def _symbols_text(symbols: list[str]) -> str:
    return ", ".join(symbols) if symbols else "every symbol"


# --- dead-letter queues -------------------------------------------------------------------------


def command_dlq_list(args: argparse.Namespace, context: AwsContext) -> int:
    sqs = context.client("sqs")
    rows = []
    for function in sorted(FAILURE_QUEUES):
        if args.function and function != args.function:
            continue
        url = context.resource(f"{function}_failure_queue")
        for batch in failed_batches(sqs, url, function):
            info = batch.info
            rows.append(
                (
                    function,
                    batch.source,
                    info.get("shardId", "-"),
                    f"{info.get('startSequenceNumber', '?')}..{info.get('endSequenceNumber', '?')}",
                    info.get("batchSize", "?"),
                    batch.reason,
                    describe_age(batch.age()),
                )
            )
    if not rows:
        print("the on-failure queues are empty: no batch was given up on")
        return 0
    print(format_table(("FUNCTION", "SOURCE", "SHARD", "SEQUENCE RANGE", "RECORDS", "REASON", "AGE"), rows))
    return 0


def command_dlq_replay(args: argparse.Namespace, context: AwsContext) -> int:
    functions = [name for name in sorted(FAILURE_QUEUES) if not args.function or name == args.function]
    sqs, kinesis, streams = context.client("sqs"), context.client("kinesis"), context.client("dynamodbstreams")
    queues = {name: context.resource(f"{name}_failure_queue") for name in functions}
    template_body = load_template(REPOSITORY_ROOT / "template.yaml")  # the FilterCriteria Lambda applied
    attached = None
    if args.dry_run:
        invoker: Any = None
    elif context.local is not None:
        from tickwatch.local.functions import LocalInvoker
        from tickwatch.local.stack import LocalStack, LocalStackOptions

        attached = LocalStack(
            LocalStackOptions(endpoint_url=context.local.endpoint_url, parameter_overrides=context.local.parameters)
        ).attach()
        invoker = LocalInvoker({name: attached.functions[FUNCTIONS[name][0]] for name in FUNCTIONS})
    else:
        names = {name: context.resource(f"{name}_function") for name in functions}
        invoker = LambdaInvoker(context.client("lambda", Config(read_timeout=900)), names)
    try:
        outcomes = [
            outcome
            for name in functions
            for outcome in replay_queue(
                sqs,
                queues[name],
                name,
                kinesis=kinesis,
                streams=streams,
                invoke=invoker,
                filters=template_filters(template_body, FUNCTIONS[name][0]),
                dry_run=args.dry_run,
            )
        ]
    finally:
        if attached is not None:
            attached.stop()
    if not outcomes:
        print("the on-failure queues are empty: nothing to replay")
        return 0
    rows = [
        (
            outcome.batch.function,
            outcome.batch.info.get("shardId", "-"),
            f"{outcome.batch.info.get('startSequenceNumber', '?')}..{outcome.batch.info.get('endSequenceNumber', '?')}",
            outcome.records,
            outcome.status,
            outcome.detail,
        )
        for outcome in outcomes
    ]
    print(format_table(("FUNCTION", "SHARD", "SEQUENCE RANGE", "RECORDS", "OUTCOME", "DETAIL"), rows))
    counts = Counter(outcome.status for outcome in outcomes)
    print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return 0 if all(outcome.done for outcome in outcomes) else 1


# --- quotes and alerts --------------------------------------------------------------------------


def command_quotes(args: argparse.Namespace, context: AwsContext) -> int:
    symbols = [_check_symbol(symbol) for symbol in args.symbols]
    dynamodb, table = context.client("dynamodb"), context.resource("table")
    keys = [items.quote_key(symbol) for symbol in symbols] if symbols else keys_by_kind(dynamodb, table, "QUOTE")
    found = {values["symbol"]: values for values in batch_get(dynamodb, table, keys).values()}
    if not found:
        print(
            "no quotes yet"
            + (f" for {', '.join(symbols)}" if symbols else "")
            + "; feed the pipeline with: tickwatch fetch"
        )
        return 0 if not symbols else 1
    today = datetime.now(UTC).date().isoformat()
    rows = []
    for symbol in symbols or sorted(found):
        values = found.get(symbol)
        if values is None:
            rows.append((symbol, "-", "-", "-", "-", "no quote yet", "-", "-"))
            continue
        change = (values["price"] - values["day_open"]) / values["day_open"] * 100
        day = "today" if values["day"] == today else values["day"]
        rows.append(
            (
                symbol,
                format_decimal(values["price"]),
                f"{change:+.2f}%",
                _optional(values.get("bid")),
                _optional(values.get("ask")),
                f"{format_decimal(values['day_low'])} - {format_decimal(values['day_high'])} ({day})",
                f"{int(values['day_volume']):,}",
                values["at"],
            )
        )
    print(format_table(("SYMBOL", "LAST", "CHANGE", "BID", "ASK", "DAY RANGE", "VOLUME", "AT"), rows))
    return 0


def command_alerts(args: argparse.Namespace, context: AwsContext) -> int:
    dynamodb, table = context.client("dynamodb"), context.resource("table")
    if args.symbol:
        response = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": items.symbol_pk(_check_symbol(args.symbol))},
                ":prefix": {"S": items.ALERT_PREFIX},
            },
            ScanIndexForward=False,
            Limit=args.limit,
        )
        alerts = [items.deserialize(item) for item in response.get("Items", [])]
    else:
        keys = keys_by_kind(dynamodb, table, "ALERT", newest_first=True, limit=args.limit)
        alerts = list(batch_get(dynamodb, table, keys).values())
    alerts.sort(key=lambda alert: alert["fired_at"], reverse=True)
    if not alerts:
        print("no alerts yet" + (f" for {args.symbol}" if args.symbol else ""))
        return 0
    rows = [
        (
            alert["fired_at"],
            alert["symbol"],
            alert["direction"],
            format_decimal(alert["threshold"]),
            format_decimal(alert["price"]),
            alert["rule_id"],
        )
        for alert in alerts[: args.limit]
    ]
    print(format_table(("FIRED AT", "SYMBOL", "DIRECTION", "THRESHOLD", "PRICE", "RULE"), rows))
    return 0


# --- helpers ------------------------------------------------------------------------------------


def _check_symbol(symbol: str) -> str:
    try:
        return validate_symbol(symbol)
    except ValueError as error:
        raise InputError(str(error)) from None


def _check_email(email: str) -> str:
    if not EMAIL_PATTERN.match(email):
        raise InputError(f"{email!r} is not an e-mail address")
    return email


def _optional(value: Decimal | None) -> str:
    return "-" if value is None else format_decimal(value)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)


def command_api_key(args: argparse.Namespace, context: AwsContext) -> int:
    if context.local is not None and not args.query_api_key_id:
        key = context.local.outputs.get("QueryApiKey")
        if not key:
            raise CliError("the running local stack serves no query API: restart it (tickwatch local down, then up)")
        print(key)
        return 0
    key_id = context.resource("query_api_key_id")
    try:
        print(context.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])
    except (ClientError, BotoCoreError) as error:
        raise explain(error) from None
    return 0


COMMANDS = {
    "fetch": command_fetch,
    "local": command_local,
    "rules add": command_rules_add,
    "rules list": command_rules_list,
    "rules remove": command_rules_remove,
    "subscribe": command_subscribe,
    "unsubscribe": command_unsubscribe,
    "subscriptions": command_subscriptions,
    "dlq list": command_dlq_list,
    "dlq replay": command_dlq_replay,
    "quotes": command_quotes,
    "alerts": command_alerts,
    "api-key": command_api_key,
}
