"""What a query returns, whichever engine ran it (Athena on AWS, DuckDB locally)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    # Python values: str, int, float, Decimal (exact), datetime (naive, UTC), date, bool or None.
    rows: list[tuple[Any, ...]]
    engine: str  # "athena" or "duckdb"
    seconds: float = 0.0
    scanned_bytes: int | None = None  # Athena's DataScannedInBytes
    cost: Decimal | None = None  # dollars Athena charges for the scan


class QueryError(Exception):
    """A query did not run. `user_error`: the SQL, a parameter or the data is at fault (exit 2);
    otherwise AWS or the engine failed (exit 1)."""

    def __init__(self, message: str, *, user_error: bool) -> None:
        super().__init__(message)
        self.user_error = user_error
