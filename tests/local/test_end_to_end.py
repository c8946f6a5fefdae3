"""The whole pipeline on the local stack, checked against an independent recomputation.

10,000 seeded simulator ticks over 12 symbols and a handful of bad records go through the real
moto server, the emulated event source mappings and both functions. `tickwatch.local.verify`
recomputes the expected raw data, bars, quotes and alerts from what the stream holds, with code
that shares nothing with the pipeline's domain modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.local.workload import BAD, BAD_RECORDS, SYMBOLS, TICKS, run_workload
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.verify import Verification, verify


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
