"""Make moto's Kinesis fast enough for long local runs.

moto's `Shard.get_records` walks the shard from its first record on every call, so each read costs
as much as the records stored so far, and a soak slows down quadratically. It also fails with
"OrderedDict mutated during iteration" when a put lands during that walk. This keeps a sorted
list of each shard's sequence numbers beside moto's records and finds the read position by binary
search. Only the local stack applies it (in-process, or in its moto server process); the tests of
the functions use moto as it is.
"""

from __future__ import annotations

import bisect
import sys
from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from moto.kinesis.models import Shard

    original_put = Shard.put_record
    original_get = Shard.get_records

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        sequence_number = original_put(self, partition_key, data, explicit_hash_key)
        keys = self.__dict__.setdefault("_sorted_sequence_numbers", [])
        keys.append(int(sequence_number))  # moto numbers a shard's records in increasing order
        return sequence_number

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        keys = self.__dict__.get("_sorted_sequence_numbers")
        if keys is None or len(keys) < len(self.records) - 1:
            return original_get(self, last_sequence_id, limit)  # records put before the patch
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
    _APPLIED = True


def serve(argv: list[str]) -> None:
    """`python -m tickwatch.local.moto_patches -H HOST -p PORT`: moto's server, patched."""
    apply()
    from moto.server import main

    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
