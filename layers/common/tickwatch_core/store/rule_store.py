"""Add, list and remove alert rules in the market table: the one implementation behind the alerts
function and the `tickwatch rules` commands.

Rule item (see also `items.py` and the README):

    pk = "SYMBOL#AAPL", sk = "RULE#AAPL-above-200"
    rule_id, symbol, direction ("above" | "below"), threshold (number), rule_kind (change, move or
    cross; absent for a price rule), within_seconds (move), average (cross, like "sma:20@1m"),
    cooldown_seconds, rearm_margin, once, expires_at, hours (optional options), created_at;
    the state the alerts function keeps: armed (bool), state_seq, ended, last_fired_at,
    reference_day and reference_open (change), price_window (move), bars (cross)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tickwatch_core.domain.rules import (
    Condition,
    Direction,
    MovingAverage,
    Rule,
    RuleKind,
    RuleOptions,
    check_window,
    make_rule_id,
    parse_change,
    parse_move,
    parse_threshold,
    split_rule_id,
    validate_symbol,
)
from tickwatch_core.store import items
from tickwatch_core.store.dynamodb import batch_get, keys_by_kind
from tickwatch_core.store.items import StoredRule


class RuleExistsError(ValueError):
    """The same symbol, direction and threshold already has a rule."""


class UnknownRuleError(LookupError):
    """No rule has that id."""


def load_rules(client: Any, table_name: str, symbol: str) -> list[StoredRule]:
    """Every rule of one symbol with its current state (consistent read)."""
    rules: list[StoredRule] = []
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": items.symbol_pk(symbol)}, ":prefix": {"S": items.RULE_PREFIX}},
        "ConsistentRead": True,
    }
    while True:
        response = client.query(**arguments)
        rules += [items.rule_from_values(items.deserialize(item)) for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            return rules
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class RuleStore:
    """Rules of one market table."""

    def __init__(self, client: Any, table_name: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.table_name = table_name
        self.clock = clock

    def add(
        self,
        symbol: str,
        direction: Direction | str,
        threshold: Decimal | str | int | float,
        cooldown: timedelta | None = None,
        options: RuleOptions | None = None,
        kind: RuleKind = RuleKind.PRICE,
        *,
        window: timedelta | None = None,
        average: MovingAverage | None = None,
    ) -> Rule:
        """Create a rule: `threshold` is a price, or a percentage like `"3%"` for a day-change or
        move rule (a move rule also takes its `window`); a cross rule takes its `average` and
        ignores `threshold`. Raises ValueError for bad input and RuleExistsError for a duplicate."""
        symbol = validate_symbol(symbol)
        try:
            direction = Direction(direction)
        except ValueError:
            raise ValueError(f"direction {direction!r} is not 'above' or 'below'") from None
        match kind:
            case RuleKind.CHANGE:
                threshold = parse_change(threshold if isinstance(threshold, Decimal) else str(threshold))
            case RuleKind.MOVE:
                threshold = parse_move(threshold if isinstance(threshold, Decimal) else str(threshold))
                if window is None:
                    raise ValueError("a move rule needs a window, like 15m")
                check_window(window)
            case RuleKind.CROSS:
                if average is None:
                    raise ValueError("a cross rule needs an average, like sma:20@1m")
                threshold = Decimal(0)
            case _:
                threshold = parse_threshold(threshold)
        if cooldown is not None and (cooldown.total_seconds() < 1 or cooldown.microseconds):
            raise ValueError("cooldown must be a whole number of seconds, at least 1s")
        options = options or RuleOptions()
        rule = Rule(
            make_rule_id(symbol, direction, threshold, kind, window=window, average=average),
            symbol,
            direction,
            threshold,
            cooldown,
            rearm_margin=options.rearm_margin,
            once=options.once,
            expires_at=options.expires_at,
            hours=options.hours,
            notify=options.notify,
            template=options.template,
            kind=kind,
            window=window if kind is RuleKind.MOVE else None,
            average=average if kind is RuleKind.CROSS else None,
        )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=items.rule_to_item(rule, created_at=self.clock()),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise RuleExistsError(f"rule {rule.rule_id} already exists") from None
            raise
        return rule

    def add_condition(
        self, symbol: str, condition: Condition, cooldown: timedelta | None = None, options: RuleOptions | None = None
    ) -> Rule:
        """`add` for a condition the API or a rule file parsed (`rules.parse_condition`)."""
        return self.add(
            symbol,
            condition.direction,
            condition.threshold,
            cooldown,
            options,
            condition.kind,
            window=condition.window,
            average=condition.average,
        )

    def list(self, symbol: str | None = None) -> list[StoredRule]:
        """Rules of one symbol, or of every symbol (through the ByKind index), sorted by id."""
        if symbol is not None:
            rules = load_rules(self.client, self.table_name, validate_symbol(symbol))
        else:
            keys = keys_by_kind(self.client, self.table_name, "RULE")
            rules = [
                items.rule_from_values(values) for values in batch_get(self.client, self.table_name, keys).values()
            ]
        return sorted(
            rules, key=lambda stored: (stored.rule.symbol, stored.rule.direction.value, stored.rule.threshold)
        )

    def remove(self, rule_id: str) -> Rule:
        """Delete a rule; returns it. Raises ValueError for a malformed id, UnknownRuleError if absent."""
        symbol = split_rule_id(rule_id)
        try:
            response = self.client.delete_item(
                TableName=self.table_name,
                Key=items.rule_key(symbol, rule_id),
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise UnknownRuleError(f"no rule {rule_id}") from None
            raise
        return items.rule_from_values(items.deserialize(response["Attributes"])).rule
