"""A fast yes/no check compiled from a JSON Schema, for the processor's hot path.

jsonschema walks a schema keyword by keyword for every document, which cost about a third of the
processor's time per tick (`make bench`). The tick schema uses a handful of keywords, so this
compiles it once into direct checks: the same schema file stays the only definition. It answers
only "valid"; any document it does not accept goes to jsonschema, which has the last word and the
error message. It refuses to compile (returns None) a schema using any keyword it does not know,
and then every document goes to jsonschema. `tests/unit/test_schema_check.py` compares its verdicts
with jsonschema's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "examples", "default"}
_ROOT = _ANNOTATIONS | {"type", "additionalProperties", "required", "properties"}
# "format" is an annotation in 2020-12 unless a format checker is given, as in ticks._validator.
_PROPERTY = _ANNOTATIONS | {"type", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                            "exclusiveMaximum", "minLength", "maxLength"}  # fmt: skip

Check = Callable[[Any], bool]


def compile_check(schema: Mapping[str, Any], type_checker: Any) -> Check | None:
    """A predicate true only for documents the schema accepts; None if the schema is beyond it.

    `type_checker` is the validator class's own (Draft202012Validator.TYPE_CHECKER), so "number"
    and "integer" mean exactly what they mean to jsonschema."""
    if set(schema) - _ROOT or schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        return None
    required = tuple(schema.get("required", ()))
    checks: dict[str, Check] = {}
    for name, rules in schema.get("properties", {}).items():
        check = _property_check(rules, type_checker)
        if check is None:
            return None
        checks[name] = check
    allowed = frozenset(checks)

    def is_valid(document: Any) -> bool:
        if not isinstance(document, dict) or not allowed.issuperset(document):
            return False
        if any(name not in document for name in required):
            return False
        return all(checks[name](value) for name, value in document.items())

    return is_valid


def _property_check(rules: Mapping[str, Any], type_checker: Any) -> Check | None:
    if not isinstance(rules, Mapping) or set(rules) - _PROPERTY:
        return None
    kinds = rules.get("type")
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds or ())
    pattern = re.compile(rules["pattern"]) if "pattern" in rules else None
    minimum, maximum = rules.get("minimum"), rules.get("maximum")
    above, below = rules.get("exclusiveMinimum"), rules.get("exclusiveMaximum")
    shortest, longest = rules.get("minLength"), rules.get("maxLength")

    def check(value: Any) -> bool:
        if kinds and not any(type_checker.is_type(value, kind) for kind in kinds):
            return False
        if isinstance(value, str):  # string keywords apply to strings only
            if pattern is not None and not pattern.search(value):
                return False
            if (shortest is not None and len(value) < shortest) or (longest is not None and len(value) > longest):
                return False
        elif type_checker.is_type(value, "number"):  # number keywords apply to numbers only
            if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
                return False
            if (above is not None and value <= above) or (below is not None and value >= below):
                return False
        return True

    return check
