"""The argparse parser of the `tickwatch` command: shared options, help texts and value types."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tickwatch.cli.destinations import add_parsers as add_delivery_parsers
from tickwatch.dlq import FAILURE_QUEUES
from tickwatch_core.domain.rules import parse_duration

PROVIDERS = ("simulator", "replay", "finnhub", "twelvedata")


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
        "--rules",
        type=Path,
        metavar="FILE",
        help="add these rules instead of the demo ones: a YAML or JSON list with the fields of POST /rules",
    )
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
        "up",
        help="keep a local stack running for the other commands",
        description=LOCAL_UP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--port",
        type=_positive_int,
        default=5000,
        help="port of the emulator (default 5000, as events/env.json says); the query API listens on the next one",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter for the local stack, like ProducerSchedule='rate(1 minute)' (repeatable)",
    )
    _add_local_options(up, subcommand=True)
    trigger = local_commands.add_parser(
        "trigger",
        help="invoke a scheduled function of the running local stack now",
        description=LOCAL_TRIGGER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trigger.add_argument("function", help="the function's logical id in template.yaml, like ProducerFunction")
    local_commands.add_parser(
        "down", help="stop the stack `local up` started", description="Stop the running local stack."
    )

    add_delivery_parsers(commands, aws)

    rules = commands.add_parser(
        "rules", help="add, list and remove alert rules", description="Alert rules: see README 'Alert semantics'."
    )
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    add = rule_commands.add_parser(
        "add",
        parents=[aws],
        help="add a rule",
        description="Add a rule; it starts armed (a cross rule once the price is on the other side).",
    )
    add.add_argument("symbol", help="ticker, e.g. AAPL")
    side = add.add_mutually_exclusive_group(required=True)
    side.add_argument("--above", metavar="PRICE", help="fire when the price trades at or above PRICE")
    side.add_argument("--below", metavar="PRICE", help="fire when the price trades at or below PRICE")
    side.add_argument(
        "--change-above", metavar="PERCENT", help="fire when the change from the day's open reaches PERCENT, like 3%%"
    )
    side.add_argument(
        "--change-below", metavar="PERCENT", help="fire when the change from the day's open falls to PERCENT, like -2%%"
    )
    side.add_argument(
        "--move-up", metavar="PERCENT", help="fire on a trade PERCENT above the low of the last --within, like 2%%"
    )
    side.add_argument(
        "--move-down", metavar="PERCENT", help="fire on a trade PERCENT below the high of the last --within, like 2%%"
    )
    side.add_argument(
        "--cross-above", metavar="AVERAGE", help="fire when the price crosses above AVERAGE, like sma:20@1m"
    )
    side.add_argument(
        "--cross-below", metavar="AVERAGE", help="fire when the price crosses below AVERAGE, like ema:50@5m"
    )
    add.add_argument("--within", metavar="DURATION", help="with --move-up/--move-down: the window, like 15m")
    add.add_argument("--cooldown", type=_duration, help="do not re-arm until this long after an alert, like 15m")
    add.add_argument(
        "--rearm", metavar="PERCENT", help="re-arm only once the price is back past the threshold by this, like 0.5%%"
    )
    add.add_argument("--once", action="store_true", help="the rule ends with its first alert")
    until = add.add_mutually_exclusive_group()
    until.add_argument("--expires", metavar="TIME", help="no alert at or after this instant, like 2026-12-31T21:00Z")
    until.add_argument("--for", dest="lasts", metavar="DURATION", help="no alert after this long from now, like 7d")
    add.add_argument("--hours", metavar="HH:MM-HH:MM", help="alerts only inside these hours, like 09:30-16:00")
    add.add_argument("--tz", metavar="ZONE", help="the hours' IANA time zone, like America/New_York (default UTC)")
    add.add_argument("--weekdays", action="store_true", help="with --hours: Monday to Friday only")
    add.add_argument(
        "--holidays", metavar="MARKET", help="with --hours: no alerts on this market's holidays, like NYSE or XLON"
    )
    add.add_argument(
        "--notify",
        metavar="NAMES",
        help="where its alerts go: destinations by name, like ops,phone (default: the alert topic's e-mail)",
    )
    add.add_argument(
        "--template", metavar="TEXT", help="the alert's own words, like '{symbol} {direction} {level}: {price}'"
    )
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
    dlq_list.add_argument("--delivery-failure-queue", help="queue URL (default: the stack's DeliveryFailureQueueUrl)")
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
    dlq_replay.add_argument("--delivery-failure-queue", help="queue URL (default: the stack's DeliveryFailureQueueUrl)")
    dlq_replay.add_argument("--delivery-function", help="function name (default: the stack's DeliveryFunctionName)")
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

    dashboard = commands.add_parser("dashboard", help="the live dashboard's site")
    dashboard_commands = dashboard.add_subparsers(dest="dashboard_command", required=True, metavar="COMMAND")
    publish = dashboard_commands.add_parser(
        "publish",
        parents=[aws],
        help="upload the dashboard to the stack's CloudFront site",
        description="Upload dashboard/ to the stack's DashboardBucket with a config.json naming its query API "
        "and WebSocket API (never the key), and refresh CloudFront. The local stack serves the dashboard itself.",
    )
    publish.add_argument("--dashboard-bucket", help="bucket (default: the stack's DashboardBucketName)")
    publish.add_argument("--distribution-id", dest="dashboard_distribution", help="default: DashboardDistributionId")
    publish.add_argument("--query-api-url", help="default: the stack's QueryApiUrl")
    publish.add_argument("--live-api-url", help="default: the stack's LiveApiUrl")
    publish.add_argument("--dashboard-url", help="default: the stack's DashboardUrl")

    status = commands.add_parser(
        "status",
        parents=[aws],
        help="what the alarms say, failure queues and stream lag",
        description="The state of the stack's alarms, its failure queues' depth and how far each stream consumer "
        "is behind, from CloudWatch and SQS; for a running `tickwatch local up`, what the template's alarms on "
        "function errors, lag and failure queues would say about it.",
    )
    status.add_argument("--processor-failure-queue", help="default: the stack's ProcessorFailureQueueUrl")
    status.add_argument("--alerts-failure-queue", help="default: the stack's AlertsFailureQueueUrl")
    status.add_argument("--delivery-failure-queue", help="default: the stack's DeliveryFailureQueueUrl")
    status.add_argument("--processor-function", help="default: the stack's ProcessorFunctionName")
    status.add_argument("--alerts-function", help="default: the stack's AlertsFunctionName")
    status.add_argument("--broadcast-function", help="default: the stack's BroadcastFunctionName")
    status.add_argument("--delivery-function", help="default: the stack's DeliveryFunctionName")

    history = commands.add_parser("history", help="the tick history in Parquet")
    history_commands = history.add_subparsers(dest="history_command", required=True, metavar="COMMAND")
    compact = history_commands.add_parser(
        "compact",
        parents=[aws],
        help="compact raw ticks into hourly Parquet files now",
        description="Run the hourly compactor's code here, against the stack's bucket (or the local stack's): "
        "each hour whose raw objects changed since its Parquet file was written is compacted again. Without "
        "options, the hours that ended within the look-back window (the template's CompactionLookbackHours).",
    )
    when = compact.add_mutually_exclusive_group()
    when.add_argument("--hour", help="compact this UTC hour, like 2026-11-20T14, even if it is up to date")
    when.add_argument("--since", help="the hours from this UTC hour or day up to the one in progress")
    compact.add_argument("--force", action="store_true", help="compact up-to-date hours again too")
    compact.add_argument("--bucket", help="raw bucket (default: the stack's RawBucketName)")

    sql = commands.add_parser(
        "sql",
        parents=[aws],
        help="SQL over the tick history (Athena, or DuckDB locally)",
        description=SQL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sql.add_argument("query", nargs="?", help="a query in Athena's SQL; - reads it from standard input")
    sql.add_argument("--named", metavar="NAME", help="run a named query of the stack (see --list)")
    sql.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="a named query's parameter, like day=2026-11-20"
    )
    sql.add_argument("--list", action="store_true", help="list the named queries and their parameters")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    sql.add_argument("--bucket", help="local stack only: raw bucket (default: its RawBucketName)")
    sql.add_argument("--workgroup", dest="athena_workgroup", help="default: the stack's AthenaWorkGroupName")
    sql.add_argument("--database", dest="analytics_database", help="default: the stack's AnalyticsDatabaseName")
    return parser


SQL_HELP = """\
Query the tick history in Athena's SQL. Tables: ticks (the Parquet history, one file per UTC hour),
raw_ticks (raw JSON Lines, also hours not compacted yet; may repeat a retried record) and
quarantine (refused records with their reason); each has string partition columns year, month,
day and hour: filter on them to read less.

On AWS the query runs in the stack's Athena workgroup (its scan limit applies) and the data
scanned and its cost are printed. With `tickwatch local up` running, it runs here in DuckDB over
a copy of the local bucket (refreshed when it changes), translated by sqlglot.

examples:
  tickwatch sql "SELECT symbol, count(*) AS ticks FROM ticks WHERE day = '20' GROUP BY symbol"
  tickwatch sql --named daily-ohlcv --param month=2026-11
  tickwatch sql --named intraday-vwap --param symbol=AAPL --param day=2026-11-20 --format csv
"""


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
without flags, and `sam local invoke --env-vars events/env.json` can reach it.

The template's schedules run at their times (the compactor hourly). The scheduled producer's is
off until ProducerSchedule is set; `tickwatch local trigger ProducerFunction` runs it now:
  --parameter ProducerSchedule='rate(1 minute)'        poll every minute
  --parameter ProducerProvider=finnhub                  (default twelvedata)
  --parameter ProducerSymbols=AAPL,MSFT,NVDA
  --parameter ProducerProviderUrl=http://127.0.0.1:8080 a fake provider instead of the real API
The producer's API key is read from TWELVEDATA_API_KEY or FINNHUB_API_KEY (as for tickwatch
fetch) and stored in the local Secrets Manager as tickwatch-local/producer-api-key, which
ProducerApiKeySecret then names; the key is never written to the state file."""

LOCAL_TRIGGER_HELP = """Invoke a scheduled function of the running `tickwatch local up` now, with the event
its schedule sends (disabled schedules too), and print its response.

The function runs in this process, loaded as `local up` loads it: the template's environment with
the parameters `local up` was given, against the stack's emulator, so it reads and writes the same
resources. Its logs go to the stack's WORKDIR/logs/functions.log.
Example: tickwatch local trigger ProducerFunction"""


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
