"""Lambda event filtering: does a record match a FilterCriteria pattern?

Implements the pattern syntax Lambda documents for event source mappings: nested objects, lists
of allowed values (exact strings, numbers, booleans, null), and the operators `prefix`, `suffix`,
`exists`, `anything-but` and `numeric`. Used where moto has no event source mappings: the tests and
the local stack filter stream records exactly as the template's FilterCriteria asks Lambda to.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">=": operator.ge, ">": operator.gt}


class FilterPatternError(ValueError):
    """A pattern uses syntax this matcher does not support."""


def matches_any(patterns: Sequence[str | Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """A record passes when any pattern matches (Lambda ORs the filters of one mapping)."""
    return any(matches(pattern, record) for pattern in patterns)


def matches(pattern: str | Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
    return _match_object(parsed, record)


def _match_object(pattern: Mapping[str, Any], value: Any) -> bool:
    for key, expected in pattern.items():
        actual = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if actual is _MISSING or not _match_object(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _match_values(expected, actual):
                return False
        else:
            raise FilterPatternError(f"pattern value for {key!r} must be an object or a list, not {expected!r}")
    return True


def _match_values(allowed: list[Any], actual: Any) -> bool:
    # A list in the event matches when any of its elements matches.
    candidates = actual if isinstance(actual, list) else [actual]
    return any(_match_value(rule, candidate) for rule in allowed for candidate in candidates)


def _match_value(rule: Any, actual: Any) -> bool:
    if not isinstance(rule, Mapping):
        return actual is not _MISSING and rule == actual
    ((name, argument),) = rule.items()
    if name == "exists":
        return (actual is not _MISSING) == bool(argument)
    if actual is _MISSING:
        return False
    if name == "prefix":
        return isinstance(actual, str) and actual.startswith(argument)
    if name == "suffix":
        return isinstance(actual, str) and actual.endswith(argument)
    if name == "anything-but":
        excluded = argument if isinstance(argument, list) else [argument]
        return actual not in excluded
    if name == "numeric":
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            return False
        pairs = zip(argument[::2], argument[1::2], strict=True)
        return all(_NUMERIC[comparison](actual, bound) for comparison, bound in pairs)
    raise FilterPatternError(f"filter operator {name!r} is not supported")
