"""Processor: one Kinesis batch of ticks -> raw S3 objects, quarantine, quotes and bars in DynamoDB.

The batch is planned in memory first (pure functions below), then written with as few calls as the
data allows: one raw object per date-hour partition, one quarantine object, one BatchGetItem per
100 items and one conditional PutItem per quote and bar. Every write covers a known set of records;
when a write fails, those records are not fully applied, and the lowest of their sequence numbers is
where Lambda must resume (the partial batch response). Items skip ticks at or below their
`applied_seq`, so resuming there is safe; their writes are conditional on the `revision` they were
read at, so two writers never overwrite each other. A replayed batch (`tickwatch dlq replay`) also
repairs items later ticks have moved past: see `repair.py`.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tickwatch_core.aws import AWS_ERRORS, AwsClients, describe_aws_error
from tickwatch_core.config import ProcessorSettings
from tickwatch_core.domain.market import Bar, Quote, ReceivedTick, bar_start, fold_bar, fold_quote, new_ticks
from tickwatch_core.domain.sequence import sortable_sequence
from tickwatch_core.domain.ticks import TickRejected, format_timestamp, parse_tick
from tickwatch_core.store import items, repair
from tickwatch_core.store.dynamodb import batch_get

RAW_PREFIX = "raw/"
# A quote carries the trades of its update. Should a batch hold so many trades of one symbol that
# they approach DynamoDB's 400 KB item limit, the update is split into several writes in order.
QUOTE_TRADES_LIMIT = 256 * 1024
QUARANTINE_PREFIX = "quarantine/"
_WRITE_THREADS = 16


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One Kinesis record as the processor needs it."""

    data: bytes
    sequence_number: str
    shard_id: str
    partition_key: str
    arrival: datetime

    @property
    def sequence_key(self) -> str:
        return sortable_sequence(self.sequence_number)


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    record: StreamRecord
    reason: str


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str
    body: bytes
    content_type: str
    content_encoding: str | None
    records: tuple[StreamRecord, ...]


@dataclass(frozen=True, slots=True)
class ItemWrite:
    """A conditional put of one quote or bar, and the records whose ticks it applies."""

    item: dict[str, Any]
    expected_revision: int | None  # None: the item must not exist yet
    records: tuple[StreamRecord, ...]
    # Further versions of the same item, written in order after this one (see QUOTE_TRADES_LIMIT).
    then: tuple[ItemWrite, ...] = ()


@dataclass(slots=True)
class WriteFailure:
    what: str
    error: str
    records: tuple[StreamRecord, ...]


@dataclass(slots=True)
class BatchReport:
    """What happened to one batch; the handler turns it into logs, metrics and the response."""

    records: int = 0
    ticks: int = 0
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    raw_objects_written: int = 0
    raw_lines_written: int = 0
    quarantine_objects_written: int = 0
    items_written: int = 0
    items_unchanged: int = 0
    items_repaired: int = 0  # bars and quotes rebuilt by a replay
    failures: list[WriteFailure] = field(default_factory=list)

    @property
    def first_failed_sequence(self) -> str | None:
        failed = [record for failure in self.failures for record in failure.records]
        if not failed:
            return None
        return min(failed, key=lambda record: record.sequence_key).sequence_number


# --- pure planning ------------------------------------------------------------------------------


def split_batch(
    records: Iterable[StreamRecord],
) -> tuple[list[tuple[StreamRecord, ReceivedTick]], list[QuarantinedRecord]]:
    """Valid ticks (with their records) and quarantined records, in stream order."""
    accepted: list[tuple[StreamRecord, ReceivedTick]] = []
    quarantined: list[QuarantinedRecord] = []
    for record in sorted(records, key=lambda record: record.sequence_key):
        try:
            tick = parse_tick(record.data, received_at=record.arrival)
        except TickRejected as rejection:
            quarantined.append(QuarantinedRecord(record, rejection.reason))
            continue
        if record.partition_key != tick.symbol:
            # Idempotency compares sequence numbers per symbol, which only holds when all ticks of
            # a symbol share one shard: that is what partition key = symbol guarantees.
            reason = f"partition key {record.partition_key!r} is not the symbol {tick.symbol}"
            quarantined.append(QuarantinedRecord(record, reason + "; send ticks with their symbol as key"))
            continue
        accepted.append(
            (
                record,
                ReceivedTick(
                    tick=tick,
                    sequence_number=record.sequence_number,
                    sequence_key=record.sequence_key,
                    shard_id=record.shard_id,
                    arrival=record.arrival,
                ),
            )
        )
    return accepted, quarantined


def batch_suffix(records: Sequence[StreamRecord]) -> str:
    """`<shard>_<first seq>_<last seq>`: the same batch always gets the same object keys."""
    ordered = sorted(records, key=lambda record: record.sequence_key)
    return f"{ordered[0].shard_id}_{ordered[0].sequence_number}_{ordered[-1].sequence_number}"


def hour_partition(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}"


def plan_raw_objects(accepted: Sequence[tuple[StreamRecord, ReceivedTick]], suffix: str) -> list[S3Object]:
    """One gzipped JSON Lines object per date-hour of tick time."""
    by_hour: dict[str, list[tuple[StreamRecord, ReceivedTick]]] = defaultdict(list)
    for record, received in accepted:
        by_hour[hour_partition(received.tick.timestamp)].append((record, received))
    objects = []
    for partition, entries in sorted(by_hour.items()):
        lines = "".join(raw_line(received) + "\n" for _, received in entries)
        objects.append(
            S3Object(
                key=f"{RAW_PREFIX}{partition}/{suffix}.jsonl.gz",
                # mtime=0 keeps the bytes of a redelivered batch identical.
                body=gzip.compress(lines.encode("utf-8"), mtime=0),
                content_type="application/x-ndjson",
                content_encoding="gzip",
                records=tuple(record for record, _ in entries),
            )
        )
    return objects


def plan_quarantine_object(quarantined: Sequence[QuarantinedRecord], suffix: str) -> S3Object | None:
    """One JSON Lines object with every bad record of the batch: original bytes and the reason."""
    if not quarantined:
        return None
    lines = "".join(
        json.dumps(
            {
                "reason": entry.reason,
                "sequence_number": entry.record.sequence_number,
                "shard_id": entry.record.shard_id,
                "partition_key": entry.record.partition_key,
                "arrival_time": format_timestamp(entry.record.arrival),
                "data_base64": base64.b64encode(entry.record.data).decode("ascii"),
            }
        )
        + "\n"
        for entry in quarantined
    )
    return S3Object(
        key=f"{QUARANTINE_PREFIX}{hour_partition(quarantined[0].record.arrival)}/{suffix}.jsonl",
        body=lines.encode("utf-8"),
        content_type="application/x-ndjson",
        content_encoding=None,
        records=tuple(entry.record for entry in quarantined),
    )


def raw_line(received: ReceivedTick) -> str:
    """The tick as received plus where it came from. Numbers keep their exact decimal digits."""
    fields = received.tick.as_document() | {
        "sequence_number": received.sequence_number,
        "shard_id": received.shard_id,
        "arrival_time": format_timestamp(received.arrival),
    }
    return "{" + ",".join(f"{json.dumps(name)}:{_json_value(value)}" for name, value in fields.items()) + "}"


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def plan_item_writes(
    accepted: Sequence[tuple[StreamRecord, ReceivedTick]],
    current: dict[tuple[str, str], dict[str, Any]],
    settings: ProcessorSettings,
    now: datetime,
) -> tuple[list[ItemWrite], int]:
    """Fold the batch into each quote and bar it touches; returns the writes and how many were no-ops."""
    by_symbol: dict[str, list[tuple[StreamRecord, ReceivedTick]]] = defaultdict(list)
    by_bar: dict[tuple[str, datetime], list[tuple[StreamRecord, ReceivedTick]]] = defaultdict(list)
    for record, received in accepted:
        by_symbol[received.tick.symbol].append((record, received))
        by_bar[(received.tick.symbol, bar_start(received.tick.timestamp))].append((record, received))

    writes: list[ItemWrite] = []
    unchanged = 0
    for symbol, entries in by_symbol.items():
        stored = current.get(items.key_of(items.quote_key(symbol)))
        previous: Quote | None = items.quote_from_values(stored) if stored else None
        record_of = {received.sequence_key: record for record, received in entries}
        chain = _quote_chain(previous, [received for _, received in entries])
        if not chain:
            unchanged += 1
            continue
        steps = []
        expected = previous.revision if previous else None
        for quote, keys in chain:
            revision = (expected or 0) + 1
            item = items.quote_to_item(replace(quote, revision=revision), updated_at=now)
            steps.append(ItemWrite(item, expected, tuple(record_of[key] for key in keys)))
            expected = revision
        writes.append(replace(steps[0], then=tuple(steps[1:])))
    for (symbol, start), entries in by_bar.items():
        stored = current.get(items.key_of(items.bar_key(symbol, start)))
        previous_bar: Bar | None = items.bar_from_values(stored) if stored else None
        bar = fold_bar(previous_bar, [received for _, received in entries])
        if bar is None:
            unchanged += 1
            continue
        writes.append(bar_write(bar, previous_bar, tuple(record for record, _ in entries), settings))
    return writes, unchanged


def bar_write(
    bar: Bar, previous: Bar | None, records: tuple[StreamRecord, ...], settings: ProcessorSettings
) -> ItemWrite:
    expected = previous.revision if previous else None
    item = items.bar_to_item(replace(bar, revision=(expected or 0) + 1), retention=settings.bar_retention)
    return ItemWrite(item=item, expected_revision=expected, records=records)


def _quote_chain(previous: Quote | None, ticks: list[ReceivedTick]) -> list[tuple[Quote, list[str]]]:
    """Quotes to write in order (normally one), with the sequence keys of the ticks each applies."""
    quote = fold_quote(previous, ticks)
    if quote is None:
        return []
    fresh = new_ticks(ticks, previous.applied_seq if previous else None)
    if len(fresh) == 1 or len(items.encode_trades(quote.trades)) <= QUOTE_TRADES_LIMIT:
        return [(quote, [t.sequence_key for t in fresh])]
    half = len(fresh) // 2
    first = _quote_chain(previous, fresh[:half])
    return first + _quote_chain(first[-1][0], fresh[half:])


def item_keys_for(accepted: Sequence[tuple[StreamRecord, ReceivedTick]]) -> list[items.Key]:
    keys: dict[tuple[str, str], items.Key] = {}
    for _, received in accepted:
        for key in (
            items.quote_key(received.tick.symbol),
            items.bar_key(received.tick.symbol, bar_start(received.tick.timestamp)),
        ):
            keys.setdefault(items.key_of(key), key)
    return list(keys.values())


# --- the batch, with AWS ------------------------------------------------------------------------


class TickBatchProcessor:
    """Applies Kinesis batches to S3 and DynamoDB. Clients are injectable (`AwsClients(s3=...)`)."""

    def __init__(
        self,
        settings: ProcessorSettings,
        clients: AwsClients | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.clients = clients or AwsClients()
        self.clock = clock

    def process(self, records: Sequence[StreamRecord], *, replay: bool = False) -> BatchReport:
        """Apply one batch. `replay` (set by `tickwatch dlq replay`) also repairs the bars and
        quotes that later ticks have moved past (see `repair.py`)."""
        report = BatchReport(records=len(records))
        if not records:
            return report
        accepted, quarantined = split_batch(records)
        report.ticks = len(accepted)
        report.quarantined = quarantined
        suffix = batch_suffix(records)

        stored: set[str] = set()
        for s3_object in plan_raw_objects(accepted, suffix):
            if self._put_object(s3_object, report):
                report.raw_objects_written += 1
                report.raw_lines_written += len(s3_object.records)
                stored.update(record.sequence_number for record in s3_object.records)
        quarantine_object = plan_quarantine_object(quarantined, suffix)
        if quarantine_object and self._put_object(quarantine_object, report):
            report.quarantine_objects_written += 1

        # Ticks reach the items only below the first one whose raw line could not be stored (they
        # are reported failed, and Lambda resumes there): raw data then holds every tick an item
        # has applied, which repair relies on, and no item moves past a tick it has yet to apply.
        unstored = [record.sequence_key for record, _ in accepted if record.sequence_number not in stored]
        applicable = [
            (record, received) for record, received in accepted if not unstored or record.sequence_key < min(unstored)
        ]
        if applicable:
            before = self._write_items(applicable, report)
            if replay and before is not None and not report.failures:
                self._repair(applicable, before, report)
        return report

    def _put_object(self, s3_object: S3Object, report: BatchReport) -> bool:
        arguments: dict[str, Any] = {
            "Bucket": self.settings.raw_bucket,
            "Key": s3_object.key,
            "Body": s3_object.body,
            "ContentType": s3_object.content_type,
        }
        if s3_object.content_encoding:
            arguments["ContentEncoding"] = s3_object.content_encoding
        try:
            self.clients.s3.put_object(**arguments)
        except AWS_ERRORS as error:
            where = f"s3://{self.settings.raw_bucket}/{s3_object.key}"
            report.failures.append(WriteFailure(where, describe_aws_error(error), s3_object.records))
            return False
        return True

    def _write_items(
        self, accepted: Sequence[tuple[StreamRecord, ReceivedTick]], report: BatchReport
    ) -> dict[tuple[str, str], dict[str, Any]] | None:
        """Fold the ticks into their quotes and bars; returns the items as they were before."""
        current = self._read_items(item_keys_for(accepted), accepted, report)
        if current is None:
            return None

        writes, report.items_unchanged = plan_item_writes(accepted, current, self.settings, self.clock())
        # Bars first, then each quote whose bars all went in: a quote never counts a tick its bar
        # lacks, which is what lets a replay rebuild a quote's day from its bars.
        bars = [write for write in writes if write.item["sk"]["S"] != items.QUOTE_SORT_KEY]
        failed_bars = self._write_all(bars, report)
        symbols_behind = {write.item["pk"]["S"] for write in failed_bars}
        quotes = []
        for write in writes:
            if write.item["sk"]["S"] != items.QUOTE_SORT_KEY:
                continue
            if write.item["pk"]["S"] in symbols_behind:
                records = tuple(record for step in (write, *write.then) for record in step.records)
                what = f"item {items.key_of(write.item)}"
                report.failures.append(WriteFailure(what, "not written: a bar of the same ticks failed", records))
            else:
                quotes.append(write)
        self._write_all(quotes, report)
        return current

    def _read_items(
        self,
        keys: Sequence[items.Key],
        accepted: Sequence[tuple[StreamRecord, ReceivedTick]],
        report: BatchReport,
    ) -> dict[tuple[str, str], dict[str, Any]] | None:
        try:
            return batch_get(self.clients.dynamodb, self.settings.table_name, keys)
        except AWS_ERRORS as error:
            records = tuple(record for record, _ in accepted)
            report.failures.append(WriteFailure("read of quotes and bars", describe_aws_error(error), records))
            return None

    # -- replay ----------------------------------------------------------------------------------

    def _repair(
        self,
        replayed: Sequence[tuple[StreamRecord, ReceivedTick]],
        before: dict[tuple[str, str], dict[str, Any]],
        report: BatchReport,
    ) -> None:
        """Rebuild the bars, then the quotes, that were already past some replayed tick."""
        late_bars: dict[tuple[str, datetime], list[tuple[StreamRecord, ReceivedTick]]] = defaultdict(list)
        late_symbols: dict[str, list[tuple[StreamRecord, ReceivedTick]]] = defaultdict(list)
        for record, received in replayed:
            symbol, start = received.tick.symbol, bar_start(received.tick.timestamp)
            stored_bar = before.get(items.key_of(items.bar_key(symbol, start)))
            stored_quote = before.get(items.key_of(items.quote_key(symbol)))
            if stored_bar and received.sequence_key <= stored_bar["applied_seq"]:
                late_bars[(symbol, start)].append((record, received))
            quote_past = stored_quote is not None and received.sequence_key <= stored_quote["applied_seq"]
            if quote_past or (symbol, start) in late_bars:
                late_symbols[symbol].append((record, received))
        if not late_symbols:
            return
        keys = [items.bar_key(symbol, start) for symbol, start in late_bars]
        current = self._read_items(keys + [items.quote_key(s) for s in late_symbols], replayed, report)
        if current is None:
            return

        partitions = sorted({hour_partition(start) for _, start in late_bars})
        raw_ticks = self._raw_ticks(partitions, replayed, report)
        if raw_ticks is None:
            return
        bar_writes = []
        for (symbol, start), entries in late_bars.items():
            stored = current.get(items.key_of(items.bar_key(symbol, start)))
            if stored is None:  # expired since: nothing to repair
                continue
            bar = items.bar_from_values(stored)
            rebuilt = repair.rebuild_bar(symbol, start, raw_ticks.get(hour_partition(start), []), bar.applied_seq)
            if rebuilt is not None and not repair.same_bar(rebuilt, bar):
                bar_writes.append(bar_write(rebuilt, bar, tuple(record for record, _ in entries), self.settings))
        self._write_all(bar_writes, report, repaired=True)
        if report.failures:
            return

        now = self.clock()
        quote_writes = []
        for symbol, entries in late_symbols.items():
            stored = current.get(items.key_of(items.quote_key(symbol)))
            if stored is None:
                continue
            quote = items.quote_from_values(stored)
            records = tuple(record for record, _ in entries)
            ticks = [received for _, received in entries]
            day = repair.latest_trade_day(quote, ticks)
            try:
                day_bars = self._day_bars(symbol, day)
            except AWS_ERRORS as error:
                report.failures.append(WriteFailure(f"read of {symbol} bars", describe_aws_error(error), records))
                continue
            if any(bar.applied_seq > quote.applied_seq for bar in day_bars):
                # A live batch wrote its bars but not yet this quote: the sum would count its ticks
                # before the quote does. Fail these records; the next replay finds it settled.
                report.failures.append(
                    WriteFailure(f"quote {symbol}", "a live batch is updating it; replay again", records)
                )
                continue
            rebuilt = repair.rebuild_quote(quote, ticks, day_bars)
            if not repair.same_quote(rebuilt, quote):
                revision = quote.revision + 1
                item = items.quote_to_item(replace(rebuilt, revision=revision), updated_at=now)
                quote_writes.append(ItemWrite(item, quote.revision, records))
        self._write_all(quote_writes, report, repaired=True)

    def _write_all(
        self, writes: Sequence[ItemWrite], report: BatchReport, *, repaired: bool = False
    ) -> list[ItemWrite]:
        """Write items in parallel; returns the writes that failed (also in the report)."""
        with ThreadPoolExecutor(max_workers=min(_WRITE_THREADS, max(1, len(writes)))) as pool:
            outcomes = list(pool.map(self._put_item, writes))
        failed = []
        for write, outcome in zip(writes, outcomes, strict=True):
            if outcome is None:
                if repaired:
                    report.items_repaired += 1
                else:
                    report.items_written += 1 + len(write.then)
            else:
                error, failed_records = outcome
                report.failures.append(WriteFailure(f"item {items.key_of(write.item)}", error, failed_records))
                failed.append(write)
        return failed

    def _raw_ticks(
        self, partitions: Sequence[str], replayed: Sequence[tuple[StreamRecord, ReceivedTick]], report: BatchReport
    ) -> dict[str, list[ReceivedTick]] | None:
        """Every tick stored under each raw hour partition."""
        bucket = self.settings.raw_bucket
        try:
            keys = [
                (partition, entry["Key"])
                for partition in partitions
                for page in self.clients.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=f"{RAW_PREFIX}{partition}/"
                )
                for entry in page.get("Contents", [])
            ]
            with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
                bodies = list(
                    pool.map(lambda key: self.clients.s3.get_object(Bucket=bucket, Key=key[1])["Body"].read(), keys)
                )
        except AWS_ERRORS as error:
            records = tuple(record for record, _ in replayed)
            where = f"read of s3://{bucket}/{RAW_PREFIX}"
            report.failures.append(WriteFailure(where, describe_aws_error(error), records))
            return None
        found: dict[str, list[ReceivedTick]] = defaultdict(list)
        for (partition, _), body in zip(keys, bodies, strict=True):
            found[partition] += repair.ticks_from_raw(body)
        return found

    def _day_bars(self, symbol: str, day: date) -> list[Bar]:
        """Every bar of one symbol and UTC day (at most 1,440), read consistently."""
        bars = []
        paginator = self.clients.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.settings.table_name,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": {"S": items.symbol_pk(symbol)},
                ":first": {"S": f"{items.BAR_PREFIX}{day.isoformat()}T00:00Z"},
                ":last": {"S": f"{items.BAR_PREFIX}{day.isoformat()}T23:59Z"},
            },
        ):
            bars += [items.bar_from_values(items.deserialize(item)) for item in page.get("Items", [])]
        return bars

    def _put_item(self, write: ItemWrite) -> tuple[str, tuple[StreamRecord, ...]] | None:
        """Write an item (and its follow-up versions, in order); on failure, the error and the
        records of every version not written."""
        for position, step in enumerate((write, *write.then)):
            error = self._put_one(step)
            if error is not None:
                failed = tuple(record for later in (write, *write.then)[position:] for record in later.records)
                return error, failed
        return None

    def _put_one(self, write: ItemWrite) -> str | None:
        if write.expected_revision is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        elif write.expected_revision == 0:  # written before items had a revision
            condition = {
                "ConditionExpression": "attribute_not_exists(revision) OR revision = :expected",
                "ExpressionAttributeValues": {":expected": {"N": "0"}},
            }
        else:
            condition = {
                "ConditionExpression": "revision = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(write.expected_revision)}},
            }
        try:
            self.clients.dynamodb.put_item(TableName=self.settings.table_name, Item=write.item, **condition)
        except AWS_ERRORS as error:
            return describe_aws_error(error)
        return None
