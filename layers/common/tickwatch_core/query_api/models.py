"""Pydantic models of the query API: the rule a client posts, and the shapes of every answer for
the OpenAPI document. Answers themselves are written by `exact_json`, so prices and volumes stay
exact decimal numbers (pydantic would write a Decimal as a string or round it through a float)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema

Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]
OptionalNumber = Annotated[Decimal | None, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}]})]


class RuleIn(BaseModel):
    """A threshold rule, as `tickwatch rules add` takes it."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(description="1-10 uppercase letters, digits, '.' or '-', starting with a letter")
    direction: Literal["above", "below"]
    threshold: Annotated[Decimal | str, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}]})] = Field(
        description="the price level, greater than zero"
    )
    cooldown: StrictInt | str | None = Field(
        default=None, description="seconds, or a duration like 15m: no re-arming until this long after an alert"
    )


class QuoteOut(BaseModel):
    symbol: str
    price: Number
    bid: OptionalNumber
    ask: OptionalNumber
    volume: int | None
    at: datetime
    day: str = Field(description="the UTC day the day fields cover")
    day_open: Number
    day_high: Number
    day_low: Number
    day_volume: int
    change: Number = Field(description="price - day_open")
    change_pct: Number = Field(description="change from the day's open, in percent, 4 decimals")


class QuotesOut(BaseModel):
    quotes: list[QuoteOut]


class BarOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # one field per requested indicator: sma_20, bollinger_20_2, ...

    start: datetime
    open: Number
    high: Number
    low: Number
    close: Number
    volume: int
    trades: int


class BarsOut(BaseModel):
    symbol: str
    interval: str
    from_: datetime = Field(alias="from")
    to: datetime
    bars: list[BarOut]
    next: str | None = Field(description="pass as cursor= for the next page; null on the last one")


class AlertOut(BaseModel):
    alert_id: str
    rule_id: str
    symbol: str
    direction: Literal["above", "below"]
    threshold: Number
    price: Number
    fired_at: datetime
    published_at: datetime


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    next: str | None


class RuleOut(BaseModel):
    rule_id: str
    symbol: str
    direction: Literal["above", "below"]
    threshold: Number
    cooldown_seconds: int | None
    armed: bool
    last_fired_at: datetime | None
    created_at: datetime | None


class RulesOut(BaseModel):
    rules: list[RuleOut]


class DeletedRuleOut(BaseModel):
    deleted: RuleOut


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
    request_id: str | None
