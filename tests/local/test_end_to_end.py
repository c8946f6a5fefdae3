"""The whole pipeline on the local stack, checked against an independent recomputation.

10,000 seeded simulator ticks over 12 symbols and a handful of bad records go through the real
moto server, the emulated event source mappings and both functions. `tickwatch.local.verify`
recomputes the expected raw data, bars, quotes and alerts from what the stream holds, with code
that shares nothing with the pipeline's domain modules.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.local.workload import BAD, BAD_RECORDS, SYMBOLS, TICKS, run_workload
from tickwatch.cli import main
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.state import LocalState, process_start
from tickwatch.local.verify import Verification, stream_records, verify


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the pipeline once; the tests below each check one aspect of the result."""
    workdir = tmp_path_factory.mktemp("local")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        rules, records = run_workload(stack, workdir)
        assert stack.wait_until_caught_up(timeout=90), "the pipeline did not catch up"
        stack.inbox.drain()
        yield stack, verify(stack, records, rules, BAD)
    finally:
        stack.stop()


def problems(result: Verification, about: str) -> list[str]:
    return [problem for problem in result.problems if problem.startswith(about)]


def test_every_valid_tick_is_in_raw_s3_once(run):
    _, result = run
    assert problems(result, "raw data") == []
    assert result.facts["ticks"] == result.facts["raw_lines"] == result.facts["raw_distinct"] == TICKS


def test_every_bad_record_is_quarantined(run):
    _, result = run
    assert problems(result, "quarantine") == []


def test_every_bar_is_exact(run):
    _, result = run
    assert problems(result, "bars") == []
    assert result.facts["bars"] >= 2 * len(SYMBOLS)


def test_every_latest_quote_is_exact(run):
    _, result = run
    assert problems(result, "quote") == []
    assert result.facts["quotes"] == len(SYMBOLS)


def test_the_inbox_has_exactly_the_documented_crossings(run):
    stack, result = run
    assert problems(result, "inbox") == []
    assert problems(result, "alert history") == []
    assert result.facts["alerts"] >= 20, "the workload should cross the rules many times"
    assert result.facts["inbox"] == result.facts["alerts"]  # none missing, none duplicated
    assert len(list(Path(stack.options.outbox).glob("*.eml"))) == result.facts["alerts"]


def test_nothing_went_to_the_failure_queues(run):
    stack, _ = run
    assert all(mapping.stats.sent_to_on_failure == 0 for mapping in stack.mappings)
    sqs = stack.session.client("sqs")
    for url in (stack.names()["ProcessorFailureQueueUrl"], stack.names()["AlertsFailureQueueUrl"]):
        count = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        assert count["ApproximateNumberOfMessages"] == "0"


def test_the_workload_holds_the_bad_records():
    assert len(BAD_RECORDS) == len(BAD) == 6


def test_history_compact_then_sql_give_every_tick_once_with_exact_daily_figures(run, capsys):
    """`tickwatch history compact` and `tickwatch sql` against the running stack, as a user types
    them; the figures are recomputed here from the stream's records."""
    stack, _ = run
    names = stack.names()
    records = stream_records(stack.session.client("kinesis"), names["TickStreamName"])
    LocalState(
        endpoint_url=stack.endpoint_url,
        region=stack.template.region,
        pid=os.getpid(),
        outputs=names,
        outbox=str(stack.options.outbox),
        started=process_start(os.getpid()),
    ).write()
    ticks = [json.loads(record["Data"], parse_float=Decimal) for record in records if record["Data"] not in BAD]
    first = min(datetime.fromisoformat(tick["timestamp"]) for tick in ticks)

    assert main(["history", "compact", "--since", f"{first:%Y-%m-%dT%H}", "--force"]) == 0
    compacted = capsys.readouterr().out
    assert f"{len(ticks):,} ticks" in compacted

    assert (
        main(
            [
                "sql",
                "SELECT count(*) AS ticks, count(DISTINCT sequence_number) AS unique_ticks FROM ticks",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"ticks": len(ticks), "unique_ticks": len(ticks)}]

    month = f"{first:%Y-%m}"
    assert main(["sql", "--named", "daily-ohlcv", "--param", f"month={month}", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_float=Decimal)
    by_day = defaultdict(list)
    for position, tick in enumerate(ticks):
        moment = datetime.fromisoformat(tick["timestamp"])
        if f"{moment:%Y-%m}" == month:
            by_day[(tick["symbol"], f"{moment:%Y-%m-%d}")].append((moment, position, tick["price"], tick.get("volume")))
    expected = []
    for (symbol, day), trades in sorted(by_day.items()):
        trades.sort()
        expected.append(
            {
                "symbol": symbol,
                "day": day,
                "open": trades[0][2],
                "high": max(trade[2] for trade in trades),
                "low": min(trade[2] for trade in trades),
                "close": trades[-1][2],
                "volume": sum(trade[3] or 0 for trade in trades),
                "ticks": len(trades),
            }
        )
    assert rows == expected

    # One line and exit code 2 for bad input; the same for a bucket with no history at all.
    stack.session.client("s3").create_bucket(Bucket="empty-history")
    for argv, message in (
        (["sql", "SELEC 1"], "bad SQL"),
        (["sql", "--named", "no-such-query"], "no named query 'no-such-query'"),
        (["sql", "--named", "gaps", "--param", "day=2026-13-40"], "not a date"),
        (["sql", "--named", "gaps"], "needs --param day"),
        (["sql", "SELECT 1", "--bucket", "empty-history"], "the history is empty"),
    ):
        assert main(argv) == 2, argv
        error = capsys.readouterr().err.strip()
        assert message in error
        assert len(error.splitlines()) == 1
