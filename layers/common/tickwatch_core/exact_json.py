"""JSON text in which every Decimal is written as the number it is, digit for digit.

The standard encoder has no way to write a Decimal as a number (its `default` hook can only return
another object, and a float would round `0.1 + 0.2`-style values and long prices). Prices and
volumes leave the query API through here, so a client reads exactly what the table holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tickwatch_core.ticks import format_timestamp

_string = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """`value` (dicts, lists, str, int, float, Decimal, bool, None, datetime) as compact JSON."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON number")
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no JSON number")
        out.append(repr(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_string(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        out.append(_string(format_timestamp(value)))
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
