"""The commands that read what the pipeline stored: `quotes`, `alerts` and `api-key`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.cli.checks import _check_symbol
from tickwatch.cli.output import _optional, format_table
from tickwatch.resources import AwsContext, CliError, explain
from tickwatch_core.domain.rules import format_decimal
from tickwatch_core.store import items
from tickwatch_core.store.dynamodb import batch_get, keys_by_kind


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
    alerts = alerts[: args.limit]
    deliveries = _deliveries(context, alerts)
    rows = [
        (
            alert["fired_at"],
            alert["symbol"],
            alert["direction"],
            format_decimal(alert["threshold"]),
            format_decimal(alert["price"]),
            alert["rule_id"],
            ", ".join(_delivery_word(delivery) for delivery in deliveries.get(alert["alert_id"], [])) or "-",
        )
        for alert in alerts
    ]
    print(format_table(("FIRED AT", "SYMBOL", "DIRECTION", "THRESHOLD", "PRICE", "RULE", "DELIVERIES"), rows))
    failed = sum(d["status"] == "failed" for entries in deliveries.values() for d in entries)
    if failed:
        print(f"{failed} deliveries failed: tickwatch deliveries failed shows why, tickwatch deliveries replay resends")
    return 0


def _deliveries(context: AwsContext, alerts: list[dict]) -> dict[str, list[dict]]:
    from tickwatch_core.pipeline.delivery.directory import DestinationDirectory, load_destinations
    from tickwatch_core.store.delivery_reader import deliveries_of

    try:
        table = context.resource("delivery_table")
    except CliError:
        return {}  # a stack deployed before destinations: its alerts went to the topic alone
    dynamodb = context.client("dynamodb")
    directory = DestinationDirectory(lambda: load_destinations(dynamodb, table), lambda: datetime.now(UTC))
    return deliveries_of(dynamodb, table, directory, alerts)


def _delivery_word(delivery: dict) -> str:
    """`team delivered`, `phone failed (2 tries)`, `ops delivered in a digest of 12`."""
    words = f"{delivery['destination']} {delivery['status']}"
    if delivery.get("digest_of"):
        words += f" in a digest of {delivery['digest_of']}"
    if delivery["status"] in ("failed", "retrying"):
        words += f" ({delivery['attempts']} tries)"
    return words


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
