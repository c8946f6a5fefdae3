"""Compaction with DuckDB: an hour's raw JSON Lines objects -> one sorted, deduplicated Parquet file.

DuckDB reads the gzip JSON Lines with explicit column types, so prices parse straight into
DECIMAL(38, 18) with every digit (never through a float), deduplicates by Kinesis record, sorts
by symbol and time and writes zstd Parquet. The order is total (symbol, time, then the record's
shard and sequence number), so compacting the same lines again writes the same rows in the same
order. This module is imported only by the compactor and the CLI, which ship DuckDB.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tickwatch_core.history.columns import RAW_FIELDS, TICK_COLUMNS

# About a million rows per row group: Athena and DuckDB skip groups by their min/max statistics,
# and an hour of one busy symbol stays in one or two groups.
ROW_GROUP_SIZE = 1_000_000

# The first column is the tick's `timestamp`, renamed; the rest keep their names.
_SELECT_COLUMNS = ", ".join('"timestamp" AS "time"' if name == "time" else f'"{name}"' for name, _, _ in TICK_COLUMNS)
# Kinesis sequence numbers are decimal strings; shorter ones are smaller.
_RECORD_ORDER = "shard_id, length(sequence_number), sequence_number"
# Fields every raw line has (the processor writes them); a line without one is not a tick.
REQUIRED_FIELDS = ("symbol", "price", "timestamp", "shard_id", "sequence_number", "arrival_time")
_LACKS_A_FIELD = " OR ".join(f'"{name}" IS NULL' for name in REQUIRED_FIELDS)


class IncompleteLines(ValueError):
    """Some raw lines lack a field every tick has: the caller checks each object to find them."""


class UnreadableObject(Exception):
    """A raw object DuckDB cannot read as ticks; `reason` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CompactedFile:
    lines: int  # raw lines read
    rows: int  # rows written (lines minus duplicates)
    symbols: int
    size: int  # bytes of the Parquet file

    @property
    def duplicates(self) -> int:
        return self.lines - self.rows


@dataclass(frozen=True, slots=True)
class EngineSettings:
    memory_limit: str | None = None  # like "2048MiB"; DuckDB's default is 80 % of the machine
    threads: int | None = None
    spill_directory: Path | None = None  # where a sort larger than memory spills

    @classmethod
    def for_function(cls, memory_mb: int | None, scratch: Path) -> EngineSettings:
        """In a Lambda function of `memory_mb`: DuckDB gets three quarters of it and spills to
        `scratch` beyond; the rest is Python, boto3 and the downloads in flight."""
        return cls(memory_limit=f"{memory_mb * 3 // 4}MiB" if memory_mb else None, spill_directory=scratch / "spill")


class ParquetEngine:
    """One DuckDB connection, reused across compactions (a Lambda container keeps it warm)."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            # Nothing is ever downloaded: JSON, Parquet and ICU are built into the wheel.
            connection = duckdb.connect(config={"autoinstall_known_extensions": False})
            # Timestamps are UTC whatever the machine's zone (ICU is loaded once connected).
            connection.execute("SET TimeZone = 'UTC'")
            # DuckDB draws a progress bar for long queries even without a terminal: not in logs.
            connection.execute("SET enable_progress_bar = false")
            if self.settings.memory_limit:
                connection.execute(f"SET memory_limit = '{self.settings.memory_limit}'")
            if self.settings.threads:
                connection.execute(f"SET threads = {int(self.settings.threads)}")
            if self.settings.spill_directory:
                connection.execute(f"SET temp_directory = '{self.settings.spill_directory}'")
            self._connection = connection
        return self._connection

    def check(self, path: Path) -> None:
        """Read one raw object completely; UnreadableObject when it is not gzip JSON Lines of ticks."""
        with self._lock:
            try:
                # Counting every column converts every value: `count(*)` alone is answered without
                # converting any, and would pass an object whose price is not a number.
                query = f"SELECT count(COLUMNS(*)), count(*) FILTER (WHERE {_LACKS_A_FIELD}) FROM {_read_raw('$files')}"
                row = self._connect().execute(query, {"files": [str(path)]}).fetchone()
                incomplete = row[-1] if row else 0
            except duckdb.OutOfMemoryException:
                raise  # the engine's limit, not the object's fault
            except duckdb.Error as error:
                raise UnreadableObject(path, _reason(error, path)) from None
        if incomplete:
            raise UnreadableObject(path, f"{incomplete} lines lack one of {', '.join(REQUIRED_FIELDS)}")

    def compact(self, paths: Sequence[Path], output: Path) -> CompactedFile:
        """Write the unique ticks of `paths` to `output` (no paths: a file with the columns and no
        rows). duckdb.Error or IncompleteLines when an object is not raw ticks: the caller checks
        each with `check` to find which."""
        if not paths:
            return self._write_empty(output)
        with self._lock:
            connection = self._connect()
            files = {"files": sorted(str(path) for path in paths)}
            try:
                connection.execute(f"CREATE OR REPLACE TEMP TABLE raw_lines AS FROM {_read_raw('$files')}", files)
                lines, incomplete = connection.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE {_LACKS_A_FIELD}) FROM raw_lines"
                ).fetchone() or (0, 0)
                if incomplete:
                    raise IncompleteLines(f"{incomplete} raw lines lack one of {', '.join(REQUIRED_FIELDS)}")
                connection.execute(
                    f"""
                    COPY (
                        SELECT {_SELECT_COLUMNS}
                        FROM raw_lines
                        -- The same Kinesis record twice (a retried batch): keep one. Copies are
                        -- identical; the order makes the choice deterministic all the same.
                        QUALIFY row_number() OVER (
                            PARTITION BY shard_id, sequence_number ORDER BY arrival_time, price, "timestamp"
                        ) = 1
                        ORDER BY symbol, "time", {_RECORD_ORDER}
                    ) TO '{_quoted(output)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})
                    """
                )
                rows, symbols = connection.execute(
                    "SELECT count(*), count(DISTINCT symbol) FROM read_parquet($output)", {"output": str(output)}
                ).fetchone() or (0, 0)
            finally:
                connection.execute("DROP TABLE IF EXISTS raw_lines")
        return CompactedFile(lines=lines, rows=rows, symbols=symbols, size=output.stat().st_size)

    def _write_empty(self, output: Path) -> CompactedFile:
        """The file of an hour whose every raw object was unreadable: it records that the hour was
        compacted (its fingerprint), so the hour is not taken again until its objects change."""
        typed_nulls = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind, _ in TICK_COLUMNS)
        with self._lock:
            self._connect().execute(
                f"COPY (SELECT {typed_nulls} WHERE false) TO '{_quoted(output)}' (FORMAT parquet, COMPRESSION zstd)"
            )
        return CompactedFile(lines=0, rows=0, symbols=0, size=output.stat().st_size)


def _read_raw(files_parameter: str) -> str:
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in RAW_FIELDS.items()) + "}"
    return (
        f"read_json({files_parameter}, format = 'newline_delimited', compression = 'gzip', "
        f"columns = {columns}, maximum_object_size = 65536)"
    )


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _reason(error: Exception, path: Path) -> str:
    """DuckDB's message in one line, without the scratch file's name (the caller knows the object's
    key) or the hint to relax the reader that follows it."""
    first_line = str(error).split("\n", 1)[0].replace(f'"{path}"', "the object").replace(str(path), "the object")
    return " ".join(first_line.split())[:300]
