"""Part 8 of `make bench`: the tick history, hourly Parquet compaction and what Athena scans.

* An hour of raw objects as the processor writes them: simulator ticks over 20 symbols at 1,000
  ticks/s, spread over the shards by symbol, one gzip JSON Lines object per shard and second (the
  1 s batching window), and a few batches retried from a failed record, which repeats their lines
  in a second object. The first batch of each shard goes through the processor's own code
  (`split_batch`, `plan_raw_objects`); the rest are written by a fast copy of `raw_line` that must
  give the same bytes.
* The whole compactor path (`HistoryCompactor.pending` and `run`: listing, downloads with its 32
  threads, DuckDB, upload) against an in-memory S3, with the function's DuckDB settings (three
  quarters of its memory, spilling to disk), and the engine's own share of it timed apart, with
  the process's peak memory while DuckDB works. AWS's latency and bandwidth are modelled on top.
* Sizes: the Parquet file against the hour's gzip JSON Lines, per tick and per column.
* Athena: the bytes each named query of template.yaml reads, from the Parquet column chunks of the
  columns it uses (sqlglot finds them) in the hours its partition filter selects.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from tickwatch.analytics.named import template_queries
from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeS3
from tickwatch.bench.measure import FIRST_SEQUENCE
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tickwatch.template import Template
from tickwatch_core.aws import AwsClients
from tickwatch_core.history.columns import TICK_COLUMNS
from tickwatch_core.history.compaction import HistoryCompactor, HourReport
from tickwatch_core.history.engine import CompactedFile, EngineSettings, ParquetEngine
from tickwatch_core.pipeline.processor import StreamRecord, batch_suffix, plan_raw_objects, split_batch

HOUR = datetime(2026, 11, 20, 14, tzinfo=UTC)
RATE = 1000  # ticks/s: the hour, the month and the costs are modelled at this rate
HOUR_TICKS = RATE * 3600
MONTH_HOURS = 30 * 24
BUCKET = "tickwatch-bench-raw"
RETRY_SHARE = 0.05  # batches that fail after writing their raw object and are retried
PUT_RECORDS_LINGER_MS = 200  # the producer sends a PutRecords call at least this often (fetch/writer.py)
BASE_TICKS = 200_000  # simulator ticks generated; longer hours walk them back and forth
SEED = 2026


# --- an hour of raw objects ---------------------------------------------------------------------


@dataclass
class RawHour:
    objects: list[tuple[str, bytes]]  # (key, gzip JSON Lines), as the processor puts them
    ticks: int  # unique ticks
    lines: int  # lines in all objects: ticks plus the retried batches' repeats
    shards: int
    batches: int
    retried_batches: int
    seconds: float  # to generate

    @property
    def raw_bytes(self) -> int:
        return sum(len(body) for _, body in self.objects)


def generate_hour(
    ticks: int, shards: int, *, batch_size: int = 1000, retry_share: float = RETRY_SHARE, seed: int = SEED
) -> RawHour:
    """`ticks` simulator ticks from the start of HOUR at RATE a second, as raw objects.

    Tick times are a Poisson process at RATE, stamped to the millisecond; each arrives 20 to 80 ms
    later, in order per shard (symbols spread over the shards as partition keys). Sequence numbers
    jump by up to 10^22 per PutRecords call (one per 200 ms) and rise by 1 to 99 per record within
    a call, as Kinesis numbers do. A shard's records of one arrival second form one batch (the 1 s
    window; at most `batch_size`). `retry_share` of the batches fail after their raw object is
    written and Lambda retries from a record within them: the lines from it on are written again,
    under the retry batch's key. Objects are gzipped as the processor does, on all cores.
    """
    if ticks > HOUR_TICKS:
        raise ValueError(f"at most an hour of ticks at {RATE}/s ({HOUR_TICKS:,})")
    started = time.perf_counter()
    random_ = random.Random(seed)
    simulator = MarketSimulator(seed=seed)
    shard_of_symbol = {symbol: index % shards for index, symbol in enumerate(simulator.symbols)}
    # The simulator's own price walk, stepped back and forth when the hour is longer than it.
    base = [simulator.next_tick(HOUR) for _ in range(min(ticks, BASE_TICKS))]
    heads = [
        (
            f'{{"symbol":"{tick["symbol"]}","price":{json.dumps(tick["price"])},"timestamp":"',
            f'","volume":{tick["volume"]},"bid":{json.dumps(tick["bid"])},"ask":{json.dumps(tick["ask"])},'
            f'"source":"{tick["source"]}","sequence_number":"',
        )
        for tick in base
    ]
    base_shard = [shard_of_symbol[tick["symbol"]] for tick in base]
    period = max(1, 2 * len(base) - 2)
    walk = [position if position < len(base) else period - position for position in range(min(ticks, period))]

    # Each tick: its millisecond in the hour and its base tick, dealt to its symbol's shard.
    by_shard: list[list[tuple[int, int]]] = [[] for _ in range(shards)]
    # A whole hour's ticks come a shade faster, so that the last of them stays in the hour.
    rate = max(RATE, ticks / 3590)
    expovariate, elapsed, last_ms = random_.expovariate, 0.0, 3_600_000 - 1
    for index in range(ticks):
        elapsed += expovariate(rate)
        base_index = walk[index % len(walk)]
        by_shard[base_shard[base_index]].append((min(int(elapsed * 1000), last_ms), base_index))

    seconds = [(HOUR + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S") for s in range(3600 + 60)]
    fractions = ["Z"] + [f".{ms:03d}000Z" for ms in range(1, 1000)]
    objects: list[tuple[str, bytes]] = []
    counts = {"batches": 0, "retried": 0, "lines": 0, "compressed": 0}
    prefix = _raw_prefix()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = []

        def flush(shard_id: str, lines: list[str], sequences: list[str]) -> None:
            while len(futures) - counts["compressed"] > 512:  # keep the text waiting for gzip bounded
                futures[counts["compressed"]].result()
                counts["compressed"] += 1
            key = f"{prefix}{shard_id}_{sequences[0]}_{sequences[-1]}.jsonl.gz"
            futures.append(pool.submit(_compress, key, "".join(lines)))
            counts["batches"] += 1
            counts["lines"] += len(lines)
            if len(lines) > 1 and random_.random() < retry_share:
                # From the first record on, the retry would write the same key and bytes again.
                start = random_.randrange(1, len(lines))
                retry_key = f"{prefix}{shard_id}_{sequences[start]}_{sequences[-1]}.jsonl.gz"
                futures.append(pool.submit(_compress, retry_key, "".join(lines[start:])))
                counts["retried"] += 1
                counts["lines"] += len(lines) - start

        for shard, shard_ticks in enumerate(by_shard):
            shard_id = f"shardId-{shard:012d}"
            tail = f'","shard_id":"{shard_id}","arrival_time":"'
            sequence = FIRST_SEQUENCE + shard * 10**36 + random_.getrandbits(100)
            arrival, call, batch_second = 0, -1, -1
            lines: list[str] = []
            sequences: list[str] = []
            first_batch: list[tuple[dict[str, Any], int]] | None = []
            rand, jump = random_.random, random_.getrandbits
            for ms, base_index in shard_ticks:
                arrival = max(arrival, ms + 20 + int(rand() * 61))
                if ms // PUT_RECORDS_LINGER_MS != call:
                    call = ms // PUT_RECORDS_LINGER_MS
                    sequence += jump(73)  # a new PutRecords call: about 10^22 further
                else:
                    sequence += 1 + int(rand() * 99)
                if arrival // 1000 != batch_second or len(lines) >= batch_size:
                    if lines:
                        if first_batch is not None:
                            _check_against_processor(shard_id, first_batch, sequences, "".join(lines))
                            first_batch = None
                        flush(shard_id, lines, sequences)
                    lines, sequences, batch_second = [], [], arrival // 1000
                head, middle = heads[base_index]
                text = str(sequence)
                second, fraction = divmod(ms, 1000)
                arrival_second, arrival_fraction = divmod(arrival, 1000)
                lines.append(
                    f"{head}{seconds[second]}{fractions[fraction]}{middle}{text}{tail}"
                    f'{seconds[arrival_second]}{fractions[arrival_fraction]}"}}\n'
                )
                sequences.append(text)
                if first_batch is not None:
                    first_batch.append((base[base_index] | {"timestamp": _tick_stamp(ms)}, arrival))
            if lines:
                flush(shard_id, lines, sequences)
        objects = [future.result() for future in futures]
    return RawHour(
        objects=objects,
        ticks=ticks,
        lines=counts["lines"],
        shards=shards,
        batches=counts["batches"],
        retried_batches=counts["retried"],
        seconds=time.perf_counter() - started,
    )


def _compress(key: str, text: str) -> tuple[str, bytes]:
    return key, gzip.compress(text.encode("utf-8"), mtime=0)  # as processor.plan_raw_objects


def _raw_prefix() -> str:
    return f"raw/year={HOUR:%Y}/month={HOUR:%m}/day={HOUR:%d}/hour={HOUR:%H}/"


def _tick_stamp(ms: int) -> str:
    """The simulator's own timestamp text (milliseconds, Z), as the producer sends it."""
    return (HOUR + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_against_processor(
    shard_id: str, documents: list[tuple[dict[str, Any], int]], sequences: list[str], text: str
) -> None:
    """The processor's own code, given the same records, writes the same object."""
    records = [
        StreamRecord(
            data=json.dumps(document).encode(),
            sequence_number=sequence,
            shard_id=shard_id,
            partition_key=document["symbol"],
            arrival=HOUR + timedelta(milliseconds=arrival_ms),
        )
        for (document, arrival_ms), sequence in zip(documents, sequences, strict=True)
    ]
    accepted, quarantined = split_batch(records)
    (planned,) = plan_raw_objects(accepted, batch_suffix(records))
    key = f"{_raw_prefix()}{shard_id}_{sequences[0]}_{sequences[-1]}.jsonl.gz"
    if quarantined or planned.key != key or gzip.decompress(planned.body).decode() != text:
        raise AssertionError("the benchmark's raw lines no longer match processor.raw_line: update generate_hour")


# --- the compactor against an in-memory S3 ------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        for start in range(0, len(self._data), chunk_size):
            yield self._data[start : start + chunk_size]


class HistoryS3(FakeS3):
    """FakeS3 plus what the compactor calls: listing pages of 1,000 keys, GET, HEAD; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.etags: dict[tuple[str, str], str] = {}
        self.metadata: dict[tuple[str, str], dict[str, str]] = {}
        self.calls: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[f"s3:{operation}"] += 1

    def put_object(self, *, Bucket: str, Key: str, Body: Any, Metadata: dict | None = None, **_: Any) -> dict:
        self._count("PutObject")
        data = Body.read() if hasattr(Body, "read") else bytes(Body)
        self.objects[(Bucket, Key)] = data
        self.etags[(Bucket, Key)] = f'"{len(data):x}-{hash(data) & 0xFFFFFFFF:08x}"'
        self.metadata[(Bucket, Key)] = dict(Metadata or {})
        return {"ETag": self.etags[(Bucket, Key)]}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("GetObject")
        return {"Body": _Body(self.objects[(Bucket, Key)])}

    def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("HeadObject")
        return {"Metadata": self.metadata.get((Bucket, Key), {}), "ContentLength": len(self.objects[(Bucket, Key)])}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2", name
        return self

    def paginate(self, *, Bucket: str, Prefix: str, StartAfter: str = "") -> Iterator[dict[str, Any]]:
        keys = sorted(key for bucket, key in self.objects if bucket == Bucket and key.startswith(Prefix))
        keys = [key for key in keys if key > StartAfter]
        modified = datetime(2026, 11, 20, 15, 7, tzinfo=UTC)
        for start in range(0, max(1, len(keys)), 1000):
            self._count("ListObjectsV2")
            page = keys[start : start + 1000]
            yield {
                "Contents": [
                    {
                        "Key": key,
                        "ETag": self.etags[(Bucket, key)],
                        "Size": len(self.objects[(Bucket, key)]),
                        "LastModified": modified,
                    }
                    for key in page
                ]
            }


class _MemoryWatch:
    """The process's peak resident memory above where it started, and the most DuckDB spilled."""

    def __init__(self, spill: Path) -> None:
        self.spill = spill
        self.baseline = _resident_bytes()
        self.peak = self.baseline
        self.spilled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self._sample()

    def _sample(self) -> None:
        self.peak = max(self.peak, _resident_bytes())
        try:
            spilled = sum(entry.stat().st_size for entry in os.scandir(self.spill))
        except OSError:  # no spill directory yet, or a file DuckDB removed meanwhile
            return
        self.spilled = max(self.spilled, spilled)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: no peak figure
        return 0


class TimedEngine(ParquetEngine):
    """The function's engine, its compactions timed and watched."""

    def __init__(self, settings: EngineSettings) -> None:
        super().__init__(settings)
        self.runs: list[tuple[float, int, int]] = []  # (seconds, peak bytes above start, spilled bytes)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        fresh = self._connection is None
        connection = super()._connect()
        if fresh:  # DuckDB draws a progress bar on stdout for queries over 2 s: not in the report
            connection.execute("SET enable_progress_bar = false")
        return connection

    def compact(self, paths: Any, output: Path) -> CompactedFile:
        assert self.settings.spill_directory is not None
        with _MemoryWatch(self.settings.spill_directory) as watch:
            started = time.perf_counter()
            compacted = super().compact(paths, output)
            seconds = time.perf_counter() - started
        self.runs.append((seconds, watch.peak - watch.baseline, watch.spilled))
        return compacted

    def setting(self, name: str) -> str:
        (value,) = self._connect().execute("SELECT current_setting($name)", {"name": name}).fetchone() or ("?",)
        return str(value)


@dataclass
class Compaction:
    hour: HourReport
    pending_seconds: float
    run_seconds: float
    engine_seconds: float
    peak_memory_bytes: int
    spilled_bytes: int
    requests: dict[str, int]
    columns: list[dict[str, Any]]  # parquet_metadata(): one row per row group and column
    parquet_bytes: int
    threads: str
    memory_limit: str


def measure_compaction(raw: RawHour, memory_mb: int) -> Compaction:
    """The compactor's pending() and run() for the hour, on an in-memory S3, with the function's
    DuckDB settings; then the Parquet file's column chunks."""
    s3 = HistoryS3()
    for key, body in raw.objects:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s3.calls.clear()
    with TemporaryDirectory(prefix="tickwatch-bench-history-") as directory:
        scratch = Path(directory)
        engine = TimedEngine(EngineSettings.for_function(memory_mb, scratch))  # as functions/compactor/app.py
        compactor = HistoryCompactor(AwsClients(s3=s3), BUCKET, engine=engine, scratch=scratch)
        started = time.perf_counter()
        work = compactor.pending(HOUR, HOUR)
        pending_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = compactor.run(work)
        run_seconds = time.perf_counter() - started
        if report.failed or len(report.compacted) != 1:
            raise RuntimeError(f"the compactor did not compact the hour: {report.failed}")
        (hour,) = report.compacted
        (parquet_key,) = (key for bucket, key in s3.objects if key.startswith("history/"))
        parquet = scratch / "ticks.parquet"
        parquet.write_bytes(s3.objects[(BUCKET, parquet_key)])
        columns = _column_chunks(parquet)
        threads, memory_limit = engine.setting("threads"), engine.setting("memory_limit")
    (engine_seconds, peak, spilled) = engine.runs[-1]
    return Compaction(
        hour=hour,
        pending_seconds=pending_seconds,
        run_seconds=run_seconds,
        engine_seconds=engine_seconds,
        peak_memory_bytes=peak,
        spilled_bytes=spilled,
        requests=dict(sorted(s3.calls.items())),
        columns=columns,
        parquet_bytes=hour.parquet_bytes,
        threads=threads,
        memory_limit=memory_limit,
    )


def _column_chunks(path: Path) -> list[dict[str, Any]]:
    with duckdb.connect(config={"autoinstall_known_extensions": False}) as connection:
        rows = connection.execute(
            "SELECT row_group_id, row_group_num_rows, path_in_schema, total_compressed_size, stats_min, stats_max "
            "FROM parquet_metadata($path) ORDER BY row_group_id, column_id",
            {"path": str(path)},
        ).fetchall()
    names = ("row_group", "rows", "column", "bytes", "min", "max")
    return [dict(zip(names, row, strict=True)) for row in rows]


# --- what the named queries read ----------------------------------------------------------------


def tables_and_columns(sql: str) -> dict[str, set[str]]:
    """The tables a query reads and the columns it uses of each ("*" for all), by sqlglot's scopes."""
    used: dict[str, set[str]] = defaultdict(set)
    for scope in traverse_scope(sqlglot.parse_one(sql, read="athena")):
        tables = {alias: source.name for alias, source in scope.sources.items() if isinstance(source, exp.Table)}
        for table in tables.values():
            used.setdefault(table, set())  # read even when only partition columns are named
        for column in scope.columns:
            owner = tables.get(column.table) if column.table else None
            if owner is None and not column.table and len(tables) == 1:
                owner = next(iter(tables.values()))
            if owner is not None:
                used[owner].add(column.name.lower())
        for star in scope.expression.find_all(exp.Column):
            if isinstance(star.this, exp.Star) and star.table in tables:
                used[tables[star.table]].add("*")
    return dict(used)


def named_query_scans(compaction: Compaction, raw: RawHour, cutoff_bytes: int) -> list[dict[str, Any]]:
    """Bytes each named query reads and what Athena charges for it (method.md says the rules):
    of `ticks`, the whole column chunks of the columns it uses, and each file's footer, in every
    hour its partition filter selects (a month: 720, a day: 24); with `symbol = ?`, only the row
    groups whose symbol statistics include it. Of `raw_ticks`, whole objects (JSON has no columns)."""
    scale = HOUR_TICKS / raw.ticks
    file_columns = [name for name, _, _ in TICK_COLUMNS]
    chunk_bytes: dict[str, int] = defaultdict(int)
    for chunk in compaction.columns:
        chunk_bytes[chunk["column"]] += chunk["bytes"]
    footer = max(0, compaction.parquet_bytes - sum(chunk_bytes.values()))  # read once per file
    raw_hour_bytes = raw.raw_bytes * scale
    rows = []
    for name, query in template_queries().items():
        hours = MONTH_HOURS if "month" in query.parameters else 24
        used = tables_and_columns(query.sql)
        row: dict[str, Any] = {"query": name, "parquet_hours": 0, "raw_hours": 0, "columns": [], "notes": []}
        parquet_bytes = 0.0
        if "ticks" in used:
            columns = [column for column in file_columns if column in used["ticks"]]
            share = _row_group_share(compaction.columns, columns) if "symbol" in query.parameters else 1.0
            parquet_bytes = (sum(chunk_bytes[column] for column in columns) * scale * share + footer) * hours
            row |= {"parquet_hours": hours, "columns": columns}
            if not columns:
                row["notes"].append("partition column only: each file's footer")
            if share < 1:
                row["notes"].append(f"`symbol = ?` reads only the row groups holding it: {share:.0%} of the bytes")
        if "quarantine" in used:
            row["notes"].append("the quarantine table: a few records a day, assumed under the minimum")
        if "raw_ticks" in used:
            row["raw_hours"] = 1
            row["notes"].append("the raw gzip JSON Lines of 1 uncompacted hour, read whole")
        rows.append(row | _scanned(parquet_bytes + raw_hour_bytes * row["raw_hours"], cutoff_bytes))
        if "raw_ticks" in used:
            # As written, `hour NOT IN (SELECT ...)` prunes no partition: a dynamic filter keeps the
            # values the subquery finds and an anti-join wants the others, so every hour is read.
            rows.append(
                row
                | {"query": f"{name}, as Athena plans NOT IN", "raw_hours": 24, "notes": ["all 24 hours' raw objects"]}
                | _scanned(parquet_bytes + raw_hour_bytes * 24, cutoff_bytes)
            )
    return rows


def _scanned(bytes_scanned: float, cutoff_bytes: int) -> dict[str, Any]:
    return {
        "bytes_scanned": round(bytes_scanned),
        "usd": round(cost.athena_query_cost(bytes_scanned), 6),
        "over_cutoff": bytes_scanned > cutoff_bytes,
    }


def _row_group_share(chunks: list[dict[str, Any]], columns: list[str]) -> float:
    """The mean share, over the symbols, of `columns`' bytes in the row groups whose symbol
    statistics (min, max) include the symbol: what `symbol = ?` leaves Athena to read."""
    groups: dict[int, dict[str, Any]] = defaultdict(lambda: {"bytes": 0})
    for chunk in chunks:
        group = groups[chunk["row_group"]]
        if chunk["column"] in columns:
            group["bytes"] += chunk["bytes"]
        if chunk["column"] == "symbol":
            group["min"], group["max"] = chunk["min"], chunk["max"]
    total = sum(group["bytes"] for group in groups.values())
    shares = [
        sum(group["bytes"] for group in groups.values() if group["min"] <= symbol <= group["max"]) / total
        for symbol in DEFAULT_SYMBOLS
    ]
    return statistics.mean(shares)


# --- the report ---------------------------------------------------------------------------------


def report(raw: RawHour, compaction: Compaction, prices: dict[str, Any], template: Template) -> dict[str, Any]:
    """The measured figures, the hour at RATE (in proportion to the ticks when fewer were
    measured), and the month's costs."""
    function = template.resources["CompactorFunction"]["Properties"]
    parameters = template.body["Parameters"]
    memory_mb = int(function["MemorySize"])
    lookback = int(parameters["CompactionLookbackHours"]["Default"])
    architecture = template.body["Globals"]["Function"]["Architectures"][0]
    hour = compaction.hour
    scale = HOUR_TICKS / raw.ticks
    objects_per_hour = len(raw.objects) * scale
    raw_hour, parquet_hour = raw.raw_bytes * scale, compaction.parquet_bytes * scale
    # The path on the in-memory S3 scales with the ticks; AWS's latency and bandwidth come on top.
    path_seconds = (compaction.pending_seconds + compaction.run_seconds) * scale
    requests = cost.compactor_requests(objects_per_hour, lookback)
    wait = cost.compactor_wait(requests, raw_hour, parquet_hour)
    chunk_bytes: dict[str, int] = defaultdict(int)
    for chunk in compaction.columns:
        chunk_bytes[chunk["column"]] += chunk["bytes"]
    month_ticks = HOUR_TICKS * MONTH_HOURS
    raw_gb = raw.raw_bytes / raw.ticks * month_ticks / 1024**3
    parquet_gb = compaction.parquet_bytes / raw.ticks * month_ticks / 1024**3
    raw_days = int(parameters["RawRetentionDays"]["Default"])
    return {
        "measured": {
            "ticks": raw.ticks,
            "lines": raw.lines,
            "duplicate_lines": raw.lines - raw.ticks,
            "rows": hour.rows,
            "shards": raw.shards,
            "raw_objects": len(raw.objects),
            "batches": raw.batches,
            "retried_batches": raw.retried_batches,
            "generate_seconds": round(raw.seconds, 1),
            "pending_seconds": round(compaction.pending_seconds, 2),
            "run_seconds": round(compaction.run_seconds, 2),
            "engine_seconds": round(compaction.engine_seconds, 2),
            "engine_lines_per_s": round(raw.lines / compaction.engine_seconds),
            "path_lines_per_s": round(raw.lines / (compaction.pending_seconds + compaction.run_seconds)),
            "peak_memory_mib": round(compaction.peak_memory_bytes / 1024**2),
            "spilled_mib": round(compaction.spilled_bytes / 1024**2, 1),
            "duckdb_threads": compaction.threads,
            "duckdb_memory_limit": compaction.memory_limit,
            "requests": compaction.requests,
            "row_groups": len({chunk["row_group"] for chunk in compaction.columns}),
        },
        "sizes": {
            "raw_bytes": raw.raw_bytes,
            "parquet_bytes": compaction.parquet_bytes,
            "raw_bytes_per_tick": round(raw.raw_bytes / raw.ticks, 2),
            "parquet_bytes_per_tick": round(compaction.parquet_bytes / raw.ticks, 2),
            "raw_to_parquet": round(raw.raw_bytes / compaction.parquet_bytes, 2),
            "column_bytes_per_tick": {
                name: round(chunk_bytes[name] / raw.ticks, 2) for name, _, _ in TICK_COLUMNS if name in chunk_bytes
            },
            "footer_bytes": compaction.parquet_bytes - sum(chunk_bytes.values()),
        },
        "hour": {
            "ticks": HOUR_TICKS,
            "scale": round(scale, 3),
            "raw_objects": round(objects_per_hour),
            "raw_mib": round(raw_hour / 1024**2, 1),
            "parquet_mib": round(parquet_hour / 1024**2, 1),
            "engine_seconds": round(compaction.engine_seconds * scale, 1),
            "path_seconds": round(path_seconds, 1),
            "modelled_s3_wait_seconds": round(wait, 1),
            "lambda_seconds": round(path_seconds + wait, 1),
            "timeout_seconds": int(function["Timeout"]),
            "peak_memory_mib": round(compaction.peak_memory_bytes * scale / 1024**2),
            "spilled_mib": round(compaction.spilled_bytes * scale / 1024**2, 1),
            "function_memory_mib": memory_mb,
            # EngineSettings.for_function gives DuckDB three quarters of the function's MiB.
            "duckdb_memory_limit_mib": memory_mb * 3 // 4,
            "scratch_mib_needed": round((raw_hour + parquet_hour + compaction.spilled_bytes * scale) / 1024**2),
            "scratch_mib": int(function.get("EphemeralStorage", {}).get("Size", 512)),
            "requests_per_run": {name: round(n) for name, n in requests.items()},
            "lookback_hours": lookback,
        },
        "month": {
            "ticks": month_ticks,
            "raw_gb": round(raw_gb, 2),
            "parquet_gb": round(parquet_gb, 2),
            "raw_storage_usd": round(cost.s3_storage_month(raw_gb, prices), 4),
            "parquet_storage_usd": round(cost.s3_storage_month(parquet_gb, prices), 4),
            "raw_retention_days": raw_days,
            # What the bucket holds a year in, as template.yaml keeps them: raw for RawRetentionDays,
            # the history for ever.
            "year_on_usd": {
                "raw": round(cost.s3_storage_month(raw_gb * raw_days / 30, prices), 2),
                "history": round(cost.s3_storage_month(parquet_gb * 12, prices), 2),
            },
            "compactor_usd": cost.compactor_month_cost(
                path_seconds + wait, MONTH_HOURS, memory_mb / 1024, requests, prices, architecture=architecture
            ),
        },
        "athena_cutoff_bytes": int(parameters["AthenaBytesScannedCutoff"]["Default"]),
        "athena": named_query_scans(compaction, raw, int(parameters["AthenaBytesScannedCutoff"]["Default"])),
    }


def measure(ticks: int, shards: int, prices: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    template = Template.load()
    memory_mb = int(template.resources["CompactorFunction"]["Properties"]["MemorySize"])
    batch_size = int(template.body["Parameters"]["ProcessorBatchSize"]["Default"])
    raw = generate_hour(ticks, shards, batch_size=batch_size)
    if progress:
        progress(f"   {len(raw.objects):,} raw objects ({raw.raw_bytes / 1024**2:.0f} MB) in {raw.seconds:.0f} s")
    compaction = measure_compaction(raw, memory_mb)
    return report(raw, compaction, prices, template)


# --- output -------------------------------------------------------------------------------------


def render(history: dict[str, Any]) -> list[str]:
    m, s, h, month = history["measured"], history["sizes"], history["hour"], history["month"]
    usd, requests = month["compactor_usd"], h["requests_per_run"]
    how = "measured at full size" if h["scale"] == 1 else f"extrapolated × {h['scale']:g} in proportion to the ticks"
    if h["spilled_mib"]:
        memory = (
            f"DuckDB reached its limit of {h['duckdb_memory_limit_mib']:,} MiB and spilled about "
            f"{h['spilled_mib']:,} MiB to /tmp"
        )
    elif h["peak_memory_mib"] > h["duckdb_memory_limit_mib"]:
        memory = f"above DuckDB's limit of {h['duckdb_memory_limit_mib']:,} MiB: it would spill to /tmp"
    else:
        memory = f"within DuckDB's limit of {h['duckdb_memory_limit_mib']:,} MiB, nothing spilled"
    cutoff_gib = history["athena_cutoff_bytes"] / 1024**3
    lines = [
        "",
        f"### 8. History: compacting an hour of raw ticks into Parquet ({m['ticks']:,} ticks, 20 symbols, "
        f"{m['shards']} shards, {m['raw_objects']:,} raw objects with {m['duplicate_lines']:,} lines repeated by "
        f"{m['retried_batches']} retried batches)",
        "",
        "| measured here | seconds | lines/s |",
        "|---|---:|---:|",
        f"| DuckDB alone (`ParquetEngine.compact`: {m['duckdb_threads']} threads, memory limit "
        f"{m['duckdb_memory_limit']}) | {m['engine_seconds']} | {m['engine_lines_per_s']:,} |",
        f"| the compactor's path on an in-memory S3 (`pending` {m['pending_seconds']} s; `run`: downloads, "
        f"DuckDB, upload) | {round(m['pending_seconds'] + m['run_seconds'], 2)} | {m['path_lines_per_s']:,} |",
        "",
        f"{m['rows']:,} rows written (the unique ticks) in {m['row_groups']} row groups. While DuckDB worked, "
        f"the process grew by at most {m['peak_memory_mib']:,} MiB and DuckDB spilled {m['spilled_mib']} MiB.",
        "",
        f"An hour at {RATE:,} ticks/s on the CompactorFunction ({h['ticks']:,} ticks, {h['raw_objects']:,} raw "
        f"objects; {how}):",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| DuckDB | {h['engine_seconds']} |",
        f"| the compactor's path on the in-memory S3 (DuckDB included) | {h['path_seconds']} |",
        f"| waiting for S3, modelled: {requests['s3:ListObjectsV2']:,} listing pages and "
        f"{requests['s3:HeadObject']} HEADs one after another, {requests['s3:GetObject']:,} GETs 32 at a time, "
        f"{h['raw_mib']} MiB down and {h['parquet_mib']} MiB up | {h['modelled_s3_wait_seconds']} |",
        f"| a run, of its {h['timeout_seconds']} s timeout | **{h['lambda_seconds']}** |",
        "",
        f"Memory: the process grew by {h['peak_memory_mib']:,} MiB of the function's {h['function_memory_mib']:,}; "
        f"{memory}. /tmp: about {h['scratch_mib_needed']:,} MiB of {h['scratch_mib']:,} (downloads, file, spill).",
        "",
        "| bytes per tick | gzip JSON Lines | Parquet (zstd) | raw : Parquet |",
        "|---|---:|---:|---:|",
        f"| an hour | {s['raw_bytes_per_tick']} | {s['parquet_bytes_per_tick']} | {s['raw_to_parquet']} : 1 |",
        "",
        "Parquet bytes per tick by column: "
        + ", ".join(f"{name} {size}" for name, size in s["column_bytes_per_tick"].items())
        + ".",
        "",
        f"A month at {RATE:,} ticks/s ({month['ticks'] / 1e9:.2f} billion ticks; USD a month):",
        "",
        "| S3 Standard: a month of raw gzip JSON Lines | a month of Parquet | compactor: Lambda GB-s "
        f"| Lambda requests | S3 requests ({MONTH_HOURS} runs) | compactor total |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {month['raw_gb']} GB: {month['raw_storage_usd']:.2f} | {month['parquet_gb']} GB: "
        f"{month['parquet_storage_usd']:.2f} | {usd['lambda_duration']:.2f} | {usd['lambda_requests']:.4f} "
        f"| {usd['s3_requests']:.2f} | **{usd['total']:.2f}** |",
        "",
        f"Each run lists {h['lookback_hours']} hours of raw keys (the look-back) and reads the fingerprint of each "
        "hour's file. Kept as template.yaml keeps them (raw objects "
        f"{month['raw_retention_days']} days, the history for ever), a year on the bucket costs "
        f"{month['year_on_usd']['raw']:.2f} a month for raw and {month['year_on_usd']['history']:.2f} for history.",
        "",
        "| named query | hours read | Parquet columns read | bytes scanned | USD a query |",
        "|---|---|---|---:|---:|",
    ]
    for row in history["athena"]:
        hours = " + ".join(
            f"{n} {kind}" for n, kind in ((row["parquet_hours"], "Parquet"), (row["raw_hours"], "raw")) if n
        )
        notes = f" ({'; '.join(row['notes'])})" if row["notes"] else ""
        over = f" **over the {cutoff_gib:g} GiB cutoff: cancelled**" if row["over_cutoff"] else ""
        lines.append(
            f"| {row['query']} | {hours or '-'} | {', '.join(row['columns']) or '-'}{notes} "
            f"| {row['bytes_scanned'] / 1024**2:,.1f} MiB{over} | {row['usd']:.5f} |"
        )
    return lines
