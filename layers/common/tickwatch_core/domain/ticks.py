"""The tick contract: turn the bytes of one Kinesis record into a validated `Tick`, or say why not.

`tick.schema.json` next to this module is the only definition of a tick. This module adds the
checks JSON Schema cannot express (bid <= ask, a real calendar date, a timestamp not far ahead of
its arrival, numbers DynamoDB can store) so that producer and processor reject exactly the same
records with the same reasons.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from tickwatch_core.domain.numbers import storable_decimal
from tickwatch_core.domain.schema_check import Check, compile_check

SCHEMA_FILE = "tick.schema.json"

# A tick is about 150 bytes. Anything far larger is not a tick, and parsing it would only cost time.
MAX_TICK_BYTES = 4096

# Clocks of feeds and machines drift; a tick claiming to be from further ahead than this is wrong.
MAX_FUTURE_SKEW = timedelta(minutes=5)

# The tick history keeps prices as DECIMAL(38, 18) (Parquet, Athena): a price with a finer digit
# than 10^-18 could not be kept exactly, so it is refused here rather than rounded there.
MAX_FRACTION_DIGITS = 18

# Ticks from before the Unix epoch are a unit mistake (seconds read as milliseconds, say), and
# would partition raw data under years S3 tools do not expect.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)

_MAX_REASON_LENGTH = 300
# jsonschema quotes values with repr(); numbers are Decimals here, and users should read 1.5.
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")


class TickRejected(ValueError):
    """A record is not a valid tick; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason if len(reason) <= _MAX_REASON_LENGTH else reason[: _MAX_REASON_LENGTH - 1] + "…"
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class Tick:
    """One validated trade observation. Prices are exact decimals; `timestamp` is UTC."""

    symbol: str
    price: Decimal
    timestamp: datetime
    volume: int | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    source: str | None = None

    def as_document(self) -> dict[str, Any]:
        """The tick as the JSON object the schema describes (timestamps in UTC, `Z` suffix)."""
        document: dict[str, Any] = {
            "symbol": self.symbol,
            "price": self.price,
            "timestamp": format_timestamp(self.timestamp),
        }
        for name in ("volume", "bid", "ask", "source"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document


@cache
def tick_schema() -> dict[str, Any]:
    """The tick JSON Schema, loaded once from the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator() -> Any:
    # Imported with the first tick validated: jsonschema is a tenth of a second of cold start, and
    # the functions that only read stored items never need it.
    from jsonschema import Draft202012Validator

    schema = tick_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def _fast_check() -> Check | None:
    """The schema compiled to direct checks (see schema_check.py); jsonschema decides the rest."""
    return compile_check(tick_schema(), _validator().TYPE_CHECKER)


def parse_tick(data: bytes, *, received_at: datetime) -> Tick:
    """Decode and validate one record.

    `received_at` is when the record reached the stream (or, for a producer, now); a tick's
    timestamp may not be more than `MAX_FUTURE_SKEW` after it. Raises `TickRejected`.
    """
    if not data:
        raise TickRejected("empty record")
    if len(data) > MAX_TICK_BYTES:
        raise TickRejected(f"record is {len(data)} bytes; a tick is at most {MAX_TICK_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TickRejected(f"not UTF-8: {error.reason} at byte {error.start}") from None
    document = _load_json(text)
    return validate_tick_document(document, received_at=received_at)


def validate_tick_document(document: Any, *, received_at: datetime) -> Tick:
    """Validate an already-decoded JSON value against the contract. Raises `TickRejected`."""
    if not isinstance(document, dict):
        raise TickRejected(f"not a JSON object but {_json_type_name(document)}")
    fast = _fast_check()
    if (fast is None or not fast(document)) and not (validator := _validator()).is_valid(document):
        from jsonschema.exceptions import best_match

        error = best_match(validator.iter_errors(document))
        where = ".".join(str(part) for part in error.absolute_path) or "tick"
        raise TickRejected(f"{where}: {_DECIMAL_REPR.sub(r'\1', error.message)}")

    timestamp = _parse_timestamp(document["timestamp"])
    if timestamp - received_at > MAX_FUTURE_SKEW:
        ahead = (timestamp - received_at).total_seconds()
        raise TickRejected(f"timestamp: {document['timestamp']} is {ahead:.0f} s after the tick arrived")

    price = _storable_decimal("price", document["price"])
    bid = _storable_decimal("bid", document.get("bid"))
    ask = _storable_decimal("ask", document.get("ask"))
    if bid is not None and ask is not None and bid > ask:
        raise TickRejected(f"bid {bid} is above ask {ask}")

    return Tick(
        symbol=document["symbol"],
        price=price,
        timestamp=timestamp,
        volume=document.get("volume"),
        bid=bid,
        ask=ask,
        source=document.get("source"),
    )


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond-or-finer precision kept and a `Z` suffix."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except TickRejected:
        raise
    except json.JSONDecodeError as error:
        raise TickRejected(f"not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise TickRejected("not JSON: nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise TickRejected(f"not JSON: {name} is not a JSON number")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise TickRejected(f"not JSON: duplicate key {key!r}")
        document[key] = value
    return document


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _parse_timestamp(text: str) -> datetime:
    # The schema's pattern has checked the shape; this checks it is a real moment (no 25:00, no
    # 30 February). Python keeps microseconds: digits beyond the sixth are cut, not rounded.
    try:
        moment = datetime.fromisoformat(text.upper()).astimezone(UTC)  # RFC 3339 allows a lowercase t and z
    except (ValueError, OverflowError) as error:
        raise TickRejected(f"timestamp: {text!r} is not a real date-time ({error})") from None
    if moment < EARLIEST_TIMESTAMP:
        raise TickRejected(f"timestamp: {text!r} is before 1970")
    return moment


def _storable_decimal(name: str, value: int | float | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        number = storable_decimal(value)
    except ValueError as error:
        raise TickRejected(f"{name}: {error}") from None
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_FRACTION_DIGITS:
        raise TickRejected(f"{name}: {value} has {-exponent} digits after the point; at most {MAX_FRACTION_DIGITS}")
    return number
