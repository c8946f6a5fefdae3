"""The compiled tick-schema check agrees with jsonschema on every document tried."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

from jsonschema import Draft202012Validator

from tests.test_bad_input_corpus import CORPUS
from tickwatch_core.domain.schema_check import compile_check
from tickwatch_core.domain.ticks import _fast_check, tick_schema

VALID = {
    "symbol": "AAPL",
    "price": Decimal("228.5"),
    "timestamp": "2026-11-20T14:30:00.125Z",
    "volume": 100,
    "bid": Decimal("228.49"),
    "ask": Decimal("228.51"),
    "source": "simulator",
}
# Values of every JSON type, and the edges of each property's keywords.
VALUES = [
    None, True, False, 0, -1, 1, 2**53, 10**15, 10**15 + 1, 10**12, 10**12 + 1, 1.5, 5.0, -0.0,
    Decimal("0"), Decimal("0.0001"), Decimal("-1"), Decimal("5.0"), Decimal("1E+12"), Decimal("1000000000000.0001"),
    Decimal("1e-400"), "", "x", "AAPL", "aapl", "A" * 10, "A" * 11, "BRK.B", "BRK-B", "1AAPL", "AAPL\n", "../x",
    "2026-11-20T14:30:00Z", "2026-11-20 14:30:00+01:00", "2026-11-20t14:30:00z", "2026-11-20T14:30:00",
    "2026-11-20T14:30:00.1234567891Z", "2026-13-45T25:61:61Z", "2026-11-20T14:30:00Z\n", "s" * 32, "s" * 33,
    "feed:1.a-b_c", "feed 1", [], [1], {}, {"a": 1},
]  # fmt: skip


def documents():
    yield VALID
    for name, value in itertools.product(VALID, VALUES):
        yield {**VALID, name: value}
    for name in VALID:
        yield {key: value for key, value in VALID.items() if key != name}
    yield {**VALID, "venue": "X"}
    yield {"symbol": "AAPL", "price": 1, "timestamp": "2026-11-20T14:30:00Z"}
    for _, data, _, _ in CORPUS:
        try:
            yield json.loads(data, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
    yield from ([], "AAPL", 1, None)


def test_the_tick_schema_compiles():
    assert _fast_check() is not None


def test_the_compiled_check_gives_jsonschemas_verdict_on_every_document():
    validator = Draft202012Validator(tick_schema())
    check = compile_check(tick_schema(), Draft202012Validator.TYPE_CHECKER)
    disagreements = [doc for doc in documents() if check(doc) != validator.is_valid(doc)]
    assert disagreements == []
    assert sum(1 for _ in documents()) > 300


def test_a_schema_with_keywords_it_does_not_know_is_left_to_jsonschema():
    schema = {
        **tick_schema(),
        "properties": {**tick_schema()["properties"], "symbol": {"type": "string", "enum": ["A"]}},
    }
    assert compile_check(schema, Draft202012Validator.TYPE_CHECKER) is None
    assert compile_check({**tick_schema(), "allOf": []}, Draft202012Validator.TYPE_CHECKER) is None
    assert compile_check({**tick_schema(), "additionalProperties": True}, Draft202012Validator.TYPE_CHECKER) is None
