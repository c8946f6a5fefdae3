"""Every named query of template.yaml, run locally (sqlglot -> DuckDB) over a crafted history, and
compared with an independent computation from the ticks that were sent.

The history: three symbols over two days of one month and one day of the next, ticks without a
volume, two trades at the same instant (the open is the one earlier in the stream), gaps of a few
minutes, a retried batch that repeats records, bad records in quarantine, and an hour left
uncompacted. The expected results are computed here in plain Python from the tick documents and
sequence numbers, sharing no code with the pipeline, the compactor or the SQL.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support import KinesisBatch, LambdaContext, list_objects, sequence
from tickwatch.analytics.local import LocalHistory
from tickwatch.analytics.named import NamedQueryError, template_queries
from tickwatch.analytics.result import QueryError
from tickwatch_core.aws import AwsClients
from tickwatch_core.history.compaction import HistoryCompactor
from tickwatch_core.history.engine import ParquetEngine

DAY = date(2026, 11, 20)
EARLY = datetime(2026, 11, 19, 23, 58, tzinfo=UTC)
START = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
UNCOMPACTED_HOUR = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)


def _documents() -> list[dict]:
    """(time, document) of every valid tick, in stream order."""
    documents = []

    def add(symbol: str, price: str, moment: datetime, volume: int | None = None, **extra: str) -> None:
        document = {"symbol": symbol, "price": Decimal(price), "timestamp": moment.isoformat().replace("+00:00", "Z")}
        if volume is not None:
            document["volume"] = volume
        document.update({name: Decimal(value) for name, value in extra.items()})
        documents.append(document)

    # The evening before: the previous day's close.
    add("AAPL", "228.10", EARLY, 50)
    add("AAPL", "228.35", EARLY + timedelta(seconds=30), 70)
    # Two trades at the same instant open the day: the first in the stream is the open.
    add("AAPL", "229.01", START, 100, bid="229.00", ask="229.02")
    add("AAPL", "229.99", START, 200)
    for minute in range(130):  # 14:00 to 16:09, every minute but a few
        moment = START + timedelta(minutes=minute, seconds=7)
        if minute not in (41, 42, 43):  # AAPL: a three-minute gap
            add("AAPL", f"{229 + (minute % 17) / 10:.2f}", moment, 10 + minute % 5)
        if minute % 4 != 3 or minute > 100:  # MSFT: one-minute gaps every four minutes until 15:40
            add(
                "MSFT", f"{415 + (minute % 7) / 100:.4f}", moment + timedelta(seconds=1), None if minute % 9 == 0 else 5
            )
        if minute % 30 == 0:  # TSLA: sparse, large volumes, a price with 18 digits after the point
            add("TSLA", "251.300000000000000001", moment + timedelta(seconds=2), 1000 + minute)
    add("TSLA", "260.5", NEXT_MONTH, 9)  # another month: daily-ohlcv for 2026-11 leaves it out
    return documents


DOCUMENTS = _documents()
BAD = [b'{"symbol": "AAPL", "price": -1, "timestamp": "2026-11-20T14:30:00Z"}', b"\xff not json"]


def _arrival(document: dict) -> datetime:
    return datetime.fromisoformat(document["timestamp"]) + timedelta(seconds=1)


@pytest.fixture
def history(aws, stack, processor_app, tmp_path):
    """The crafted ticks through the processor (with a retried, overlapping batch and bad records),
    every hour but 16:00 compacted, and the local engine over the bucket."""
    batch = KinesisBatch()
    for n, document in enumerate(DOCUMENTS):
        batch.add(n, _json(document), arrival=_arrival(document), partition_key=document["symbol"])
    for offset, data in enumerate(BAD):
        batch.add(len(DOCUMENTS) + offset, data, arrival=START + timedelta(minutes=30), partition_key="AAPL")
    records = batch.records
    # Delivered in three batches, then the middle of the stream again with other boundaries (a
    # retry after a partial failure): the raw objects repeat those records.
    for part in (records[:150], records[150:300], records[300:]):
        processor_app.lambda_handler({"Records": part}, LambdaContext())
    processor_app.lambda_handler({"Records": records[120:180]}, LambdaContext())

    bucket = stack.physical["RawBucket"].ref
    compactor = HistoryCompactor(AwsClients(s3=aws.client("s3")), bucket, engine=ParquetEngine(), scratch=tmp_path)
    work = compactor.pending(EARLY, NEXT_MONTH + timedelta(hours=1))
    compacted = compactor.run([hour for hour in work if hour.hour != UNCOMPACTED_HOUR])
    assert not compacted.failed
    assert compacted.duplicates > 0
    return LocalHistory(aws.client("s3"), bucket, tmp_path / "cache", stack), bucket


def _json(document: dict) -> bytes:
    """The tick as JSON with prices as numbers of exactly their digits (json.dumps cannot)."""
    fields = (
        f"{json.dumps(name)}:{value if isinstance(value, Decimal) else json.dumps(value)}"
        for name, value in document.items()
    )
    return ("{" + ",".join(fields) + "}").encode()


def run(history, name: str, **parameters: str) -> list[dict]:
    engine, _ = history
    query = template_queries(engine.template)[name]
    result = engine.run(query.sql, query.bind(parameters))
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


# --- the independent computation -------------------------------------------------------------


def _ticks(*, compacted: bool = True) -> list[tuple[int, str, datetime, Decimal, int | None]]:
    """(stream position, symbol, time (UTC, naive as SQL gives it), price, volume) of each valid
    tick, once; those of the compacted hours (the table ticks), or of the uncompacted hour."""
    ticks = []
    for n, document in enumerate(DOCUMENTS):
        moment = datetime.fromisoformat(document["timestamp"])
        if (moment.replace(minute=0, second=0, microsecond=0) != UNCOMPACTED_HOUR) == compacted:
            ticks.append(
                (n, document["symbol"], moment.replace(tzinfo=None), document["price"], document.get("volume"))
            )
    return ticks


def _sum(values):
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def test_daily_ohlcv_is_each_days_first_highest_lowest_and_last_trade(history):
    by_day = defaultdict(list)
    for n, symbol, moment, price, volume in _ticks():
        if (moment.year, moment.month) == (2026, 11):
            by_day[(symbol, moment.date())].append((moment, n, price, volume))
    expected = []
    for (symbol, day), trades in sorted(by_day.items()):
        trades.sort()
        prices = [price for _, _, price, _ in trades]
        expected.append(
            {
                "symbol": symbol,
                "day": day,
                "open": trades[0][2],
                "high": max(prices),
                "low": min(prices),
                "close": trades[-1][2],
                "volume": _sum(volume for *_, volume in trades),
                "ticks": len(trades),
            }
        )
    assert run(history, "daily-ohlcv", month="2026-11") == expected
    assert expected[1]["open"] == Decimal("229.01")  # the first of two trades at the same instant


def test_intraday_vwap_accumulates_turnover_over_volume_minute_by_minute(history):
    minutes = defaultdict(lambda: [Decimal(0), 0])
    for _, symbol, moment, price, volume in _ticks():
        if symbol == "AAPL" and moment.date() == DAY and volume is not None:
            minute = moment.replace(second=0, microsecond=0)
            minutes[minute][0] += price * volume
            minutes[minute][1] += volume
    turnover, volume, expected = Decimal(0), 0, []
    for minute, (minute_turnover, minute_volume) in sorted(minutes.items()):
        turnover, volume = turnover + minute_turnover, volume + minute_volume
        expected.append((minute, minute_volume, turnover / volume))
    rows = run(history, "intraday-vwap", symbol="AAPL", day="2026-11-20")
    assert [(row["minute"], row["volume"]) for row in rows] == [(minute, vol) for minute, vol, _ in expected]
    for row, (_, _, vwap) in zip(rows, expected, strict=True):
        assert math.isclose(row["vwap"], float(vwap), rel_tol=1e-12)


def test_top_symbols_orders_the_days_symbols_by_volume(history):
    totals = defaultdict(lambda: {"volume": None, "ticks": 0, "turnover": None})
    for _, symbol, moment, price, volume in _ticks():
        if moment.date() == DAY:
            entry = totals[symbol]
            entry["ticks"] += 1
            if volume is not None:
                entry["volume"] = (entry["volume"] or 0) + volume
                entry["turnover"] = (entry["turnover"] or Decimal(0)) + price * volume
    expected = sorted(totals.items(), key=lambda item: (-(item[1]["volume"] or -1), item[0]))
    rows = run(history, "top-symbols", day="2026-11-20")
    assert [(row["symbol"], row["volume"], row["ticks"]) for row in rows] == [
        (symbol, entry["volume"], entry["ticks"]) for symbol, entry in expected
    ]
    for row, (_, entry) in zip(rows, expected, strict=True):
        assert math.isclose(row["turnover"], float(entry["turnover"]), rel_tol=1e-12)


def test_gaps_are_the_runs_of_minutes_without_a_tick_between_the_first_and_last(history):
    minutes = defaultdict(set)
    for _, symbol, moment, _, _ in _ticks():
        if moment.date() == DAY:
            minutes[symbol].add(moment.replace(second=0, microsecond=0))
    expected = []
    for symbol in sorted(minutes):
        ordered = sorted(minutes[symbol])
        for previous, current in itertools.pairwise(ordered):
            missing = int((current - previous).total_seconds() // 60) - 1
            if missing > 0:
                expected.append((symbol, previous + timedelta(minutes=1), current - timedelta(minutes=1), missing))
    rows = run(history, "gaps", day="2026-11-20")
    assert [
        (row["symbol"], row["first_missing"], row["last_missing"], row["missing_minutes"]) for row in rows
    ] == expected
    assert ("AAPL", datetime(2026, 11, 20, 14, 41), datetime(2026, 11, 20, 14, 43), 3) in expected


def test_quarantine_reasons_count_the_quarantined_records_by_hour_and_reason(aws, history):
    _, bucket = history
    counts = defaultdict(int)
    for key, body in list_objects(aws, bucket, "quarantine/").items():
        hour = key.split("/hour=")[1][:2]
        for line in body.decode().splitlines():
            counts[(hour, json.loads(line)["reason"])] += 1
    assert sum(counts.values()) == len(BAD)  # the retried batch rewrote the same quarantine object
    rows = run(history, "quarantine-reasons", day="2026-11-20")
    assert sorted((row["hour"], row["reason"], row["records"]) for row in rows) == sorted(
        (hour, reason, count) for (hour, reason), count in counts.items()
    )


def test_uncompacted_ticks_are_the_unique_raw_ticks_of_hours_without_parquet(history):
    expected = sorted(
        (symbol, moment, sequence(n), price, volume) for n, symbol, moment, price, volume in _ticks(compacted=False)
    )
    rows = run(history, "uncompacted-ticks", day="2026-11-20")
    assert [(row["symbol"], row["time"], row["sequence_number"], row["price"], row["volume"]) for row in rows] == [
        (symbol, moment, seq, price, volume) for symbol, moment, seq, price, volume in expected
    ]
    assert expected  # the hour has ticks


def test_every_named_query_is_tested_here():
    tested = {"daily-ohlcv", "intraday-vwap", "top-symbols", "gaps", "quarantine-reasons", "uncompacted-ticks"}
    assert set(template_queries()) == tested


def test_parameters_are_checked_before_any_engine_sees_them():
    query = template_queries()["intraday-vwap"]
    for values, message in (
        ({"symbol": "AAPL"}, "needs --param day"),
        ({"symbol": "AAPL", "day": "2026-11-20", "hour": "14"}, "has no parameter hour"),
        ({"symbol": "AAPL", "day": "20/11/2026"}, "not a date"),
        ({"symbol": "AAPL'; DROP TABLE ticks; --", "day": "2026-11-20"}, "not a ticker symbol"),
    ):
        with pytest.raises(NamedQueryError, match=message):
            query.bind(values)


def test_bad_sql_and_an_empty_history_are_user_errors(aws, stack, tmp_path):
    empty = LocalHistory(aws.client("s3"), stack.physical["RawBucket"].ref, tmp_path / "cache", stack)
    with pytest.raises(QueryError, match="the history is empty") as raised:
        empty.run("SELECT count(*) FROM ticks")
    assert raised.value.user_error
    with pytest.raises(QueryError, match="bad SQL") as raised:
        empty.run("SELEC 1")
    assert raised.value.user_error


def test_a_query_naming_an_unknown_column_is_a_user_error(history):
    engine, _ = history
    with pytest.raises(QueryError, match="bad SQL") as raised:
        engine.run("SELECT no_such_column FROM ticks")
    assert raised.value.user_error


def test_the_mirror_downloads_only_what_changed(aws, history):
    engine, bucket = history
    engine.refresh()
    assert engine.refresh().downloaded == 0
    aws.client("s3").put_object(
        Bucket=bucket,
        Key="raw/year=2026/month=11/day=20/hour=16/late.jsonl.gz",
        Body=gzip.compress(b""),
    )
    assert engine.refresh().downloaded == 1
