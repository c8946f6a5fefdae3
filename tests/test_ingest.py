"""POST /ticks in-process: functions/ingest/app.py on a moto Kinesis stream built from template.yaml.

Every tick of a body must end accepted (in the stream), rejected (with the processor's reason) or
failed (valid, Kinesis did not take it in time), never silently dropped.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.query_support import call
from tests.support import BASE_TIME, FailingClient, KinesisBatch, LambdaContext, clients_for, tick
from tickwatch.local.verify import stream_records
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.ticks import TickRejected, parse_tick
from tickwatch_core.sources.ingest import MAX_BODY_BYTES, MAX_TICKS
from tickwatch_core.store.items import quote_key

NOW = BASE_TIME + timedelta(minutes=5)


@pytest.fixture
def kinesis(aws):
    return aws.client("kinesis")


@pytest.fixture
def stream(stack):
    return stack.physical["TickStream"].ref


@pytest.fixture
def ingest(ingest_app, kinesis):
    ingest_app.service.clients = AwsClients(kinesis=kinesis)
    ingest_app.service.clock = lambda: NOW
    return ingest_app


def post(module, body: Any, *, content_type: str = "application/json", context: LambdaContext | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(module, "POST", "/ticks", body=data, content_type=content_type, context=context)


def in_stream(kinesis, stream) -> list[tuple[str, dict]]:
    return [
        (record["PartitionKey"], json.loads(record["Data"], parse_float=Decimal))
        for record in stream_records(kinesis, stream)
    ]


def reason_of(document: Any) -> str:
    """What the processor says of this tick: the reason ingest must give."""
    with pytest.raises(TickRejected) as rejected:
        parse_tick(json.dumps(document).encode(), received_at=NOW)
    return rejected.value.reason


# -- accepted ------------------------------------------------------------------------------------


def test_a_body_of_valid_ticks_is_put_into_the_stream_keyed_by_symbol(ingest, kinesis, stream):
    ticks = [
        tick("AAPL", 229.12, BASE_TIME, volume=100),
        tick("MSFT", 415.5, BASE_TIME + timedelta(seconds=1)),
        tick("AAPL", 229.13, BASE_TIME + timedelta(seconds=2), bid=229.12, ask=229.14),
    ]
    answer = post(ingest, ticks)
    assert answer.status == 200
    assert answer.json == {"accepted": 3, "rejected": [], "failed": [], "request_id": "test-request"}
    stored = in_stream(kinesis, stream)
    assert sorted(key for key, _ in stored) == ["AAPL", "AAPL", "MSFT"]
    assert sorted((d["symbol"], d["price"]) for _, d in stored) == [
        ("AAPL", Decimal("229.12")),
        ("AAPL", Decimal("229.13")),
        ("MSFT", Decimal("415.5")),
    ]


def test_prices_reach_the_stream_digit_for_digit(ingest, kinesis, stream):
    # A float would round this; the body is decoded and re-encoded as exact decimals.
    body = b'[{"symbol":"BTC","price":64123.123456789012345678,"timestamp":"2026-11-19T14:30:00Z"}]'
    assert post(ingest, body).status == 200
    [(_, document)] = in_stream(kinesis, stream)
    assert document["price"] == Decimal("64123.123456789012345678")


def test_json_lines_are_ticks_too_and_a_bad_line_is_rejected_alone(ingest, kinesis, stream):
    lines = [
        json.dumps(tick("AAPL", 229.12, BASE_TIME)),
        "",
        "{not json",
        json.dumps(tick("MSFT", 415.5, BASE_TIME)),
    ]
    answer = post(ingest, "\n".join(lines).encode(), content_type="application/x-ndjson; charset=utf-8")
    assert answer.status == 207
    assert answer.json["accepted"] == 2
    [rejected] = answer.json["rejected"]
    assert rejected["index"] == 1  # among the non-blank lines
    assert rejected["reason"].startswith("not JSON")
    assert len(in_stream(kinesis, stream)) == 2


# -- rejected ------------------------------------------------------------------------------------


def test_invalid_ticks_are_rejected_with_the_processor_s_reason_and_the_rest_accepted(ingest, kinesis, stream):
    future = tick("AAPL", 1, NOW + timedelta(minutes=10))
    no_price = {"symbol": "AAPL", "timestamp": "2026-11-19T14:30:00Z"}
    crossed = tick("AAPL", 10, BASE_TIME, bid=11, ask=10.5)
    body = [tick("AAPL", 229.12, BASE_TIME), future, "AAPL", no_price, crossed, tick("MSFT", 415, BASE_TIME)]
    answer = post(ingest, body)
    assert answer.status == 207
    assert answer.json["accepted"] == 2
    assert answer.json["failed"] == []
    assert answer.json["rejected"] == [
        {"index": 1, "reason": reason_of(future)},
        {"index": 2, "reason": "not a JSON object but a string"},
        {"index": 3, "reason": reason_of(no_price)},
        {"index": 4, "reason": reason_of(crossed)},
    ]
    assert [d["symbol"] for _, d in in_stream(kinesis, stream)].count("AAPL") == 1


def test_duplicate_keys_and_nan_reject_that_tick_alone(ingest, kinesis, stream):
    body = (
        b'[{"symbol":"AAPL","price":1,"price":2,"timestamp":"2026-11-19T14:30:00Z"},'
        b'{"symbol":"AAPL","price":NaN,"timestamp":"2026-11-19T14:30:00Z"},'
        b'{"symbol":"AAPL","price":3,"timestamp":"2026-11-19T14:30:00Z"}]'
    )
    answer = post(ingest, body)
    assert answer.status == 207
    assert [(r["index"], r["reason"].split(":")[0]) for r in answer.json["rejected"]] == [
        (0, "not JSON"),
        (1, "not JSON"),
    ]
    assert "duplicate key 'price'" in answer.json["rejected"][0]["reason"]
    assert answer.json["accepted"] == 1


# -- the body as a whole -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 422, "the body is not JSON"),
        (b'{"symbol": "AAPL"}', 422, "the body is one JSON object"),
        (b'"ticks"', 422, "not an array of ticks"),
        (b"[]", 422, "no ticks"),
        (b"\xff\xfe[]", 422, "not UTF-8"),
    ],
)
def test_a_body_that_is_not_ticks_is_422_and_sends_nothing(ingest, kinesis, stream, body, status, message):
    answer = post(ingest, body)
    assert answer.status == status
    assert answer.json["error"]["field"] == "body"
    assert message in answer.json["error"]["message"]
    assert in_stream(kinesis, stream) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_a_wrong_content_type_is_415(ingest, kinesis, stream, content_type):
    answer = post(ingest, [tick("AAPL", 1, BASE_TIME)], content_type=content_type)
    assert answer.status == 415
    assert answer.json["error"]["code"] == "unsupported_media_type"
    assert "application/json" in answer.json["error"]["message"]
    assert in_stream(kinesis, stream) == []


def test_more_than_500_ticks_is_413(ingest, kinesis, stream):
    answer = post(ingest, [tick("AAPL", 1, BASE_TIME)] * (MAX_TICKS + 1))
    assert answer.status == 413
    assert f"at most {MAX_TICKS}" in answer.json["error"]["message"]
    assert in_stream(kinesis, stream) == []


def test_a_body_over_5_mib_is_413(ingest, kinesis, stream):
    padding = " " * MAX_BODY_BYTES
    answer = post(ingest, f"[{padding}]".encode())
    assert answer.status == 413
    assert answer.json["error"] == {
        "code": "too_large",
        "message": f"the body is {MAX_BODY_BYTES + 2:,} bytes; send at most {MAX_BODY_BYTES:,} per request",
        "field": "body",
    }


def test_500_ticks_go_in_one_request(ingest, kinesis, stream):
    ticks = [tick(f"S{i % 7}", 100 + i, BASE_TIME + timedelta(milliseconds=i)) for i in range(MAX_TICKS)]
    answer = post(ingest, ticks)
    assert (answer.status, answer.json["accepted"]) == (200, MAX_TICKS)
    assert len(in_stream(kinesis, stream)) == MAX_TICKS


# -- Kinesis failing -----------------------------------------------------------------------------


class PartlyFailingKinesis:
    """Kinesis whose PutRecords reports the records of `symbol` as failed (not written), as a hot
    shard's throttling does (FailedRecordCount), for the first `times` calls (None: always)."""

    def __init__(self, client: Any, symbol: str, times: int | None) -> None:
        self._client = client
        self.symbol = symbol
        self.times = times
        self.calls: list[int] = []

    def put_records(self, *, StreamName: str, Records: list[dict]) -> dict:
        self.calls.append(len(Records))
        failing = self.times is None or len(self.calls) <= self.times
        passed = [r for r in Records if not (failing and json.loads(r["Data"])["symbol"] == self.symbol)]
        written = iter(self._client.put_records(StreamName=StreamName, Records=passed)["Records"] if passed else [])
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
            if failing and json.loads(r["Data"])["symbol"] == self.symbol
            else next(written)
            for r in Records
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_records_kinesis_reports_as_failed_are_retried_until_they_are_in(ingest, kinesis, stream):
    flaky = PartlyFailingKinesis(kinesis, "MSFT", times=2)
    ingest.service.clients = AwsClients(kinesis=flaky)
    body = [tick("AAPL", 1, BASE_TIME), tick("MSFT", 2, BASE_TIME), tick("MSFT", 3, BASE_TIME)]
    answer = post(ingest, body)
    assert (answer.status, answer.json["accepted"], answer.json["failed"]) == (200, 3, [])
    assert flaky.calls == [3, 2, 2]  # the failed records alone, twice
    assert sorted(d["price"] for _, d in in_stream(kinesis, stream)) == [1, 2, 3]


def test_records_still_failing_when_the_time_is_up_are_answered_as_failed(ingest, kinesis, stream):
    flaky = PartlyFailingKinesis(kinesis, "MSFT", times=None)
    ingest.service.clients = AwsClients(kinesis=flaky)
    body = [tick("MSFT", 2, BASE_TIME), tick("AAPL", 1, BASE_TIME), tick("MSFT", 3, BASE_TIME)]
    answer = post(ingest, body)
    assert answer.status == 207
    assert answer.json["accepted"] == 1
    assert answer.json["failed"] == [
        {"index": 0, "error": "ProvisionedThroughputExceededException: Rate exceeded for shard"},
        {"index": 2, "error": "ProvisionedThroughputExceededException: Rate exceeded for shard"},
    ]
    assert len(flaky.calls) >= 2  # retried before giving up
    assert [d["symbol"] for _, d in in_stream(kinesis, stream)] == ["AAPL"]


def test_retries_stop_in_time_to_answer_the_request(ingest, kinesis, stream):
    flaky = PartlyFailingKinesis(kinesis, "MSFT", times=None)
    ingest.service.clients = AwsClients(kinesis=flaky)
    # 1.2 s left: the answer keeps a second back, so no backoff fits and nothing is retried.
    answer = post(ingest, [tick("MSFT", 2, BASE_TIME)], context=LambdaContext(timeout_ms=1200))
    assert (answer.status, len(answer.json["failed"]), flaky.calls) == (207, 1, [1])


def test_throttled_calls_are_retried_and_a_missing_stream_is_503_with_nothing_sent(ingest, kinesis, stream):
    throttled = FailingClient(kinesis, {"put_records": lambda _: True}, code="ThrottlingException", times=1)
    ingest.service.clients = AwsClients(kinesis=throttled)
    assert post(ingest, [tick("AAPL", 1, BASE_TIME)]).status == 200
    assert throttled.failed_calls == ["put_records"]

    missing = FailingClient(kinesis, {"put_records": lambda _: True}, code="ResourceNotFoundException")
    ingest.service.clients = AwsClients(kinesis=missing)
    answer = post(ingest, [tick("AAPL", 2, BASE_TIME)])
    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json["error"]["code"] == "stream_unavailable"
    assert len(in_stream(kinesis, stream)) == 1


# -- downstream ----------------------------------------------------------------------------------


def test_ingested_ticks_are_quotes_after_the_processor(ingest, kinesis, stream, processor_app, aws, stack):
    assert post(ingest, [tick("AAPL", 229.12, BASE_TIME), tick("AAPL", 229.5, NOW)]).status == 200
    processor_app.processor.clients = clients_for(aws)
    batch = KinesisBatch()
    for n, record in enumerate(stream_records(kinesis, stream)):
        batch.add(n, record["Data"], partition_key=record["PartitionKey"], arrival=NOW)
    response = processor_app.lambda_handler(batch.event(), LambdaContext())
    assert response == {"batchItemFailures": []}
    item = aws.client("dynamodb").get_item(TableName=stack.physical["MarketTable"].ref, Key=quote_key("AAPL"))
    assert item["Item"]["price"]["N"] == "229.5"
