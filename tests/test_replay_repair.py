"""Replaying a batch Lambda gave up on, after later batches moved its bars and quotes on.

Three batches of one shard: A, then B (which fails in one of several ways and is given up on),
then C. Replaying B through the processor with the replay flag must leave exactly the state of
applying every tick once, in order; without the flag the ticks items are past would be skipped.
"""

from __future__ import annotations

import pytest

from tests.support import FailingClient, KinesisBatch, clients_for, scan_table, sequence
from tests.test_processor import invoke, market_ticks, raw_lines, state_of
from tickwatch_core.store.repair import REPLAY_FLAG

TICKS = 90
B = range(30, 50)  # the batch that gets abandoned


@pytest.fixture
def batch():
    # One tick every 2.5 s: four one-minute bars per symbol, with B's ticks in two of them.
    documents = market_ticks(TICKS, step=2.5)
    records = KinesisBatch()
    for n, document in enumerate(documents):
        records.add(n, document)
    return records


def part(batch: KinesisBatch, numbers: range, *, replay: bool = False) -> dict:
    event = {"Records": batch.records[numbers.start : numbers.stop]}
    return {**event, REPLAY_FLAG: True} if replay else event


def applied_once(aws, stack, processor_app, batch) -> dict:
    """The table after applying every tick once, in one batch, on an empty table."""
    table = stack.physical["MarketTable"].ref
    saved = scan_table(aws, table)
    for pk, sk in saved:
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    processor_app.processor.clients = clients_for(aws)
    invoke(processor_app, batch.event())
    once = state_of(aws, stack)[1]
    for pk, sk in scan_table(aws, table):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    for item in saved.values():
        aws.client("dynamodb").put_item(TableName=table, Item=item)
    return once


def _symbol_items(symbol: str, sort_key_prefix: str = ""):
    return lambda kwargs: (
        kwargs["Item"]["pk"]["S"] == f"SYMBOL#{symbol}" and kwargs["Item"]["sk"]["S"].startswith(sort_key_prefix)
    )


# How B fails before Lambda gives up on it: which of its writes had happened.
FAILURES = {
    "never applied": None,
    "raw data failed": ("s3", {"put_object": lambda kwargs: True}),
    "one symbol's items failed": ("dynamodb", {"put_item": _symbol_items("MSFT")}),
    "one symbol's bars failed, so its quote waited": ("dynamodb", {"put_item": _symbol_items("TSLA", "BAR#")}),
    "one symbol's quote failed, its bars applied": ("dynamodb", {"put_item": _symbol_items("AAPL", "QUOTE")}),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_replay_gives_the_state_of_applying_each_tick_once(aws, stack, processor_app, batch, failure):
    once = applied_once(aws, stack, processor_app, batch)
    assert invoke(processor_app, part(batch, range(B.start))) == {"batchItemFailures": []}
    if FAILURES[failure] is not None:
        service, failing_calls = FAILURES[failure]
        failing = FailingClient(aws.client(service), failing_calls)
        processor_app.processor.clients = clients_for(aws, **{service: failing})
        assert invoke(processor_app, part(batch, B))["batchItemFailures"]
        processor_app.processor.clients = clients_for(aws)
    assert invoke(processor_app, part(batch, range(B.stop, TICKS))) == {"batchItemFailures": []}
    assert state_of(aws, stack)[1] != once  # B's ticks are missing from some items

    assert invoke(processor_app, part(batch, B, replay=True)) == {"batchItemFailures": []}
    assert state_of(aws, stack)[1] == once
    assert {line["sequence_number"] for line in raw_lines(aws, stack.physical["RawBucket"].ref)} == {
        sequence(n) for n in range(TICKS)
    }

    # Replaying again (a message replayed twice) changes nothing.
    assert invoke(processor_app, part(batch, B, replay=True)) == {"batchItemFailures": []}
    assert state_of(aws, stack)[1] == once


def test_without_the_replay_flag_ticks_items_are_past_are_skipped(aws, stack, processor_app, batch):
    once = applied_once(aws, stack, processor_app, batch)
    invoke(processor_app, part(batch, range(B.start)))
    invoke(processor_app, part(batch, range(B.stop, TICKS)))
    invoke(processor_app, part(batch, B))
    assert state_of(aws, stack)[1] != once  # why `tickwatch dlq replay` marks its events


def test_a_quote_a_live_batch_is_updating_is_left_for_the_next_replay(aws, stack, processor_app, batch):
    once = applied_once(aws, stack, processor_app, batch)
    invoke(processor_app, part(batch, range(B.start)))
    invoke(processor_app, part(batch, range(B.stop, 70)))
    # The live batch after it has written AAPL's bars but not yet its quote.
    failing = FailingClient(aws.client("dynamodb"), {"put_item": _symbol_items("AAPL", "QUOTE")})
    processor_app.processor.clients = clients_for(aws, dynamodb=failing)
    live = invoke(processor_app, part(batch, range(70, TICKS)))["batchItemFailures"]
    processor_app.processor.clients = clients_for(aws)

    replayed = invoke(processor_app, part(batch, B, replay=True))["batchItemFailures"]
    first_aapl = next(n for n in B if batch.records[n]["kinesis"]["partitionKey"] == "AAPL")
    assert replayed == [{"itemIdentifier": sequence(first_aapl)}]

    # Lambda retries the live batch; the next replay then completes.
    invoke(processor_app, KinesisBatch(records=batch.records).event_from(live[0]["itemIdentifier"]))
    assert invoke(processor_app, part(batch, B, replay=True)) == {"batchItemFailures": []}
    assert state_of(aws, stack)[1] == once
