"""`tickwatch sql` on AWS: a query run in the stack's Athena workgroup, its rows read back typed.

Athena answers in text (every value a `VarCharValue`, NULL an absent one) with each column's SQL
type beside it, so values are converted by that type here: a DECIMAL(38, 18) price becomes the
exact Decimal it is, never a float. The workgroup enforces the results location, encryption and
the bytes-scanned cutoff, so nothing of that is passed from here.
"""

from __future__ import annotations

import contextlib
import re
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.analytics.output import format_bytes
from tickwatch.analytics.result import QueryError, QueryResult

if TYPE_CHECKING:  # named.py loads sqlglot: only named_queries_from_athena needs it
    from tickwatch.analytics.named import NamedQuery

# The price table the benchmark's cost model reads: one number for both.
PRICES_PATH = Path(__file__).resolve().parent.parent / "bench" / "prices.toml"
MEGABYTE = 2**20
MEGABYTES_PER_TERABYTE = 2**20
MAX_POLL_INTERVAL = 2.0  # seconds between GetQueryExecution calls, at most
POLL_GROWTH = 1.5
BATCH_GET_LIMIT = 50  # ids per BatchGetNamedQuery, Athena's limit

_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
_USER_ERROR_CATEGORY = 2  # AthenaError.ErrorCategory: 1 system, 2 user, 3 other
# Athena's parser reports `line 1:8: mismatched input ...` on StartQueryExecution.
_QUERY_MESSAGE = re.compile(r"^line \d+:\d+:|\bsyntax\b|queries of this type are not supported", re.IGNORECASE)
_CUTOFF_REASON = re.compile(r"bytes[ -]scanned|scan(ned)? limit|data usage|cutoff", re.IGNORECASE)
_CUTOFF_HINT = (
    "the workgroup's bytes-scanned cutoff (the stack's AthenaBytesScannedCutoff) stopped it: "
    "filter on year, month and day to scan less"
)


@cache
def _athena_prices() -> tuple[Decimal, int]:
    """Dollars per TB and the minimum MB per query, read once, the dollars exactly."""
    prices = tomllib.loads(PRICES_PATH.read_text(encoding="utf-8"), parse_float=Decimal)["athena"]
    return Decimal(prices["per_tb_scanned"]), int(prices["minimum_mb_per_query"])


def athena_cost(scanned_bytes: int) -> Decimal:
    """Dollars Athena charges for a query that scanned `scanned_bytes`: the bytes rounded up to
    the next MB, at least the minimum (10 MB), at the price per TB of prices.toml ($5)."""
    per_terabyte, minimum_megabytes = _athena_prices()
    megabytes = max(-(-max(scanned_bytes, 0) // MEGABYTE), minimum_megabytes)  # whole MB, rounded up
    with localcontext() as context:
        context.prec = 60  # 5 / 2^20 has 20 decimals: exact, whatever the size
        return per_terabyte * megabytes / MEGABYTES_PER_TERABYTE


def _one_line(text: str) -> str:
    return " ".join(text.split())


def quote_literal(value: str) -> str:
    """A SQL string literal: Athena pastes execution parameters into the query as SQL text."""
    return "'" + value.replace("'", "''") + "'"


# --- values -------------------------------------------------------------------------------------


def _timestamp(text: str) -> datetime:
    # Athena prints `2026-11-20 14:00:00.123`; fromisoformat takes the space and 1 to 9 decimals.
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(text)
    return text == "true"


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "varchar": str,
    "char": str,
    "string": str,
    "tinyint": int,
    "smallint": int,
    "integer": int,
    "int": int,
    "bigint": int,
    "decimal": Decimal,
    "double": float,
    "real": float,
    "float": float,
    "boolean": _boolean,
    "date": date.fromisoformat,
    "timestamp": _timestamp,
}


@cache
def converter(athena_type: str) -> Callable[[str], Any]:
    """The Python value of a `VarCharValue` of a column of `athena_type` (ColumnInfo.Type);
    types without one (arrays, maps, rows, `timestamp with time zone`, ...) stay text."""
    base = athena_type.strip().lower().split("(", 1)[0].strip()
    return _CONVERTERS.get(base, str)


# --- the runner ---------------------------------------------------------------------------------


class AthenaQueryRunner:
    """Runs one query at a time in a workgroup and database; `run` returns its typed rows."""

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str,
        database: str,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.5,
    ) -> None:
        self._client = client
        self.workgroup = workgroup
        self.database = database
        self._progress = progress
        self._sleep = sleep
        self._clock = clock
        self._poll_interval = poll_interval

    def run(self, sql: str, parameters: Sequence[str] = ()) -> QueryResult:
        """Run `sql` with each `?` bound to a parameter (as a string literal), wait for it, read
        every page of its result. QueryError says in one line why there is no result."""
        started = self._clock()
        execution_id = self._start(sql, parameters)
        try:
            execution = self._wait(execution_id, started)
        except BaseException:
            # Interrupted (Ctrl-C) or lost touch with Athena: a query left running still scans and bills.
            self._stop(execution_id)
            raise
        status = execution.get("Status", {})
        state = status.get("State")
        if state != "SUCCEEDED":
            raise self._not_succeeded(state, status)
        columns, rows = self._results(execution_id)
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
        # Athena charges nothing for DDL (CREATE, ALTER, DROP TABLE, partitions).
        cost = Decimal(0) if execution.get("StatementType") == "DDL" else athena_cost(scanned)
        return QueryResult(
            columns=columns,
            rows=rows,
            engine="athena",
            seconds=self._clock() - started,
            scanned_bytes=scanned,
            cost=cost,
        )

    def _start(self, sql: str, parameters: Sequence[str]) -> str:
        request: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if parameters:
            request["ExecutionParameters"] = [quote_literal(value) for value in parameters]
        try:
            return self._client.start_query_execution(**request)["QueryExecutionId"]
        except ClientError as error:
            code, message = _error_parts(error)
            about_query = code == "InvalidRequestException" and (
                error.response.get("AthenaErrorCode") == "MALFORMED_QUERY" or _QUERY_MESSAGE.search(message)
            )
            if about_query:
                raise QueryError(f"Athena rejected the query: {message}", user_error=True) from None
            raise _aws_error("StartQueryExecution", error) from None
        except BotoCoreError as error:
            raise _aws_error("StartQueryExecution", error) from None

    def _wait(self, execution_id: str, started: float) -> dict[str, Any]:
        interval = self._poll_interval
        while True:
            try:
                execution = self._client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
            except (ClientError, BotoCoreError) as error:
                raise _aws_error("GetQueryExecution", error) from None
            state = execution.get("Status", {}).get("State", "QUEUED")
            if self._progress is not None:
                scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
                elapsed = self._clock() - started
                self._progress(f"Athena: {state.lower()} · {elapsed:.1f} s · {format_bytes(scanned)} scanned")
            if state in _TERMINAL:
                return execution
            self._sleep(interval)
            interval = min(interval * POLL_GROWTH, MAX_POLL_INTERVAL)

    def _stop(self, execution_id: str) -> None:
        # Best effort: the error being raised already says what went wrong.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.stop_query_execution(QueryExecutionId=execution_id)

    def _not_succeeded(self, state: str | None, status: Mapping[str, Any]) -> QueryError:
        reason = _one_line(status.get("StateChangeReason") or "")
        hint = f"; {_CUTOFF_HINT}" if _CUTOFF_REASON.search(reason) else ""
        if state == "FAILED":
            category = status.get("AthenaError", {}).get("ErrorCategory")
            message = f"Athena query failed: {reason or 'no reason given'}{hint}"
            return QueryError(message, user_error=category == _USER_ERROR_CATEGORY)
        if state == "CANCELLED":
            return QueryError(f"Athena query was cancelled: {reason or 'no reason given'}{hint}", user_error=False)
        return QueryError(f"Athena query ended in state {state}: {reason}", user_error=False)

    def _results(self, execution_id: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        columns: tuple[str, ...] = ()
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        try:
            for number, page in enumerate(self._pages(execution_id)):
                result_set = page.get("ResultSet", {})
                page_rows = result_set.get("Rows", [])
                if number == 0:
                    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                    columns = tuple(column["Name"] for column in info)
                    types = [column.get("Type", "varchar") for column in info]
                    # A SELECT's first row is its column names; DDL results (SHOW ...) have none.
                    if page_rows and _is_header(page_rows[0], info):
                        page_rows = page_rows[1:]
                rows.extend(_typed_row(row, columns, types) for row in page_rows)
        except (ClientError, BotoCoreError) as error:
            raise _aws_error("GetQueryResults", error) from None
        return columns, rows

    def _pages(self, execution_id: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("get_query_results")
        yield from paginator.paginate(QueryExecutionId=execution_id, PaginationConfig={"PageSize": 1000})


def _is_header(row: Mapping[str, Any], info: Sequence[Mapping[str, Any]]) -> bool:
    cells = row.get("Data", [])
    return len(cells) == len(info) and all(
        cell.get("VarCharValue") in (column.get("Name"), column.get("Label"))
        for cell, column in zip(cells, info, strict=True)
    )


def _typed_row(row: Mapping[str, Any], columns: Sequence[str], types: Sequence[str]) -> tuple[Any, ...]:
    cells = row.get("Data", [])
    values = []
    for index, athena_type in enumerate(types):
        text = cells[index].get("VarCharValue") if index < len(cells) else None
        if text is None:
            values.append(None)
            continue
        try:
            values.append(converter(athena_type)(text))
        except (ValueError, InvalidOperation):
            raise QueryError(
                f"column {columns[index]}: Athena returned {text!r}, which is not a {athena_type}", user_error=False
            ) from None
    return tuple(values)


def _error_parts(error: ClientError) -> tuple[str, str]:
    details = error.response.get("Error", {})
    return details.get("Code", "Error"), _one_line(details.get("Message", "") or "")


def _aws_error(operation: str, error: ClientError | BotoCoreError) -> QueryError:
    if isinstance(error, ClientError):
        code, message = _error_parts(error)
        return QueryError(f"Athena {operation} failed: {code}: {message}", user_error=False)
    return QueryError(f"Athena {operation} failed: {_one_line(str(error))}", user_error=False)


# --- named queries ------------------------------------------------------------------------------


def named_queries_from_athena(client: Any, workgroup: str) -> dict[str, NamedQuery]:
    """The named queries of a deployed workgroup, by name (sorted). A malformed one raises
    NamedQueryError; AWS errors (ClientError, BotoCoreError) are left to the caller to explain."""
    paginator = client.get_paginator("list_named_queries")
    ids = [query_id for page in paginator.paginate(WorkGroup=workgroup) for query_id in page.get("NamedQueryIds", [])]
    found: list[NamedQuery] = []
    for start in range(0, len(ids), BATCH_GET_LIMIT):
        found.extend(_batch_get(client, ids[start : start + BATCH_GET_LIMIT]))
    return {query.name: query for query in sorted(found, key=lambda query: query.name)}


def _batch_get(client: Any, ids: list[str]) -> list[NamedQuery]:
    from tickwatch.analytics.named import NamedQuery

    response = client.batch_get_named_query(NamedQueryIds=ids)
    unprocessed = response.get("UnprocessedNamedQueryIds", [])
    if unprocessed:
        # One more try for the ones Athena could not read this time (an internal error).
        again = client.batch_get_named_query(NamedQueryIds=[item["NamedQueryId"] for item in unprocessed])
        response = {"NamedQueries": [*response.get("NamedQueries", []), *again.get("NamedQueries", [])]}
        still = again.get("UnprocessedNamedQueryIds", [])
        if still:
            first = still[0]
            raise QueryError(
                f"Athena could not read {len(still)} named queries (first {first.get('NamedQueryId')}: "
                f"{first.get('ErrorCode', 'no code')}: {_one_line(first.get('ErrorMessage', '') or '')})",
                user_error=False,
            )
    return [
        NamedQuery.parse(named["Name"], named.get("Description", ""), named["QueryString"])
        for named in response.get("NamedQueries", [])
    ]
