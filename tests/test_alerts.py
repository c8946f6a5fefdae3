"""Alerts Lambda end to end in moto: processor writes quotes, the table's stream feeds the alerts
handler, SNS delivers to a queue standing in for an e-mail inbox."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

import pytest

from tests.support import (
    BASE_TIME,
    CallCounter,
    FailingClient,
    LambdaContext,
    StreamReader,
    clients_for,
    kinesis_event,
    received_messages,
    scan_table,
    subscribe_queue,
    tick,
)
from tickwatch_core.domain.market import Bar
from tickwatch_core.domain.rules import MovingAverage, RuleKind, RuleOptions, TradingHours
from tickwatch_core.store import items
from tickwatch_core.store.rule_store import RuleStore


class Market:
    """Drives the pipeline: ticks in through the processor, stream records out to the alerts handler."""

    def __init__(self, aws, stack, processor_app, alerts_app):
        self.aws, self.stack = aws, stack
        self.processor_app, self.alerts_app = processor_app, alerts_app
        self.table = stack.physical["MarketTable"].ref
        self.rules = RuleStore(aws.client("dynamodb"), self.table)
        self.stream = StreamReader(aws, stack.physical["MarketTable"].attributes["StreamArn"])
        self.inbox = subscribe_queue(aws, stack.physical["AlertTopic"].ref)
        self.sent = 0
        self.last_event: dict | None = None

    def trade(self, symbol: str, *prices: float | str, step: float = 1.0) -> dict:
        """Process one Kinesis batch of trades and return the alerts handler's response to it."""
        documents = [
            tick(symbol, float(p), BASE_TIME + timedelta(seconds=(self.sent + i) * step)) for i, p in enumerate(prices)
        ]
        assert self.processor_app.lambda_handler(kinesis_event(documents, first=self.sent), LambdaContext()) == {
            "batchItemFailures": []
        }
        self.sent += len(documents)
        self.last_event = self.stream.new_event()
        return self.deliver(self.last_event)

    def deliver(self, event: dict) -> dict:
        return self.alerts_app.lambda_handler(event, LambdaContext())

    def messages(self) -> list[dict]:
        return received_messages(self.aws, self.inbox)

    def history(self) -> list[dict]:
        return [
            items.deserialize(item)
            for (_, sk), item in sorted(scan_table(self.aws, self.table).items())
            if sk.startswith("ALERT#")
        ]

    def rule(self, symbol: str, rule_id: str) -> dict:
        return items.deserialize(scan_table(self.aws, self.table)[("SYMBOL#" + symbol, "RULE#" + rule_id)])


def alert_id(message: dict) -> str:
    return next(line.split()[2] for line in message["Message"].splitlines() if line.startswith("Alert id:"))


def trigger_price(message: dict) -> str:
    """The price line of the e-mail body."""
    return next(line.split()[1] for line in message["Message"].splitlines() if line.startswith("Price:"))


@pytest.fixture
def market(aws, stack, processor_app, alerts_app) -> Market:
    return Market(aws, stack, processor_app, alerts_app)


def test_a_crossing_publishes_one_readable_message_and_records_it(market):
    market.rules.add("AAPL", "above", "200")
    assert market.trade("AAPL", 198, 199.5, 200.25, 201) == {"batchItemFailures": []}

    (message,) = market.messages()
    assert message["Subject"] == "tickwatch: AAPL rose to 200.25 (above 200)"
    assert "AAPL traded at 200.25, at or above your threshold of 200." in message["Message"]
    assert "Time:       2026-11-20 14:30:02.000 UTC" in message["Message"]
    attributes = {name: value["Value"] for name, value in message["MessageAttributes"].items()}
    assert attributes == {
        "symbol": "AAPL",
        "rule_id": "AAPL-above-200",
        "direction": "above",
        "alert_id": alert_id(message),
    }
    (alert,) = market.history()
    assert (alert["rule_id"], alert["price"], alert["fired_at"]) == (
        "AAPL-above-200",
        Decimal("200.25"),
        "2026-11-20T14:30:02Z",
    )
    assert alert["expires_at"] > (BASE_TIME + timedelta(days=89)).timestamp()
    assert market.rule("AAPL", "AAPL-above-200")["armed"] is False


def test_no_crossing_no_message(market):
    market.rules.add("AAPL", "above", "200")
    market.rules.add("AAPL", "below", "150")
    market.trade("AAPL", 180, 190, 199.99, 150.01)
    assert market.messages() == []
    assert market.history() == []


def test_a_crossing_inside_one_batch_that_reverses_is_still_seen(market):
    market.rules.add("AAPL", "above", "200")
    market.trade("AAPL", 199, 200.5, 199)  # last price is back below: only the trades show the crossing
    assert len(market.messages()) == 1


def test_wobbling_around_the_threshold_alerts_once_per_real_crossing(market):
    market.rules.add("AAPL", "above", "200")
    market.trade("AAPL", 199.9, 200.1, 200.05, 200.2)  # one crossing, then stays above
    market.trade("AAPL", 200.3, 200.01, 200.4)  # still above: nothing new
    market.trade("AAPL", 199.99, 200.02)  # dips below, re-crosses: second alert
    assert [trigger_price(m) for m in market.messages()] == ["200.1", "200.02"]


def test_cooldown_suppresses_re_alerting_until_it_has_passed(market):
    market.rules.add("AAPL", "above", "200", cooldown=timedelta(seconds=30))
    market.trade("AAPL", 201)  # t=0: alert
    market.trade("AAPL", 199, 202, step=10)  # t=10,20: dip inside the cooldown does not re-arm
    market.trade("AAPL", 199, 203, step=30)  # t=90,120: dip after the cooldown re-arms, then alert
    assert [trigger_price(m) for m in market.messages()] == ["201", "203"]


def test_redelivered_stream_records_publish_nothing_twice(market):
    market.rules.add("AAPL", "above", "200")
    market.trade("AAPL", 201, 199, 202)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert len(market.messages()) == 2
    assert len(market.history()) == 2


def test_sns_failure_reports_the_record_and_the_retry_publishes_each_alert_once(market, aws):
    market.rules.add("AAPL", "above", "200")
    market.rules.add("MSFT", "below", "300")
    failing_sns = FailingClient(
        aws.client("sns"), {"publish_batch": lambda kwargs: True}, code="InternalError", status=500, times=1
    )
    market.alerts_app.dispatcher.clients = clients_for(aws, sns=failing_sns)

    market.processor_app.lambda_handler(
        kinesis_event(
            [
                tick("MSFT", 310, BASE_TIME),
                tick("AAPL", 199, BASE_TIME),
                tick("AAPL", 201, BASE_TIME + timedelta(seconds=1)),
                tick("MSFT", 299, BASE_TIME + timedelta(seconds=1)),
            ]
        ),
        LambdaContext(),
    )
    event = market.stream.new_event()
    response = market.deliver(event)
    failed = response["batchItemFailures"][0]["itemIdentifier"]
    assert failed == min((r["dynamodb"]["SequenceNumber"] for r in event["Records"]), key=int)
    assert market.messages() == []

    # Lambda redelivers from the reported record; SNS works again.
    retry = {"Records": [r for r in event["Records"] if int(r["dynamodb"]["SequenceNumber"]) >= int(failed)]}
    assert market.deliver(retry) == {"batchItemFailures": []}
    assert sorted(m["Subject"] for m in market.messages()) == [
        "tickwatch: AAPL rose to 201 (above 200)",
        "tickwatch: MSFT fell to 299 (below 300)",
    ]
    assert market.deliver(retry) == {"batchItemFailures": []}
    assert market.messages() == []


def test_one_entry_failing_inside_publish_batch_is_retried_alone(market, aws):
    market.rules.add("AAPL", "above", "200")
    market.rules.add("AAPL", "above", "205")
    real_sns = aws.client("sns")

    class FirstEntryRejected:
        def publish_batch(self, **kwargs):
            first, *rest = kwargs["PublishBatchRequestEntries"]
            response = real_sns.publish_batch(**{**kwargs, "PublishBatchRequestEntries": rest})
            response["Failed"] = [
                {"Id": first["Id"], "Code": "InternalError", "Message": "injected", "SenderFault": False}
            ]
            return response

    market.alerts_app.dispatcher.clients = clients_for(aws, sns=FirstEntryRejected())
    response = market.trade("AAPL", 199, 206)
    assert response["batchItemFailures"]
    assert len(market.messages()) == 1

    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert len(market.messages()) == 1
    assert len(market.history()) == 2


def test_rule_state_write_failure_retries_without_publishing_again(market, aws):
    market.rules.add("AAPL", "above", "200")
    failing = FailingClient(aws.client("dynamodb"), {"update_item": lambda kwargs: True}, times=1)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=failing)
    response = market.trade("AAPL", 201)
    assert response["batchItemFailures"]
    assert len(market.messages()) == 1

    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert market.messages() == []
    assert market.rule("AAPL", "AAPL-above-200")["armed"] is False


def test_history_write_failure_loses_no_alert(market, aws):
    # The one case a standard topic cannot make exactly-once: SNS accepted the message but its
    # record could not be written. The retry publishes again rather than lose the alert.
    market.rules.add("AAPL", "above", "200")
    failing = FailingClient(aws.client("dynamodb"), {"batch_write_item": lambda kwargs: True}, times=1)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=failing)
    assert market.trade("AAPL", 201)["batchItemFailures"]

    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert len(market.messages()) == 2
    assert len(market.history()) == 1


def test_symbols_without_rules_cost_one_query_and_nothing_else(market, aws):
    dynamodb, sns = aws.client("dynamodb"), aws.client("sns")
    counter = CallCounter().attach(dynamodb, sns)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=dynamodb, sns=sns)
    market.trade("AAPL", 201, 202)
    assert counter.calls == {("dynamodb", "Query"): 1}


def test_one_sns_call_per_firing_at_most(market, aws):
    for threshold in range(200, 220):
        market.rules.add("AAPL", "above", threshold)
    sns = aws.client("sns")
    counter = CallCounter().attach(sns)
    market.alerts_app.dispatcher.clients = clients_for(aws, sns=sns)
    market.trade("AAPL", 199, 230)
    assert len(market.messages()) == 20
    assert counter.count("sns") == 2  # PublishBatch: ten alerts a call


def test_rules_of_one_symbol_do_not_fire_for_another(market):
    market.rules.add("MSFT", "above", "200")
    market.trade("AAPL", 250)
    assert market.messages() == []


def test_a_symbol_whose_rules_cannot_be_read_is_redelivered_and_the_others_still_fire(market, aws):
    market.rules.add("AAPL", "above", "200")
    market.rules.add("MSFT", "above", "400")
    documents = [tick("AAPL", 201.0, BASE_TIME), tick("MSFT", 401.0, BASE_TIME + timedelta(seconds=1))]
    market.processor_app.lambda_handler(kinesis_event(documents), LambdaContext())
    event = market.stream.new_event()
    (msft,) = [r for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == "SYMBOL#MSFT"]

    def msft_rules(kwargs):
        return kwargs["ExpressionAttributeValues"][":pk"]["S"] == "SYMBOL#MSFT"

    market.alerts_app.dispatcher.clients = clients_for(
        aws, dynamodb=FailingClient(aws.client("dynamodb"), {"query": msft_rules})
    )
    response = market.deliver(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": msft["dynamodb"]["SequenceNumber"]}]}
    assert [m["MessageAttributes"]["rule_id"]["Value"] for m in market.messages()] == ["AAPL-above-200"]

    market.alerts_app.dispatcher.clients = clients_for(aws)
    redelivered = {"Records": event["Records"][event["Records"].index(msft) :]}
    assert market.deliver(redelivered) == {"batchItemFailures": []}
    assert [m["MessageAttributes"]["rule_id"]["Value"] for m in market.messages()] == ["MSFT-above-400"]


class CrashingSns:
    """A real SNS client whose `crash_on`-th PublishBatch call raises what is not an AWS error (the
    function dies there), and which can take time off the invocation's clock with each call."""

    def __init__(self, sns, *, crash_on: int | None = None, context: LambdaContext | None = None, cost_ms: int = 0):
        self._sns, self._crash_on, self._context, self._cost_ms = sns, crash_on, context, cost_ms
        self.calls = 0

    def publish_batch(self, **kwargs):
        self.calls += 1
        if self.calls == self._crash_on:
            raise RuntimeError("the function died in this call")
        if self._context is not None:
            self._context.timeout_ms -= self._cost_ms
        return self._sns.publish_batch(**kwargs)


def add_thresholds(market: Market, count: int) -> None:
    for threshold in range(200, 200 + count):
        market.rules.add("AAPL", "above", threshold)


def test_a_crash_in_a_later_publish_call_keeps_what_earlier_calls_published_recorded(market, aws):
    # Given 25 firings (three PublishBatch calls), and a function that dies in the second call
    add_thresholds(market, 25)
    market.alerts_app.dispatcher.clients = clients_for(aws, sns=CrashingSns(aws.client("sns"), crash_on=2))
    with pytest.raises(RuntimeError, match="died"):
        market.trade("AAPL", 199, 230)
    # then the first call's ten alerts are already recorded,
    assert len(market.messages()) == 10
    assert len(market.history()) == 10

    # and Lambda's redelivery publishes the other fifteen, none of the first ten again.
    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    assert len(market.messages()) == 15
    assert len(market.history()) == 25


def test_a_failed_history_write_stops_further_publish_calls(market, aws):
    # Given 25 firings and a history write that fails after SNS accepted the first call
    add_thresholds(market, 25)
    sns = CrashingSns(aws.client("sns"))
    failing = FailingClient(aws.client("dynamodb"), {"batch_write_item": lambda kwargs: True}, times=1)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=failing, sns=sns)
    response = market.trade("AAPL", 199, 230)
    # then no second call starts: only those ten are published without a record,
    assert response["batchItemFailures"]
    assert sns.calls == 1
    first = market.messages()
    assert len(first) == 10
    assert market.history() == []

    # and the redelivery sends all 25: the window SNS makes unavoidable is those ten, no more.
    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(market.last_event) == {"batchItemFailures": []}
    again = market.messages()
    assert len(again) == 25
    assert {alert_id(m) for m in first} < {alert_id(m) for m in again}
    assert len(market.history()) == 25


def test_no_publish_call_starts_close_to_the_timeout_and_the_rest_is_redelivered(market, aws):
    # Given 45 firings (five calls) and an invocation with 2.35 s left, each call taking 0.4 s of it
    add_thresholds(market, 45)
    context = LambdaContext(timeout_ms=2_350)
    market.alerts_app.dispatcher.clients = clients_for(
        aws, sns=CrashingSns(aws.client("sns"), context=context, cost_ms=400)
    )
    market.processor_app.lambda_handler(
        kinesis_event([tick("AAPL", 199.0, BASE_TIME), tick("AAPL", 250.0, BASE_TIME + timedelta(seconds=1))]),
        LambdaContext(),
    )
    event = market.stream.new_event()
    response = market.alerts_app.lambda_handler(event, context)
    # then a call starts only with the reserve (1 s) and twice the longest call (0.4 s) left: at
    # 2.35 and 1.95 s, not at 1.55 s,
    assert len(market.messages()) == 20
    assert len(market.history()) == 20
    # the update is reported for redelivery, and its rules keep the state that makes them fire again
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}

    market.alerts_app.dispatcher.clients = clients_for(aws)
    assert market.deliver(event) == {"batchItemFailures": []}
    assert len(market.messages()) == 25
    assert len(market.history()) == 45


# --- re-arm margin and lifecycle ------------------------------------------------------------------


def test_a_once_rule_fires_once_ends_and_a_redelivery_publishes_nothing_more(market):
    market.rules.add("AAPL", "above", "200", options=RuleOptions(once=True))
    assert market.trade("AAPL", 199, 201, 198, 202) == {"batchItemFailures": []}
    assert market.deliver(market.last_event) == {"batchItemFailures": []}  # the same record again
    assert market.trade("AAPL", 199, 203) == {"batchItemFailures": []}
    (message,) = market.messages()
    assert trigger_price(message) == "201"
    assert "This was a one-shot rule: it has ended and will not fire again." in message["Message"]
    rule = market.rule("AAPL", "AAPL-above-200")
    assert (rule["ended"], rule["armed"]) == (True, False)


def test_a_re_arm_margin_turns_a_price_hovering_at_the_threshold_into_one_alert(market):
    market.rules.add("AAPL", "above", "200", options=RuleOptions(rearm_margin=Decimal("0.005")))
    market.rules.add("AAPL", "above", "199.5")  # the same trades without a margin: an alert per wobble
    market.trade("AAPL", 199.4, 200.1, 199.45, 200.05, 199.3, 200.2)
    messages = market.messages()  # read once: reading takes them off the queue
    by_rule: dict[str, list[str]] = {}
    for message in messages:
        by_rule.setdefault(message["MessageAttributes"]["rule_id"]["Value"], []).append(trigger_price(message))
    assert by_rule == {"AAPL-above-200": ["200.1"], "AAPL-above-199.5": ["200.1", "200.05", "200.2"]}
    (margin_message,) = [m for m in messages if m["MessageAttributes"]["rule_id"]["Value"] == "AAPL-above-200"]
    assert "Re-arm:     0.5% back past the threshold" in margin_message["Message"]
    assert "It re-arms when AAPL trades below 199." in margin_message["Message"]


def test_an_expired_rule_and_a_rule_outside_its_hours_stay_silent(market):
    # The trades are at 14:30:00 and 14:30:01 UTC on Friday 2026-11-20: 09:30 in New York.
    market.rules.add("AAPL", "above", "200", options=RuleOptions(expires_at=BASE_TIME + timedelta(seconds=1)))
    new_york_from_ten = TradingHours(time(10, 0), time(16, 0), "America/New_York", weekdays_only=True)
    market.rules.add("AAPL", "above", "190", options=RuleOptions(hours=new_york_from_ten))
    market.rules.add("AAPL", "above", "195")
    market.trade("AAPL", 185, 205)
    assert [m["MessageAttributes"]["rule_id"]["Value"] for m in market.messages()] == ["AAPL-above-195"]


def test_a_day_change_rule_fires_from_the_quote_s_open_and_says_so_in_words(market):
    market.rules.add("AAPL", "above", "3%", kind=RuleKind.CHANGE)
    market.trade("AAPL", 200, 204, 205.9, 206.5, 207)  # 200 opens the day; 206 would be +3 %
    (message,) = market.messages()
    assert message["Subject"] == "tickwatch: AAPL up 3.25 % on the day (above +3%)"
    body = message["Message"]
    assert "AAPL is up 3.25 % on the day, from the open of 200 to 206.5: at or above your +3%." in body
    assert "It re-arms when AAPL's change on the day goes back below +3%." in body
    (alert,) = market.history()
    assert (alert["rule_id"], alert["rule_kind"], alert["reference"]) == ("AAPL-change-above-3pct", "change", 200)
    rule = market.rule("AAPL", "AAPL-change-above-3pct")
    assert (rule["armed"], rule["reference_day"], rule["reference_open"]) == (False, "2026-11-20", 200)


def test_a_move_rule_keeps_its_window_in_the_rule_item_and_says_the_move_in_words(market):
    market.rules.add("TSLA", "below", "2%", kind=RuleKind.MOVE, window=timedelta(minutes=15))
    market.trade("TSLA", "251.3", "250", step=60)  # 14:30 and 14:31
    assert market.messages() == []
    window = market.rule("TSLA", "TSLA-move-down-2pct-15m")["price_window"]
    assert window.split(";")[0].split(" ")[1:] == ["251.3", "251.3"]
    market.trade("TSLA", "247", "246.02", step=60)  # 14:32 and 14:33: 251.3 × 0.98 = 246.274
    (message,) = market.messages()
    assert message["Subject"] == "tickwatch: TSLA moved down 2.10 % within 15m (down 2%)"
    body = message["Message"]
    assert "TSLA moved down 2.10 % within 15m, from 251.3 to 246.02: at least your 2%." in body
    assert "From:       251.3 (the high of the window)" in body
    (alert,) = market.history()
    assert (alert["rule_kind"], alert["within_seconds"], alert["reference"]) == ("move", 900, Decimal("251.3"))


def test_a_cross_rule_starts_from_the_stored_bars_and_fires_on_a_real_cross(market, aws):
    # Twenty stored one-minute bars before the rule's first trade, closing at 100 ... 119: SMA 109.5.
    dynamodb = aws.client("dynamodb")
    for minute in range(20):
        start = BASE_TIME - timedelta(minutes=20 - minute)
        close = Decimal(100 + minute)
        bar = Bar("NVDA", start, close, close, close, close, 1, 1, start, start, "0", 0)
        dynamodb.put_item(TableName=market.table, Item=items.bar_to_item(bar, retention=timedelta(days=30)))
    market.rules.add("NVDA", "above", 0, kind=RuleKind.CROSS, average=MovingAverage.parse("sma:20@1m"))
    assert market.rule("NVDA", "NVDA-cross-above-sma20-1m")["armed"] is False
    market.trade("NVDA", "109", "109.4", "109.5")  # 109 and 109.4 are below: armed; 109.5 is at it
    (message,) = market.messages()
    assert message["Subject"] == "tickwatch: NVDA crossed above its SMA(20) of 1m bars at 109.5"
    assert "NVDA crossed above its SMA(20) of 1m bars (109.5), trading at 109.5." in message["Message"]
    stored = market.rule("NVDA", "NVDA-cross-above-sma20-1m")
    assert stored["bars"]["closes"].split() == [str(100 + minute) for minute in range(20)]
    assert stored["bars"]["read_until"] == "2026-11-20T14:30:00Z"  # the 14:30 bar is still open


def test_a_cross_rule_reads_each_stored_bar_once_and_writes_its_item_once_per_bar(market, aws):
    market.rules.add("NVDA", "above", 0, kind=RuleKind.CROSS, average=MovingAverage.parse("sma:2@1m"))
    dynamodb = aws.client("dynamodb")
    counter = CallCounter().attach(dynamodb)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=dynamodb)
    market.trade("NVDA", 100, 101)  # 14:30:00-01: the rule reads what is stored before 14:30
    assert counter.count("dynamodb", "UpdateItem") == 1
    queries = counter.count("dynamodb", "Query")
    market.trade("NVDA", 102, 103)  # 14:30:02-03: the same minute: the rules' Query, nothing else
    assert (counter.count("dynamodb", "Query"), counter.count("dynamodb", "UpdateItem")) == (queries + 1, 1)
    market.trade("NVDA", 99, step=60)  # 14:34: the rules, then the 14:30 bar, read once
    assert (counter.count("dynamodb", "Query"), counter.count("dynamodb", "UpdateItem")) == (queries + 3, 2)
    assert [Decimal(c) for c in market.rule("NVDA", "NVDA-cross-above-sma2-1m")["bars"]["closes"].split()] == [103]


def test_a_cross_rule_with_too_few_stored_bars_waits_for_its_own(market):
    market.rules.add("NVDA", "below", 0, kind=RuleKind.CROSS, average=MovingAverage.parse("ema:2@1m"))
    market.trade("NVDA", 100, 120, 90, step=60)  # bars close 100, 120: EMA seeded at 110; 90 is below
    assert market.messages() == []  # but the rule was never above the average: no cross yet
    market.trade("NVDA", 115, 80, step=60)  # 14:33: EMA 2/3 × 90 + 1/3 × 110 = 96.67; 115 arms
    # 14:34: EMA 2/3 × 115 + 1/3 × 96.67 = 108.89; 80 crosses below
    (message,) = market.messages()
    assert trigger_price(message) == "80"


def test_a_cross_alert_keeps_its_average_to_six_decimals(market):
    market.rules.add("NVDA", "above", 0, kind=RuleKind.CROSS, average=MovingAverage.parse("sma:3@1m"))
    # 9 is below the closes 10, 11, 11 (10.667): armed; 11 is above 11, 11, 9 (31 / 3): fires.
    market.trade("NVDA", 10, 11, 11, 9, 11, step=60)
    (alert,) = market.history()
    assert alert["reference"] == Decimal("10.333333")  # not 10.33333333333333333333333333
    (message,) = market.messages()
    assert "its SMA(3) of 1m bars (10.3333), trading at 11." in message["Message"]


def test_a_day_change_rule_with_hours_added_during_the_session_measures_from_its_real_open(market):
    # Trades from 14:30 UTC, 09:30 in New York: the session opens at 200.
    market.trade("AAPL", 200, 203, step=60)
    market.rules.add(
        "AAPL",
        "above",
        "3%",
        kind=RuleKind.CHANGE,
        options=RuleOptions(hours=TradingHours(time(9, 30), time(16, 0), "America/New_York")),
    )
    market.trade("AAPL", "205", "206.5", step=60)  # +3.25 % on the session's 200, not on 205
    (message,) = market.messages()
    assert "AAPL is up 3.25 % on the day, from the session's open of 200 to 206.5" in message["Message"]


def test_an_ended_cross_rule_reads_no_more_bars(market, aws):
    options = RuleOptions(once=True)
    market.rules.add("NVDA", "above", 0, kind=RuleKind.CROSS, average=MovingAverage.parse("sma:2@1m"), options=options)
    market.trade("NVDA", 10, 10, 9, 11, step=60)  # 9 arms, 11 fires: the rule ends
    assert len(market.messages()) == 1
    dynamodb = aws.client("dynamodb")
    counter = CallCounter().attach(dynamodb)
    market.alerts_app.dispatcher.clients = clients_for(aws, dynamodb=dynamodb)
    market.trade("NVDA", 12, 13, step=60)  # later minutes: the rules' Query, and no bar read
    assert counter.calls == {("dynamodb", "Query"): 1}


def test_a_move_down_alert_says_it_re_arms_as_the_move_shrinks(market):
    market.rules.add("TSLA", "below", "2%", kind=RuleKind.MOVE, window=timedelta(minutes=15))
    market.trade("TSLA", "100", "97.5", step=60)
    (message,) = market.messages()
    assert "It re-arms when TSLA's move down within 15m is back below 2%." in message["Message"]
