"""The hourly compactor against moto S3 built from template.yaml, fed by the real processor.

Raw objects are written by the processor handler from Kinesis events, as in production; only the
unreadable objects are made by hand, since the processor never writes one.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import (
    BASE_TIME,
    FailingClient,
    KinesisBatch,
    LambdaContext,
    clients_for,
    list_objects,
    sequence,
    tick,
)
from tests.test_processor import market_ticks
from tickwatch_core.domain import exact_json
from tickwatch_core.history.columns import TICK_COLUMNS
from tickwatch_core.history.compaction import HistoryCompactor
from tickwatch_core.history.engine import ParquetEngine
from tickwatch_core.history.layout import history_key, raw_prefix
from tickwatch_core.history.plan import FINGERPRINT_METADATA, StoredObject, fingerprint

HOUR = BASE_TIME.replace(minute=0)  # 2026-11-20T14: BASE_TIME's hour, where market_ticks land
EARLIER = HOUR - timedelta(hours=1)
SCHEDULED_EVENT = Path(__file__).resolve().parent.parent / "events" / "compactor-scheduled.json"
# What Athena and pyarrow see; decimals with 18 digits after the point keep every digit a tick may have.
PRICE = pa.decimal128(38, 18)
UTC_MICROSECONDS = pa.timestamp("us", tz="UTC")
EXPECTED_SCHEMA = [
    ("symbol", pa.string()),
    ("time", UTC_MICROSECONDS),
    ("price", PRICE),
    ("volume", pa.int64()),
    ("bid", PRICE),
    ("ask", PRICE),
    ("source", pa.string()),
    ("shard_id", pa.string()),
    ("sequence_number", pa.string()),
    ("arrival_time", UTC_MICROSECONDS),
]


@pytest.fixture
def bucket(stack) -> str:
    return stack.physical["RawBucket"].ref


@pytest.fixture
def compactor(aws, bucket, tmp_path) -> HistoryCompactor:
    return HistoryCompactor(clients_for(aws), bucket, engine=ParquetEngine(), scratch=tmp_path)


def deliver(processor_app, event: dict) -> None:
    """Through the processor's handler, as Lambda delivers a Kinesis batch."""
    assert processor_app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}


def stream_of(documents, *, first: int = 0, arrival: datetime | None = None) -> KinesisBatch:
    """One shard's records for `documents`, numbered from `first`."""
    batch = KinesisBatch()
    for offset, document in enumerate(documents):
        batch.add(first + offset, document, arrival=arrival)
    return batch


def ticks_in(hour: datetime, count: int, *, symbols=("AAPL", "MSFT")) -> list[dict]:
    """`count` ticks a second apart from half past `hour`."""
    return [tick(symbols[n % len(symbols)], 100 + n, hour + timedelta(minutes=30, seconds=n)) for n in range(count)]


def late_arrival(hour: datetime) -> datetime:
    # Ticks may arrive long after they happened, never more than a few minutes before.
    return hour + timedelta(minutes=59)


def compact(compactor: HistoryCompactor, first: datetime = HOUR, last: datetime = HOUR, **options):
    return compactor.run(compactor.pending(first, last, **options))


def history_bytes(aws, bucket: str, hour: datetime = HOUR) -> bytes:
    return aws.client("s3").get_object(Bucket=bucket, Key=history_key(hour))["Body"].read()


def history_table(aws, bucket: str, hour: datetime = HOUR) -> pa.Table:
    return pq.read_table(io.BytesIO(history_bytes(aws, bucket, hour)))


def history_hours(aws, bucket: str) -> list[str]:
    return sorted(list_objects(aws, bucket, "history/"))


def raw_listing(aws, bucket: str, hour: datetime = HOUR) -> list[StoredObject]:
    contents = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=raw_prefix(hour)).get("Contents", [])
    return [StoredObject(entry["Key"], entry["ETag"], entry["Size"], entry["LastModified"]) for entry in contents]


def rows_from_raw_lines(aws, bucket: str, hour: datetime = HOUR) -> list[dict]:
    """The rows the hour's Parquet file must hold, derived independently from the raw lines: one per
    Kinesis record, in the documented order (symbol, time, then the record's place in its shard)."""
    unique = {}
    for key, body in list_objects(aws, bucket, raw_prefix(hour)).items():
        assert key.endswith(".jsonl.gz")
        for text in gzip.decompress(body).decode().splitlines():
            line = json.loads(text, parse_float=Decimal, parse_int=Decimal)
            unique[(line["shard_id"], line["sequence_number"])] = {
                "symbol": line["symbol"],
                "time": datetime.fromisoformat(line["timestamp"]),
                "price": line["price"],
                "volume": int(line["volume"]) if "volume" in line else None,
                "bid": line.get("bid"),
                "ask": line.get("ask"),
                "source": line.get("source"),
                "shard_id": line["shard_id"],
                "sequence_number": line["sequence_number"],
                "arrival_time": datetime.fromisoformat(line["arrival_time"]),
            }
    return sorted(
        unique.values(),
        key=lambda row: (
            row["symbol"],
            row["time"],
            row["shard_id"],
            len(row["sequence_number"]),
            row["sequence_number"],
        ),
    )


def scheduled_event(at: datetime | None = None) -> dict:
    event = json.loads(SCHEDULED_EVENT.read_text())
    if at is not None:
        event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


# --- duplicates ---------------------------------------------------------------------------------


def test_a_retried_batch_with_other_boundaries_is_compacted_to_each_record_once(aws, bucket, processor_app, compactor):
    # Given the processor stored records 0-24, then a retry of 10-39 (Lambda split the batch anew)
    stream = stream_of(market_ticks(40))
    deliver(processor_app, {"Records": stream.records[:25]})
    deliver(processor_app, {"Records": stream.records[10:]})
    assert len(raw_listing(aws, bucket)) == 2

    # When the hour is compacted
    report = compact(compactor)

    # Then every record is in the Parquet file once, and the report counts the 15 repeated lines
    (hour,) = report.compacted
    assert (hour.hour, hour.reason, hour.raw_objects) == (HOUR, "new", 2)
    assert (hour.lines, hour.rows, hour.duplicates) == (55, 40, 15)
    assert (report.rows, report.duplicates, report.failed) == (40, 15, [])
    rows = history_table(aws, bucket).to_pylist()
    assert sorted(row["sequence_number"] for row in rows) == sorted(sequence(n) for n in range(40))
    assert rows == rows_from_raw_lines(aws, bucket)


# --- late data and reruns -----------------------------------------------------------------------


def test_a_batch_landing_in_a_compacted_hour_is_late_data_and_its_ticks_join_the_file(
    aws, bucket, processor_app, compactor
):
    # Given two hours compacted: 13h from one batch, 14h from records 0-19
    deliver(processor_app, stream_of(ticks_in(EARLIER, 5), first=0, arrival=late_arrival(EARLIER)).event())
    stream = stream_of(market_ticks(30), first=100)
    deliver(processor_app, {"Records": stream.records[:20]})
    assert [hour.hour for hour in compact(compactor, EARLIER, HOUR).compacted] == [EARLIER, HOUR]
    assert compactor.pending(EARLIER, HOUR) == []
    earlier_file = aws.client("s3").head_object(Bucket=bucket, Key=history_key(EARLIER))

    # When a replayed batch (records 15-29) adds a raw object to 14h
    deliver(processor_app, {"Records": stream.records[15:]})

    # Then only 14h is pending, as late data, and compacting it again takes in the new ticks once
    (work,) = compactor.pending(EARLIER, HOUR)
    assert (work.hour, work.reason, len(work.raw_objects)) == (HOUR, "late data", 2)
    (hour,) = compactor.run([work]).compacted
    assert (hour.rows, hour.duplicates) == (30, 5)
    sequence_numbers = history_table(aws, bucket).column("sequence_number").to_pylist()
    assert sorted(sequence_numbers) == sorted(sequence(n) for n in range(100, 130))
    assert compactor.pending(EARLIER, HOUR) == []
    # 13h was not rewritten
    assert aws.client("s3").head_object(Bucket=bucket, Key=history_key(EARLIER))["ETag"] == earlier_file["ETag"]


def test_a_redelivered_identical_batch_does_not_make_the_hour_pending(aws, bucket, processor_app, compactor):
    # The same batch gets the same key and the same bytes, so the same ETag: nothing new to compact.
    event = stream_of(market_ticks(10)).event()
    deliver(processor_app, event)
    compact(compactor)

    deliver(processor_app, event)

    assert compactor.pending(HOUR, HOUR) == []


def test_compacting_unchanged_raw_objects_again_writes_the_same_bytes(aws, bucket, processor_app, compactor, tmp_path):
    deliver(processor_app, stream_of(market_ticks(30)).event())
    deliver(processor_app, stream_of(market_ticks(20, start=2), first=30).event())
    compact(compactor)
    first_bytes = history_bytes(aws, bucket)
    assert compact(compactor).compacted == []  # unforced, an unchanged hour is not even rewritten

    # Forced, with a fresh DuckDB connection: nothing carried over from the first run.
    again = HistoryCompactor(clients_for(aws), bucket, engine=ParquetEngine(), scratch=tmp_path / "again")
    (hour,) = compact(again, force=True).compacted

    assert hour.reason == "requested"
    assert history_bytes(aws, bucket) == first_bytes
    assert pq.read_table(io.BytesIO(first_bytes)).to_pylist() == history_table(aws, bucket).to_pylist()


# --- the Parquet file ---------------------------------------------------------------------------


def exact_tick(
    symbol: str, price: str, seconds: float, *, bid: str | None = None, ask: str | None = None, **extra
) -> bytes:
    """A tick whose prices are written digit for digit (a float would lose the 18th digit)."""
    document = {
        "symbol": symbol,
        "price": Decimal(price),
        "timestamp": (BASE_TIME + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        **{name: Decimal(value) for name, value in (("bid", bid), ("ask", ask)) if value is not None},
        **extra,
    }
    return exact_json.dumps(document).encode()


def test_parquet_file_has_the_tick_columns_sorted_rows_exact_decimals_zstd_and_its_fingerprint(
    aws, bucket, processor_app, compactor
):
    # Given ticks out of order in the stream, with the finest and the largest prices a tick may have
    stream = [
        exact_tick("MSFT", "999999999999.99", 3, volume=10**15, bid="999999999999.98", ask="1000000000000"),
        exact_tick("AAPL", "1.000000000000000001", 2, bid="1", ask="1.000000000000000002"),
        exact_tick("AAPL", "0.000000000000000001", 1.123456, volume=7),  # a raw line says 1E-18
        exact_tick("MSFT", "123456789012.123456789012345678", 0, source="exchange-a"),
        exact_tick("AAPL", "2.50", 0),
        # 19 digits after the point: refused by the tick contract, so it never reaches the history
        exact_tick("AAPL", "1.0000000000000000001", 4),
    ]
    batch = KinesisBatch()
    for n, data in enumerate(stream):
        batch.add(n, data, partition_key=json.loads(data)["symbol"])
    deliver(processor_app, batch.event())

    compact(compactor)

    table = history_table(aws, bucket)
    assert [(field.name, field.type) for field in table.schema] == EXPECTED_SCHEMA
    assert [field.name for field in table.schema] == [name for name, _, _ in TICK_COLUMNS]
    rows = table.to_pylist()
    assert rows == rows_from_raw_lines(aws, bucket)
    assert [(row["symbol"], format(row["price"], "f")) for row in rows] == [
        ("AAPL", "2.500000000000000000"),
        ("AAPL", "0.000000000000000001"),
        ("AAPL", "1.000000000000000001"),
        ("MSFT", "123456789012.123456789012345678"),
        ("MSFT", "999999999999.990000000000000000"),
    ]
    assert rows[1]["time"] == datetime(2026, 11, 20, 14, 30, 1, 123456, tzinfo=UTC)
    assert rows[1]["volume"] == 7
    assert (rows[2]["bid"], rows[2]["ask"]) == (Decimal(1), Decimal("1.000000000000000002"))
    assert (rows[4]["volume"], rows[4]["ask"]) == (10**15, Decimal(10**12))
    assert rows[3]["source"] == "exchange-a"

    metadata = pq.ParquetFile(io.BytesIO(history_bytes(aws, bucket))).metadata
    assert metadata.num_rows == 5
    compressions = {
        metadata.row_group(group).column(column).compression
        for group in range(metadata.num_row_groups)
        for column in range(metadata.num_columns)
    }
    assert compressions == {"ZSTD"}

    head = aws.client("s3").head_object(Bucket=bucket, Key=history_key(HOUR))
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert head["Metadata"] == {
        FINGERPRINT_METADATA: fingerprint(raw_listing(aws, bucket)),
        "source-objects": "1",
    }


# --- unreadable raw objects ---------------------------------------------------------------------


UNREADABLE_RAW_OBJECTS = {
    "shardId-000000000001_1_1.jsonl.gz": (b"not gzip at all", "not a GZIP stream"),
    "shardId-000000000002_1_1.jsonl.gz": (gzip.compress(b"this is not JSON\n", mtime=0), "Malformed JSON"),
    # Valid gzip JSON Lines, but a price that is not a number: only reading every column finds it.
    "shardId-000000000003_1_1.jsonl.gz": (
        gzip.compress(b'{"symbol":"AAPL","price":"cheap","timestamp":"2026-11-20T14:30:00Z"}\n', mtime=0),
        'Failed to cast value to decimal: "cheap"',
    ),
    # Readable, but a line that is not a tick: no symbol, sequence number or arrival time.
    "shardId-000000000004_1_1.jsonl.gz": (
        gzip.compress(b'{"price":1.5,"timestamp":"2026-11-20T14:30:00Z"}\n', mtime=0),
        "1 lines lack one of symbol, price, timestamp, shard_id, sequence_number, arrival_time",
    ),
}


def test_unreadable_raw_objects_are_quarantined_with_their_reason_and_the_rest_of_the_hour_compacted(
    aws, stack, bucket, processor_app, compactor
):
    deliver(processor_app, stream_of(market_ticks(10)).event())
    s3 = aws.client("s3")
    for name, (body, _) in UNREADABLE_RAW_OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=raw_prefix(HOUR) + name, Body=body)

    report = compact(compactor)

    assert report.failed == []
    (hour,) = report.compacted
    assert report.unreadable == len(UNREADABLE_RAW_OBJECTS)
    reasons = dict(hour.unreadable)
    assert set(reasons) == {raw_prefix(HOUR) + name for name in UNREADABLE_RAW_OBJECTS}
    for name, (_, reason) in UNREADABLE_RAW_OBJECTS.items():
        assert reason in reasons[raw_prefix(HOUR) + name]
    assert (hour.raw_objects, hour.rows) == (1 + len(UNREADABLE_RAW_OBJECTS), 10)
    assert sorted(history_table(aws, bucket).column("sequence_number").to_pylist()) == [sequence(n) for n in range(10)]

    quarantine = list_objects(aws, bucket, "quarantine/")
    assert list(quarantine) == ["quarantine/year=2026/month=11/day=20/hour=14/compactor.jsonl"]
    entries = [json.loads(line) for line in quarantine[next(iter(quarantine))].decode().splitlines()]
    assert {entry["object"]: entry["reason"] for entry in entries} == {
        key: f"raw object could not be compacted: {reason}" for key, reason in reasons.items()
    }
    # Athena's quarantine table has a column for everything the compactor writes there.
    table = stack.resources["QuarantineTable"]["Properties"]["TableInput"]
    columns = {column["Name"] for column in table["StorageDescriptor"]["Columns"]}
    assert {name for entry in entries for name in entry} <= columns
    # The file records every raw object it was made from, the unreadable ones too: they are not
    # read again every hour, only when they change.
    assert compactor.pending(HOUR, HOUR) == []


def test_an_hour_of_only_unreadable_objects_gets_an_empty_file_and_is_not_taken_again(aws, bucket, compactor):
    s3 = aws.client("s3")
    for name, (body, _) in UNREADABLE_RAW_OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=raw_prefix(HOUR) + name, Body=body)

    report = compact(compactor)

    (hour,) = report.compacted
    assert (hour.rows, len(hour.unreadable)) == (0, len(UNREADABLE_RAW_OBJECTS))
    empty = history_table(aws, bucket)
    assert empty.num_rows == 0
    assert empty.column_names == [name for name, _, _ in TICK_COLUMNS]
    assert compactor.pending(HOUR, HOUR) == []


# --- the Lambda handler -------------------------------------------------------------------------


def test_scheduled_event_compacts_the_ended_hours_of_the_look_back_and_not_the_hour_in_progress(
    aws, bucket, processor_app, compactor_app
):
    # The sample event fires at 15:07: 14h has ended, 15h has not; the 48-hour look-back starts at
    # 2026-11-18T15 (hours before it are never changed by late data any more).
    hours = {
        "before the look-back": datetime(2026, 11, 18, 14, tzinfo=UTC),
        "first of the look-back": datetime(2026, 11, 18, 15, tzinfo=UTC),
        "last ended": HOUR,
        "in progress": HOUR + timedelta(hours=1),
    }
    for n, hour in enumerate(hours.values()):
        arrival = min(late_arrival(hour), datetime(2026, 11, 20, 15, 6, tzinfo=UTC))
        deliver(processor_app, stream_of(ticks_in(hour, 3), first=10 * n, arrival=arrival).event())

    response = compactor_app.lambda_handler(scheduled_event(), LambdaContext(timeout_ms=900_000))

    compacted = [hours["first of the look-back"], hours["last ended"]]
    assert response == {"compacted": [hour.isoformat() for hour in compacted], "left_for_later": []}
    assert history_hours(aws, bucket) == [history_key(hour) for hour in compacted]
    assert history_table(aws, bucket).num_rows == 3
    # A retried or repeated invocation finds nothing left to do.
    response = compactor_app.lambda_handler(scheduled_event(), LambdaContext(timeout_ms=900_000))
    assert response == {"compacted": [], "left_for_later": []}


def test_a_failing_hour_fails_the_invocation_the_others_are_compacted_and_the_next_run_takes_it(
    aws, bucket, processor_app, compactor_app
):
    deliver(processor_app, stream_of(ticks_in(EARLIER, 3), arrival=late_arrival(EARLIER)).event())
    deliver(processor_app, stream_of(ticks_in(HOUR, 3), first=10, arrival=late_arrival(HOUR)).event())
    failing = FailingClient(
        aws.client("s3"),
        {"put_object": lambda kwargs: kwargs["Key"] == history_key(EARLIER)},
        code="InternalError",
        status=500,
    )
    compactor_app.compactor.clients = clients_for(aws, s3=failing)

    with pytest.raises(compactor_app.HoursFailed, match="1 hours failed"):
        compactor_app.lambda_handler(scheduled_event(), LambdaContext(timeout_ms=900_000))

    assert failing.failed_calls == ["put_object"]
    assert history_hours(aws, bucket) == [history_key(HOUR)]

    # An hour later S3 answers: the failed hour is still pending and is compacted then.
    compactor_app.compactor.clients = clients_for(aws)
    response = compactor_app.lambda_handler(
        scheduled_event(datetime(2026, 11, 20, 16, 7, tzinfo=UTC)), LambdaContext(timeout_ms=900_000)
    )
    assert response["compacted"] == [EARLIER.isoformat()]
    assert history_hours(aws, bucket) == [history_key(EARLIER), history_key(HOUR)]


def test_hours_that_might_not_finish_before_the_timeout_are_left_for_the_next_run(
    aws, bucket, processor_app, compactor_app
):
    deliver(processor_app, stream_of(ticks_in(HOUR, 3), arrival=late_arrival(HOUR)).event())

    # Less than a minute left: no hour is started.
    response = compactor_app.lambda_handler(scheduled_event(), LambdaContext(timeout_ms=30_000))

    assert response == {"compacted": [], "left_for_later": [HOUR.isoformat()]}
    assert history_hours(aws, bucket) == []


def test_missing_environment_variable_fails_at_import_naming_it(stack, monkeypatch):
    import importlib
    import sys

    for name, value in stack.function_environment("CompactorFunction").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOOKBACK_HOURS")
    sys.modules.pop("functions.compactor.app", None)
    with pytest.raises(Exception, match="LOOKBACK_HOURS is not set"):
        importlib.import_module("functions.compactor.app")
    sys.modules.pop("functions.compactor.app", None)
