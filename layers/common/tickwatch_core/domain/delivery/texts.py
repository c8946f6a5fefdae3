"""An alert's words: the e-mail texts alerts have always had, and the notice delivery sends. Pure.

`alert_message` gives the subject and body of every kind of alert; `alert_notice` packs them with
the alert's values for delivery, which sends them as they are (or a template's words) to each of
the rule's destinations.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from tickwatch_core.domain.delivery.notices import AlertNotice
from tickwatch_core.domain.rules import (
    Direction,
    Firing,
    Rule,
    RuleKind,
    format_change,
    format_decimal,
    format_duration,
    format_percent,
)

SUBJECT_LIMIT = 99  # SNS takes subjects "less than 100 characters long"


def alert_notice(firing: Firing) -> AlertNotice:
    """What delivery needs of a firing: its values and its e-mail texts."""
    rule = firing.rule
    subject, body = alert_message(firing)
    return AlertNotice(
        alert_id=firing.alert_id,
        rule_id=rule.rule_id,
        symbol=rule.symbol,
        kind=rule.kind.value,
        direction=rule.direction.value,
        level=rule.level_text,
        price=firing.price,
        fired_at=firing.at,
        subject=subject,
        body=body,
        reference=firing.reference,
        template=rule.template,
        notify=rule.notify,
    )


def alert_message(firing: Firing) -> tuple[str, str]:
    """Subject and body of the e-mail a subscriber receives."""
    if firing.rule.kind is RuleKind.CHANGE:
        return _change_message(firing)
    if firing.rule.kind is RuleKind.MOVE:
        return _move_message(firing)
    if firing.rule.kind is RuleKind.CROSS:
        return _cross_message(firing)
    rule = firing.rule
    verb = "rose to" if rule.direction is Direction.ABOVE else "fell to"
    side = "at or above" if rule.direction is Direction.ABOVE else "at or below"
    price, threshold = format_decimal(firing.price), format_decimal(rule.threshold)
    when = _when(firing)
    subject = f"tickwatch: {rule.symbol} {verb} {price} ({rule.direction.value} {threshold})"[:SUBJECT_LIMIT]
    lines = [
        f"{rule.symbol} traded at {price}, {side} your threshold of {threshold}.",
        "",
        f"Symbol:     {rule.symbol}",
        f"Direction:  {rule.direction.value}",
        f"Threshold:  {threshold}",
        f"Price:      {price}",
        f"Time:       {when}",
        f"Rule:       {rule.rule_id}",
    ]
    lines += _closing_lines(firing, f"{rule.symbol} trades", format_decimal(rule.rearm_level))
    return subject, "\n".join(lines) + "\n"


def _change_message(firing: Firing) -> tuple[str, str]:
    """A day-change alert, in words: "AAPL is up 3.21 % on the day, from the open of 225 to 232.22"."""
    rule, reference = firing.rule, firing.reference
    assert reference is not None
    change = (firing.price - reference) / reference * 100
    words = f"{'up' if change >= 0 else 'down'} {abs(change):.2f} %"
    price, opened = format_decimal(firing.price), format_decimal(reference)
    level = format_change(rule.threshold)
    when = _when(firing)
    since = "the session's open" if rule.hours is not None else "the open"
    subject = f"tickwatch: {rule.symbol} {words} on the day ({rule.direction.value} {level})"[:SUBJECT_LIMIT]
    lines = [
        f"{rule.symbol} is {words} on the day, from {since} of {opened} to {price}: "
        f"{'at or above' if rule.direction is Direction.ABOVE else 'at or below'} your {level}.",
        "",
        f"Symbol:     {rule.symbol}",
        f"Change:     {rule.direction.value} {level} on the day",
        f"Open:       {opened}",
        f"Price:      {price}",
        f"Time:       {when}",
        f"Rule:       {rule.rule_id}",
    ]
    rearm = format_change(rule.rearm_level.quantize(Decimal("0.01")))
    lines += _closing_lines(firing, f"{rule.symbol}'s change on the day goes back", rearm)
    return subject, "\n".join(lines) + "\n"


def _move_message(firing: Firing) -> tuple[str, str]:
    """A move alert, in words: "TSLA moved down 2.10 % within 15m, from 251.3 to 246.02"."""
    rule, reference = firing.rule, firing.reference
    assert reference is not None
    move = abs(firing.price - reference) / reference * 100
    way = "up" if rule.direction is Direction.ABOVE else "down"
    extreme = "low" if rule.direction is Direction.ABOVE else "high"
    words = f"moved {way} {move:.2f} % within {rule.within_text}"
    price, since = format_decimal(firing.price), format_decimal(reference)
    size = f"{format_decimal(rule.threshold)}%"
    subject = f"tickwatch: {rule.symbol} {words} ({way} {size})"[:SUBJECT_LIMIT]
    lines = [
        f"{rule.symbol} {words}, from {since} to {price}: at least your {size}.",
        "",
        f"Symbol:     {rule.symbol}",
        f"Move:       {way} {size} within {rule.within_text}",
        f"From:       {since} (the {extreme} of the window)",
        f"Price:      {price}",
        f"Time:       {_when(firing)}",
        f"Rule:       {rule.rule_id}",
    ]
    rearm = f"{format_decimal(rule.rearm_level.quantize(Decimal('0.01')))}%"
    lines += _closing_lines(firing, f"{rule.symbol}'s move {way} within {rule.within_text} is back", rearm)
    return subject, "\n".join(lines) + "\n"


def _cross_message(firing: Firing) -> tuple[str, str]:
    """A cross alert, in words: "NVDA crossed above its SMA(20) of 1m bars (130.12), trading at 130.5"."""
    rule, average = firing.rule, firing.reference
    assert average is not None
    assert rule.average is not None
    price, level = format_decimal(firing.price), format_decimal(average.quantize(Decimal("0.0001")))
    words = f"crossed {rule.direction.value} its {rule.average.describe()}"
    subject = f"tickwatch: {rule.symbol} {words} at {price}"[:SUBJECT_LIMIT]
    lines = [
        f"{rule.symbol} {words} ({level}), trading at {price}.",
        "",
        f"Symbol:     {rule.symbol}",
        f"Cross:      {rule.direction.value} {rule.average.text}",
        f"Average:    {level}",
        f"Price:      {price}",
        f"Time:       {_when(firing)}",
        f"Rule:       {rule.rule_id}",
    ]
    margin = f" by {format_percent(rule.rearm_margin)}" if rule.rearm_margin is not None else ""
    lines += _closing_lines(firing, f"{rule.symbol} trades", f"its average{margin}")
    return subject, "\n".join(lines) + "\n"


def _when(firing: Firing) -> str:
    return firing.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _closing_lines(firing: Firing, what_moves: str, rearm: str) -> list[str]:
    """The rule's options, what happens to it now, and the alert id."""
    rule = firing.rule
    if rule.once:
        what_next = "This was a one-shot rule: it has ended and will not fire again."
    else:
        what_next = (
            f"The rule is now disarmed. It re-arms when {what_moves} "
            # A move (up or down) re-arms as it shrinks; the others back past their level.
            + ("below" if rule.direction is Direction.ABOVE or rule.kind is RuleKind.MOVE else "above")
            + f" {rearm}"
            + (f" at least {format_duration(rule.cooldown)} after this alert." if rule.cooldown else ".")
        )
    return [*_option_lines(rule), "", what_next, f"Alert id: {firing.alert_id}"]


def _option_lines(rule: Rule) -> list[str]:
    lines = []
    if rule.cooldown:
        lines.append(f"Cooldown:   {format_duration(rule.cooldown)}")
    if rule.rearm_margin is not None:
        past = "the average" if rule.kind is RuleKind.CROSS else "the threshold"
        lines.append(f"Re-arm:     {format_percent(rule.rearm_margin)} back past {past}")
    if rule.hours is not None:
        lines.append(f"Hours:      {rule.hours.describe()}")
    if rule.expires_at is not None:
        lines.append(f"Expires:    {rule.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    return lines
