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


def test_concurrent_table_writes_get_distinct_stream_numbers_in_order(aws):
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="patched",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    moto_patches.apply()

    def write(n: int) -> None:
        dynamodb.put_item(TableName="patched", Item={"pk": {"S": f"item-{n}"}, "payload": {"S": "x" * 2000}})

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(400)))

    streams = aws.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName="patched")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    numbers: list[int] = []
    for _ in range(100):  # bounded: an unpatched moto can hand the same records back forever
        page = streams.get_records(ShardIterator=iterator, Limit=50)
        if not page["Records"]:
            break
        numbers += [int(record["dynamodb"]["SequenceNumber"]) for record in page["Records"]]
        iterator = page["NextShardIterator"]
    assert len(numbers) == 400
    assert numbers == sorted(set(numbers))
