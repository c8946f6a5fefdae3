"""`tickwatch sql` on the local stack: DuckDB over a local copy of the bucket's history.

The views are the Glue tables of template.yaml (`AWS::Glue::Table`): same names, columns, types
and partition columns, read from a mirror of their S3 prefixes (`history/` Parquet, `raw/` gzip
JSON Lines, `quarantine/` JSON Lines). The mirror lives in the cache directory and is refreshed
before each query: new and changed objects (by ETag) are downloaded, removed ones deleted. Queries
are written in Athena's SQL, like the named queries, and translated by sqlglot.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from tickwatch.analytics.result import QueryError, QueryResult
from tickwatch.template import Template

# Glue (Hive) column types -> DuckDB types. Athena's `timestamp` has no zone; the values are UTC.
_SIMPLE_TYPES = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_MANIFEST = ".manifest.json"
_DOWNLOAD_THREADS = 16

# DuckDB errors that mean the query (or a parameter) is wrong rather than the engine or the files.
_USER_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.NotImplementedException,
    duckdb.OutOfRangeException,
    duckdb.SyntaxException,
)


def duckdb_type(glue_type: str) -> str:
    glue_type = glue_type.strip().lower()
    if glue_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[glue_type]
    match = _DECIMAL.match(glue_type)
    if match:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    raise ValueError(f"no DuckDB type for the Glue type {glue_type!r}")


@dataclass(frozen=True, slots=True)
class TableView:
    """One Glue table of the template, as DuckDB reads its files."""

    name: str
    prefix: str  # "history/"
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    partitions: tuple[str, ...]  # string partition columns: year, month, day, hour
    parquet: bool
    gzip: bool

    @classmethod
    def from_template(cls, template: Template, logical_id: str) -> TableView:
        table = template.resources[logical_id]["Properties"]["TableInput"]
        storage = table["StorageDescriptor"]
        # s3://${RawBucket}/history/: only the key prefix matters here (the bucket is given).
        location = storage["Location"]
        location = location.get("Fn::Sub", location) if isinstance(location, dict) else location
        prefix = str(location).split("://", 1)[1].split("/", 1)[1]
        parameters = table.get("Parameters", {})
        return cls(
            name=table["Name"],
            prefix=prefix,
            columns=tuple((column["Name"], duckdb_type(column["Type"])) for column in storage["Columns"]),
            partitions=tuple(key["Name"] for key in table.get("PartitionKeys", ())),
            parquet="parquet" in storage["SerdeInfo"]["SerializationLibrary"].lower(),
            gzip=parameters.get("compressionType") == "gzip",
        )

    @property
    def pattern(self) -> str:
        levels = "/".join("*" for _ in self.partitions)
        name = "*.parquet" if self.parquet else ("*.jsonl.gz" if self.gzip else "*.jsonl")
        return f"{self.prefix}{levels}/{name}" if levels else f"{self.prefix}{name}"

    def create_sql(self, root: Path, has_files: bool) -> str:
        selected = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in self.columns)
        partitions = "".join(f', "{name}"' for name in self.partitions)
        if not has_files:
            # No files yet: the view still exists, with its columns, and has no rows.
            empty = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in self.columns)
            empty += "".join(f', CAST(NULL AS VARCHAR) AS "{name}"' for name in self.partitions)
            return f'CREATE OR REPLACE VIEW "{self.name}" AS SELECT {empty} WHERE false'
        glob = _literal(str(root / self.pattern))
        hive_types = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in self.partitions) + "}"
        if self.parquet:
            source = f"read_parquet({glob}, hive_partitioning = true, hive_types = {hive_types})"
        else:
            columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in self.columns) + "}"
            source = (
                f"read_json({glob}, format = 'newline_delimited', columns = {columns}, "
                f"hive_partitioning = true, hive_types = {hive_types})"
            )
        return f'CREATE OR REPLACE VIEW "{self.name}" AS SELECT {selected}{partitions} FROM {source}'


@dataclass(frozen=True, slots=True)
class MirrorReport:
    downloaded: int
    removed: int
    objects: int


class LocalHistory:
    """The local stack's bucket as DuckDB views; `run()` refreshes the mirror, then queries."""

    def __init__(self, s3: Any, bucket: str, cache: Path, template: Template | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.root = cache / bucket
        self.template = template or Template.load()
        self.tables = [
            TableView.from_template(self.template, logical_id)
            for logical_id in self.template.logical_ids("AWS::Glue::Table")
        ]

    def refresh(self) -> MirrorReport:
        """Bring the mirror up to date with the bucket (only what changed is downloaded)."""
        self.root.mkdir(parents=True, exist_ok=True)
        manifest_path = self.root / _MANIFEST
        try:
            manifest: dict[str, str] = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        listed: dict[str, str] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for prefix in sorted({table.prefix for table in self.tables}):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", ()):
                    listed[entry["Key"]] = entry["ETag"]
        stale = [key for key, etag in listed.items() if manifest.get(key) != etag or not (self.root / key).is_file()]
        removed = [key for key in manifest if key not in listed]
        for key in removed:
            (self.root / key).unlink(missing_ok=True)
        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            list(pool.map(self._download, stale))
        manifest_path.write_text(json.dumps(listed))
        return MirrorReport(downloaded=len(stale), removed=len(removed), objects=len(listed))

    def _download(self, key: str) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        self.s3.download_file(self.bucket, key, str(partial))
        partial.replace(path)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per Glue table over the mirror."""
        connection = duckdb.connect(config={"autoinstall_known_extensions": False})
        connection.execute("SET TimeZone = 'UTC'")
        for table in self.tables:
            has_files = any(self.root.glob(table.pattern))
            connection.execute(table.create_sql(self.root, has_files))
        return connection

    def is_empty(self) -> bool:
        return not any(any(self.root.glob(table.pattern)) for table in self.tables if table.name != "quarantine")

    def run(self, sql: str, parameters: Sequence[str] = ()) -> QueryResult:
        started = time.monotonic()
        translated = translate(sql)
        self.refresh()
        if self.is_empty():
            raise QueryError(
                f"the history is empty: bucket {self.bucket} has no raw ticks or Parquet files yet "
                "(feed the pipeline, then run tickwatch history compact)",
                user_error=True,
            )
        connection = self.connect()
        try:
            cursor = connection.execute(translated, list(parameters))
            columns = tuple(column[0] for column in cursor.description or ())
            rows = [tuple(row) for row in cursor.fetchall()]
        except _USER_ERRORS as error:
            raise QueryError(f"bad SQL: {_one_line(error)}", user_error=True) from None
        except duckdb.Error as error:
            raise QueryError(f"DuckDB failed: {_one_line(error)}", user_error=False) from None
        finally:
            connection.close()
        return QueryResult(columns=columns, rows=rows, engine="duckdb", seconds=time.monotonic() - started)


def translate(sql: str) -> str:
    """Athena's SQL (Trino) as DuckDB's, by sqlglot; one statement only."""
    try:
        statements = [statement for statement in sqlglot.parse(sql, read="athena") if statement is not None]
    except sqlglot.errors.SqlglotError as error:
        raise QueryError(f"bad SQL: {_one_line(error)}", user_error=True) from None
    if len(statements) != 1:
        raise QueryError(f"bad SQL: give one statement, not {len(statements)}", user_error=True)
    return statements[0].sql(dialect="duckdb")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # sqlglot underlines the token at fault for terminals


def _one_line(error: Exception) -> str:
    text = " ".join(_ANSI.sub("", str(error)).split())
    return text if len(text) <= 300 else text[:299] + "…"
