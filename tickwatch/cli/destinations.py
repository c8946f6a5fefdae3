"""`tickwatch destinations add|list|test|remove` and `tickwatch deliveries failed|replay`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from tickwatch.cli.output import format_table
from tickwatch.resources import AwsContext, CliError, InputError
from tickwatch_core.domain.delivery.destinations import DestinationError, new_destination
from tickwatch_core.domain.delivery.templates import TemplateError
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.destination_store import DestinationExistsError, DestinationStore
from tickwatch_core.store.dynamodb import batch_get

_SECRET_OPTIONS = ("url", "secret", "token")


def _store(context: AwsContext) -> DestinationStore:
    return DestinationStore(
        context.client("dynamodb"),
        context.client("secretsmanager"),
        context.client("sns"),
        context.resource("delivery_table"),
        context.resource("destination_secret_prefix"),
        context.resource("topic_arn"),
    )


def _read_value(option: str, value: str | None) -> str | None:
    """`-` reads the value from standard input, so a token or secret stays out of shell history."""
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        raise InputError(f"--{option.replace('_', '-')} -: nothing on standard input")
    return line


def command_destinations_add(args: argparse.Namespace, context: AwsContext) -> int:
    values = {option: _read_value(option, getattr(args, option)) for option in _SECRET_OPTIONS}
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip()) if args.symbols else ()
    try:
        new = new_destination(
            args.name,
            args.kind,
            url=values["url"],
            email=args.email,
            token=values["token"],
            chat_id=args.chat_id,
            secret=values["secret"],
            symbols=symbols,
            rate=args.rate,
            template=args.template,
            # The local stack's loopback receivers speak plain HTTP; a deployed stack takes HTTPS only.
            allow_loopback_http=context.local is not None,
        )
    except (DestinationError, TemplateError) as error:
        raise InputError(f"--{error.field.replace('_', '-')}: {error}") from None
    store = _store(context)
    try:
        destination = store.add(new)
    except DestinationExistsError as error:
        raise InputError(str(error)) from None
    except DestinationError as error:
        raise InputError(f"--{error.field}: {error}") from None
    print(f"added destination {destination.name} ({destination.kind.value} {destination.target})")
    if destination.kind.value == "email":
        print(
            "AWS has sent it a confirmation e-mail: open it and click 'Confirm subscription'; nothing is "
            "delivered before that."
        )
    print(f"send it a test message: tickwatch destinations test {destination.name}")
    print(f"route a rule's alerts to it: tickwatch rules add SYMBOL --above PRICE --notify {destination.name}")
    return 0


def command_destinations_list(args: argparse.Namespace, context: AwsContext) -> int:
    destinations = _store(context).list()
    if getattr(args, "output", "table") == "json":
        print(json.dumps([_listed(destination) for destination in destinations], indent=2))
        return 0
    rows = [
        (
            d.name,
            d.kind.value,
            d.target,
            ",".join(d.symbols) or "-",
            " & ".join(limit.text for limit in d.limits),
            d.quiet_hours.text if d.quiet_hours else "-",
            "yes" if d.template else "-",
        )
        for d in destinations
    ]
    print(format_table(("NAME", "KIND", "TARGET", "SYMBOLS", "AT MOST", "QUIET HOURS", "TEMPLATE"), rows))
    return 0


def _listed(destination: Any) -> dict[str, Any]:
    return {
        "name": destination.name,
        "kind": destination.kind.value,
        "target": destination.target,
        "symbols": list(destination.symbols),
        "limits": [limit.text for limit in destination.limits],
        "quiet_hours": destination.quiet_hours.text if destination.quiet_hours else None,
        "template": destination.template,
    }


def command_destinations_remove(args: argparse.Namespace, context: AwsContext) -> int:
    try:
        removed = _store(context).remove(args.name)
    except DestinationError as error:
        raise InputError(str(error)) from None
    if not removed:
        raise InputError(f"no destination named {args.name!r}; see tickwatch destinations list")
    print(f"removed destination {args.name}, its secret and its subscription; rules naming it park its alerts")
    return 0


def command_destinations_test(args: argparse.Namespace, context: AwsContext) -> int:
    """Ask the delivery function to send a test message, and show what the receiver answered."""
    event = {"test_destination": args.name}
    if context.local is not None:
        from pathlib import Path

        from tickwatch.local.run import function_output_to
        from tickwatch.local.stack import LocalStack, LocalStackOptions

        options = LocalStackOptions(
            endpoint_url=context.local.endpoint_url,
            parameter_overrides=context.local.parameters,
            receivers_url=context.local.outputs.get("ReceiversUrl"),
        )
        attached = LocalStack(options).attach()
        try:
            # The function's logs go where `local up` keeps them, not onto this command's output.
            with function_output_to(Path(context.local.outbox).parent / "logs" / "functions.log"):
                outcome = attached.functions["DeliveryFunction"].invoke(event)
        finally:
            attached.stop()
        if outcome.error:
            raise CliError(f"the delivery function failed: {outcome.error} ({outcome.error_message})")
        answer = outcome.response
    else:
        client = context.client("lambda", Config(read_timeout=180))
        response = client.invoke(FunctionName=context.resource("delivery_function"), Payload=json.dumps(event).encode())
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise CliError(f"the delivery function failed: {answer}")
    status = f"HTTP {answer['status']}" if answer.get("status") else "no answer"
    if answer.get("delivered"):
        print(f"sent a test message to {args.name}: the receiver accepted it ({status})")
        return 0
    print(f"the test message to {args.name} was not accepted ({status}): {answer.get('answer')}", file=sys.stderr)
    return 1


def command_deliveries_failed(args: argparse.Namespace, context: AwsContext) -> int:
    failed = _parked(context, args.destination)
    if getattr(args, "output", "table") == "json":
        print(json.dumps([_delivery_json(values) for values in failed], indent=2))
        return 0
    if not failed:
        print("no failed deliveries: every alert reached its destinations, or is still on its way")
        return 0
    rows = [
        (
            values["updated_at"],
            values["destination"],
            values["symbol"],
            values["alert_id"],
            str(values.get("attempts", 0)),
            values.get("last_error", "-"),
        )
        for values in failed
    ]
    print(format_table(("PARKED", "DESTINATION", "SYMBOL", "ALERT", "TRIES", "LAST ERROR"), rows))
    print(f"{len(failed)} failed; send them again with: tickwatch deliveries replay")
    return 0


def _delivery_json(values: dict[str, Any]) -> dict[str, Any]:
    listed = {
        name: values.get(name)
        for name in ("alert_id", "destination", "symbol", "fired_at", "status", "last_error", "updated_at")
    }
    return listed | {"attempts": int(values.get("attempts", 0))}


def command_deliveries_replay(args: argparse.Namespace, context: AwsContext) -> int:
    """Put parked deliveries back to pending: the delivery table's stream hands them to the delivery
    function again, which sends each once (paced, in a digest if they are many)."""
    failed = _parked(context, args.destination)
    if args.alert:
        failed = [values for values in failed if values["alert_id"] == args.alert]
    if not failed:
        print("no failed deliveries to replay")
        return 0
    dynamodb = context.client("dynamodb")
    table = context.resource("delivery_table")
    now = datetime.now(UTC)
    replayed = 0
    for values in failed:
        key = {"pk": {"S": values["pk"]}, "sk": {"S": values["sk"]}}
        try:
            dynamodb.update_item(TableName=table, **stored.replay_update(key, now))
            replayed += 1
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # replayed by someone else meanwhile: nothing to do for that one
    print(f"put {replayed} failed deliveries back; the delivery function sends them again")
    return 0


def _parked(context: AwsContext, destination: str | None) -> list[dict[str, Any]]:
    """Every parked delivery, oldest first (the sparse Parked index, then the items)."""
    dynamodb = context.client("dynamodb")
    table = context.resource("delivery_table")
    keys: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {
        "TableName": table,
        "IndexName": stored.PARKED_INDEX,
        "KeyConditionExpression": "parked = :parked",
        "ExpressionAttributeValues": {":parked": {"S": stored.PARKED_PARTITION}},
    }
    while True:
        response = dynamodb.query(**arguments)
        keys += [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            break
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    found = batch_get(dynamodb, table, keys)
    parked = [found[(key["pk"]["S"], key["sk"]["S"])] for key in keys if (key["pk"]["S"], key["sk"]["S"]) in found]
    parked = [values for values in parked if values.get("status") == stored.DeliveryStatus.FAILED.value]
    if destination:
        parked = [values for values in parked if values["destination"] == destination]
    return parked


def add_parsers(commands: Any, aws: argparse.ArgumentParser) -> None:
    """`tickwatch destinations ...` and `tickwatch deliveries ...` on the CLI's parser."""
    destinations = commands.add_parser(
        "destinations",
        help="where alerts go: e-mail, webhooks, Slack, Discord, Telegram",
        description="Named places alerts go. A rule names them with --notify; without, alerts go to the "
        "alert topic's e-mail subscribers (the built-in destination 'email').",
    )
    destination_commands = destinations.add_subparsers(dest="destinations_command", required=True, metavar="SUBCOMMAND")
    add = destination_commands.add_parser(
        "add",
        parents=[aws],
        help="add a destination",
        description="Add a destination. URLs, tokens and secrets are kept in Secrets Manager and shown masked; "
        "give - as a value to read it from standard input (it then stays out of your shell history).",
        epilog="examples:\n"
        "  tickwatch destinations add team slack --url https://hooks.slack.com/services/T…/B…/…\n"
        "  tickwatch destinations add ops webhook --url https://example.com/hook --secret - --rate 5/s\n"
        "  tickwatch destinations add phone telegram --token - --chat-id 123456789\n"
        "  tickwatch destinations add me email --email me@example.com --symbols AAPL,MSFT",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("name", help="1-32 of a-z, 0-9, - and _")
    add.add_argument("kind", choices=["email", "webhook", "slack", "discord", "telegram"])
    add.add_argument("--url", help="webhook, slack, discord: the URL to POST to (HTTPS)")
    add.add_argument("--secret", help="webhook: the signing secret, 16-256 characters (HMAC-SHA256)")
    add.add_argument("--token", help="telegram: the bot's token from @BotFather")
    add.add_argument("--chat-id", help="telegram: the chat, group (-100…) or @channel to send to")
    add.add_argument("--email", help="email: the address (AWS sends it a confirmation first)")
    add.add_argument("--symbols", help="email: only these symbols' alerts, like AAPL,MSFT")
    add.add_argument("--rate", help="webhook: at most this many messages, like 5/s or 30/min (default 10/s)")
    add.add_argument("--template", help="the messages' words, like '{symbol} {direction} {level}: {price}'")
    listing = destination_commands.add_parser("list", parents=[aws], help="list destinations (secrets masked)")
    listing.add_argument("--output", choices=["table", "json"], default="table")
    test = destination_commands.add_parser(
        "test", parents=[aws], help="send a test message and show the receiver's answer"
    )
    test.add_argument("name")
    remove = destination_commands.add_parser(
        "remove", parents=[aws], help="remove a destination, its secret and its subscription"
    )
    remove.add_argument("name")

    deliveries = commands.add_parser(
        "deliveries",
        help="alerts that could not be delivered, and sending them again",
        description="A delivery that failed past its retries, or that its receiver refused, is parked: "
        "listed here and sent again by replay, each alert still once per destination.",
    )
    delivery_commands = deliveries.add_subparsers(dest="deliveries_command", required=True, metavar="SUBCOMMAND")
    failed = delivery_commands.add_parser("failed", parents=[aws], help="list parked deliveries")
    failed.add_argument("--destination", help="only this destination's")
    failed.add_argument("--output", choices=["table", "json"], default="table")
    replay = delivery_commands.add_parser("replay", parents=[aws], help="send parked deliveries again")
    replay.add_argument("--destination", help="only this destination's")
    replay.add_argument("--alert", help="only this alert's")
