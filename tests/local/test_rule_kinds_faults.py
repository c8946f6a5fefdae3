"""Rules of every kind stay exactly-once under crashes and timeouts aimed at the alerts path.

The series and the rule file of `test_rule_kinds_replay` (18 rules: price, change, move and cross,
with every option) go through the local stack with crashes and timeouts aimed at each call the
alerts function makes for them: the reads of rules and of stored one-minute bars (`dynamodb.Query`:
a cross rule's closes, a day-change rule's session open), the publish calls (`sns.PublishBatch`),
the history writes (`dynamodb.BatchWriteItem`) and the conditional writes of a rule's state
(`dynamodb.UpdateItem`, which for move and cross rules carry their window and bars); and a few AWS
errors everywhere. For each fault seed:

* the alert history is exactly the oracle's alerts, each once;
* the inbox has every one of them, and an alert arrives more than once only where SNS accepted it
  and its invocation then ended before its history write (`FaultInjector.duplicates_allowed`),
  once per such interruption;
* faults did hit each of those calls, and the alerts function failed and was retried: the run
  cannot pass vacuously.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tests.local.rule_oracle import alert_time_text, number_text, oracle_alerts
from tests.local.test_rule_kinds_replay import add_rules_and_replay, oracle_rules, stream_ticks
from tickwatch.local.faults import FaultPlan, InjectedCrash
from tickwatch.local.functions import Invocation, LocalFunction
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.verify import received_alert, table_items
from tickwatch_core.aws import add_client_customizer, remove_client_customizer

# Replayed as fast as the writer goes, the series reaches the alerts function as a dozen or so quote
# updates carrying minutes of trades each: a run makes some 15 to 25 publish calls and history
# writes (121 alerts, ten a call), 50 to 70 rule state writes, and a few hundred Queries (rules,
# bars, a session's first bar), which share their rate with the broadcast function's reads of its
# connections. A rate stream hits within 1.5 / rate calls, so every operation is hit in every run;
# Query's rate is lower, as every invocation makes several and a quote update whose invocations
# keep failing would use up the mapping's ten retries. Each timeout costs a function timeout.
PLAN = (
    "crash:dynamodb.Query=0.03,timeout:dynamodb.Query=0.003,"
    "crash:dynamodb.UpdateItem=0.03,timeout:dynamodb.UpdateItem=0.03,"
    "crash:sns.PublishBatch=0.12,timeout:sns.PublishBatch=0.03,"
    "crash:dynamodb.BatchWriteItem=0.12,timeout:dynamodb.BatchWriteItem=0.03,"
    "aws=0.01"
)
SEEDS = (5, 41)
# The alerts function's calls, by the operation the plan aims at (as `AlertPathCalls` names them).
OPERATIONS = {
    "dynamodb.Query": ("rule read", "bar read"),
    "sns.PublishBatch": ("publish",),
    "dynamodb.BatchWriteItem": ("history write",),
    "dynamodb.UpdateItem": ("rule state write",),
}


class AlertPathCalls:
    """Counts the alerts function's calls of each kind, and those an injected crash or timeout ended.

    `FaultInjector` counts faults by operation; the broadcast function also queries (its connection
    table), so a rule read and a bar read are told apart by what the Query asks for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()  # (crash | timeout, call)

    def customize(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service in ("dynamodb", "sns"):
            client.meta.events.register(f"provide-client-params.{service}", self._call_starts)
            client.meta.events.register(f"after-call-error.{service}", self._call_failed)

    def _call_starts(self, params: dict[str, Any], context: dict[str, Any], event_name: str, **_: Any) -> None:
        call = _alert_path_call(event_name.rsplit(".", 1)[-1], params)
        if call is not None:
            context["tickwatch_alert_path_call"] = call
            with self._lock:
                self.calls[call] += 1

    def _call_failed(self, exception: Exception, context: dict[str, Any], **_: Any) -> None:
        call = context.get("tickwatch_alert_path_call")
        if call is not None and isinstance(exception, InjectedCrash):
            kind = "timeout" if "injected timeout" in str(exception) else "crash"
            with self._lock:
                self.faults[(kind, call)] += 1


def _alert_path_call(operation: str, params: dict[str, Any]) -> str | None:
    values = params.get("ExpressionAttributeValues", {})
    if operation == "PublishBatch":
        return "publish"
    if operation == "BatchWriteItem":
        return "history write"
    if operation == "UpdateItem" and params.get("Key", {}).get("sk", {}).get("S", "").startswith("RULE#"):
        return "rule state write"
    if operation == "Query" and values.get(":prefix", {}).get("S") == "RULE#":
        return "rule read"
    if operation == "Query" and values.get(":first", {}).get("S", "").startswith("BAR#"):
        return "bar read"
    return None


def _record_outcomes(function: LocalFunction) -> list[Invocation]:
    """Every outcome of `function`'s invocations from now on (the mapping invokes it through the
    same object)."""
    outcomes: list[Invocation] = []
    invoke = function.invoke

    def invoke_and_record(event: dict[str, Any]) -> Invocation:
        outcome = invoke(event)
        outcomes.append(outcome)
        return outcome

    function.invoke = invoke_and_record
    return outcomes


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed {seed}" for seed in SEEDS])
def run(request, tmp_path_factory):
    """Add the rules, replay the series under the faults, wait until the alerts settle, then stop
    the faults and read the inbox."""
    workdir = tmp_path_factory.mktemp(f"rule-kinds-faults-{request.param}")
    calls = AlertPathCalls()
    add_client_customizer(calls.customize)
    options = LocalStackOptions(
        outbox=workdir / "outbox",
        kinesis_poll_interval=0.2,
        dynamodb_poll_interval=0.1,
        faults=FaultPlan.parse(PLAN, seed=request.param),
        # Short, so that an injected timeout costs little; it also makes invocations defer the
        # publishing they have no time left for, which gives partial batch responses.
        function_timeout=4.0,
    )
    stack = LocalStack(options).start()
    try:
        for mapping in stack.mappings:
            mapping.retry_delay, mapping.retry_delay_cap = 0.01, 0.2
        outcomes = _record_outcomes(stack.functions["AlertsFunction"])
        add_rules_and_replay(stack, workdir)
        assert stack.wait_until_caught_up(timeout=120), "the pipeline did not catch up under faults"
        stack.faults.disable()
        stack.inbox.drain()
        yield stack, calls, outcomes, oracle_alerts(stream_ticks(stack), oracle_rules())
    finally:
        stack.stop()
        remove_client_customizer(calls.customize)


def test_faults_hit_every_operation_of_the_alerts_path_and_the_alerts_function_was_retried(run):
    stack, calls, outcomes, _ = run
    for operation, kinds in OPERATIONS.items():
        hits = sum(calls.faults[(fault, kind)] for fault in ("crash", "timeout") for kind in kinds)
        assert hits > 0, (operation, calls.faults, calls.calls)
    assert calls.faults[("crash", "bar read")] + calls.faults[("timeout", "bar read")] > 0, calls.faults
    # Invocations crashed and timed out (some also returned partial batch responses, when a publish
    # was deferred near the timeout: how many depends on timing), and Lambda retried their batches.
    assert {outcome.error for outcome in outcomes} >= {"Unhandled", "TimedOut"}
    (mapping,) = [m for m in stack.mappings if m.settings.name.startswith("AlertsFunction.")]
    assert mapping.stats.retries + mapping.stats.bisections > 0
    assert mapping.stats.sent_to_on_failure == 0, "Lambda gave up on a batch of quote updates"


def test_the_alert_history_is_exactly_the_oracles_alerts_each_once(run):
    stack, _, _, expected = run
    items = table_items(stack.session.client("dynamodb"), stack.names()["MarketTableName"], "ALERT#")
    history = Counter(
        (item["rule_id"], number_text(item["price"]), alert_time_text(datetime.fromisoformat(item["fired_at"])))
        for item in items
    )
    assert _difference(history, Counter(expected)) == ([], [])


def test_the_inbox_has_every_alert_and_duplicates_only_inside_the_window(run):
    stack, _, _, expected = run
    inbox = Counter(received_alert(alert.body, alert.attributes) for alert in stack.inbox.received)
    missing, unexpected = _difference(inbox, Counter(expected))
    assert missing == []
    assert set(unexpected) <= set(expected), "alerts the oracle does not give"
    # An alert arrives once more for each time SNS accepted it and its invocation then ended
    # before its history write, and no more.
    allowed = Counter(stack.faults.duplicates_allowed)
    deliveries = Counter(alert.attributes.get("alert_id") for alert in stack.inbox.received)
    beyond = {alert_id: n - 1 - allowed[alert_id] for alert_id, n in deliveries.items() if n - 1 > allowed[alert_id]}
    assert beyond == {}
    assert not stack.faults.alerts.widened
    # And each such interruption did cost its duplicate: the redelivery found no record and sent it.
    assert len(unexpected) == len(stack.faults.duplicates_allowed)


def _difference(actual: Counter, expected: Counter) -> tuple[list, list]:
    """(alerts missing or too few times, alerts unexpected or too many times), sorted."""
    return sorted((expected - actual).elements()), sorted((actual - expected).elements())
