"""The columns of the tick history: one definition for the compactor's Parquet files, the Glue
tables in template.yaml (a test compares them) and the local DuckDB views.

Prices are DECIMAL(38, 18): 20 digits before the point (prices stop at 10^12) and 18 after, which
is every digit the tick contract allows. Times are UTC timestamps with microseconds, as ticks are
parsed. Sequence numbers stay text: Kinesis writes 56 digits, more than any integer type holds.
"""

from __future__ import annotations

PRICE_TYPE = "DECIMAL(38,18)"

# (name, DuckDB type, Athena/Glue type) of each column of `ticks`, in file order.
TICK_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "VARCHAR", "string"),
    ("time", "TIMESTAMPTZ", "timestamp"),
    ("price", PRICE_TYPE, "decimal(38,18)"),
    ("volume", "BIGINT", "bigint"),
    ("bid", PRICE_TYPE, "decimal(38,18)"),
    ("ask", PRICE_TYPE, "decimal(38,18)"),
    ("source", "VARCHAR", "string"),
    ("shard_id", "VARCHAR", "string"),
    ("sequence_number", "VARCHAR", "string"),
    ("arrival_time", "TIMESTAMPTZ", "timestamp"),
)

# The fields of a raw JSON line (`processor.raw_line`) and how DuckDB reads each exactly. The
# tick's `timestamp` becomes the column `time`.
RAW_FIELDS: dict[str, str] = {
    "symbol": "VARCHAR",
    "price": PRICE_TYPE,
    "timestamp": "TIMESTAMPTZ",
    "volume": "BIGINT",
    "bid": PRICE_TYPE,
    "ask": PRICE_TYPE,
    "source": "VARCHAR",
    "sequence_number": "VARCHAR",
    "shard_id": "VARCHAR",
    "arrival_time": "TIMESTAMPTZ",
}

# A quarantine line (`processor.plan_quarantine_object`, and the compactor's unreadable objects).
QUARANTINE_FIELDS: dict[str, str] = {
    "reason": "VARCHAR",
    "sequence_number": "VARCHAR",
    "shard_id": "VARCHAR",
    "partition_key": "VARCHAR",
    "arrival_time": "TIMESTAMPTZ",
    "data_base64": "VARCHAR",
    "object": "VARCHAR",
}

PARTITION_COLUMNS = ("year", "month", "day", "hour")
