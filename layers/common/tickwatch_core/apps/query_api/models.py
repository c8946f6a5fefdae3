"""Pydantic models of the query API: the rule a client posts, and the shapes of every answer for
the OpenAPI document. Answers themselves are written by `exact_json`, so prices and volumes stay
exact decimal numbers (pydantic would write a Decimal as a string or round it through a float)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema

from tickwatch_core.domain.rules import Condition, RuleOptions, parse_condition, parse_options

Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]
OptionalNumber = Annotated[Decimal | None, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}]})]


class RuleIn(BaseModel):
    """A rule, as `tickwatch rules add` takes it: one of a price threshold, a change on the day, a
    move within a window, or a moving-average cross; then its options."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(description="1-10 uppercase letters, digits, '.' or '-', starting with a letter")
    direction: Literal["above", "below"]
    threshold: Annotated[
        Decimal | str | None, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]})
    ] = Field(default=None, description="the price level, greater than zero (or give change)")
    change: str | None = Field(
        default=None, description="or: the change from the day's open, like 3% or -2% (a day-change rule)"
    )
    move: str | None = Field(
        default=None,
        description="or: a move like 2% from the window's low (direction above) or high (below); give within",
    )
    within: str | None = Field(default=None, description="a move's window, whole minutes up to 4h, like 15m")
    cross: str | None = Field(
        default=None, description="or: a moving average the price crosses, like sma:20@1m or ema:50@5m"
    )
    cooldown: StrictInt | str | None = Field(
        default=None, description="seconds, or a duration like 15m: no re-arming until this long after an alert"
    )
    rearm: str | None = Field(
        default=None,
        description="re-arm margin like 0.5%: re-arms only once the price is back past the threshold by it",
    )
    once: bool = Field(default=False, description="the rule ends with its first alert")
    expires: str | None = Field(default=None, description="no alert at or after this instant, like 2026-12-31T21:00Z")
    for_: str | None = Field(default=None, alias="for", description="or: expires this long from now, like 7d")
    hours: str | None = Field(default=None, description="alerts only inside these hours, like 09:30-16:00")
    tz: str | None = Field(default=None, description="the hours' IANA time zone, like America/New_York (default UTC)")
    weekdays: bool = Field(default=False, description="with hours: Monday to Friday only")
    holidays: str | None = Field(
        default=None, description="with hours: no alerts on this market's holidays, like NYSE, XNAS, LSE, JPX"
    )
    notify: list[str] | None = Field(
        default=None,
        description='destinations by name, like ["ops", "phone"]; none: the alert topic\'s e-mail subscribers',
    )
    template: str | None = Field(
        default=None, description='the alert\'s own words, like "{symbol} {direction} {level}: {price}"'
    )

    def condition(self, threshold: Decimal | str | None) -> Condition:
        """What the rule watches, checked (raises RuleOptionError naming the field). `threshold` is
        the body's own, digit for digit (pydantic's went through a float)."""
        return parse_condition(
            direction=self.direction,
            threshold=threshold,
            change=self.change,
            move=self.move,
            within=self.within,
            cross=self.cross,
        )

    def options(self, now: datetime) -> RuleOptions:
        """The re-arm margin and lifecycle, checked (raises RuleOptionError naming the field)."""
        return parse_options(
            now=now,
            rearm=self.rearm,
            once=self.once,
            expires=self.expires,
            lasts=self.for_,
            hours=self.hours,
            zone=self.tz,
            weekdays=self.weekdays,
            holidays=self.holidays,
            notify=self.notify,
            template=self.template,
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


class DeliveryOut(BaseModel):
    destination: str
    status: Literal["pending", "retrying", "delivered", "failed", "silenced", "dropped", "held", "published"] = Field(
        description="published: taken by the alert topic (rules without destinations); failed: parked, see "
        "tickwatch deliveries failed"
    )
    attempts: int
    last_error: str | None = Field(description="the receiver's last answer that was not a success")
    delivered_at: datetime | None
    digest_of: int | None = Field(description="delivered in a digest of this many alerts")


class AlertOut(BaseModel):
    alert_id: str
    rule_id: str
    symbol: str
    kind: Literal["price", "change", "move", "cross"]
    direction: Literal["above", "below"]
    threshold: OptionalNumber = Field(description="a price rule's level")
    change: str | None = Field(description="a day-change rule's level, like +3%")
    move: str | None = Field(description="a move rule's size, like 2%")
    within: str | None = Field(description="a move rule's window, like 15m")
    cross: str | None = Field(description="a cross rule's average, like sma:20@1m")
    reference: OptionalNumber = Field(
        description="what the level was measured from: a day-change rule's open, a move rule's low "
        "(moves up) or high (down) of the window, a cross rule's average"
    )
    price: Number
    fired_at: datetime
    published_at: datetime
    deliveries: list[DeliveryOut] = Field(
        description="what became of the alert at each destination of its rule (email: the alert topic)"
    )


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    next: str | None


class HoursOut(BaseModel):
    start: str
    end: str
    tz: str
    weekdays: bool
    holidays: str | None = Field(description="the market whose holidays have no session, like NYSE")


class RuleOut(BaseModel):
    rule_id: str
    symbol: str
    kind: Literal["price", "change", "move", "cross"]
    direction: Literal["above", "below"]
    threshold: OptionalNumber = Field(description="a price rule's level")
    change: str | None = Field(description="a day-change rule's level, like +3%")
    move: str | None = Field(description="a move rule's size, like 2% (direction above: up, below: down)")
    within: str | None = Field(description="a move rule's window, like 15m")
    cross: str | None = Field(description="a cross rule's average, like sma:20@1m")
    cooldown_seconds: int | None
    rearm: str | None = Field(description="the re-arm margin, like 0.5%")
    once: bool
    expires_at: datetime | None
    hours: HoursOut | None
    armed: bool
    status: Literal["armed", "disarmed", "ended", "expired"]
    last_fired_at: datetime | None
    created_at: datetime | None


class RulesOut(BaseModel):
    rules: list[RuleOut]


class DeletedRuleOut(BaseModel):
    deleted: RuleOut


class DestinationIn(BaseModel):
    """A destination, as `tickwatch destinations add` takes it. Secrets go to Secrets Manager."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-32 of a-z, 0-9, - and _")
    kind: Literal["email", "webhook", "slack", "discord", "telegram"]
    url: str | None = Field(default=None, description="webhook, slack, discord: the HTTPS URL to POST to")
    secret: str | None = Field(default=None, description="webhook: the signing secret, 16-256 characters")
    token: str | None = Field(default=None, description="telegram: the bot's token")
    chat_id: str | None = Field(default=None, description="telegram: the chat, group (-100...) or @channel")
    email: str | None = Field(default=None, description="email: the address (AWS asks it to confirm first)")
    symbols: list[str] | None = Field(default=None, description="email: only these symbols' alerts")
    rate: str | None = Field(default=None, description="webhook: at most this many messages, like 5/s or 30/min")
    template: str | None = Field(default=None, description="the messages' words, like {symbol} {direction} {level}")


class DestinationOut(BaseModel):
    name: str
    kind: Literal["email", "webhook", "slack", "discord", "telegram"]
    target: str = Field(description="the address, the chat, or the URL masked (it holds the webhook's token)")
    symbols: list[str]
    limits: list[str] = Field(description="what it is sent at most, like 1/s or 5/2s")
    template: str | None


class DestinationsOut(BaseModel):
    destinations: list[DestinationOut]


class DeletedDestinationOut(BaseModel):
    deleted: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
    request_id: str | None
