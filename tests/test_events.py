"""Every sample event in events/ is invoked in-process and does what its name says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fake_provider import API_KEY
from tests.support import (
    KinesisBatch,
    LambdaContext,
    list_objects,
    received_messages,
    scan_table,
    subscribe_queue,
    tick,
)
from tests.test_producer import load_producer, provider  # noqa: F401 - fixtures
from tickwatch.local.verify import read_stream
from tickwatch.template import PhysicalResource, Template
from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.aws import AwsClients
from tickwatch_core.store.rule_store import RuleStore

EVENTS = Path(__file__).resolve().parent.parent / "events"
SCENARIOS = {
    "processor-batch-valid-ticks.json",
    "processor-batch-with-bad-records.json",
    "alerts-quote-crosses-rule.json",
    "alerts-quote-no-crossing.json",
    "live-subscribe.json",
    "broadcast-market-changes.json",
    "compactor-scheduled.json",
    "ingest-post-ticks.json",
    "producer-scheduled.json",
}


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_every_event_file_has_a_scenario_test():
    assert {path.name for path in EVENTS.glob("*.json")} - {"env.json"} == SCENARIOS


def test_valid_ticks_event_updates_quotes_and_writes_one_raw_object(aws, stack, processor_app):
    assert processor_app.lambda_handler(load("processor-batch-valid-ticks.json"), LambdaContext()) == {
        "batchItemFailures": []
    }
    quotes = {pk for (pk, sk) in scan_table(aws, stack.physical["MarketTable"].ref) if sk == "QUOTE"}
    assert quotes == {"SYMBOL#AAPL", "SYMBOL#MSFT", "SYMBOL#TSLA", "SYMBOL#NVDA"}
    assert len(list_objects(aws, stack.physical["RawBucket"].ref, "raw/")) == 1


def test_bad_records_event_quarantines_six_and_keeps_the_two_good_ticks(aws, stack, processor_app):
    assert processor_app.lambda_handler(load("processor-batch-with-bad-records.json"), LambdaContext()) == {
        "batchItemFailures": []
    }
    (quarantine,) = list_objects(aws, stack.physical["RawBucket"].ref, "quarantine/").values()
    reasons = [json.loads(line)["reason"] for line in quarantine.decode().splitlines()]
    expected = [
        "not JSON",
        "symbol: 'msft'",
        "price: -251.07",
        "bid 138.6 is above ask 138.4",
        "not UTF-8",
        "'timestamp' is a required",
    ]
    assert len(reasons) == len(expected)
    for reason, fragment in zip(reasons, expected, strict=True):
        assert fragment in reason
    quotes = {pk for (pk, sk) in scan_table(aws, stack.physical["MarketTable"].ref) if sk == "QUOTE"}
    assert quotes == {"SYMBOL#AAPL", "SYMBOL#MSFT"}


@pytest.mark.parametrize(
    ("name", "expected"), [("alerts-quote-crosses-rule.json", 1), ("alerts-quote-no-crossing.json", 0)]
)
def test_alerts_events_against_the_rule_aapl_above_200(aws, stack, alerts_app, name, expected):
    RuleStore(aws.client("dynamodb"), stack.physical["MarketTable"].ref).add("AAPL", "above", "200")
    inbox = subscribe_queue(aws, stack.physical["AlertTopic"].ref)
    assert alerts_app.lambda_handler(load(name), LambdaContext()) == {"batchItemFailures": []}
    messages = received_messages(aws, inbox)
    assert len(messages) == expected
    if expected:
        assert messages[0]["Subject"] == "tickwatch: AAPL rose to 200.04 (above 200)"


def test_live_subscribe_event_follows_both_symbols(aws, stack, live_app):
    event = load("live-subscribe.json")
    store = ConnectionStore(AwsClients(dynamodb=aws.client("dynamodb")), stack.physical["ConnectionTable"].ref)
    store.connect(event["requestContext"]["connectionId"])
    response = live_app.lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"type": "subscribed", "symbols": ["AAPL", "MSFT"]}


def test_broadcast_event_sends_one_update_with_the_quote_bar_and_alert(aws, stack, broadcast_app):
    store = ConnectionStore(AwsClients(dynamodb=aws.client("dynamodb")), stack.physical["ConnectionTable"].ref)
    store.connect("reader")
    store.subscribe("reader", ["AAPL"])
    posts = []
    broadcast_app.broadcaster.post = lambda **post: posts.append(post)
    assert broadcast_app.lambda_handler(load("broadcast-market-changes.json"), LambdaContext()) == {}
    ((connection, data),) = [(post["ConnectionId"], json.loads(post["Data"])) for post in posts]
    assert connection == "reader"
    assert [q["price"] for q in data["quotes"]] == [200.04]
    assert [(b["start"], b["close"], b["volume"]) for b in data["bars"]] == [("2026-11-20T14:30:00Z", 200.04, 18400)]
    assert [(a["rule_id"], a["price"]) for a in data["alerts"]] == [("AAPL-above-200", 200.04)]


def test_compactor_scheduled_event_compacts_the_hour_that_just_ended(aws, stack, processor_app, compactor_app):
    # The event fires at 15:07: ticks of 14h are compacted, those of 15h (still in progress) are not.
    arrival = datetime(2026, 11, 20, 15, 1, tzinfo=UTC)
    batch = (
        KinesisBatch()
        .add(0, tick("AAPL", 200, datetime(2026, 11, 20, 14, 59, 59, tzinfo=UTC)), arrival=arrival)
        .add(1, tick("AAPL", 201, datetime(2026, 11, 20, 15, 0, 1, tzinfo=UTC)), arrival=arrival)
    )
    assert processor_app.lambda_handler(batch.event(), LambdaContext()) == {"batchItemFailures": []}

    response = compactor_app.lambda_handler(load("compactor-scheduled.json"), LambdaContext(timeout_ms=900_000))

    assert response == {"compacted": ["2026-11-20T14:00:00+00:00"], "left_for_later": []}
    assert list(list_objects(aws, stack.physical["RawBucket"].ref, "history/")) == [
        "history/year=2026/month=11/day=20/hour=14/ticks.parquet"
    ]


def test_ingest_event_puts_the_two_valid_ticks_and_rejects_the_third(aws, stack, ingest_app):
    ingest_app.service.clients = AwsClients(kinesis=aws.client("kinesis"))
    response = ingest_app.lambda_handler(load("ingest-post-ticks.json"), LambdaContext())
    assert response["statusCode"] == 207
    answer = json.loads(response["body"])
    assert (answer["accepted"], [r["index"] for r in answer["rejected"]], answer["failed"]) == (2, [2], [])
    records = read_stream(aws.client("kinesis"), stack.physical["TickStream"].ref)
    assert sorted(record["key"] for record in records) == ["AAPL", "MSFT"]


def test_producer_event_quotes_the_symbols_into_the_stream(load_producer):  # noqa: F811 - the fixture
    producer = load_producer()
    response = producer.app.lambda_handler(load("producer-scheduled.json"), LambdaContext())
    assert (response["sent"], response["provider_error"], response["secret_error"]) == (2, None, None)
    assert sorted(tick["symbol"] for tick in producer.stream()) == ["AAPL", "MSFT"]
    assert API_KEY not in json.dumps(response)


def test_env_json_names_the_local_stack_resources_and_only_declared_variables():
    """`sam local invoke --env-vars` only overrides variables the template declares."""
    env = load("env.json")
    template = Template.load()
    for logical_id in ("RawBucket", "MarketTable", "ConnectionTable", "DeliveryTable", "LiveApi", "TickStream"):
        template.physical[logical_id] = PhysicalResource(ref=template.physical_name(logical_id))
    template.physical["LiveStage"] = PhysicalResource(ref="live")
    # The delivery function's dashboard link; sam local invoke has no CloudFront either.
    template.physical["DashboardDistribution"] = PhysicalResource(
        ref="local", attributes={"DomainName": "dashboard.local"}
    )
    # Made up by the emulator at each start: `tickwatch local up` prints it as QueryApiUsagePlanId.
    template.physical["QueryApiUsagePlan"] = PhysicalResource(ref=env["LiveFunction"]["USAGE_PLAN_ID"])
    template.physical["AlertTopic"] = PhysicalResource(
        ref=f"arn:aws:sns:{template.region}:{template.account_id}:{template.physical_name('AlertTopic')}"
    )
    for function, overrides in env.items():
        declared = template.function_environment(function)
        assert set(overrides) <= set(declared), function
        for name, value in overrides.items():
            # Endpoints are the local ones; the producer's provider is the stand-in on the Docker bridge
            # and its key the one `tickwatch local up` stores (the template leaves both empty).
            if name not in ("AWS_ENDPOINT_URL", "LIVE_API_ENDPOINT", "PROVIDER_URL", "API_KEY_SECRET"):
                assert value == declared[name], (function, name)
