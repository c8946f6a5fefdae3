"""Message templates: a rule's or a destination's own words for an alert. Pure.

`{symbol} crossed {level} at {price} ({change})` with these placeholders (`{{` and `}}` for a
literal brace); anything else in braces is refused when the template is saved, not when an alert
fires:

| placeholder | what | example |
|---|---|---|
| `{symbol}` | the symbol | `AAPL` |
| `{price}` | the trade's price | `201.5` |
| `{level}` | the rule's level as listed | `200`, `+3%`, `2%/15m`, `sma:20@1m` |
| `{direction}` | above or below | `above` |
| `{kind}` | price, change, move or cross | `price` |
| `{rule_id}` | the rule | `AAPL-above-200` |
| `{alert_id}` | the alert (the same in every destination) | `3f2a...` |
| `{time}` | the trade's time, UTC | `2026-12-06 14:30:01 UTC` |
| `{change}` | the price against the open, window or average, in percent (empty for price rules) | `+3.21%` |
| `{link}` | the dashboard, at the symbol (empty when the stack has none) | `https://d1.cloudfront.net/#symbol=AAPL` |
"""

from __future__ import annotations

import re
from datetime import UTC
from urllib.parse import quote

from tickwatch_core.domain.delivery.notices import AlertNotice

PLACEHOLDERS = ("symbol", "price", "level", "direction", "kind", "rule_id", "alert_id", "time", "change", "link")
MAX_TEMPLATE_LENGTH = 1000
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    field = "template"


def check_template(template: str) -> str:
    """The template if every placeholder is known. Raises TemplateError saying which is not."""
    if not template.strip():
        raise TemplateError("template is empty")
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template is longer than {MAX_TEMPLATE_LENGTH} characters")
    for found in _TOKEN.finditer(template):
        token = found.group(0)
        if token in ("{{", "}}"):
            continue
        name = found.group(1)
        if name is None:
            raise TemplateError(f"template has a lone {token!r} at {found.start()}: write {token * 2} for a brace")
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{placeholder}}}" for placeholder in PLACEHOLDERS)
            raise TemplateError(f"template placeholder {{{name}}} is not one of {known}")
    return template


def render(template: str, notice: AlertNotice, dashboard_url: str | None) -> str:
    values = placeholder_values(notice, dashboard_url)

    def substitute(found: re.Match[str]) -> str:
        token = found.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(found.group(1) or "", token)

    return _TOKEN.sub(substitute, template)


def placeholder_values(notice: AlertNotice, dashboard_url: str | None) -> dict[str, str]:
    from tickwatch_core.domain.rules.text import format_decimal

    change = notice.change_percent
    return {
        "symbol": notice.symbol,
        "price": format_decimal(notice.price),
        "level": notice.level,
        "direction": notice.direction,
        "kind": notice.kind,
        "rule_id": notice.rule_id,
        "alert_id": notice.alert_id,
        "time": notice.fired_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "change": "" if change is None else f"{'+' if change > 0 else ''}{change}%",
        "link": dashboard_link(dashboard_url, notice.symbol),
    }


def dashboard_link(dashboard_url: str | None, symbol: str | None = None) -> str:
    if not dashboard_url:
        return ""
    base = dashboard_url.rstrip("/") + "/"
    return base + (f"#symbol={quote(symbol)}" if symbol else "")
