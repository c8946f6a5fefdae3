"""Adding, listing and removing alert rules (the module behind `tickwatch rules`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support import scan_table
from tickwatch_core.domain.rules import Direction, Rule, RuleState
from tickwatch_core.store import items
from tickwatch_core.store.rule_store import RuleExistsError, RuleStore, UnknownRuleError

CREATED = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


@pytest.fixture
def store(aws, stack) -> RuleStore:
    return RuleStore(aws.client("dynamodb"), stack.physical["MarketTable"].ref, clock=lambda: CREATED)


def test_added_rule_is_stored_armed_in_the_documented_format(aws, stack, store):
    rule = store.add("AAPL", "above", "200.50", cooldown=timedelta(minutes=15))
    assert rule == Rule("AAPL-above-200.5", "AAPL", Direction.ABOVE, Decimal("200.50"), timedelta(minutes=15))
    item = items.deserialize(
        scan_table(aws, stack.physical["MarketTable"].ref)[("SYMBOL#AAPL", "RULE#AAPL-above-200.5")]
    )
    assert item == {
        "pk": "SYMBOL#AAPL",
        "sk": "RULE#AAPL-above-200.5",
        "kind": "RULE",
        "kind_key": "AAPL#AAPL-above-200.5",
        "rule_id": "AAPL-above-200.5",
        "symbol": "AAPL",
        "direction": "above",
        "threshold": Decimal("200.50"),
        "cooldown_seconds": Decimal("900"),
        "created_at": "2026-11-20T14:00:00Z",
        "armed": True,
    }


def test_list_one_symbol_or_all(store):
    store.add("MSFT", "below", 300)
    store.add("AAPL", "above", 200)
    store.add("AAPL", "below", 150)
    assert [stored.rule.rule_id for stored in store.list("AAPL")] == ["AAPL-above-200", "AAPL-below-150"]
    assert [stored.rule.rule_id for stored in store.list()] == ["AAPL-above-200", "AAPL-below-150", "MSFT-below-300"]
    assert all(stored.state == RuleState() and stored.created_at == CREATED for stored in store.list())


def test_remove_returns_the_rule_and_it_is_gone(store):
    store.add("BRK-B", "above", 500)
    assert store.remove("BRK-B-above-500").symbol == "BRK-B"
    assert store.list() == []


def test_duplicate_rule_is_refused(store):
    store.add("AAPL", "above", 200)
    with pytest.raises(RuleExistsError, match="AAPL-above-200 already exists"):
        store.add("AAPL", "above", "200.00")


def test_unknown_rule_cannot_be_removed(store):
    with pytest.raises(UnknownRuleError, match="no rule AAPL-above-999"):
        store.remove("AAPL-above-999")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("aapl", "above", 200), "is not a symbol"),
        (("../x", "above", 200), "is not a symbol"),
        (("AAPL", "sideways", 200), "is not 'above' or 'below'"),
        (("AAPL", "above", 0), "greater than zero"),
        (("AAPL", "above", -1), "greater than zero"),
        (("AAPL", "above", "lots"), "is not a number"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(store, arguments, message):
    with pytest.raises(ValueError, match=message):
        store.add(*arguments)


def test_malformed_rule_id_is_refused(store):
    with pytest.raises(ValueError, match="is not a rule id"):
        store.remove("AAPL")


@pytest.mark.parametrize("cooldown", [timedelta(seconds=0.5), timedelta(seconds=90.5), timedelta(0)])
def test_cooldowns_are_whole_seconds(store, cooldown):
    with pytest.raises(ValueError, match="cooldown must be a whole number of seconds"):
        store.add("AAPL", "above", 200, cooldown=cooldown)
