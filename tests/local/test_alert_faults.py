"""The exactly-once proof for alerts when an invocation carries many of them.

Rules close to the price and ticks sent as fast as the writer goes give alerts invocations with
dozens of firings (several PublishBatch calls each). Crashes and timeouts are aimed at those calls
and at the history writes, and SNS also fails. For each of three fault seeds:

* the alert history is exact: every alert the trades call for, each once;
* the inbox has every alert, and a duplicate exactly where SNS accepted a message and its
  invocation then ended with nothing but that alert's history write started
  (`FaultInjector.duplicates_allowed`), once per such interruption;
* no call ever started while alerts accepted by SNS were unrecorded, other than their own history
  write: a failed invocation can repeat at most the messages of one PublishBatch call.

Before each PublishBatch call was recorded on its own (issue 11), every invocation of more than ten
alerts failed the last point, and a crash in a later call repeated every earlier one's alerts.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from tests.local.workload import run_workload
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS
from tickwatch.local.faults import FaultPlan
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.verify import RuleSpec, verify
from tickwatch_core.pipeline.alerts import PUBLISH_BATCH_LIMIT

SYMBOLS = dict(list(DEFAULT_SYMBOLS.items())[:4])
TICKS = 4_000
PLAN = (
    "crash:sns.PublishBatch=0.06,timeout:sns.PublishBatch=0.02,"
    "crash:dynamodb.BatchWriteItem=0.06,timeout:dynamodb.BatchWriteItem=0.02,sns=0.05"
)
SEEDS = (3, 17, 29)


def rules_near_the_price(start_prices: dict[str, Decimal]) -> list[RuleSpec]:
    """Eight levels each way within 0.8 % of the start price, no cooldown: the walk crosses them
    again and again, so one batch of quote updates fires dozens of alerts."""
    return [
        RuleSpec(symbol, direction, (price * (1 + sign * Decimal("0.001") * step)).quantize(Decimal("0.01")))
        for symbol, price in start_prices.items()
        for direction, sign in (("above", 1), ("below", -1))
        for step in range(1, 9)
    ]


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed {seed}" for seed in SEEDS])
def run(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"alert-faults-{request.param}")
    options = LocalStackOptions(
        outbox=workdir / "outbox",
        kinesis_poll_interval=0.2,
        dynamodb_poll_interval=0.1,
        faults=FaultPlan.parse(PLAN, seed=request.param),
        function_timeout=3.0,
    )
    stack = LocalStack(options).start()
    try:
        for mapping in stack.mappings:
            mapping.retry_delay, mapping.retry_delay_cap = 0.01, 0.2
        rules, records = run_workload(
            stack, workdir, symbols=SYMBOLS, ticks=TICKS, rules=rules_near_the_price(SYMBOLS), bad_records=[]
        )
        assert stack.wait_until_caught_up(timeout=240), "the pipeline did not catch up under faults"
        stack.faults.disable()
        stack.inbox.drain()
        yield stack, verify(stack, records, rules, set(), duplicates_allowed=stack.faults.duplicates_allowed)
    finally:
        stack.stop()


def test_faults_hit_publish_calls_and_history_writes_of_invocations_with_many_alerts(run):
    stack, result = run
    injected = stack.faults.injected_by_operation
    for operation in ("sns.PublishBatch", "dynamodb.BatchWriteItem"):
        assert injected[("crash", operation)] > 0, (operation, injected)
    assert injected[("timeout", "sns.PublishBatch")] + injected[("timeout", "dynamodb.BatchWriteItem")] > 0
    assert max(stack.faults.alerts.publish_calls_per_invocation.values()) >= 4
    assert result.facts["alerts"] > 20 * PUBLISH_BATCH_LIMIT


def test_history_is_exact_and_every_duplicate_is_inside_the_window(run):
    stack, result = run
    # verify(): each alert the trades call for is in the history once and in the inbox; an alert
    # arrives again only once per interruption inside the window.
    assert result.problems == []
    # And each such interruption did cost its duplicate: the redelivery found no record and sent it.
    assert result.facts["inbox_duplicates"] == len(stack.faults.duplicates_allowed)


def test_no_call_starts_while_alerts_sns_accepted_are_unrecorded(run):
    stack, _ = run
    widened = stack.faults.alerts.widened
    assert not widened, f"{len(widened)} times a call started while alerts were unrecorded, like {widened[:3]}"
    # So what one interrupted invocation can repeat is at most one PublishBatch call's messages.
    per_invocation = Counter(stack.faults.alerts.interrupted_by_invocation())
    assert all(count <= PUBLISH_BATCH_LIMIT for count in per_invocation.values()), per_invocation
