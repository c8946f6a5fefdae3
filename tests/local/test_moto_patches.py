"""The local stack's faster moto Kinesis: same records, same order, safe under concurrent puts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tickwatch.local import moto_patches
from tickwatch.local.verify import stream_records


def test_concurrent_puts_get_distinct_increasing_numbers_and_reads_see_every_record(aws):
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName="patched", ShardCount=1)
    kinesis.put_records(StreamName="patched", Records=[{"Data": b"before", "PartitionKey": "A"}])
    moto_patches.apply()

    def put(n: int) -> str:
        return kinesis.put_record(StreamName="patched", Data=str(n).encode(), PartitionKey="A")["SequenceNumber"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(put, range(400)))
    assert len(set(numbers)) == 400

    records = stream_records(kinesis, "patched")
    assert [int(r["SequenceNumber"]) for r in records] == list(range(1, 402))
    assert sorted(r["Data"] for r in records[1:]) == sorted(str(n).encode() for n in range(400))

    # Reading from the middle starts right after the given record.
    shard = kinesis.list_shards(StreamName="patched")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="patched", ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber="200"
    )["ShardIterator"]
    page = kinesis.get_records(ShardIterator=iterator, Limit=5)["Records"]
    assert [r["SequenceNumber"] for r in page] == ["201", "202", "203", "204", "205"]
