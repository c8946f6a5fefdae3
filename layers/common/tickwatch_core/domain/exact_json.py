"""JSON text in which every Decimal is written as the number it is, digit for digit.

The standard encoder has no way to write a Decimal as a number (its `default` hook can only return
another object, and a float would round `0.1 + 0.2`-style values and long prices). Prices and
volumes leave the query API through here, so a client reads exactly what the table holds.

A day of bars is some 10,000 values, so the writer dispatches on the exact type first (one dict
lookup per value) and keeps `isinstance` checks for subclasses only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from tickwatch_core.domain.ticks import format_timestamp

_string = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """`value` (dicts, lists, str, int, float, Decimal, bool, None, datetime) as compact JSON."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} has no JSON number")
    # str() of a finite Decimal is always a valid JSON number (1.5, -0, 1E+2, 2.50E-7), and exact.
    return str(value)


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value} has no JSON number")
    return repr(value)


_LEAVES: dict[type, Callable[[Any], str]] = {
    str: _string,
    Decimal: _decimal,
    int: str,
    float: _float,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _: "null",
    datetime: lambda value: _string(format_timestamp(value)),
}


@lru_cache(maxsize=1024)
def _key(name: str) -> str:
    """`"name":`: object keys repeat in every element of a list, so each is encoded once."""
    return _string(name) + ":"


def _write(value: Any, out: list[str]) -> None:
    leaf = _LEAVES.get(type(value))
    if leaf is not None:
        out.append(leaf(value))
    elif isinstance(value, Mapping):
        out.append("{")
        separator = ""
        for key, item in value.items():
            out.append(separator + _key(str(key)))
            separator = ","
            item_leaf = _LEAVES.get(type(item))
            if item_leaf is not None:
                out.append(item_leaf(item))
            else:
                _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        for kind, write in _LEAVES.items():  # subclasses of the leaf types (an IntEnum, a str enum)
            if isinstance(value, kind) and kind is not type(None):
                out.append(write(value))
                return
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
