"""`tickwatch local --rules FILE`: the rules to try against a run, from a YAML or JSON list.

Each entry has the fields `POST /rules` takes, checked by the same model and the same domain
parsers, so a file that loads here is a list of requests the API would accept:

    - {symbol: AAPL, direction: above, threshold: 230, rearm: 0.5%, once: true}
    - {symbol: TSLA, direction: below, threshold: 240, cooldown: 5m, hours: 09:30-16:00,
       tz: America/New_York, weekdays: true}
    - {symbol: AAPL, direction: above, change: 3%}
    - {symbol: TSLA, direction: below, move: 2%, within: 15m}
    - {symbol: NVDA, direction: above, cross: sma:20@1m}

Everything is checked before the stack starts: a bad entry is one line naming the file, the
entry's position and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tickwatch_core.domain.rules import Condition, RuleOptionError, RuleOptions, parse_cooldown, validate_symbol
from tickwatch_core.store.rule_store import RuleStore


class RuleFileError(ValueError):
    """The file cannot be read, or an entry is not a rule; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    symbol: str
    condition: Condition
    cooldown: timedelta | None
    options: RuleOptions


def load_rule_file(path: Path, *, now: datetime) -> list[RuleSpec]:
    """The rules of `path` (YAML, or JSON: JSON is YAML too), checked. Raises RuleFileError."""
    import yaml
    from pydantic import ValidationError

    from tickwatch_core.apps.query_api.models import RuleIn

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuleFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        # Numbers as text first: a threshold like 230.10 keeps its digits (YAML would make a float).
        entries = json.loads(text, parse_float=Decimal) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise RuleFileError(f"{path.name} is not YAML or JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(entries, list) or not entries:
        raise RuleFileError(
            f"{path.name} must be a list of rules, like: - {{symbol: AAPL, direction: above, threshold: 230}}"
        )
    specs = []
    for number, entry in enumerate(entries, 1):
        where = f"{path.name} rule {number}"
        if not isinstance(entry, dict):
            raise RuleFileError(f"{where}: not a mapping of fields like symbol, direction, threshold")
        try:
            rule = RuleIn.model_validate({name: _as_text(value) for name, value in entry.items()})
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "rule"
            raise RuleFileError(f"{where}: {field}: {problem['msg']}") from None
        try:
            specs.append(
                RuleSpec(
                    symbol=validate_symbol(rule.symbol),
                    condition=rule.condition(entry.get("threshold")),
                    cooldown=parse_cooldown(rule.cooldown),
                    options=rule.options(now),
                )
            )
        except RuleOptionError as error:
            raise RuleFileError(f"{where}: {error.field}: {error}") from None
        except ValueError as error:
            raise RuleFileError(f"{where}: {error}") from None
    return specs


def _as_text(value: Any) -> Any:
    """YAML reads 09:30-16:00 as text but 0.5% too, and `expires: 2026-12-31T21:00Z` as a datetime:
    the API's fields are text, so dates go back to text as written."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def add_rules(store: RuleStore, specs: list[RuleSpec]) -> list[str]:
    """Add the rules; their ids, as the run's first lines show them."""
    return [
        store.add_condition(spec.symbol, spec.condition, cooldown=spec.cooldown, options=spec.options).rule_id
        for spec in specs
    ]
