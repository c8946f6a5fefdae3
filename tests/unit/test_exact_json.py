"""exact_json writes Decimals digit for digit and everything else as json does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import pytest

from tickwatch_core.domain import exact_json


class Side(StrEnum):
    ABOVE = "above"


def test_decimals_are_written_exactly_where_floats_would_round():
    value = {
        "price": Decimal("0.1000000000000000055511151231257827"),
        "volume": 12,
        "big": Decimal("123456789012345678.90"),
    }
    text = exact_json.dumps(value)
    assert text == '{"price":0.1000000000000000055511151231257827,"volume":12,"big":123456789012345678.90}'
    assert json.loads(text, parse_float=Decimal) == value


def test_nested_values_match_the_standard_encoder_apart_from_decimals():
    value = {"a": [1, 2.5, None, True, False, 'é\n"q"'], "b": {"c": [], "d": {}}, "e": (1, 2)}
    assert json.loads(exact_json.dumps(value)) == json.loads(json.dumps(value))


def test_times_are_rfc_3339_utc_and_enums_their_value():
    moment = datetime(2026, 11, 20, 14, 30, 5, 120000, tzinfo=UTC)
    assert exact_json.dumps([moment, Side.ABOVE]) == '["2026-11-20T14:30:05.120000Z","above"]'


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan"), float("inf")])
def test_values_json_has_no_number_for_are_refused(value):
    with pytest.raises(ValueError, match="no JSON number"):
        exact_json.dumps({"x": value})


def test_unknown_types_are_refused():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        exact_json.dumps({"x": {1}})
