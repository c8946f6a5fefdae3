"""Make moto's Kinesis fast enough for long local runs, and its DynamoDB streams safe to write to
from several threads.

moto's `Shard.get_records` walks the shard from its first record on every call, and
`Shard.put_record` copies every key to find the last sequence number, so each call costs as much
as the records stored so far, and a soak slows down quadratically. The walk also fails with
"OrderedDict mutated during iteration" when a put lands during it, and puts are not safe from
concurrent requests (moto's own comment). This keeps a sorted list of each shard's sequence
numbers beside moto's records: puts take the next number from its end, under a lock, and reads
find their position by binary search.

moto numbers a table's stream records by the length of its list before appending, so two writes at
once (the processor writes items 16 at a time, the alerts function its rule states) can get the
same number; a reader whose iterator follows the numbers then reads the same records again and
again. Appends take a lock here.

The local stack, the benchmark and the tests' in-process moto apply this (in-process, or in the
moto server's process).
"""

from __future__ import annotations

import bisect
import sys
import threading
from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from moto.kinesis.models import Record, Shard

    original_get = Shard.get_records
    put_lock = threading.Lock()

    def sorted_keys(shard: Any) -> list[int]:
        keys = shard.__dict__.get("_sorted_sequence_numbers")
        if keys is None:  # records put before the patch: sort them once
            keys = shard.__dict__["_sorted_sequence_numbers"] = sorted(int(key) for key in shard.records)
        return keys

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        with put_lock:
            keys = sorted_keys(self)
            sequence_number = (keys[-1] if keys else 0) + 1  # moto numbers a shard's records 1, 2, ...
            self.records[sequence_number] = Record(partition_key, data, sequence_number, explicit_hash_key)
            keys.append(sequence_number)
        return str(sequence_number)

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        keys = self.__dict__.get("_sorted_sequence_numbers")
        if keys is None:
            return original_get(self, last_sequence_id, limit)  # nothing put since the patch
        last = int(last_sequence_id)
        start = bisect.bisect_right(keys, last)
        chosen = keys[start : start + limit] if limit else keys[start:]
        results = [self.records[key] for key in chosen]
        if not results:
            return [], last, 0
        newest = self.records[keys[-1]]
        return results, chosen[-1], int((newest.created_at - results[-1].created_at) * 1000)

    Shard.put_record = put_record
    Shard.get_records = get_records

    from moto.dynamodb.models.table import StreamShard

    original_add = StreamShard.add
    stream_lock = threading.Lock()

    def add(self: Any, old: Any, new: Any) -> None:
        with stream_lock:
            original_add(self, old, new)

    StreamShard.add = add
    _APPLIED = True


def serve(argv: list[str]) -> None:
    """`python -m tickwatch.local.moto_patches -H HOST -p PORT`: moto's server, patched."""
    apply()
    from moto.server import main

    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
