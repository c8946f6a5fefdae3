"""The Kinesis writer: every tick arrives exactly once, in per-symbol order in the normal case,
through partial failures, outages and shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.support import kinesis_records
from tickwatch.fetch.writer import MAX_RECORDS_PER_REQUEST, KinesisWriter, Record, Spool, StreamUnavailable

STREAM = "ticks"


@pytest.fixture
def kinesis(aws):
    client = aws.client("kinesis")
    client.create_stream(StreamName=STREAM, ShardCount=2)
    return client


def read_stream(client, stream=STREAM) -> list[dict]:
    return [json.loads(record["Data"]) for record in kinesis_records(client, stream)]


def records(count: int, symbols=("AAPL", "MSFT", "TSLA", "NVDA", "AMD")) -> list[Record]:
    result = []
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        result.append(Record(json.dumps({"symbol": symbol, "n": n}).encode(), symbol))
    return result


def assert_exactly_once_in_symbol_order(delivered: list[dict], count: int, *, ordered: bool = True) -> None:
    assert sorted(d["n"] for d in delivered) == list(range(count))
    if ordered:
        by_symbol = defaultdict(list)
        for document in delivered:
            by_symbol[document["symbol"]].append(document["n"])
        for numbers in by_symbol.values():
            assert numbers == sorted(numbers)


class Flaky:
    """Wraps a client: scripted failures of whole calls and of single records."""

    def __init__(self, client, *, outage_calls: int = 0, failing_record_every: int = 0, failing_calls: int = 0):
        self.client = client
        self.outage_calls = outage_calls
        self.failing_record_every = failing_record_every
        self.failing_calls = failing_calls
        self.calls = 0

    def put_records(self, **kwargs):
        self.calls += 1
        if self.outage_calls > 0:
            self.outage_calls -= 1
            raise EndpointConnectionError(endpoint_url="https://kinesis.us-east-1.amazonaws.com")
        if self.failing_calls > 0 and self.failing_record_every:
            self.failing_calls -= 1
            keep = [r for i, r in enumerate(kwargs["Records"]) if i % self.failing_record_every]
            response = (
                self.client.put_records(StreamName=kwargs["StreamName"], Records=keep) if keep else {"Records": []}
            )
            results = iter(response["Records"])
            return {
                "FailedRecordCount": len(kwargs["Records"]) - len(keep),
                "Records": [
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
                    if i % self.failing_record_every == 0
                    else next(results)
                    for i in range(len(kwargs["Records"]))
                ],
            }
        return self.client.put_records(**kwargs)


def writer_for(client, tmp_path: Path, **options) -> KinesisWriter:
    options.setdefault("sleep", lambda seconds: None)
    return KinesisWriter(client, STREAM, Spool(tmp_path / "spool.jsonl"), **options)


def test_batches_of_at_most_500_and_every_record_arrives_once_in_order(kinesis, tmp_path):
    sizes = []

    class Recording:
        def put_records(self, **kwargs):
            sizes.append(len(kwargs["Records"]))
            return kinesis.put_records(**kwargs)

    writer = writer_for(Recording(), tmp_path)
    for record in records(1234):
        writer.add(record)
    writer.close()
    assert max(sizes) == MAX_RECORDS_PER_REQUEST
    assert sum(sizes) == 1234
    assert_exactly_once_in_symbol_order(read_stream(kinesis), 1234)
    assert (writer.stats.sent, writer.stats.retried, writer.stats.spooled) == (1234, 0, 0)


def test_requests_stay_under_the_five_mebibyte_limit(kinesis, tmp_path):
    sizes = []

    class Recording:
        def put_records(self, **kwargs):
            sizes.append(sum(len(r["Data"]) + len(r["PartitionKey"]) for r in kwargs["Records"]))
            return kinesis.put_records(**kwargs)

    writer = writer_for(Recording(), tmp_path)
    for n in range(30):
        writer.add(Record(json.dumps({"symbol": "AAPL", "n": n, "pad": "x" * 400_000}).encode(), "AAPL"))
    writer.close()
    assert max(sizes) <= 5 * 1024 * 1024
    assert len(read_stream(kinesis)) == 30


def test_records_the_call_reports_as_failed_are_retried_until_they_arrive(kinesis, tmp_path):
    flaky = Flaky(kinesis, failing_record_every=3, failing_calls=4)
    writer = writer_for(flaky, tmp_path)
    for record in records(1000):
        writer.add(record)
    writer.close()
    assert writer.stats.retried > 0
    assert writer.stats.spooled == 0
    assert_exactly_once_in_symbol_order(read_stream(kinesis), 1000, ordered=False)


def test_an_outage_spools_in_order_and_the_spool_drains_when_the_stream_is_back(kinesis, tmp_path):
    clock = [0.0]
    flaky = Flaky(kinesis, outage_calls=6 + 6)  # the first send and the first probe fail
    writer = writer_for(flaky, tmp_path, clock=lambda: clock[0], probe_interval=5.0, max_attempts=6)
    batch = records(2000)
    for record in batch[:1500]:
        writer.add(record)
    assert writer.in_outage
    assert writer.stats.spooled == 1500  # the failed request, and everything since, in order
    clock[0] += 6
    writer.poll()  # probe fails: still out
    assert writer.in_outage
    clock[0] += 6
    for record in batch[1500:]:
        writer.add(record)  # probe succeeds on the way: spool drained before anything new
    writer.close()
    assert not writer.in_outage
    assert writer.spool.pending == 0
    assert not (tmp_path / "spool.jsonl").exists()
    assert_exactly_once_in_symbol_order(read_stream(kinesis), 2000)


def test_ticks_spooled_at_exit_are_sent_by_the_next_run(kinesis, tmp_path):
    first = writer_for(Flaky(kinesis, outage_calls=10**6), tmp_path)
    for record in records(700):
        first.add(record)
    first.close(timeout=0)
    assert Spool(tmp_path / "spool.jsonl").pending == 700
    assert read_stream(kinesis) == []

    second = writer_for(kinesis, tmp_path)  # drains the spool before taking new ticks
    for record in records(1000)[700:]:
        second.add(record)
    second.close()
    assert_exactly_once_in_symbol_order(read_stream(kinesis), 1000)


def test_memory_stays_bounded_during_a_long_outage(kinesis, tmp_path):
    writer = writer_for(Flaky(kinesis, outage_calls=10**6), tmp_path, clock=lambda: 0.0)
    for record in records(20_000):
        writer.add(record)
        assert writer.buffered <= MAX_RECORDS_PER_REQUEST
    writer.close(timeout=0)
    assert writer.spool.pending == 20_000


def test_a_missing_stream_is_reported_not_spooled(aws, tmp_path):
    writer = KinesisWriter(
        aws.client("kinesis"), "no-such-stream", Spool(tmp_path / "spool.jsonl"), sleep=lambda s: None
    )
    for record in records(MAX_RECORDS_PER_REQUEST - 1):
        writer.add(record)
    with pytest.raises(StreamUnavailable, match="stream no-such-stream does not exist"):
        writer.add(records(1)[0])


def test_throttling_of_whole_calls_is_retried(kinesis, tmp_path):
    class Throttled:
        calls = 0

        def put_records(self, **kwargs):
            Throttled.calls += 1
            if Throttled.calls <= 2:
                raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "PutRecords")
            return kinesis.put_records(**kwargs)

    writer = writer_for(Throttled(), tmp_path)
    for record in records(10):
        writer.add(record)
    writer.close()
    assert writer.stats.failed_calls == 2
    assert_exactly_once_in_symbol_order(read_stream(kinesis), 10)


def test_sigterm_flushes_before_exiting(tmp_path):
    """The real command in a subprocess against a loopback moto server: SIGTERM loses nothing."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        environment = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import boto3

        client = boto3.client(
            "kinesis", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client.create_stream(StreamName=STREAM, ShardCount=1)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tickwatch",
                "fetch",
                "--stream",
                STREAM,
                "--rate",
                "400",
                "--seed",
                "3",
                "--spool-dir",
                str(tmp_path),
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(read_stream(client)) < 200 and time.monotonic() < deadline:  # it is sending
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
        sent = int(
            next(line for line in errors.splitlines() if line.strip().startswith("sent")).split()[1].replace(",", "")
        )
        assert sent > 100
        assert len(read_stream(client)) == sent
        assert list(tmp_path.iterdir()) == []  # nothing left in the spool
        assert "fetch stopped by a stop signal" in errors
    finally:
        server.stop()


def test_a_drain_batch_that_went_only_in_part_stays_spooled_so_a_crash_loses_nothing(kinesis, tmp_path):
    spooling = writer_for(Flaky(kinesis, outage_calls=10**6), tmp_path)
    for record in records(500):
        spooling.add(record)
    spooling.close(timeout=0)
    assert Spool(tmp_path / "spool.jsonl").pending == 500

    # The stream is back but refuses a third of the records every time: the drain cannot finish.
    partial = writer_for(Flaky(kinesis, failing_record_every=3, failing_calls=10**6), tmp_path, max_attempts=2)
    partial.poll()
    assert partial.in_outage
    # The process dies here (no close): the whole batch is still in the spool.
    assert Spool(tmp_path / "spool.jsonl").pending == 500

    recovered = writer_for(kinesis, tmp_path)
    recovered.close()
    delivered = sorted(d["n"] for d in read_stream(kinesis))
    assert sorted(set(delivered)) == list(range(500))  # every tick, some of them twice


def test_a_stream_that_cannot_be_used_keeps_the_batch_in_the_spool(kinesis, tmp_path):
    class Expired:
        def put_records(self, **kwargs):
            raise ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "PutRecords")

    writer = writer_for(Expired(), tmp_path)
    for record in records(MAX_RECORDS_PER_REQUEST - 1):
        writer.add(record)
    with pytest.raises(StreamUnavailable, match="session token has expired"):
        writer.add(records(1)[0])
    assert Spool(tmp_path / "spool.jsonl").pending == MAX_RECORDS_PER_REQUEST


def test_a_torn_spool_and_a_stale_offset_are_repaired_when_opened(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(records(3))
    with (tmp_path / "spool.jsonl").open("a") as handle:
        handle.write('{"k": "AAPL", "d": "eyJ')  # the process died in the middle of a line
    (tmp_path / "spool.jsonl.offset").write_text("999999")  # left from an older, larger spool
    reopened = Spool(tmp_path / "spool.jsonl")
    assert reopened.pending == 3
    batch, _ = reopened.peek()
    assert [json.loads(r.data)["n"] for r in batch] == [0, 1, 2]
