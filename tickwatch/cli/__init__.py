"""The `tickwatch` command: feed the pipeline and manage alerts from a terminal.

Exit codes: 0 success, 1 a problem with AWS or the environment (one line says what to do), 2 bad
input (a bad symbol, threshold, e-mail address, rule id, provider or option).

The parser is in parser.py; the commands are in fetch.py, local.py, rules.py (rules and e-mail
subscriptions), failures.py (dlq), reads.py (quotes, alerts, api-key), dashboard.py (dashboard
publish), history.py (history compact), sql.py (sql) and status.py (status).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.cli.dashboard import command_dashboard_publish
from tickwatch.cli.destinations import (
    command_deliveries_failed,
    command_deliveries_replay,
    command_destinations_add,
    command_destinations_list,
    command_destinations_remove,
    command_destinations_test,
)
from tickwatch.cli.failures import command_dlq_list, command_dlq_replay
from tickwatch.cli.fetch import command_fetch
from tickwatch.cli.history import command_history_compact
from tickwatch.cli.local import command_local
from tickwatch.cli.parser import build_parser
from tickwatch.cli.reads import command_alerts, command_api_key, command_quotes
from tickwatch.cli.rules import (
    command_rules_add,
    command_rules_list,
    command_rules_remove,
    command_subscribe,
    command_subscriptions,
    command_unsubscribe,
)
from tickwatch.cli.sql import command_sql
from tickwatch.cli.status import command_status
from tickwatch.resources import AwsContext, CliError, explain

__all__ = ["COMMANDS", "build_parser", "main", "run"]


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
                "broadcast_function",
                "query_api_key_id",
                "query_api_url",
                "live_api_url",
                "dashboard_bucket",
                "dashboard_distribution",
                "dashboard_url",
                "bucket",
                "athena_workgroup",
                "analytics_database",
                "delivery_table",
                "delivery_function",
                "delivery_failure_queue",
            )
        },
        session_factory=session_factory,
    )
    subcommand = {
        "rules": "rules_command",
        "dlq": "dlq_command",
        "dashboard": "dashboard_command",
        "history": "history_command",
        "destinations": "destinations_command",
        "deliveries": "deliveries_command",
    }.get(args.command)
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


COMMANDS = {
    "fetch": command_fetch,
    "local": command_local,
    "rules add": command_rules_add,
    "destinations add": command_destinations_add,
    "destinations list": command_destinations_list,
    "destinations test": command_destinations_test,
    "destinations remove": command_destinations_remove,
    "deliveries failed": command_deliveries_failed,
    "deliveries replay": command_deliveries_replay,
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
    "dashboard publish": command_dashboard_publish,
    "history compact": command_history_compact,
    "sql": command_sql,
    "status": command_status,
}
