"""Processor Lambda against moto resources built from template.yaml."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.support import (
    BASE_TIME,
    CallCounter,
    FailingClient,
    KinesisBatch,
    LambdaContext,
    clients_for,
    kinesis_event,
    list_objects,
    scan_table,
    sequence,
    tick,
)
from tickwatch_core.store import items

SYMBOLS = ("AAPL", "MSFT", "TSLA")


def at(seconds: float):
    return BASE_TIME + timedelta(seconds=seconds)


def market_ticks(count: int, symbols=SYMBOLS, start: float = 0.0, step: float = 0.05) -> list[dict]:
    """Deterministic ticks round-robin over symbols, prices wandering by a cent or two."""
    documents = []
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        base = 100 + 50 * symbols.index(symbol)
        price = Decimal(base) + Decimal((n * 37) % 23 - 11) / 100
        documents.append(tick(symbol, float(price), at(start + n * step), volume=100 + n % 7))
    return documents


def invoke(app, event) -> dict:
    return app.lambda_handler(event, LambdaContext())


def raw_lines(session, bucket) -> list[dict]:
    lines = []
    for body in list_objects(session, bucket, "raw/").values():
        lines += [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]
    return lines


def quote(session, table, symbol) -> dict:
    return items.deserialize(scan_table(session, table)[("SYMBOL#" + symbol, "QUOTE")])


def bars(session, table, symbol) -> dict[str, dict]:
    return {
        sk: items.deserialize(item)
        for (pk, sk), item in scan_table(session, table).items()
        if pk == "SYMBOL#" + symbol and sk.startswith("BAR#")
    }


def state_of(session, stack) -> tuple[dict, dict]:
    bucket, table = stack.physical["RawBucket"].ref, stack.physical["MarketTable"].ref
    table_items = {key: items.deserialize(item) for key, item in scan_table(session, table).items()}
    for values in table_items.values():
        # When and how often it was written, and what its last update covered, depend on how ticks were
        # delivered; everything else must be as if each tick was applied once.
        for name in ("updated_at", "window_high", "window_low", "window_trades", "trades", "revision"):
            values.pop(name, None)
    return list_objects(session, bucket), table_items


def test_valid_batch_lands_raw_in_s3_and_as_quotes_and_bars(aws, stack, processor_app):
    documents = market_ticks(30)
    response = invoke(processor_app, kinesis_event(documents))

    assert response == {"batchItemFailures": []}
    bucket, table = stack.physical["RawBucket"].ref, stack.physical["MarketTable"].ref
    objects = list_objects(aws, bucket)
    assert list(objects) == [
        f"raw/year=2026/month=11/day=20/hour=14/shardId-000000000000_{sequence(0)}_{sequence(29)}.jsonl.gz"
    ]
    lines = raw_lines(aws, bucket)
    assert [line["sequence_number"] for line in lines] == [sequence(n) for n in range(30)]
    assert lines[0] == {
        **documents[0],
        "sequence_number": sequence(0),
        "shard_id": "shardId-000000000000",
        "arrival_time": "2026-11-20T14:30:00Z",
    }

    for symbol in SYMBOLS:
        own = [d for d in documents if d["symbol"] == symbol]
        prices = [Decimal(str(d["price"])) for d in own]
        latest = quote(aws, table, symbol)
        assert latest["price"] == prices[-1]
        assert latest["at"] == own[-1]["timestamp"]
        assert (latest["day_open"], latest["day_high"], latest["day_low"]) == (prices[0], max(prices), min(prices))
        assert latest["day_volume"] == sum(d["volume"] for d in own)
        assert (latest["window_high"], latest["window_low"], latest["window_trades"]) == (
            max(prices),
            min(prices),
            len(own),
        )
        (bar,) = bars(aws, table, symbol).values()
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (prices[0], max(prices), min(prices), prices[-1])
        assert (bar["volume"], bar["trades"]) == (sum(d["volume"] for d in own), len(own))
        assert bar["expires_at"] == int((BASE_TIME + timedelta(days=30)).timestamp())


def test_ticks_spanning_minutes_and_hours_make_bars_per_minute_and_objects_per_hour(aws, stack, processor_app):
    documents = [tick("AAPL", 100 + n, BASE_TIME.replace(minute=58) + timedelta(seconds=40 * n)) for n in range(6)]
    batch = KinesisBatch()
    for n, document in enumerate(documents):
        batch.add(n, document, arrival=BASE_TIME.replace(hour=15, minute=1))
    invoke(processor_app, batch.event())

    keys = sorted(list_objects(aws, stack.physical["RawBucket"].ref))
    assert [key.split("/")[4] for key in keys] == ["hour=14", "hour=15"]
    starts = sorted(bars(aws, stack.physical["MarketTable"].ref, "AAPL"))
    assert starts == [
        "BAR#2026-11-20T14:58Z",
        "BAR#2026-11-20T14:59Z",
        "BAR#2026-11-20T15:00Z",
        "BAR#2026-11-20T15:01Z",
    ]


BAD_RECORDS = {
    "malformed JSON": (b'{"symbol": "AAPL", "price": ', "not JSON"),
    "not UTF-8": (b"\xc3\x28\xa0\xa1", "not UTF-8"),
    "empty": (b"", "empty record"),
    "array": (b"[1,2,3]", "not a JSON object"),
    "NaN price": (b'{"symbol":"AAPL","price":NaN,"timestamp":"2026-11-20T14:30:00Z"}', "NaN is not a JSON number"),
    "negative price": (
        json.dumps(tick("AAPL", -5, BASE_TIME)).encode(),
        "price: -5 is less than or equal to the minimum of 0",
    ),
    "lowercase symbol": (json.dumps(tick("aapl", 5, BASE_TIME)).encode(), "symbol: 'aapl' does not match"),
    "path-like symbol": (json.dumps(tick("../x", 5, BASE_TIME)).encode(), "symbol: '../x' does not match"),
    "missing timestamp": (b'{"symbol":"AAPL","price":5}', "'timestamp' is a required property"),
    "timestamp without zone": (
        b'{"symbol":"AAPL","price":5,"timestamp":"2026-11-20T14:30:00"}',
        "timestamp: '2026-11-20T14:30:00' does not match",
    ),
    "unknown field": (json.dumps(tick("AAPL", 5, BASE_TIME, venue="X")).encode(), "'venue' was unexpected"),
    "bid above ask": (json.dumps(tick("AAPL", 5, BASE_TIME, bid=5.2, ask=5.1)).encode(), "bid 5.2 is above ask 5.1"),
    "far future": (json.dumps(tick("AAPL", 5, BASE_TIME + timedelta(days=1))).encode(), "s after the tick arrived"),
    "year 1 in UTC": (
        b'{"symbol":"AAPL","price":5,"timestamp":"0001-01-01T00:00:00+01:00"}',
        "is not a real date-time",
    ),
    "too precise": (
        b'{"symbol":"AAPL","price":1.2345678901234567890123456789012345678E-130,"timestamp":"2026-11-20T14:30:00Z"}',
        "too small to store",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_RECORDS))
def test_each_bad_record_is_quarantined_with_its_reason_and_valid_ticks_are_unaffected(aws, stack, processor_app, kind):
    data, reason = BAD_RECORDS[kind]
    batch = (
        KinesisBatch()
        .add(0, tick("AAPL", 101, at(0)))
        .add(1, data, partition_key="AAPL")
        .add(2, tick("AAPL", 102, at(1)))
    )
    response = invoke(processor_app, batch.event())

    assert response == {"batchItemFailures": []}
    bucket = stack.physical["RawBucket"].ref
    (quarantine_body,) = list_objects(aws, bucket, "quarantine/").values()
    (entry,) = [json.loads(line) for line in quarantine_body.decode().splitlines()]
    assert reason in entry["reason"]
    assert base64.b64decode(entry["data_base64"]) == data
    assert (entry["sequence_number"], entry["shard_id"], entry["partition_key"]) == (
        sequence(1),
        "shardId-000000000000",
        "AAPL",
    )
    assert [line["price"] for line in raw_lines(aws, bucket)] == [101, 102]
    assert quote(aws, stack.physical["MarketTable"].ref, "AAPL")["price"] == Decimal("102")


def test_quarantined_records_are_counted_in_a_metric(aws, stack, processor_app, capsys):
    invoke(processor_app, kinesis_event([b"junk", tick("AAPL", 1, at(0)), b"{}"]))
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (emf,) = metrics
    assert (emf["TicksQuarantined"], emf["TicksProcessed"], emf["Batches"]) == ([2.0], [1.0], [1.0])


def test_redelivered_batch_changes_nothing(aws, stack, processor_app):
    event = kinesis_event([*market_ticks(20), b"junk"])
    invoke(processor_app, event)
    before = state_of(aws, stack)

    assert invoke(processor_app, event) == {"batchItemFailures": []}
    assert state_of(aws, stack) == before


def test_overlapping_batches_leave_the_state_of_applying_each_tick_once(aws, stack, processor_app):
    documents = market_ticks(40)
    batch = KinesisBatch()
    for n, document in enumerate(documents):
        batch.add(n, document)
    invoke(processor_app, {"Records": batch.records[:25]})
    invoke(processor_app, {"Records": batch.records[10:]})
    _, overlapped = state_of(aws, stack)
    lines_overlapped = {line["sequence_number"] for line in raw_lines(aws, stack.physical["RawBucket"].ref)}

    # The same ticks applied once each, on a fresh table, give the same quotes and bars.
    clean = clients_for(aws)
    table = stack.physical["MarketTable"].ref
    for key in scan_table(aws, table):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}})
    processor_app.processor.clients = clean
    invoke(processor_app, batch.event())
    _, once = state_of(aws, stack)
    assert overlapped == once
    assert lines_overlapped == {sequence(n) for n in range(40)}


def test_out_of_order_tick_does_not_move_the_latest_quote_back(aws, stack, processor_app):
    invoke(processor_app, kinesis_event([tick("AAPL", 150, at(10))], first=0))
    invoke(processor_app, kinesis_event([tick("AAPL", 140, at(5))], first=1))
    latest = quote(aws, stack.physical["MarketTable"].ref, "AAPL")
    assert (latest["price"], latest["at"]) == (Decimal("150"), "2026-11-20T14:30:10Z")
    assert (latest["day_low"], latest["day_open"]) == (Decimal("140"), Decimal("140"))
    (bar,) = bars(aws, stack.physical["MarketTable"].ref, "AAPL").values()
    assert (bar["open"], bar["close"], bar["low"]) == (Decimal("140"), Decimal("150"), Decimal("140"))


def _fails_for_symbol(symbol):
    return lambda kwargs: kwargs["Item"]["pk"]["S"] == f"SYMBOL#{symbol}"


def test_dynamodb_throttling_names_the_first_record_not_applied_and_the_retry_completes(aws, stack, processor_app):
    documents = market_ticks(30)
    batch = KinesisBatch()
    for n, document in enumerate(documents):
        batch.add(n, document)
    first_msft = next(n for n, d in enumerate(documents) if d["symbol"] == "MSFT")
    failing = FailingClient(aws.client("dynamodb"), {"put_item": _fails_for_symbol("MSFT")})
    processor_app.processor.clients = clients_for(aws, dynamodb=failing)

    response = invoke(processor_app, batch.event())
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence(first_msft)}]}
    assert failing.failed_calls  # the injected throttling did happen

    # Lambda redelivers from the reported record; now DynamoDB answers.
    processor_app.processor.clients = clients_for(aws)
    assert invoke(processor_app, batch.event_from(sequence(first_msft))) == {"batchItemFailures": []}
    _, table_after_retry = state_of(aws, stack)

    clean_stack_items = _apply_once(aws, stack, processor_app, batch)
    assert table_after_retry == clean_stack_items


def _apply_once(aws, stack, processor_app, batch) -> dict:
    table = stack.physical["MarketTable"].ref
    for key in scan_table(aws, table):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}})
    invoke(processor_app, batch.event())
    return state_of(aws, stack)[1]


def test_s3_server_error_fails_from_the_first_record(aws, stack, processor_app):
    failing = FailingClient(aws.client("s3"), {"put_object": lambda kwargs: True}, code="InternalError", status=500)
    processor_app.processor.clients = clients_for(aws, s3=failing)
    response = invoke(processor_app, kinesis_event(market_ticks(9)))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence(0)}]}


def test_quarantine_write_failure_is_a_failure_not_a_loss(aws, stack, processor_app):
    failing = FailingClient(
        aws.client("s3"),
        {"put_object": lambda kwargs: kwargs["Key"].startswith("quarantine/")},
        code="SlowDown",
        status=503,
    )
    processor_app.processor.clients = clients_for(aws, s3=failing)
    response = invoke(processor_app, kinesis_event([tick("AAPL", 1, at(0)), b"junk", tick("AAPL", 2, at(1))]))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence(1)}]}


def test_failed_read_of_current_state_fails_the_ticks(aws, stack, processor_app):
    failing = FailingClient(aws.client("dynamodb"), {"batch_get_item": lambda kwargs: True}, code="ThrottlingException")
    processor_app.processor.clients = clients_for(aws, dynamodb=failing)
    response = invoke(processor_app, kinesis_event([b"junk", tick("AAPL", 1, at(0))]))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence(1)}]}


def test_a_thousand_tick_batch_over_twenty_symbols_costs_one_put_and_two_writes_per_symbol(aws, stack, processor_app):
    symbols = tuple(f"SYM{n}" for n in range(20))
    documents = market_ticks(1000, symbols=symbols, step=0.05)  # 50 s: one minute, one hour
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    counter = CallCounter().attach(s3, dynamodb)
    processor_app.processor.clients = clients_for(aws, s3=s3, dynamodb=dynamodb)

    assert invoke(processor_app, kinesis_event(documents)) == {"batchItemFailures": []}
    assert counter.count("s3", "PutObject") == 1
    writes = counter.count("dynamodb", "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems")
    assert writes <= 2 * len(symbols)

    counter.calls.clear()
    invoke(
        processor_app, kinesis_event([*market_ticks(1000, symbols=symbols, start=50, step=0.001), b"junk"], first=1000)
    )
    assert counter.count("s3", "PutObject") == 2  # raw + quarantine


def test_missing_environment_variable_fails_at_import_naming_it(stack, monkeypatch):
    import importlib
    import sys

    for name, value in stack.function_environment("ProcessorFunction").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAW_BUCKET")
    sys.modules.pop("functions.processor.app", None)
    with pytest.raises(Exception, match="RAW_BUCKET is not set"):
        importlib.import_module("functions.processor.app")


def test_a_tick_whose_partition_key_is_not_its_symbol_is_quarantined(aws, stack, processor_app):
    """Ordering, and so idempotency, holds per shard; partition key = symbol keeps a symbol on one."""
    batch = KinesisBatch().add(0, tick("AAPL", 150, at(0)), partition_key="feed-a").add(1, tick("AAPL", 151, at(1)))
    assert invoke(processor_app, batch.event()) == {"batchItemFailures": []}
    (body,) = list_objects(aws, stack.physical["RawBucket"].ref, "quarantine/").values()
    (entry,) = [json.loads(line) for line in body.decode().splitlines()]
    assert entry["reason"] == "partition key 'feed-a' is not the symbol AAPL; send ticks with their symbol as key"
    assert quote(aws, stack.physical["MarketTable"].ref, "AAPL")["price"] == Decimal("151")


def test_an_update_too_large_for_one_item_is_written_as_a_chain_with_the_same_result(
    aws, stack, processor_app, monkeypatch
):
    import tickwatch_core.pipeline.processor as processor_module

    documents = market_ticks(60, symbols=("AAPL",))
    batch = KinesisBatch()
    for n, document in enumerate(documents):
        batch.add(n, document)
    once = _apply_once(aws, stack, processor_app, batch)

    table = stack.physical["MarketTable"].ref
    for key in scan_table(aws, table):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}})
    monkeypatch.setattr(processor_module, "QUOTE_TRADES_LIMIT", 200)  # about 15 trades an item
    dynamodb = aws.client("dynamodb")
    counter = CallCounter().attach(dynamodb)
    # The third quote write fails: the ticks of that write and every later one are reported.
    failing = FailingClient(
        dynamodb,
        {"put_item": lambda kw: kw["Item"]["sk"]["S"] == "QUOTE" and counter.count("dynamodb", "PutItem") >= 3},
        times=1,
    )
    processor_app.processor.clients = clients_for(aws, dynamodb=failing)
    response = invoke(processor_app, batch.event())
    (failure,) = response["batchItemFailures"]
    assert sequence(0) < failure["itemIdentifier"] <= sequence(59)
    assert invoke(processor_app, batch.event_from(failure["itemIdentifier"])) == {"batchItemFailures": []}
    assert counter.count("dynamodb", "PutItem") > 4
    assert state_of(aws, stack)[1] == once


def test_a_raw_hour_that_fails_holds_back_every_later_tick_of_the_batch(aws, stack, processor_app):
    # In stream order: 14:59:58, 15:00:00, 14:59:59 (late), 15:00:01. If hour 14's object fails and
    # hour 15's is stored, applying hour 15's ticks would move the quote past 14:59:59 for good.
    moments = [at(0).replace(hour=14, minute=59, second=s) for s in (58,)] + [
        at(0).replace(hour=15, minute=0, second=0),
        at(0).replace(hour=14, minute=59, second=59),
        at(0).replace(hour=15, minute=0, second=1),
    ]
    batch = KinesisBatch(records=[])
    for n, (moment, volume) in enumerate(zip(moments, (10, 20, 30, 40), strict=True)):
        batch.add(n, tick("AAPL", 100 + n, moment, volume=volume), arrival=max(moments) + timedelta(seconds=1))
    failing = FailingClient(aws.client("s3"), {"put_object": lambda kwargs: "/hour=14/" in kwargs["Key"]})
    processor_app.processor.clients = clients_for(aws, s3=failing)
    assert invoke(processor_app, batch.event()) == {"batchItemFailures": [{"itemIdentifier": sequence(0)}]}
    assert quote_or_none(aws, stack, "AAPL") is None  # 15:00:00 waits for 14:59:58

    processor_app.processor.clients = clients_for(aws)
    assert invoke(processor_app, batch.event()) == {"batchItemFailures": []}
    assert quote(aws, stack.physical["MarketTable"].ref, "AAPL")["day_volume"] == 100


def quote_or_none(aws, stack, symbol):
    return scan_table(aws, stack.physical["MarketTable"].ref).get(("SYMBOL#" + symbol, "QUOTE"))


def test_a_quote_waits_for_its_bars(aws, stack, processor_app):
    failing = FailingClient(aws.client("dynamodb"), {"put_item": lambda kwargs: kwargs["Item"]["sk"]["S"] != "QUOTE"})
    processor_app.processor.clients = clients_for(aws, dynamodb=failing)
    response = invoke(processor_app, kinesis_event([tick("AAPL", 1, at(0)), tick("AAPL", 2, at(1))]))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence(0)}]}
    assert quote_or_none(aws, stack, "AAPL") is None  # a quote never counts a tick its bar lacks


def test_items_written_before_revisions_existed_can_still_be_updated(aws, stack, processor_app):
    table = stack.physical["MarketTable"].ref
    invoke(processor_app, kinesis_event([tick("AAPL", 1, at(0))]))
    dynamodb = aws.client("dynamodb")
    for pk, sk in scan_table(aws, table):
        dynamodb.update_item(
            TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, UpdateExpression="REMOVE revision"
        )
    assert invoke(processor_app, kinesis_event([tick("AAPL", 2, at(1))], first=1)) == {"batchItemFailures": []}
    assert quote(aws, table, "AAPL")["price"] == 2
