"""The decision: every trade of a quote update against one rule, in order (semantics: the package)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from tickwatch_core.domain.market import Trade
from tickwatch_core.domain.rules.model import Direction, Firing, QuoteUpdate, Rule, RuleKind, RuleState
from tickwatch_core.domain.rules.series import BarSeries, ClosedBar, PriceWindow


def apply_update(
    rule: Rule,
    state: RuleState,
    update: QuoteUpdate,
    bars: Sequence[ClosedBar] = (),
    session_opens: Mapping[date, Decimal] | None = None,
) -> tuple[RuleState, list[Firing]]:
    """Evaluate every trade of one update against one rule. What the rule reads of the stored
    bars: `bars`, for a cross rule, the bars of its interval it has not read yet, oldest first,
    up to the update's last trade's; `session_opens`, for a day-change rule with trading hours,
    the open of each session its trades are in (the first stored trade from the session's start)."""
    if state.state_seq is not None and update.update_seq <= state.state_seq:
        return state, []
    armed, last_fired_at, ended = state.armed, state.last_fired_at, state.ended
    reference_day, reference_open = state.reference_day, state.reference_open
    window, series = state.window, state.series
    firings: list[Firing] = []
    for index, trade in enumerate(update.trades):
        if ended:
            break
        if rule.expires_at is not None and trade.at >= rule.expires_at:
            continue
        # Move and cross rules measure from every trade, inside their hours or not.
        reference = None
        if rule.kind is RuleKind.MOVE:
            assert rule.window is not None
            window = window or PriceWindow()
            extremes = window.extremes_before(trade.at, rule.window)
            if extremes is not None:
                reference = extremes[0] if rule.direction is Direction.ABOVE else extremes[1]
            window = window.with_trade(trade, rule.window)
        elif rule.kind is RuleKind.CROSS:
            assert rule.average is not None
            series = (series or BarSeries()).closed_before(trade.at, bars, rule.average)
            reference = series.average(rule.average)
        if not rule.active_at(trade.at):
            continue
        if rule.kind is RuleKind.CHANGE:
            day, reference = _day_open(rule, update, trade, reference_day, reference_open, session_opens or {})
            if reference is None:
                continue  # a trade of a day whose open this rule never saw: nothing to measure from
            reference_day, reference_open = day, reference
        elif rule.kind is not RuleKind.PRICE and reference is None:
            continue  # an empty window, or fewer bars than the average needs: nothing to measure
        level = rule.level_at(reference)
        if armed:
            if _on_firing_side(rule.direction, trade.price, level):
                firings.append(Firing(rule, trade.price, trade.at, update.update_seq, index, reference))
                armed, last_fired_at, ended = False, trade.at, rule.once
        elif _back_past(rule, trade.price, level) and _cooled_down(rule, last_fired_at, trade.at):
            armed = True
    after = replace(
        state,
        armed=armed,
        last_fired_at=last_fired_at,
        ended=ended,
        reference_day=reference_day,
        reference_open=reference_open,
        window=window,
        series=series,
    )
    if not firings and after == state:
        return state, firings
    return replace(after, state_seq=update.update_seq), firings


def _day_open(
    rule: Rule,
    update: QuoteUpdate,
    trade: Trade,
    known_day: date | None,
    known_open: Decimal | None,
    session_opens: Mapping[date, Decimal],
) -> tuple[date | None, Decimal | None]:
    """(the day or session of `trade`, its open) for a day-change rule; see the package docstring."""
    if rule.hours is not None:
        session = rule.hours.session_of(trade.at)
        if session is None or (known_day is not None and session < known_day):
            return session, None  # a late trade of an earlier session: its open is gone
        if session == known_day:
            return session, known_open
        # The session's first stored trade; without one (nothing stored yet), this trade opens it.
        return session, session_opens.get(session, trade.price)
    day = trade.at.astimezone(UTC).date()
    if day == update.day and update.day_open is not None:
        return day, update.day_open
    return day, known_open if day == known_day else None


def apply_updates(
    rule: Rule,
    state: RuleState,
    updates: Sequence[QuoteUpdate],
    bars: Sequence[ClosedBar] = (),
    session_opens: Mapping[date, Decimal] | None = None,
) -> list[tuple[RuleState, list[Firing]]]:
    """The state after, and the firings of, each update in turn."""
    results = []
    for update in updates:
        state, firings = apply_update(rule, state, update, bars, session_opens)
        results.append((state, firings))
    return results


def _on_firing_side(direction: Direction, price: Decimal, level: Decimal) -> bool:
    return price >= level if direction is Direction.ABOVE else price <= level


def _back_past(rule: Rule, price: Decimal, level: Decimal) -> bool:
    """Whether `price` is back past `level` by the rule's re-arm margin (if any)."""
    rearm_at = level * rule.rearm_factor
    return price < rearm_at if rule.direction is Direction.ABOVE else price > rearm_at


def _cooled_down(rule: Rule, last_fired_at: datetime | None, at: datetime) -> bool:
    if rule.cooldown is None or last_fired_at is None:
        return True
    return at >= last_fired_at + rule.cooldown
