"""The market-data plan's API credits, shared by every run of the scheduled producer.

A schedule of rate(1 minute), a manual trigger and a retried or slow run can overlap, and each
runs in its own container: only a store they all see can keep them within the plan together. The
ledger is three items of the market table (pk `PRODUCER`):

| sk                           | holds                                   | expires (TTL)          |
|------------------------------|-----------------------------------------|------------------------|
| CREDITS#MINUTE#2026-11-20T14:30 | `used`: credits reserved in that UTC minute | an hour after it    |
| CREDITS#DAY#2026-11-20       | `used`: credits reserved that UTC day   | a day after it         |
| ROTATION                     | `next`: symbols handed out so far       | never                  |

Reserving is "add, then give back the excess": one atomic `UpdateItem ADD used :n` per window
returns the new total; whatever the total exceeds the limit by (at most n) is given back with
`ADD used -excess`. Each run is granted `min(n, limit - total before its add)`, so the grants of
any runs, in any interleaving, never sum past the limit: a run only ever sees a total that counts
every grant made before it (and, until they are given back, excesses too, which makes it err on
the side of spending less). A run that dies between its add and its give-back leaves the excess
counted: fewer credits that minute or day, never more. Windows are UTC minutes and UTC days, as
Twelve Data and Finnhub count them.

Rotation: with more symbols than a run may quote, `ADD next :granted` on the ROTATION item hands
each run the next `granted` symbols (modulo the list), so successive and overlapping runs take
different symbols and every symbol gets its turn, whatever the schedule's rate.

The pure helpers (`windows`, `allowed`, `rotation`) decide; `CreditLedger` makes the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LEDGER_PK = "PRODUCER"
MINUTE_PREFIX = "CREDITS#MINUTE#"
DAY_PREFIX = "CREDITS#DAY#"
ROTATION_SK = "ROTATION"
TTL_ATTRIBUTE = "expires_at"  # the market table's TTL attribute


class CreditLedgerUnavailable(RuntimeError):
    """The ledger could not be read or written; no credit is spent without it."""


@dataclass(frozen=True, slots=True)
class CreditLimits:
    per_minute: int
    per_day: int


@dataclass(frozen=True, slots=True)
class Window:
    """One counter of credits: its item's sort key, the limit and when the item may expire."""

    sort_key: str
    limit: int
    expires_at: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Grant:
    """What a run may spend: `credits`, and which symbols (`symbols`, in rotation order)."""

    wanted: int
    credits: int
    symbols: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        """Credits wanted but not granted (the minute's or day's limit is reached)."""
        return self.wanted - self.credits


def windows(now: datetime, limits: CreditLimits) -> tuple[Window, Window]:
    """The minute and the day `now` (UTC) falls in, each with its limit."""
    now = now.astimezone(UTC)
    minute = now.replace(second=0, microsecond=0)
    day = minute.replace(hour=0, minute=0)
    return (
        Window(f"{MINUTE_PREFIX}{minute:%Y-%m-%dT%H:%M}", limits.per_minute, _epoch(minute + timedelta(hours=1))),
        Window(f"{DAY_PREFIX}{day:%Y-%m-%d}", limits.per_day, _epoch(day + timedelta(days=2))),
    )


def allowed(total_after_add: int, added: int, limit: int) -> int:
    """Of `added` credits just added to a counter now at `total_after_add`, how many fit under `limit`."""
    before = total_after_add - added
    return max(0, min(added, limit - before))


def rotation(symbols: Sequence[str], handed_out_after: int, count: int) -> tuple[str, ...]:
    """The `count` symbols a run takes when the rotation counter, after its add, is `handed_out_after`."""
    if not symbols or count <= 0:
        return ()
    start = handed_out_after - count
    return tuple(symbols[(start + offset) % len(symbols)] for offset in range(min(count, len(symbols))))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class CreditLedger:
    """Reserves credits in the market table; see the module docstring."""

    def __init__(
        self,
        dynamodb: Callable[[], Any],
        table_name: str,
        limits: CreditLimits,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dynamodb = dynamodb  # returns the client: created on first use
        self.table_name = table_name
        self.limits = limits
        self._clock = clock

    def reserve(self, symbols: Sequence[str]) -> Grant:
        """Credits for one quote of each symbol, as many as the minute and the day still allow
        (at most one per symbol), and the symbols they are for, next in the rotation."""
        wanted = len(symbols)
        granted = wanted
        held: list[Window] = []
        for window in windows(self._clock(), self.limits):
            if granted == 0:
                break
            total = self._add(window, granted)
            fits = allowed(total, granted, window.limit)
            excess = granted - fits
            if excess:
                for counter in (*held, window):
                    self._add(counter, -excess)
            held.append(window)
            granted = fits
        if granted == 0:
            return Grant(wanted, 0)
        handed_out = self._advance_rotation(granted)
        return Grant(wanted, granted, rotation(symbols, handed_out, granted))

    def _add(self, window: Window, credits: int) -> int:
        response = self._update(
            {"pk": {"S": LEDGER_PK}, "sk": {"S": window.sort_key}},
            f"ADD #used :credits SET {TTL_ATTRIBUTE} = if_not_exists({TTL_ATTRIBUTE}, :expires)",
            {":credits": {"N": str(credits)}, ":expires": {"N": str(window.expires_at)}},
            names={"#used": "used"},
        )
        return int(response["Attributes"]["used"]["N"])

    def _advance_rotation(self, count: int) -> int:
        response = self._update(
            {"pk": {"S": LEDGER_PK}, "sk": {"S": ROTATION_SK}},
            "ADD #next :count",
            {":count": {"N": str(count)}},
            names={"#next": "next"},
        )
        return int(response["Attributes"]["next"]["N"])

    def _update(
        self, key: dict[str, Any], expression: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        from tickwatch_core.aws import AWS_ERRORS, describe_aws_error

        try:
            return self._dynamodb().update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
                # The whole item: UPDATED_NEW would do on DynamoDB, but moto (the local stack)
                # can leave a counter out of it when two adds race.
                ReturnValues="ALL_NEW",
            )
        except AWS_ERRORS as error:
            raise CreditLedgerUnavailable(
                f"the credit ledger in {self.table_name} could not be updated: {describe_aws_error(error)}"
            ) from None
