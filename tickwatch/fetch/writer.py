"""Putting ticks into Kinesis without losing any.

`KinesisWriter` buffers at most one PutRecords request (500 records, 5 MiB), sends it when full or
after a short linger, and retries the records the call reports as failed with exponential backoff
and jitter. When the stream stays unreachable, it switches to an outage mode: everything pending
and everything that follows goes to a local spool file, in order; every few seconds it probes the
stream, and once a probe succeeds it drains the spool before sending anything new. On close the
buffer is flushed, and what cannot be sent in time is spooled for the next run. Memory stays
bounded whatever the rate or the length of an outage.
"""

from __future__ import annotations

import base64
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tickwatch_core.sources.kinesis_put import (
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    Record,
    RetryPolicy,
    StreamUnavailable,
    put_records,
)

__all__ = ["MAX_RECORDS_PER_REQUEST", "DryRunWriter", "KinesisWriter", "Record", "Spool", "StreamUnavailable"]

_DRAIN_BATCHES_PER_POLL = 10  # so a long backlog does not keep the caller from its stop checks


@dataclass
class WriterStats:
    sent: int = 0
    retried: int = 0
    spooled: int = 0
    drained: int = 0
    failed_calls: int = 0


class Spool:
    """An append-only JSON Lines file of records waiting for the stream, with a saved read offset.

    The offset moves only past batches that were sent whole, so an interrupted drain resends at most
    one batch and never loses one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset_path = path.with_name(path.name + ".offset")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self.pending = self._count_from(self._offset)

    def _repair(self) -> None:
        """Start from a consistent spool after a crash: a torn last line is cut off, and an offset
        that is unreadable or past the end of the file (its spool was removed) starts over."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size:
            with self.path.open("rb+") as handle:
                data = handle.read()
                end = data.rfind(b"\n") + 1
                if end != size:
                    handle.truncate(end)
                    size = end
        try:
            offset = int(self.offset_path.read_text()) if self.offset_path.exists() else 0
        except ValueError:
            offset = 0
        self._offset = offset if 0 <= offset <= size else 0

    def _count_from(self, offset: int) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as handle:
            handle.seek(offset)
            return sum(1 for line in handle if line.strip())

    def append(self, records: Iterable[Record]) -> int:
        lines = [
            json.dumps({"k": record.partition_key, "d": base64.b64encode(record.data).decode("ascii")}) + "\n"
            for record in records
        ]
        if not lines:
            return 0
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.pending += len(lines)
        return len(lines)

    def peek(self) -> tuple[list[Record], int]:
        """The oldest request's worth of records, and the offset just after them."""
        records: list[Record] = []
        size = 0
        offset = self._offset
        if not self.path.exists():
            return records, offset
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            while len(records) < MAX_RECORDS_PER_REQUEST:
                line = handle.readline()
                if not line:
                    break
                if not line.strip():
                    offset = handle.tell()
                    continue
                entry = json.loads(line)
                record = Record(base64.b64decode(entry["d"]), entry["k"])
                if records and size + record.size > MAX_REQUEST_BYTES:
                    break
                records.append(record)
                size += record.size
                offset = handle.tell()
        return records, offset

    def commit(self, offset: int, count: int) -> None:
        """Mark everything before `offset` as sent; an emptied spool is removed."""
        self._offset = offset
        self.pending = max(0, self.pending - count)
        if self.pending == 0:
            self.offset_path.unlink(missing_ok=True)  # first: a stale offset must never outlive its spool
            self.path.unlink(missing_ok=True)
            self._offset = 0
            return
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with temporary.open("w") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.offset_path)


class KinesisWriter:
    """Sends records to one stream; see the module docstring. Not thread-safe."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        spool: Spool,
        *,
        linger: float = 0.2,
        max_attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        probe_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.spool = spool
        self.linger = linger
        self.policy = RetryPolicy(max_attempts, base_delay, max_delay, sleep, rng or random.Random())
        self.probe_interval = probe_interval
        self.clock = clock
        self.stats = WriterStats()
        self._buffer: list[Record] = []
        self._buffer_bytes = 0
        self._oldest: float | None = None
        self.in_outage = False
        self._next_probe = 0.0
        if self.spool.pending:
            # Ticks from an earlier run go first: new ones queue behind them until they are sent.
            self.in_outage = True

    # -- public ---------------------------------------------------------------------------------

    def add(self, record: Record) -> None:
        if record.size > MAX_RECORD_BYTES:
            raise ValueError(f"a record of {record.size} bytes is over the Kinesis limit of {MAX_RECORD_BYTES}")
        if self._buffer_bytes + record.size > MAX_REQUEST_BYTES:
            self._flush_buffer()
        if not self._buffer:
            self._oldest = self.clock()
        self._buffer.append(record)
        self._buffer_bytes += record.size
        if len(self._buffer) >= MAX_RECORDS_PER_REQUEST:
            self._flush_buffer()
        if self.in_outage:
            self.poll()

    def poll(self) -> None:
        """Call when idle: sends a lingering buffer, and probes the stream during an outage."""
        if self.in_outage:
            if self.clock() >= self._next_probe:
                self._flush_buffer()  # into the spool, so the drain keeps the order
                self._drain_spool(max_batches=_DRAIN_BATCHES_PER_POLL)
            return
        if self._buffer and self._oldest is not None and self.clock() - self._oldest >= self.linger:
            self._flush_buffer()

    def close(self, timeout: float = 15.0) -> None:
        """Send what is buffered (and spooled) within `timeout`; spool whatever could not go."""
        deadline = self.clock() + timeout
        self._flush_buffer()
        if self.in_outage:
            self._drain_spool(deadline=deadline)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- sending --------------------------------------------------------------------------------

    def _flush_buffer(self) -> None:
        batch = self._take_buffer()
        if not batch:
            return
        if self.in_outage:
            self._spool(batch)  # one write and fsync for the whole buffer
            return
        try:
            unsent = self._send(batch)
        except StreamUnavailable:
            self._spool(batch)  # the stream cannot be used at all: keep the ticks for a later run
            raise
        if unsent:
            self._enter_outage(unsent)

    def _take_buffer(self) -> list[Record]:
        batch, self._buffer, self._buffer_bytes, self._oldest = self._buffer, [], 0, None
        return batch

    def _send(self, records: list[Record]) -> list[Record]:
        """PutRecords with retries of failed records; returns the records still unsent."""
        outcome = put_records(self.client, self.stream_name, records, policy=self.policy)
        self.stats.sent += outcome.sent
        self.stats.retried += outcome.retried
        self.stats.failed_calls += outcome.failed_calls
        return [records[index] for index in sorted(outcome.failed)]

    # -- outage ---------------------------------------------------------------------------------

    def _enter_outage(self, unsent: list[Record]) -> None:
        self._spool(unsent + self._take_buffer())
        self._stay_in_outage()

    def _spool(self, records: list[Record]) -> None:
        self.stats.spooled += self.spool.append(records)

    def _drain_spool(self, *, max_batches: int | None = None, deadline: float | None = None) -> None:
        """Send spooled records oldest first. A batch that does not go whole stays in the spool
        (what went of it will be sent again: a duplicate rather than a loss) and the outage goes on."""
        batches = 0
        while self.spool.pending:
            if (max_batches is not None and batches >= max_batches) or (
                deadline is not None and self.clock() >= deadline
            ):
                return
            records, offset = self.spool.peek()
            if not records:
                break
            unsent = self._send(records)
            batches += 1
            if unsent:
                self.stats.drained += len(records) - len(unsent)
                self._stay_in_outage()
                return
            self.spool.commit(offset, len(records))
            self.stats.drained += len(records)
        self.in_outage = False

    def _stay_in_outage(self) -> None:
        self.in_outage = True
        self._next_probe = self.clock() + self.probe_interval


class DryRunWriter:
    """`--dry-run`: one JSON document per line on stdout instead of Kinesis."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.stats = WriterStats()
        self.in_outage = False
        self.spool = None

    def add(self, record: Record) -> None:
        self.out.write(record.data.decode("utf-8") + "\n")
        self.stats.sent += 1

    def poll(self) -> None:
        self.out.flush()

    def close(self, timeout: float = 0.0) -> None:
        self.out.flush()

    @property
    def buffered(self) -> int:
        return 0
