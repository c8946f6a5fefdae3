"""The named queries of template.yaml (`AWS::Athena::NamedQuery`): one text each, in Athena's SQL.

Athena's execution parameters are positional `?`s; each query says which parameter each `?` is in
a comment line `-- parameters: symbol, day, day, day`, so `--param day=2026-11-20` fills every `?`
named day. Values are checked by the parameter's kind before they reach any engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import sqlglot
from sqlglot import exp

from tickwatch.template import Template
from tickwatch_core.domain.ticks import tick_schema

_PARAMETERS_LINE = re.compile(r"^\s*--\s*parameters:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class NamedQueryError(ValueError):
    """An unknown query or parameter, a missing one, or a value of the wrong form: one line."""


def _check_day(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise NamedQueryError(f"day={value!r} is not a date like 2026-11-20") from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise NamedQueryError(f"day={value!r} is not a date like 2026-11-20")
    return value


def _check_month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise NamedQueryError(f"month={value!r} is not a month like 2026-11")
    return value


def _check_symbol(value: str) -> str:
    pattern = tick_schema()["properties"]["symbol"]["pattern"]
    if not re.fullmatch(pattern, value):
        raise NamedQueryError(f"symbol={value!r} is not a ticker symbol (upper case, like AAPL or BRK.B)")
    return value


# The kinds of parameter the named queries use, each with its check. A query naming another
# parameter is refused by the tests, so every value is checked before it is bound.
PARAMETER_CHECKS = {"day": _check_day, "month": _check_month, "symbol": _check_symbol}
PARAMETER_EXAMPLES = {"day": "2026-11-20", "month": "2026-11", "symbol": "AAPL"}


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    positions: tuple[str, ...]  # the parameter each ? stands for, in order

    @classmethod
    def parse(cls, name: str, description: str, sql: str) -> NamedQuery:
        match = _PARAMETERS_LINE.search(sql)
        positions = tuple(part.strip() for part in match.group(1).split(",") if part.strip()) if match else ()
        for position in positions:
            if not _NAME.match(position):
                raise NamedQueryError(f"named query {name}: {position!r} in its parameters line is not a name")
        placeholders = count_placeholders(sql)
        if placeholders != len(positions):
            raise NamedQueryError(
                f"named query {name} has {placeholders} ? but its parameters line names {len(positions)}"
            )
        return cls(name=name, description=description, sql=sql, positions=positions)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Each parameter once, in order of first use."""
        return tuple(dict.fromkeys(self.positions))

    def bind(self, values: Mapping[str, str]) -> list[str]:
        """The value of each ?, in order, from `name=value` pairs; NamedQueryError says what is wrong."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise NamedQueryError(f"{self.name} has no parameter {unknown[0]}; it takes {self.usage()}")
        missing = [name for name in self.parameters if name not in values]
        if missing:
            raise NamedQueryError(f"{self.name} needs --param {missing[0]}=...; it takes {self.usage()}")
        checked = {name: PARAMETER_CHECKS.get(name, str)(value) for name, value in values.items()}
        return [checked[name] for name in self.positions]

    def usage(self) -> str:
        if not self.parameters:
            return "no parameters"
        return " ".join(f"{name}={PARAMETER_EXAMPLES.get(name, '...')}" for name in self.parameters)


def count_placeholders(sql: str) -> int:
    """The `?`s of a query as SQL sees them (not those in comments or string literals)."""
    try:
        statements = sqlglot.parse(sql, read="athena")
    except sqlglot.errors.ParseError as error:
        raise NamedQueryError(f"not valid Athena SQL: {first_line(str(error))}") from None
    return sum(len(list(statement.find_all(exp.Placeholder))) for statement in statements if statement)


def first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else text


def template_queries(template: Template | None = None) -> dict[str, NamedQuery]:
    """The named queries as template.yaml defines them, by name."""
    template = template or Template.load()
    queries = {}
    for logical_id in template.logical_ids("AWS::Athena::NamedQuery"):
        properties = template.resources[logical_id]["Properties"]
        query = NamedQuery.parse(properties["Name"], properties.get("Description", ""), properties["QueryString"])
        queries[query.name] = query
    return queries


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """`name=value` pairs from the command line; a name given twice or without `=` is refused."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            raise NamedQueryError(f"--param {pair!r} is not name=value")
        if name in values:
            raise NamedQueryError(f"--param {name} is given twice")
        values[name] = value.strip()
    return values
