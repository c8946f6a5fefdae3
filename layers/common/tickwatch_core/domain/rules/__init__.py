"""Alert rules and the crossing decision: pure, no AWS.

Semantics (also in the README):

* A rule `above X` fires on a trade at or above X while the rule is armed, then disarms. It re-arms
  on a trade below X, but only on one at or after `last fired + cooldown` when it has a cooldown.
  A trade below X during the cooldown does not re-arm it.
* `below X` mirrors it: fires on a trade at or below X, re-arms on a trade above X.
* A new rule starts armed, so it fires on the first trade on its side of X.
* Trades are evaluated one by one, in stream order, using the `trades` list each quote update
  carries; batching never merges or hides crossings. A price wobbling around X gives one alert per
  real crossing (and with a cooldown, at most one per cooldown), never one per tick.
* A re-arm margin m (`--rearm 0.5%`) moves the re-arming level away from X: an `above X` rule
  re-arms only on a trade below X × (1 − m), a `below X` rule only above X × (1 + m). A price
  hovering at X then gives one alert, not a pair each time it wobbles across.
* Lifecycle. `once`: the rule ends with its first alert and never fires again. `expires_at`: no
  alert on a trade at or after that instant (the rule is listed as expired). Trading hours (`09:30
  to 16:00` in a time zone, optionally weekdays only; a session ending before it starts runs past
  midnight and belongs to the day it started): trades outside are not evaluated at all, they
  neither fire nor re-arm the rule. Each uses the trade's own timestamp, never the clock, so a
  redelivered update is evaluated exactly as the first time.

Day-change rules (`kind` change; `threshold` is then a percentage, 3 for +3 %, -2 for -2 %) compare
each trade with its day's open: level = open × (1 + threshold / 100), and from there they behave as
a price rule with that level (fire at or beyond it while armed, re-arm back past it, margin,
cooldown and lifecycle alike). The open is the quote's `day_open` for a trade of the quote's UTC
day (the first trade of that day by timestamp); a trade of an earlier day in the same update uses
the open the rule remembered for that day, and is skipped if it has none. With trading hours the
open is instead the session's: the open of the session's first stored one-minute bar, its first
trade from the session's start, however late the rule was added (the alerts function reads it
once per session: `apply_update(..., session_opens)`; with none stored, the session's first trade
the rule evaluates). A new day or session brings a
new level, and its first trade (at the open, a change of 0 %) re-arms a rule whose level is above
zero.

Move rules (`kind` move; `threshold` the size of the move in percent, `window` how long): the
window of a trade is the trades evaluated before it whose UTC minute is the trade's own minute or
one of the minutes before it, `window` in all (within 15m: a trade at 10:07:30 looks at earlier
trades stamped 09:53:00 to 10:07:59.999, so the two are always less than 15 minutes apart). Up
(`above`): level = the window's lowest price × (1 + threshold / 100); down (`below`): level = its
highest × (1 − threshold / 100); from there, as a price rule. A trade with an empty window is not
evaluated. The window is kept as each minute's low and high, so the rule item stays small.

Cross rules (`kind` cross; `average` like sma:20@1m): level = the average (SMA or EMA, the query
API's definitions) of the closes of the last N stored bars of the interval (the query API's bars,
aggregated from the one-minute bars the processor writes) that start before the trade's interval.
The alerts function passes the bars the rule has not read yet (`apply_update(..., bars)`): for a
new rule the last N (4 N for an EMA) before its first trade and those since, then each bar once,
when a trade of a later interval comes. With fewer than N bars there is no level and the trade is
not evaluated. A cross rule starts disarmed: a trade past the average on the other side arms it
(as a re-arm, margin and cooldown included), so the first alert is a real cross. A trade of an
interval the rule already read (a late one) is compared with the average and changes no bar.

Move and cross rules measure from every trade, also outside their trading hours: the hours decide
when they may fire or re-arm, not what the window and the bars hold.

Each quote update carries the sortable sequence key of the last tick it applied (`update_seq`). A
rule remembers `state_seq`, the update that last changed its state; an update at or before it is
skipped, which makes reprocessing a redelivered stream record a no-op. Updates that did not change
the state need no marker: replaying them from the same state changes nothing again.
"""

from __future__ import annotations

from tickwatch_core.domain.rules.decision import apply_update, apply_updates
from tickwatch_core.domain.rules.model import (
    Condition,
    Direction,
    Firing,
    QuoteUpdate,
    Rule,
    RuleKind,
    RuleOptionError,
    RuleOptions,
    RuleState,
    TradingHours,
    make_rule_id,
    parse_condition,
    parse_options,
    rule_status,
    split_rule_id,
)
from tickwatch_core.domain.rules.series import (
    MAX_AVERAGE_PERIOD,
    MAX_WINDOW,
    BarSeries,
    ClosedBar,
    MovingAverage,
    PriceWindow,
    check_window,
)
from tickwatch_core.domain.rules.text import (
    MAX_COOLDOWN,
    MAX_REARM_MARGIN,
    SYMBOL_PATTERN,
    format_change,
    format_decimal,
    format_duration,
    format_percent,
    parse_change,
    parse_cooldown,
    parse_duration,
    parse_expiry,
    parse_hours,
    parse_margin,
    parse_move,
    parse_threshold,
    parse_zone,
    validate_symbol,
)

__all__ = [
    "MAX_AVERAGE_PERIOD",
    "MAX_COOLDOWN",
    "MAX_REARM_MARGIN",
    "MAX_WINDOW",
    "SYMBOL_PATTERN",
    "BarSeries",
    "ClosedBar",
    "Condition",
    "Direction",
    "Firing",
    "MovingAverage",
    "PriceWindow",
    "QuoteUpdate",
    "Rule",
    "RuleKind",
    "RuleOptionError",
    "RuleOptions",
    "RuleState",
    "TradingHours",
    "apply_update",
    "apply_updates",
    "check_window",
    "format_change",
    "format_decimal",
    "format_duration",
    "format_percent",
    "make_rule_id",
    "parse_change",
    "parse_condition",
    "parse_cooldown",
    "parse_duration",
    "parse_expiry",
    "parse_hours",
    "parse_margin",
    "parse_move",
    "parse_options",
    "parse_threshold",
    "parse_zone",
    "rule_status",
    "split_rule_id",
    "validate_symbol",
]
