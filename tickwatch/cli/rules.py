"""`tickwatch rules` (add, list, remove) and the alert e-mails: subscribe, unsubscribe, subscriptions."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwatch.cli.checks import _check_email, _check_symbol
from tickwatch.cli.output import _time, format_table
from tickwatch.resources import AwsContext, CliError, InputError
from tickwatch_core.domain.rules import (
    Direction,
    Rule,
    RuleKind,
    RuleOptionError,
    format_duration,
    format_percent,
    parse_condition,
    parse_options,
    rule_status,
)
from tickwatch_core.store.rule_store import RuleStore, UnknownRuleError

# --- rules --------------------------------------------------------------------------------------


def _rule_store(context: AwsContext) -> RuleStore:
    return RuleStore(context.client("dynamodb"), context.resource("table"))


def command_rules_add(args: argparse.Namespace, context: AwsContext) -> int:
    cooldown = timedelta(seconds=args.cooldown) if args.cooldown else None
    # Check the input before looking up the stack, so a typo is reported as such.
    _check_symbol(args.symbol)
    fields, level_option = _condition_fields(args)
    try:
        condition = parse_condition(**fields)
        options = parse_options(
            now=datetime.now(UTC),
            rearm=args.rearm,
            once=args.once,
            expires=args.expires,
            lasts=args.lasts,
            hours=args.hours,
            zone=args.tz,
            weekdays=args.weekdays,
            holidays=args.holidays,
            notify=args.notify,
            template=args.template,
        )
    except RuleOptionError as error:
        option = level_option if error.field in _LEVEL_FIELDS else error.field
        raise InputError(f"--{option}: {error}") from None
    _check_destinations(context, options.notify)
    try:
        rule = _rule_store(context).add_condition(args.symbol, condition, cooldown=cooldown, options=options)
    except ValueError as error:  # including RuleExistsError
        raise InputError(str(error)) from None
    extras = [f"cooldown {format_duration(rule.cooldown)}"] if rule.cooldown else []
    extras += _option_words(rule)
    state = "it is armed" if rule.starts_armed else "it arms once the price is on the other side of the average"
    print(f"added rule {rule.rule_id} ({', '.join([rule.describe(), *extras])}); {state}")
    return 0


def _check_destinations(context: AwsContext, names: tuple[str, ...]) -> None:
    """Every --notify name must be a destination (`email`, the alert topic's, always is)."""
    if not names:
        return
    from tickwatch_core.store import deliveries as stored

    dynamodb, table = context.client("dynamodb"), context.resource("delivery_table")
    for name in names:
        if name == "email":
            continue
        found = dynamodb.get_item(TableName=table, Key=stored.destination_key(name), ConsistentRead=True).get("Item")
        if found is None:
            raise InputError(f"--notify: no destination named {name!r}; add it first: tickwatch destinations add")


# The fields of `parse_condition` that one of --above ... --cross-below gives.
_LEVEL_FIELDS = {"threshold", "change", "move", "cross"}


def _condition_fields(args: argparse.Namespace) -> tuple[dict[str, str | None], str]:
    """The options as `parse_condition`'s fields (`--move-down 2%` is direction below, move 2%),
    and the option that gave the level, as an error names it."""
    for option, field, direction in (
        ("above", "threshold", Direction.ABOVE),
        ("below", "threshold", Direction.BELOW),
        ("change_above", "change", Direction.ABOVE),
        ("change_below", "change", Direction.BELOW),
        ("move_up", "move", Direction.ABOVE),
        ("move_down", "move", Direction.BELOW),
        ("cross_above", "cross", Direction.ABOVE),
        ("cross_below", "cross", Direction.BELOW),
    ):
        value = getattr(args, option)
        if value is not None:
            return {"direction": direction.value, field: value, "within": args.within}, option.replace("_", "-")
    raise AssertionError("argparse requires one of the levels")


def _direction_text(rule: Rule) -> str:
    if rule.kind is RuleKind.MOVE:
        return "up" if rule.direction is Direction.ABOVE else "down"
    return rule.direction.value


def _option_words(rule: Rule) -> list[str]:
    words = []
    if rule.rearm_margin is not None:
        words.append(f"re-arm {format_percent(rule.rearm_margin)}")
    if rule.once:
        words.append("once")
    if rule.expires_at is not None:
        words.append(f"until {_time(rule.expires_at)}")
    if rule.hours is not None:
        words.append(rule.hours.describe())
    if rule.notify:
        words.append("to " + ", ".join(rule.notify))
    return words


def command_rules_list(args: argparse.Namespace, context: AwsContext) -> int:
    if args.symbol:
        _check_symbol(args.symbol)
    stored = _rule_store(context).list(args.symbol)
    now = datetime.now(UTC)
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
            _direction_text(entry.rule),
            entry.rule.level_text,
            format_duration(entry.rule.cooldown) if entry.rule.cooldown else "-",
            ", ".join(_option_words(entry.rule)) or "-",
            rule_status(entry.rule, entry.state, now),
            _time(entry.state.last_fired_at) if entry.state.last_fired_at else "-",
        )
        for entry in stored
    ]
    headings = ("RULE", "SYMBOL", "DIRECTION", "LEVEL", "COOLDOWN", "OPTIONS", "STATE", "LAST FIRED")
    print(format_table(headings, rows))
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
