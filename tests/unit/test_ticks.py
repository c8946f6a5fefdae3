"""The tick contract: what is accepted, and the exact reason for everything that is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.ticks import MAX_TICK_BYTES, Tick, TickRejected, parse_tick, tick_schema

ARRIVAL = datetime(2026, 11, 20, 14, 30, 5, tzinfo=UTC)


def parse(document: dict | bytes | str) -> Tick:
    data = (
        document
        if isinstance(document, bytes)
        else (document if isinstance(document, str) else json.dumps(document)).encode()
    )
    return parse_tick(data, received_at=ARRIVAL)


def valid(**changes) -> dict:
    document = {"symbol": "AAPL", "price": 189.25, "timestamp": "2026-11-20T14:30:00.125Z"}
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


def test_schema_is_draft_2020_12_and_closed():
    schema = tick_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"symbol", "price", "timestamp"}


def test_full_tick_is_parsed_exactly():
    tick = parse(
        valid(volume=300, bid=189.24, ask=189.26, source="simulator", timestamp="2026-11-20T09:30:00.125-05:00")
    )
    assert tick == Tick(
        symbol="AAPL",
        price=Decimal("189.25"),
        timestamp=datetime(2026, 11, 20, 14, 30, 0, 125000, tzinfo=UTC),
        volume=300,
        bid=Decimal("189.24"),
        ask=Decimal("189.26"),
        source="simulator",
    )


@pytest.mark.parametrize("symbol", ["A", "BRK.B", "BF-B", "ABCDEFGHIJ", "X1"])
def test_symbol_shapes_that_are_tickers(symbol):
    assert parse(valid(symbol=symbol)).symbol == symbol


def test_price_keeps_its_decimal_digits():
    assert parse('{"symbol":"AAPL","price":0.000012345,"timestamp":"2026-11-20T14:30:00Z"}').price == Decimal(
        "0.000012345"
    )


def test_float_price_from_python_producer_keeps_its_short_form():
    from tickwatch_core.domain.ticks import validate_tick_document

    tick = validate_tick_document(
        {"symbol": "AAPL", "price": 201.05, "timestamp": "2026-11-20T14:30:00Z"}, received_at=ARRIVAL
    )
    assert tick.price == Decimal("201.05")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty record"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"symbol":"AAPL","price":NaN,"timestamp":"2026-11-20T14:30:00Z"}', "NaN is not a JSON number"),
        (b'{"symbol":"AAPL","price":Infinity,"timestamp":"2026-11-20T14:30:00Z"}', "Infinity is not a JSON number"),
        (b'{"symbol":"AAPL","symbol":"MSFT","price":1,"timestamp":"2026-11-20T14:30:00Z"}', "duplicate key 'symbol'"),
        (b"[1, 2]", "not a JSON object but an array"),
        (b'"AAPL"', "not a JSON object but a string"),
        (b"null", "not a JSON object but null"),
        (b"x" * (MAX_TICK_BYTES + 1), "is at most 4096"),
        (
            b'{"symbol":"AAPL","price":1.00000000000000000000000000000000000000001,"timestamp":"2026-11-20T14:30:00Z"}',
            "42 significant digits; at most 38",
        ),
    ],
)
def test_undecodable_records_are_rejected_with_their_reason(data, reason):
    with pytest.raises(TickRejected) as rejected:
        parse(data)
    assert reason in rejected.value.reason


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (valid(price=-1), "price: -1 is less than or equal to the minimum of 0"),
        (valid(price=0), "price: 0 is less than or equal to the minimum of 0"),
        (valid(price=1e13), "is greater than the maximum of 1000000000000"),
        (valid(price="189.25"), "price: '189.25' is not of type 'number'"),
        (valid(price=True), "price: True is not of type 'number'"),
        (valid(symbol="aapl"), "symbol: 'aapl' does not match"),
        (valid(symbol="../x"), "symbol: '../x' does not match"),
        (valid(symbol="TOOLONGSYMBOL"), "symbol: 'TOOLONGSYMBOL' does not match"),
        (valid(symbol="1ABC"), "symbol: '1ABC' does not match"),
        (valid(symbol=None), "'symbol' is a required property"),
        (valid(timestamp=None), "'timestamp' is a required property"),
        (valid(timestamp="2026-11-20T14:30:00"), "timestamp: '2026-11-20T14:30:00' does not match"),
        (valid(timestamp="20/11/2026 14:30"), "does not match"),
        (valid(timestamp="2026-02-30T14:30:00Z"), "is not a real date-time"),
        (valid(timestamp="2026-11-20T25:30:00Z"), "is not a real date-time"),
        (valid(timestamp="2026-11-20T14:45:00Z"), "s after the tick arrived"),
        (valid(volume=-5), "volume: -5 is less than the minimum of 0"),
        (valid(volume=1.5), "volume: 1.5 is not of type 'integer'"),
        (valid(bid=0), "bid: 0 is less than or equal to the minimum of 0"),
        (valid(bid=190, ask=189), "bid 190 is above ask 189"),
        (valid(source=""), "source: '' should be non-empty"),
        (valid(source="x" * 33), "is too long"),
        (valid(exchange="XNAS"), "Additional properties are not allowed ('exchange' was unexpected)"),
        (valid(price=1e-200), "too small to store"),
    ],
)
def test_schema_and_contract_violations_are_rejected_with_their_reason(document, reason):
    with pytest.raises(TickRejected) as rejected:
        parse(document)
    assert reason in rejected.value.reason


def test_timestamp_just_inside_the_allowed_clock_skew_is_accepted():
    tick = parse(valid(timestamp=(ARRIVAL + timedelta(minutes=4)).isoformat()))
    assert tick.timestamp == ARRIVAL + timedelta(minutes=4)


def test_lowercase_rfc3339_separators_are_accepted():
    assert parse(valid(timestamp="2026-11-20t14:30:00.5z")).timestamp == datetime(
        2026, 11, 20, 14, 30, 0, 500000, tzinfo=UTC
    )


def test_long_reasons_are_shortened():
    with pytest.raises(TickRejected) as rejected:
        parse(valid(symbol="A" * 3000))
    assert len(rejected.value.reason) <= 300


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "is not a real date-time"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-01:00", "is not a real date-time"),  # after year 9999 in UTC
        ("1969-12-31T23:59:59Z", "is before 1970"),
    ],
)
def test_timestamps_out_of_range_are_rejected_not_crashing(timestamp, reason):
    with pytest.raises(TickRejected, match=reason):
        parse_tick(json.dumps(valid(timestamp=timestamp)).encode(), received_at=datetime(9999, 1, 1, tzinfo=UTC))


def test_trailing_zeros_beyond_38_digits_are_harmless():
    tick = parse(
        b'{"symbol":"AAPL","price":1.000000000000000000000000000000000000000,"timestamp":"2026-11-20T14:30:00Z"}'
    )
    assert tick.price == 1
    from boto3.dynamodb.types import TypeSerializer

    TypeSerializer().serialize(tick.price)  # boto3 accepts it


@pytest.mark.parametrize("field", ["price", "bid", "ask"])
def test_numbers_dynamodb_cannot_store_are_rejected_for_every_price_field(field):
    text = json.dumps(valid()).replace("}", f', "{field}": 1.2345678901234567890123456789012345678E-130}}')
    text = text.replace('"price": 189.25, ', "") if field == "price" else text
    with pytest.raises(TickRejected, match=f"{field}: .* too small to store"):
        parse(text.encode())


def test_producer_floats_and_processor_json_agree_on_whole_number_volumes():
    # 300.0 serialises as "300.0", which the schema's integer type refuses on the processor side.
    with pytest.raises(TickRejected, match=r"volume: 300\.0 is not of type 'integer'"):
        parse(json.dumps(valid(volume=300.0)).encode())


@pytest.mark.parametrize("field", ["price", "bid", "ask"])
def test_a_digit_finer_than_ten_to_the_minus_18_is_refused_not_rounded_later(field):
    # The history keeps prices as DECIMAL(38, 18): a finer digit could not be kept there.
    numbers = {"price": "2", "bid": "1", "ask": "3"} | {field: "1.0000000000000000001"}
    text = '{"symbol":"AAPL","timestamp":"2026-11-20T14:30:00Z",' + ",".join(
        f'"{name}":{value}' for name, value in numbers.items()
    )
    with pytest.raises(TickRejected, match=f"{field}: .* has 19 digits after the point; at most 18"):
        parse((text + "}").encode())


def test_eighteen_digits_after_the_point_and_trailing_zeros_beyond_are_kept():
    tick = parse(b'{"symbol":"AAPL","price":1.000000000000000001,"timestamp":"2026-11-20T14:30:00Z"}')
    assert tick.price == Decimal("1.000000000000000001")
    assert parse(b'{"symbol":"AAPL","price":2.50000000000000000000000,"timestamp":"2026-11-20T14:30:00Z"}').price == 2.5
