"""Delivery end to end in moto, to the loopback receivers over real HTTP: trades -> processor ->
alerts (a pending delivery per destination of the rule) -> the delivery table's stream -> the
delivery function -> Slack, Discord, Telegram, a signed webhook, or SNS e-mail."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.query_support import call
from tests.support import (
    BASE_TIME,
    LambdaContext,
    StreamReader,
    clients_for,
    kinesis_event,
    received_messages,
    scan_table,
    subscribe_queue,
    tick,
)
from tickwatch.dlq import template_filters
from tickwatch.filters import matches_any
from tickwatch.local.receivers import Fault, Receivers
from tickwatch.template import Template
from tickwatch_core.domain.delivery.destinations import new_destination
from tickwatch_core.domain.delivery.signing import verify
from tickwatch_core.domain.rules import Condition, Direction, RuleKind, RuleOptions
from tickwatch_core.store import items
from tickwatch_core.store.destination_store import DestinationStore
from tickwatch_core.store.rule_store import RuleStore

SIGNING_SECRET = "whsec-test-0123456789abcdef"
TELEGRAM_TOKEN = "123456789:AAHfakeTelegramTokenForTests_0123456789"


@pytest.fixture
def receivers():
    served = Receivers().start()
    yield served
    served.stop()


class Pipeline:
    """Trades in through the processor; each function's stream records handed on as Lambda would
    (the delivery function's through the template's FilterCriteria)."""

    def __init__(self, aws, stack, processor_app, alerts_app, delivery_app, receivers):
        self.aws, self.receivers = aws, receivers
        self.processor_app, self.alerts_app, self.delivery_app = processor_app, alerts_app, delivery_app
        self.table = stack.physical["MarketTable"].ref
        self.delivery_table = stack.physical["DeliveryTable"].ref
        self.rules = RuleStore(aws.client("dynamodb"), self.table)
        self.destinations = DestinationStore(
            aws.client("dynamodb"),
            aws.client("secretsmanager"),
            aws.client("sns"),
            self.delivery_table,
            delivery_app.settings.secret_prefix,
            stack.physical["AlertTopic"].ref,
        )
        self.market_stream = StreamReader(aws, stack.physical["MarketTable"].attributes["StreamArn"])
        self.delivery_stream = StreamReader(aws, stack.physical["DeliveryTable"].attributes["StreamArn"])
        self.filters = template_filters(Template.load().body, "DeliveryFunction")
        self.inbox = subscribe_queue(aws, stack.physical["AlertTopic"].ref)
        service = delivery_app.service
        service.settings = replace(service.settings, telegram_api=receivers.telegram_api)
        self.sent = 0
        self.last_delivery_event: dict | None = None

    def add(self, kind: str, name: str, **fields) -> None:
        self.destinations.add(new_destination(name, kind, allow_loopback_http=True, **fields))

    def rule(self, symbol: str, threshold: str, *notify: str, template: str | None = None) -> None:
        self.rules.add_condition(
            symbol,
            Condition(RuleKind.PRICE, Direction.ABOVE, Decimal(threshold)),
            options=RuleOptions(notify=notify, template=template),
        )

    def trade(self, symbol: str, *prices: float, step: float = 1.0) -> dict:
        """One processor batch, the alerts function on its quote changes, then the delivery
        function on the pending deliveries; returns the delivery function's answer."""
        documents = [
            tick(symbol, float(p), BASE_TIME + timedelta(seconds=(self.sent + i) * step)) for i, p in enumerate(prices)
        ]
        assert self.processor_app.lambda_handler(kinesis_event(documents, first=self.sent), LambdaContext()) == {
            "batchItemFailures": []
        }
        self.sent += len(documents)
        assert self.alerts_app.lambda_handler(self.market_stream.new_event(), LambdaContext()) == {
            "batchItemFailures": []
        }
        return self.deliver()

    def deliver(self, event: dict | None = None) -> dict:
        if event is None:
            event = self.delivery_stream.new_event(quotes_only=False)
            event["Records"] = [r for r in event["Records"] if matches_any(self.filters, r)]
            self.last_delivery_event = event
        return self.delivery_app.lambda_handler(event, LambdaContext())

    def deliveries(self) -> list[dict]:
        return [
            items.deserialize(item)
            for (_, sk), item in sorted(scan_table(self.aws, self.delivery_table).items())
            if sk.startswith("ALERT#")
        ]

    def history(self) -> list[dict]:
        return [
            items.deserialize(item)
            for (_, sk), item in sorted(scan_table(self.aws, self.table).items())
            if sk.startswith("ALERT#")
        ]


@pytest.fixture
def pipeline(aws, stack, processor_app, alerts_app, delivery_app, receivers):
    return Pipeline(aws, stack, processor_app, alerts_app, delivery_app, receivers)


def test_an_alert_reaches_its_slack_destination_once_and_not_the_topic(pipeline, receivers):
    # Given a rule that notifies a Slack destination
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")

    # When the price crosses it
    assert pipeline.trade("AAPL", 199, 201) == {"batchItemFailures": []}

    # Then Slack got the alert's own words once, and the topic's subscribers nothing
    (message,) = receivers.accepted("slack")
    assert message.json()["text"].startswith("AAPL traded at 201, at or above your threshold of 200.")
    assert received_messages(pipeline.aws, pipeline.inbox) == []
    (delivery,) = pipeline.deliveries()
    assert (delivery["destination"], delivery["status"], delivery["attempts"]) == ("team", "delivered", 1)
    (alert,) = pipeline.history()
    assert alert["notify"] == ["team"]
    assert delivery["alert_id"] == alert["alert_id"]

    # And a redelivered stream batch (Lambda retrying it) sends nothing again
    assert pipeline.deliver(pipeline.last_delivery_event) == {"batchItemFailures": []}
    assert len(receivers.accepted("slack")) == 1


def test_a_webhook_gets_a_signed_versioned_body_with_the_alert_id(pipeline, receivers):
    pipeline.add("webhook", "ops", url=receivers.webhook_url("ops"), secret=SIGNING_SECRET)
    pipeline.rule("MSFT", "400", "ops")

    pipeline.trade("MSFT", 401)

    (request,) = receivers.accepted("webhook", "ops")
    timestamp = int(request.headers["tickwatch-timestamp"])
    assert verify(SIGNING_SECRET, request.headers, request.body, now=timestamp)
    assert not verify("another-secret-0000000", request.headers, request.body, now=timestamp)
    body = request.json()
    (alert,) = pipeline.history()
    assert (body["version"], body["type"], body["destination"]) == ("1", "alert", "ops")
    assert body["alerts"][0]["alert_id"] == alert["alert_id"]
    assert body["alerts"][0]["price"] == "401"
    assert request.headers["tickwatch-delivery"] == body["delivery_id"] == f"{alert['alert_id']}.ops"


def test_one_alert_goes_to_every_destination_of_its_rule_and_the_default_email(pipeline, receivers):
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.add("telegram", "phone", token=TELEGRAM_TOKEN, chat_id="4242")
    pipeline.add("discord", "guild", url=receivers.discord_url("guild"))
    pipeline.rule("NVDA", "100", "team", "phone", "guild", "email", template="{symbol} {direction} {level}: {price}")

    pipeline.trade("NVDA", 101)

    assert receivers.accepted("slack")[0].json()["text"].startswith("NVDA above 100: 101\n\n")
    (telegram,) = receivers.accepted("telegram")
    assert telegram.target == "chat:4242"
    assert telegram.json()["text"].startswith("NVDA above 100: 101")
    (discord,) = receivers.accepted("discord")
    assert discord.json()["allowed_mentions"] == {"parse": []}
    (mail,) = received_messages(pipeline.aws, pipeline.inbox)
    assert mail["Subject"] == "tickwatch: NVDA above 100: 101"
    assert mail["MessageAttributes"]["destination"]["Value"] == "email"
    statuses = {d["destination"]: (d["status"], d.get("message_id") is not None) for d in pipeline.deliveries()}
    assert statuses == {
        "team": ("delivered", False),
        "phone": ("delivered", True),
        "guild": ("delivered", True),
        "email": ("delivered", True),
    }


def test_a_burst_past_the_limit_goes_out_as_one_digest_within_it(pipeline, receivers):
    # Given a rule per symbol to one Slack webhook (1 a second)
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    symbols = [f"S{index:02d}" for index in range(12)]
    for symbol in symbols:
        pipeline.rule(symbol, "10", "team")

    # When all of them fire in one batch, then again a moment later
    for symbol in symbols:
        pipeline.processor_app.lambda_handler(
            kinesis_event([tick(symbol, 11.0, BASE_TIME)], first=pipeline.sent), LambdaContext()
        )
        pipeline.sent += 1
    pipeline.alerts_app.lambda_handler(pipeline.market_stream.new_event(), LambdaContext())
    assert pipeline.deliver() == {"batchItemFailures": []}

    # Then Slack got one digest listing all twelve, within its rate
    (digest,) = receivers.accepted("slack")
    text = digest.json()["text"]
    assert text.startswith("12 alerts from")
    assert all(symbol in text for symbol in symbols)
    deliveries = pipeline.deliveries()
    assert {(d["status"], d.get("digest_of")) for d in deliveries} == {("delivered", 12)}
    assert receivers.busiest("slack", digest.target, 1.0) == 1
    assert receivers.refused_for_rate() == []


def test_a_second_burst_waits_for_the_next_slot_instead_of_breaking_the_limit(pipeline, receivers):
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")
    pipeline.rule("MSFT", "400", "team")

    pipeline.trade("AAPL", 201)
    pipeline.trade("MSFT", 401)

    first, second = receivers.accepted("slack")
    assert second.arrived - first.arrived >= 1.0
    assert receivers.refused_for_rate() == []


def test_5xx_and_429_are_retried_with_backoff_honouring_retry_after(pipeline, receivers):
    pipeline.add("webhook", "ops", url=receivers.webhook_url("ops"), secret=SIGNING_SECRET)
    pipeline.rule("AAPL", "200", "ops")
    receivers.fail_next("webhook", "ops", Fault(503), Fault(429, retry_after=1))

    pipeline.trade("AAPL", 201)

    tries = [r for r in receivers.received if r.channel == "webhook"]
    assert [r.status for r in tries] == [503, 429, 200]
    assert tries[2].arrived - tries[1].arrived >= 1.0  # the Retry-After
    # Every try carries the same delivery id: the receiver's idempotency key.
    assert len({r.headers["tickwatch-delivery"] for r in tries}) == 1
    (delivery,) = pipeline.deliveries()
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    assert delivery["last_error"].startswith("webhook 429")


def test_a_refusal_parks_the_delivery_without_showing_the_url(pipeline, receivers, caplog):
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")
    receivers.fail_next("slack", "BTEAM", Fault(404))

    with caplog.at_level(logging.INFO):
        assert pipeline.trade("AAPL", 201) == {"batchItemFailures": []}

    (delivery,) = pipeline.deliveries()
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["parked"] == "FAILED"
    assert delivery["last_error"] == "Slack 404: fault 404"
    secret_part = receivers.slack_url("team").rsplit("/", 1)[1]
    everything = json.dumps(pipeline.deliveries(), default=str) + caplog.text
    assert secret_part not in everything


def test_past_the_retry_budget_a_delivery_is_parked_not_dropped(pipeline, receivers):
    pipeline.add("webhook", "ops", url=receivers.webhook_url("ops"), secret=SIGNING_SECRET)
    pipeline.rule("AAPL", "200", "ops")
    service = pipeline.delivery_app.service
    service.retry = replace(service.retry, attempts=3, base_seconds=0.01)
    receivers.fail_next("webhook", "ops", Fault(500), Fault(502), Fault(503))

    pipeline.trade("AAPL", 201)

    (delivery,) = pipeline.deliveries()
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("failed", 3, "webhook 503: fault 503")


def test_an_alert_for_a_destination_that_does_not_exist_is_parked_saying_so(pipeline, receivers):
    pipeline.rule("AAPL", "200", "nobody")

    pipeline.trade("AAPL", 201)

    (delivery,) = pipeline.deliveries()
    assert (delivery["status"], delivery["last_error"]) == ("failed", "no destination named 'nobody'")
    assert len(pipeline.history()) == 1


def test_a_telegram_token_never_reaches_records_or_logs(pipeline, receivers, caplog):
    pipeline.add("telegram", "phone", token=TELEGRAM_TOKEN, chat_id="-1001234567890")
    pipeline.rule("AAPL", "200", "phone")
    receivers.fail_next("telegram", "chat:-1001234567890", Fault(400))

    with caplog.at_level(logging.INFO):
        pipeline.trade("AAPL", 201)

    (delivery,) = pipeline.deliveries()
    assert delivery["status"] == "failed"
    everything = json.dumps(pipeline.deliveries(), default=str) + caplog.text
    assert TELEGRAM_TOKEN not in everything
    assert TELEGRAM_TOKEN.split(":")[1] not in everything
    listed = {d.name: d for d in pipeline.destinations.list()}
    assert TELEGRAM_TOKEN not in repr(listed["phone"])


def test_with_too_little_time_left_nothing_is_sent_and_the_stream_brings_it_back(pipeline, receivers):
    # Given a pending delivery and an invocation with 3 s left (below the 5 s a send keeps in reserve)
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")
    pipeline.processor_app.lambda_handler(kinesis_event([tick("AAPL", 201.0, BASE_TIME)]), LambdaContext())
    pipeline.alerts_app.lambda_handler(pipeline.market_stream.new_event(), LambdaContext())
    event = pipeline.delivery_stream.new_event(quotes_only=False)
    event["Records"] = [r for r in event["Records"] if matches_any(pipeline.filters, r)]
    short = LambdaContext()
    short.timeout_ms = 3_000

    # When the delivery function runs out of time, it sends nothing and asks for the batch again
    answer = pipeline.delivery_app.lambda_handler(event, short)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}
    assert receivers.accepted("slack") == []
    assert pipeline.deliveries()[0]["status"] == "pending"

    # Then the retried batch delivers it, once
    assert pipeline.delivery_app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert len(receivers.accepted("slack")) == 1


def test_get_alerts_shows_each_alerts_deliveries(pipeline, receivers, query_app, aws):
    # Given an alert delivered to one destination and refused by another, and one of a rule
    # without destinations
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.add("webhook", "ops", url=receivers.webhook_url("ops"), secret=SIGNING_SECRET)
    pipeline.rule("AAPL", "200", "team", "ops")
    pipeline.rules.add("MSFT", "above", "400")
    receivers.fail_next("webhook", "ops", Fault(410))
    pipeline.trade("AAPL", 201)
    pipeline.trade("MSFT", 401)
    query_app.service.clients = clients_for(aws)

    # When the alerts are read through the query API
    answer = call(query_app, "GET", "/alerts")

    # Then each lists what became of it at each destination
    assert answer.status == 200, answer.text
    by_symbol = {alert["symbol"]: alert["deliveries"] for alert in answer.json["alerts"]}
    team, ops = by_symbol["AAPL"]
    assert (team["destination"], team["status"], team["attempts"]) == ("team", "delivered", 1)
    assert team["delivered_at"] is not None
    assert (ops["destination"], ops["status"], ops["last_error"]) == ("ops", "failed", "webhook 410: fault 410")
    (mail,) = by_symbol["MSFT"]
    assert (mail["destination"], mail["status"]) == ("email", "published")


def test_destinations_through_the_query_api_keep_their_secrets_out_of_answers(query_app, aws, receivers):
    query_app.service.clients = clients_for(aws)
    url = receivers.slack_url("team")
    settings = query_app.service.settings
    query_app.service.settings = replace(settings, allow_loopback_destinations=True)

    added = call(query_app, "POST", "/destinations", body={"name": "team", "kind": "slack", "url": url})
    assert added.status == 201, added.text
    assert added.json["target"].endswith("/slack/…")
    assert added.json["limits"] == ["1/s"]

    listed = call(query_app, "GET", "/destinations")
    assert [d["name"] for d in listed.json["destinations"]] == ["email", "team"]
    assert url.rsplit("/", 1)[1] not in listed.text

    again = call(query_app, "POST", "/destinations", body={"name": "team", "kind": "slack", "url": url})
    assert (again.status, again.json["error"]["field"]) == (409, "name")
    bad = call(query_app, "POST", "/destinations", body={"name": "ops", "kind": "webhook", "url": "https://x.io/h"})
    assert (bad.status, bad.json["error"]["field"]) == (422, "secret")
    unknown = call(query_app, "POST", "/destinations", body={"name": "x", "kind": "pager"})
    assert (unknown.status, unknown.json["error"]["field"]) == (422, "kind")

    rule = {"symbol": "AAPL", "direction": "above", "threshold": 200, "notify": ["team", "email"]}
    assert call(query_app, "POST", "/rules", body=rule).status == 201
    missing = call(query_app, "POST", "/rules", body={**rule, "threshold": 201, "notify": ["nope"]})
    assert (missing.status, missing.json["error"]["field"]) == (422, "notify")
    assert "no destination named 'nope'" in missing.json["error"]["message"]

    assert call(query_app, "DELETE", "/destinations/team").json == {"deleted": "team"}
    assert call(query_app, "DELETE", "/destinations/team").status == 404
    assert call(query_app, "DELETE", "/destinations/email").status == 422


def test_a_batch_carrying_one_delivery_twice_delivers_it_once(pipeline, receivers):
    # A replay's MODIFY can share a batch with the delivery's INSERT being retried.
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")
    pipeline.processor_app.lambda_handler(kinesis_event([tick("AAPL", 201.0, BASE_TIME)]), LambdaContext())
    pipeline.alerts_app.lambda_handler(pipeline.market_stream.new_event(), LambdaContext())
    event = pipeline.delivery_stream.new_event(quotes_only=False)
    records = [r for r in event["Records"] if matches_any(pipeline.filters, r)]

    assert pipeline.deliver({"Records": records + records}) == {"batchItemFailures": []}

    assert len(receivers.accepted("slack")) == 1


def test_an_unreadable_delivery_is_parked_and_the_others_go(pipeline, receivers, aws):
    pipeline.add("slack", "team", url=receivers.slack_url("team"))
    pipeline.rule("AAPL", "200", "team")
    pipeline.rule("MSFT", "400", "team")
    pipeline.processor_app.lambda_handler(
        kinesis_event([tick("AAPL", 201.0, BASE_TIME), tick("MSFT", 401.0, BASE_TIME)]), LambdaContext()
    )
    pipeline.alerts_app.lambda_handler(pipeline.market_stream.new_event(), LambdaContext())
    # One of them written by a version this one cannot read
    damaged = next(d for d in pipeline.deliveries() if d["symbol"] == "MSFT")
    aws.client("dynamodb").update_item(
        TableName=pipeline.delivery_table,
        Key={"pk": {"S": damaged["pk"]}, "sk": {"S": damaged["sk"]}},
        UpdateExpression="SET notice = :notice",
        ExpressionAttributeValues={":notice": {"S": '{"v": 99}'}},
    )

    assert pipeline.deliver() == {"batchItemFailures": []}

    statuses = {d["symbol"]: (d["status"], d.get("last_error", "")) for d in pipeline.deliveries()}
    assert statuses["AAPL"] == ("delivered", "")
    assert statuses["MSFT"][0] == "failed"
    assert statuses["MSFT"][1].startswith("unreadable notice: alert notice version 99")
    assert len(receivers.accepted("slack")) == 1
