"""An alert as delivery sees it: plain values, the same for every destination. Pure.

The alerts function builds one from each firing it records (`pipeline.alerts`), with the e-mail
texts the alert has always had, and sends it to delivery. Nothing here reads a rule again: what
was true when the alert fired is what every destination is told.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

NOTICE_VERSION = 1


@dataclass(frozen=True, slots=True)
class AlertNotice:
    alert_id: str
    rule_id: str
    symbol: str
    kind: str  # price | change | move | cross
    direction: str  # above | below
    level: str  # as listings show it: 200.5, +3%, 2%/15m, sma:20@1m
    price: Decimal
    fired_at: datetime
    subject: str  # the e-mail's subject, as before destinations
    body: str  # the e-mail's body, as before destinations
    reference: Decimal | None = None  # the open, the window's low or high, the average
    template: str | None = None  # the rule's own message template, if it has one
    notify: tuple[str, ...] = field(default_factory=tuple)  # the rule's destinations (empty: the default)

    @property
    def headline(self) -> str:
        """The body's first sentence: `AAPL traded at 201.5, at or above your threshold of 200.`"""
        return self.body.split("\n", 1)[0]

    @property
    def change_percent(self) -> Decimal | None:
        """The price against what the level was measured from, in percent (day change, move, or the
        distance from the average); None for a price rule, which measures from nothing."""
        if self.reference is None or self.reference == 0:
            return None
        return ((self.price - self.reference) / self.reference * 100).quantize(Decimal("0.01"))

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["price"] = str(self.price)
        values["reference"] = None if self.reference is None else str(self.reference)
        values["fired_at"] = format_instant(self.fired_at)
        values["notify"] = list(self.notify)
        values["v"] = NOTICE_VERSION
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> AlertNotice:
        if values.get("v") != NOTICE_VERSION:
            raise ValueError(f"alert notice version {values.get('v')!r} is not {NOTICE_VERSION}")
        return cls(
            alert_id=values["alert_id"],
            rule_id=values["rule_id"],
            symbol=values["symbol"],
            kind=values["kind"],
            direction=values["direction"],
            level=values["level"],
            price=Decimal(values["price"]),
            fired_at=datetime.fromisoformat(values["fired_at"].replace("Z", "+00:00")),
            subject=values["subject"],
            body=values["body"],
            reference=None if values.get("reference") is None else Decimal(values["reference"]),
            template=values.get("template"),
            notify=tuple(values.get("notify") or ()),
        )

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
