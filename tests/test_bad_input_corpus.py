"""A corpus of bad records: each is quarantined with its own specific reason, no batch fails, and
the valid ticks around them are unaffected."""

from __future__ import annotations

import base64
import json

from tests.support import BASE_TIME, KinesisBatch, LambdaContext, list_objects, scan_table, sequence, tick
from tickwatch_core.store import items

TS = "2026-11-20T14:30:00Z"


def doc(**fields) -> bytes:
    base = {"symbol": "AAPL", "price": 201.5, "timestamp": TS}
    base.update(fields)
    return json.dumps({name: value for name, value in base.items() if value is not ...}).encode()


def raw(text: str) -> bytes:
    return text.encode()


# (kind, record bytes, partition key, a fragment of the reason it must be quarantined with)
CORPUS = [
    ("truncated JSON", raw('{"symbol": "AAPL", "price": '), "AAPL", "not JSON: Expecting value"),
    ("not UTF-8", b"\xc3\x28\xa0\xa1", "AAPL", "not UTF-8: invalid continuation byte"),
    ("empty record", b"", "AAPL", "empty record"),
    ("whitespace only", raw("   \n"), "AAPL", "not JSON: Expecting value"),
    ("byte order mark", "\ufeff".encode() + doc(), "AAPL", "not JSON: Unexpected UTF-8 BOM"),
    ("JSON array", raw("[1, 2, 3]"), "AAPL", "not a JSON object but an array"),
    ("JSON string", raw('"AAPL 201.5"'), "AAPL", "not a JSON object but a string"),
    ("JSON number", raw("201.5"), "AAPL", "not a JSON object but a number"),
    ("JSON null", raw("null"), "AAPL", "not a JSON object but null"),
    ("JSON boolean", raw("true"), "AAPL", "not a JSON object but a boolean"),
    ("deeply nested array", raw("[" * 1500 + "]" * 1500), "AAPL", "not a JSON object but an array"),
    (
        "duplicate key",
        raw(f'{{"symbol":"AAPL","price":1,"price":2,"timestamp":"{TS}"}}'),
        "AAPL",
        "duplicate key 'price'",
    ),
    ("NaN price", raw(f'{{"symbol":"AAPL","price":NaN,"timestamp":"{TS}"}}'), "AAPL", "NaN is not a JSON number"),
    (
        "Infinity price",
        raw(f'{{"symbol":"AAPL","price":Infinity,"timestamp":"{TS}"}}'),
        "AAPL",
        "Infinity is not a JSON number",
    ),
    (
        "-Infinity price",
        raw(f'{{"symbol":"AAPL","price":-Infinity,"timestamp":"{TS}"}}'),
        "AAPL",
        "-Infinity is not a JSON number",
    ),
    ("negative price", doc(price=-201.5), "AAPL", "price: -201.5 is less than or equal to the minimum of 0"),
    ("zero price", doc(price=0), "AAPL", "price: 0 is less than or equal to the minimum of 0"),
    ("absurdly large price", doc(price=1e20), "AAPL", "price: 1E+20 is greater than the maximum of 1000000000000"),
    ("price as text", doc(price="201.5"), "AAPL", "price: '201.5' is not of type 'number'"),
    ("price as boolean", doc(price=True), "AAPL", "price: True is not of type 'number'"),
    ("price null", doc(price=None), "AAPL", "price: None is not of type 'number'"),
    (
        "price beyond 38 digits",
        raw(f'{{"symbol":"AAPL","price":1.2345678901234567890123456789012345678901,"timestamp":"{TS}"}}'),
        "AAPL",
        "41 significant digits; at most 38",
    ),
    (
        "price too small to store",
        raw(f'{{"symbol":"AAPL","price":1e-200,"timestamp":"{TS}"}}'),
        "AAPL",
        "too small to store",
    ),
    ("missing symbol", doc(symbol=...), "AAPL", "'symbol' is a required property"),
    ("missing price", doc(price=...), "AAPL", "'price' is a required property"),
    ("missing timestamp", doc(timestamp=...), "AAPL", "'timestamp' is a required property"),
    (
        "unknown field",
        doc(exchange="XNAS"),
        "AAPL",
        "Additional properties are not allowed ('exchange' was unexpected)",
    ),
    ("lowercase symbol", doc(symbol="aapl"), "aapl", "symbol: 'aapl' does not match"),
    ("path-like symbol", doc(symbol="../x"), "../x", "symbol: '../x' does not match"),
    ("symbol too long", doc(symbol="ABCDEFGHIJK"), "ABCDEFGHIJK", "symbol: 'ABCDEFGHIJK' does not match"),
    ("empty symbol", doc(symbol=""), "EMPTY", "symbol: '' does not match"),
    ("symbol not text", doc(symbol=["AAPL"]), "AAPL", "symbol: ['AAPL'] is not of type 'string'"),
    (
        "timestamp without zone",
        doc(timestamp="2026-11-20T14:30:00"),
        "AAPL",
        "timestamp: '2026-11-20T14:30:00' does not match",
    ),
    ("timestamp as epoch number", doc(timestamp=1763649000), "AAPL", "timestamp: 1763649000 is not of type 'string'"),
    ("timestamp garbage", doc(timestamp="yesterday at noon"), "AAPL", "timestamp: 'yesterday at noon' does not match"),
    ("impossible date", doc(timestamp="2026-02-30T14:30:00Z"), "AAPL", "is not a real date-time"),
    ("timestamp far in the future", doc(timestamp="2031-01-01T00:00:00Z"), "AAPL", "s after the tick arrived"),
    ("timestamp before 1970", doc(timestamp="1969-07-20T20:17:40Z"), "AAPL", "is before 1970"),
    ("bid above ask", doc(bid=201.6, ask=201.4), "AAPL", "bid 201.6 is above ask 201.4"),
    ("negative volume", doc(volume=-100), "AAPL", "volume: -100 is less than the minimum of 0"),
    ("fractional volume", doc(volume=12.5), "AAPL", "volume: 12.5 is not of type 'integer'"),
    ("volume as text", doc(volume="100"), "AAPL", "volume: '100' is not of type 'integer'"),
    ("source too long", doc(source="x" * 40), "AAPL", "is too long"),
    ("oversized record", doc(source="x" * 6000), "AAPL", "record is 6085 bytes; a tick is at most 4096"),
    ("partition key not the symbol", doc(), "MSFT", "partition key 'MSFT' is not the symbol AAPL"),
]


def test_the_corpus_has_at_least_thirty_kinds_each_with_its_own_reason():
    assert len(CORPUS) >= 30
    assert len({kind for kind, *_ in CORPUS}) == len(CORPUS)


def test_every_bad_record_is_quarantined_with_its_reason_and_nothing_else_is_disturbed(aws, stack, processor_app):
    batch = KinesisBatch()
    valid = []
    n = 0
    for index, (_, data, key, _) in enumerate(CORPUS):
        good = tick("AAPL" if index % 2 else "MSFT", 200 + index / 100, BASE_TIME, volume=10)
        batch.add(n, good)
        valid.append((n, good))
        batch.add(n + 1, data, partition_key=key)
        n += 2

    response = processor_app.lambda_handler(batch.event(), LambdaContext())

    assert response == {"batchItemFailures": []}
    bucket = stack.physical["RawBucket"].ref
    (body,) = list_objects(aws, bucket, "quarantine/").values()
    entries = {entry["sequence_number"]: entry for entry in map(json.loads, body.decode().splitlines())}
    for index, (kind, data, key, reason) in enumerate(CORPUS):
        entry = entries[sequence(2 * index + 1)]
        assert reason in entry["reason"], (kind, entry["reason"])
        assert base64.b64decode(entry["data_base64"]) == data, kind
        assert entry["partition_key"] == key
    assert len(entries) == len(CORPUS)

    import gzip

    raw_lines = [
        json.loads(line)
        for body in list_objects(aws, bucket, "raw/").values()
        for line in gzip.decompress(body).decode().splitlines()
    ]
    assert sorted(line["sequence_number"] for line in raw_lines) == sorted(sequence(number) for number, _ in valid)
    table = stack.physical["MarketTable"].ref
    quote = items.deserialize(scan_table(aws, table)[("SYMBOL#AAPL", "QUOTE")])
    assert quote["window_trades"] == sum(1 for _, good in valid if good["symbol"] == "AAPL")
