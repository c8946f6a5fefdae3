"""How `tickwatch sql` prints a result: an aligned table, CSV or JSON on stdout, one summary line
on stderr.

Prices are DECIMAL(38, 18) in the history, so Athena prints `984.180000000000000000`: every
format writes the exact number without the trailing zeros (984.18), never through a float. Times
have no zone in the history and are UTC.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tickwatch.analytics.result import QueryResult
from tickwatch_core.domain import exact_json
from tickwatch_core.domain.rules import format_decimal

FORMATS = ("table", "csv", "json")
_NUMBERS = (int, float, Decimal)


def render(result: QueryResult, fmt: str) -> str:
    """The rows of `result` as `table`, `csv` or `json` text, without a final newline."""
    if fmt == "table":
        return _table(result)
    if fmt == "csv":
        return _csv(result)
    if fmt == "json":
        return _json(result)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def summary(result: QueryResult) -> str:
    """One line for stderr: rows, time, and on Athena the bytes scanned and what they cost."""
    rows = len(result.rows)
    line = f"{rows} {'row' if rows == 1 else 'rows'} in {_seconds(result.seconds)}"
    if result.engine == "duckdb":
        return f"{line} (DuckDB, local)"
    if result.scanned_bytes is not None:
        line += f" · {format_bytes(result.scanned_bytes)} scanned"
    if result.cost is not None:
        line += f" · {format_dollars(result.cost)}"
    return line


def format_bytes(count: int) -> str:
    """A byte count in binary units, one decimal: 0 B, 512 B, 1.2 MB, 10.0 GB."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def format_dollars(amount: Decimal) -> str:
    """Dollars to the millionth (Athena's 10 MB minimum is $0.000048), trailing zeros dropped."""
    return "$" + format_decimal(amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"


# --- values -------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """A naive UTC time: the history's times have no zone; an aware one is converted."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _iso(moment: datetime) -> str:
    """RFC 3339 with Z; microseconds only when there are some."""
    return _utc(moment).isoformat(timespec="microseconds" if moment.microsecond else "seconds") + "Z"


def _trimmed_float(value: float) -> str:
    """Up to 6 decimals, trailing zeros dropped: a VWAP of 184.123456789 reads 184.123457."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _table_cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_decimal(value) if value.is_finite() else str(value)
    if isinstance(value, float):
        return _trimmed_float(value)
    if isinstance(value, datetime):
        return _utc(value).isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, date):
        return value.isoformat()
    # A line break or tab inside a value would break the columns.
    return str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_decimal(value) if value.is_finite() else str(value)
    if isinstance(value, float):
        return repr(value)  # every digit the double has: CSV is for reading back
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    """A value exact_json writes as itself: Decimals stay exact numbers; times become text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        # 984.180000000000000000 -> 984.18, still a Decimal: exact_json writes it digit for digit.
        return Decimal(format_decimal(value)) if value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return str(value)


# --- formats ------------------------------------------------------------------------------------


def _table(result: QueryResult) -> str:
    # Here, not at the top: importing tickwatch.cli loads every command, and the benchmark's cost
    # model imports this module (through athena_cost) without wanting them.
    from tickwatch.cli.output import format_table

    if not result.columns:
        return "(no rows)"
    cells = [[_table_cell(value) for value in row] for row in result.rows]
    headers = list(result.columns)
    # Numbers are right-aligned (header too), so their digits line up; format_table pads the rest.
    for index, header in enumerate(headers):
        values = [row[index] for row in result.rows if row[index] is not None]
        if values and all(isinstance(value, _NUMBERS) and not isinstance(value, bool) for value in values):
            width = max(len(header), *(len(row[index]) for row in cells))
            headers[index] = header.rjust(width)
            for row in cells:
                row[index] = row[index].rjust(width)
    table = format_table(headers, cells)
    return table if result.rows else f"{table}\n(no rows)"


def _csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_csv_cell(value) for value in row] for row in result.rows)
    return buffer.getvalue().rstrip("\n")


def _json(result: QueryResult) -> str:
    keys = _unique(result.columns)
    if not result.rows:
        return "[]"
    objects = (
        exact_json.dumps({key: _json_value(value) for key, value in zip(keys, row, strict=True)}) for row in result.rows
    )
    return "[\n  " + ",\n  ".join(objects) + "\n]"


def _unique(columns: Sequence[str]) -> list[str]:
    """Column names as object keys: a name used twice (`SELECT a, a`) gets `_2`, `_3`, ..."""
    seen: set[str] = set()
    keys = []
    for name in columns:
        key, number = name, 1
        while key in seen:
            number += 1
            key = f"{name}_{number}"
        seen.add(key)
        keys.append(key)
    return keys
