"""Scheduled invocations (EventBridge rules and EventBridge Scheduler), which moto does not run.

Every `Schedule` and `ScheduleV2` event of a function in template.yaml becomes a `Schedule`; a
`ScheduleRunner` invokes each function at its fire times with the event AWS sends:

* `Schedule` (an EventBridge rule): the "Scheduled Event" whose `time` is the fire time (not the
  moment the function starts), or the `Input` property's JSON when the event sets one;
* `ScheduleV2` (EventBridge Scheduler): the `Input` property's JSON, or an empty object.

Invocations are asynchronous, as EventBridge's are: each runs in a thread of its own, and a failed
one is logged and recorded, never raised into the runner. A fire time missed while the machine was
asleep is not made up, as on AWS: the runner fires once and goes on from the next time in the future.

Schedule expressions follow AWS: `rate(N unit)`, `cron(Minutes Hours Day-of-month Month
Day-of-week Year)` and (ScheduleV2) `at(yyyy-mm-ddThh:mm:ss)`. The cron wildcards L, W and # are
refused with a message saying so. An empty expression (a parameter left empty), `Enabled: false` or
`State: DISABLED` disables a schedule: it never fires on its own, but `fire()` still invokes it.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tickwatch.local.functions import Invocation, LocalFunction
from tickwatch.template import Template

logger = logging.getLogger(__name__)

SCHEDULE_EVENT_TYPES = ("Schedule", "ScheduleV2")
# The runner looks at the clock at least this often, so a wall-clock jump (a laptop waking up) is
# noticed soon even while it waits for a fire time an hour away.
MAX_WAIT_SECONDS = 30.0
_LAST_YEAR = 2199  # the last year a cron expression can name

# --- schedule expressions -----------------------------------------------------------------------

_RATE = re.compile(r"rate\(\s*(\S+)\s+(\S+)\s*\)")
_RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_CRON = re.compile(r"cron\((.*)\)")
_AT = re.compile(r"at\((.*)\)")
_MONTHS = {
    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
    "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
}  # fmt: skip
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_UNSUPPORTED = re.compile(r"\d*[LW]|LW|\d*#\d*", re.IGNORECASE)  # last, weekday, nth: L, 15W, 5L, 6#3


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]
    may_be_unspecified: bool = False  # `?`: Day-of-month and Day-of-week only


_CRON_FIELDS = (
    _Field("Minutes", 0, 59, {}),
    _Field("Hours", 0, 23, {}),
    _Field("Day-of-month", 1, 31, {}, may_be_unspecified=True),
    _Field("Month", 1, 12, _MONTHS),
    _Field("Day-of-week", 1, 7, _WEEKDAYS, may_be_unspecified=True),
    _Field("Year", 1970, _LAST_YEAR, {}),
)


@dataclass(frozen=True, slots=True)
class Rate:
    """`rate(N unit)`: every N units, counted from when the schedule started."""

    period: timedelta

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        return after + self.period


@dataclass(frozen=True, slots=True)
class At:
    """`at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time of the schedule's time zone."""

    when: datetime  # naive: a wall-clock time

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        fire = self.when.replace(tzinfo=zone).astimezone(UTC)
        return fire if fire > after else None


@dataclass(frozen=True, slots=True)
class Cron:
    """`cron(...)`: each field as the set of values it allows; None for `?` (and `*` years)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int] | None
    months: tuple[int, ...]
    days_of_week: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday
    years: frozenset[int] | None

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        # Wall-clock times of another zone are not monotonic in UTC around a daylight saving change:
        # start a little earlier and keep the first time that is really after `after`.
        start = local if zone.key == "UTC" else local - timedelta(hours=3)
        for wall in self._wall_times(start):
            fire = wall.replace(tzinfo=zone).astimezone(UTC)
            if fire.astimezone(zone).replace(tzinfo=None) != wall:
                continue  # skipped by a daylight saving change: that time does not exist there
            if fire > after:
                return fire
        return None

    def _wall_times(self, start: datetime) -> Iterator[datetime]:
        """Every wall-clock time the expression matches, from `start` (a whole minute) on."""
        last_year = max(self.years) if self.years is not None else _LAST_YEAR
        for year in range(start.year, last_year + 1):
            if self.years is not None and year not in self.years:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in range(1, calendar.monthrange(year, month)[1] + 1):
                    if date(year, month, day) < start.date() or not self._day_matches(date(year, month, day)):
                        continue
                    for hour in self.hours:
                        for minute in self.minutes:
                            wall = datetime(year, month, day, hour, minute)
                            if wall >= start:
                                yield wall

    def _day_matches(self, day: date) -> bool:
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return day.isoweekday() % 7 + 1 in self.days_of_week  # isoweekday: Monday 1 ... Sunday 7


type Expression = Rate | Cron | At


def parse_expression(expression: str) -> Expression:
    """A schedule expression, checked as AWS checks it; ValueError saying what is wrong."""
    text = expression.strip()
    if match := _RATE.fullmatch(text):
        return _parse_rate(text, *match.groups())
    if match := _CRON.fullmatch(text):
        return _parse_cron(text, match.group(1))
    if match := _AT.fullmatch(text):
        try:
            return At(datetime.strptime(match.group(1).strip(), "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            raise ValueError(f"{text}: the time must be yyyy-mm-ddThh:mm:ss") from None
    raise ValueError(
        f"{expression!r} is not a schedule expression: expected rate(value unit), "
        "cron(Minutes Hours Day-of-month Month Day-of-week Year) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _parse_rate(text: str, value: str, unit: str) -> Rate:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{text}: the value must be a whole number of at least 1")
    count = int(value)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise ValueError(f"{text}: the unit must be minute(s), hour(s) or day(s), not {unit!r}")
    if count == 1 and unit != singular:
        raise ValueError(f"{text}: a value of 1 takes the singular unit, rate(1 {singular})")
    if count > 1 and unit == singular:
        raise ValueError(f"{text}: a value above 1 takes the plural unit, rate({count} {singular}s)")
    return Rate(_RATE_UNITS[singular] * count)


def _parse_cron(text: str, body: str) -> Cron:
    parts = body.split()
    if len(parts) != len(_CRON_FIELDS):
        names = " ".join(field.name for field in _CRON_FIELDS)
        raise ValueError(f"{text}: expected {len(_CRON_FIELDS)} fields ({names}), got {len(parts)}")
    values = [_parse_field(text, part, field) for part, field in zip(parts, _CRON_FIELDS, strict=True)]
    minutes, hours, days_of_month, months, days_of_week, years = values
    if (days_of_month is None) == (days_of_week is None):
        raise ValueError(f"{text}: one of Day-of-month and Day-of-week must be ? and the other not")
    return Cron(
        minutes=tuple(sorted(minutes or ())),  # never None: ? is refused outside the day fields
        hours=tuple(sorted(hours or ())),
        days_of_month=days_of_month,
        months=tuple(sorted(months or ())),
        days_of_week=days_of_week,
        years=None if parts[5] == "*" else years,
    )


def _parse_field(text: str, part: str, field: _Field) -> frozenset[int] | None:
    """The values one cron field allows; None for `?`."""
    if part == "?":
        if not field.may_be_unspecified:
            raise ValueError(f"{text}: ? is only allowed in Day-of-month or Day-of-week, not in {field.name}")
        return None
    allowed: set[int] = set()
    for item in part.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{text}: {field.name} {item!r}: the step after / must be a whole number >= 1")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _field_value(text, first, field), _field_value(text, last, field)
            if low > high:
                raise ValueError(f"{text}: {field.name} range {base!r} runs backwards")
        else:
            low = _field_value(text, base, field)
            high = field.high if slash else low  # a/n: from a on, every n
        allowed.update(range(low, high + 1, step))
    return frozenset(allowed)


def _field_value(text: str, token: str, field: _Field) -> int:
    upper = token.upper()
    if upper in field.names:
        return field.names[upper]
    if not token.isdigit():
        if _UNSUPPORTED.fullmatch(token):
            raise ValueError(
                f"{text}: {field.name} {token!r}: the wildcards L, W and # are not supported by the local scheduler"
            )
        named = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise ValueError(f"{text}: {field.name} {token!r} is not a number{named}")
    value = int(token)
    if not field.low <= value <= field.high:
        raise ValueError(f"{text}: {field.name} {value} is out of range {field.low}-{field.high}")
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def next_fire(expression: str, after: datetime, *, timezone: str = "UTC") -> datetime | None:
    """The first fire time (UTC) strictly after `after` (UTC if naive), or None when the schedule
    never fires again (a past `at(...)`, cron years that are over). `timezone` is ScheduleV2's
    ScheduleExpressionTimezone: cron and at() read wall-clock times there."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    return parse_expression(expression).next_after(after.astimezone(UTC), _zone(timezone))


# --- the template's schedules -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """One Schedule or ScheduleV2 event of a function, its properties resolved."""

    function_id: str
    event_name: str
    expression: str  # "" when a parameter leaves it empty: disabled
    input: str | None = None  # the Input property (JSON text): sent instead of the scheduled event
    event_type: str = "Schedule"  # or "ScheduleV2"
    enabled: bool = True  # False: `Enabled: false`, `State: DISABLED` or no expression
    timezone: str = "UTC"
    resource_arn: str = ""  # the EventBridge rule's (or the Scheduler schedule's) ARN
    region: str = "us-east-1"
    account_id: str = "123456789012"

    @property
    def name(self) -> str:
        return f"{self.function_id}.{self.event_name}"

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time after `after`; None when disabled or over."""
        if not self.enabled:
            return None
        return next_fire(self.expression, after, timezone=self.timezone)

    def first_fire(self, start: datetime) -> datetime | None:
        """The first fire time of a schedule that starts at `start`. EventBridge Scheduler begins a
        rate schedule with no StartDate at once; a rule's rate first fires one period later."""
        if self.enabled and self.event_type == "ScheduleV2" and isinstance(parse_expression(self.expression), Rate):
            return start
        return self.next_fire(start)

    def event(self, fire_time: datetime) -> Any:
        """What the function receives for the fire at `fire_time`."""
        if self.input is not None:
            return json.loads(self.input)
        if self.event_type == "ScheduleV2":
            return {}
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [self.resource_arn],
            "detail": {},
        }


def read_schedules(template: Template) -> list[Schedule]:
    """Every Schedule and ScheduleV2 event of the template's functions, in template order, the
    disabled ones included (they can still be fired by hand). ValueError for a bad expression,
    time zone or Input, naming the event."""
    schedules = []
    for function_id in template.logical_ids("AWS::Serverless::Function"):
        events = template.resources[function_id].get("Properties", {}).get("Events", {})
        for event_name, event in events.items():
            # Only these events are resolved: the others may refer to resources not created yet.
            if event.get("Type") in SCHEDULE_EVENT_TYPES:
                properties = event.get("Properties", {})
                schedules.append(_schedule(template, function_id, event_name, event["Type"], properties))
    return schedules


def _schedule(template: Template, function_id: str, event_name: str, event_type: str, raw: Any) -> Schedule:
    properties = template.resolve(raw)
    where = f"{function_id} event {event_name}"
    key = "Schedule" if event_type == "Schedule" else "ScheduleExpression"
    expression = str(properties.get(key) or "").strip()
    disabled = str(properties.get("Enabled", True)).lower() == "false" or properties.get("State") == "DISABLED"
    timezone = str(properties.get("ScheduleExpressionTimezone") or "UTC")
    input_text = properties.get("Input")
    try:
        if expression:
            parse_expression(expression)
        _zone(timezone)
        if input_text is not None:
            input_text = input_text if isinstance(input_text, str) else json.dumps(input_text)
            json.loads(input_text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: Input is not valid JSON ({error})") from None
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if event_type == "Schedule":
        # SAM's rule is <Function><Event>; CloudFormation names it after the stack unless Name is set.
        rule = properties.get("Name") or template.physical_name(f"{function_id}{event_name}")
        arn = f"arn:aws:events:{template.region}:{template.account_id}:rule/{rule}"
    else:
        name = properties.get("Name") or template.physical_name(f"{function_id}{event_name}")
        group = properties.get("GroupName") or "default"
        arn = f"arn:aws:scheduler:{template.region}:{template.account_id}:schedule/{group}/{name}"
    return Schedule(
        function_id=function_id,
        event_name=event_name,
        expression=expression,
        input=input_text,
        event_type=event_type,
        enabled=bool(expression) and not disabled,
        timezone=timezone,
        resource_arn=arn,
        region=template.region,
        account_id=template.account_id,
    )


# --- running them -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """One invocation by a schedule (or by `fire()`) and how it ended."""

    function_id: str
    event_name: str
    scheduled: datetime  # the fire time the event carries
    error: str | None = None  # "Unhandled: ...", "TimedOut: ..." or the failure to load the handler
    manual: bool = False  # by `fire()`, not by the clock

    @property
    def ok(self) -> bool:
        return self.error is None


class ScheduledInvocationError(RuntimeError):
    """`fire()`'s invocation failed; `run` says how."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"{run.function_id} failed: {run.error}")
        self.run = run


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ScheduleRunner:
    """Invokes each enabled schedule's function at its fire times, in a daemon thread.

    `clock` says what time it is (aware datetimes); `sleep(seconds)` waits (default: until then or
    until `stop()`); `on_run` is called with every finished `Run`. Tests pass a fake clock whose
    sleep moves it on, and see hours of schedule in milliseconds.
    """

    def __init__(
        self,
        schedules: Iterable[Schedule],
        functions: Mapping[str, LocalFunction],
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], object] | None = None,
        on_run: Callable[[Run], None] | None = None,
    ) -> None:
        self.schedules = list(schedules)
        self.functions = functions
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._on_run = on_run
        self._lock = threading.Lock()
        self._runs: list[Run] = []
        self._in_flight: set[threading.Thread] = set()
        self._thread: threading.Thread | None = None
        missing = [s.name for s in self.schedules if s.enabled and s.function_id not in functions]
        if missing:
            raise ValueError(f"no function to invoke for the schedules {', '.join(missing)}")
        now = self._clock()
        self._next: dict[str, datetime | None] = {s.name: s.first_fire(now) for s in self.schedules if s.enabled}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ScheduleRunner:
        self._thread = threading.Thread(target=self._loop, name="schedules", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop firing; wait up to `timeout` s for invocations in flight (they are daemon threads)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.wait_idle(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            upcoming = self.run_due()
            if upcoming is None:  # nothing will ever fire again
                self._stopping.wait()
                return
            delay = (upcoming - self._clock()).total_seconds()
            if delay > 0:
                self._sleep(min(delay, MAX_WAIT_SECONDS))

    def run_due(self) -> datetime | None:
        """Start an invocation for every schedule due by now; the next fire time of any (None: none)."""
        now = self._clock()
        with self._lock:
            for schedule in self.schedules:
                due = self._next.get(schedule.name)
                if due is None or due > now:
                    continue
                self._dispatch(schedule, due)
                upcoming = schedule.next_fire(due)
                while upcoming is not None and upcoming <= now:  # missed while asleep: not made up
                    upcoming = schedule.next_fire(upcoming)
                self._next[schedule.name] = upcoming
            pending = [when for when in self._next.values() if when is not None]
        return min(pending, default=None)

    def _dispatch(self, schedule: Schedule, scheduled: datetime) -> None:
        """Invoke asynchronously, as EventBridge does."""

        def invoke() -> None:
            try:
                self._invoke(schedule, scheduled, manual=False)
            finally:
                with self._lock:
                    self._in_flight.discard(threading.current_thread())

        thread = threading.Thread(target=invoke, name=f"schedule-{schedule.name}", daemon=True)
        self._in_flight.add(thread)
        thread.start()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no scheduled invocation is in flight; False if some still are after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = next(iter(self._in_flight), None)
            if running is None:
                return True
            if time.monotonic() >= deadline:
                return False
            running.join(min(0.05, max(0.0, deadline - time.monotonic())))

    # -- invoking -------------------------------------------------------------------------------

    def fire(self, function_id: str, event_name: str | None = None) -> Any:
        """Invoke a function with its schedule's event, timed now, and wait: its response, or
        ScheduledInvocationError. Disabled schedules can be fired too (`tickwatch local trigger`)."""
        schedule = next(
            (
                s
                for s in self.schedules
                if s.function_id == function_id and (event_name is None or s.event_name == event_name)
            ),
            None,
        )
        if schedule is None or function_id not in self.functions:
            known = ", ".join(sorted({s.function_id for s in self.schedules if s.function_id in self.functions}))
            wanted = f"{function_id}.{event_name}" if event_name else function_id
            raise LookupError(f"{wanted} has no schedule to fire (scheduled functions: {known or 'none'})")
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        run, outcome = self._invoke(schedule, now, manual=True)
        if not run.ok:
            raise ScheduledInvocationError(run)
        return outcome.response if outcome is not None else None

    def _invoke(self, schedule: Schedule, scheduled: datetime, *, manual: bool) -> tuple[Run, Invocation | None]:
        outcome: Invocation | None = None
        failure: str | None = None
        try:
            outcome = self.functions[schedule.function_id].invoke(schedule.event(scheduled))
        except Exception as error:  # the handler did not even load: an invocation error all the same
            failure = f"{type(error).__name__}: {error}"
        if outcome is not None and outcome.error:
            failure = f"{outcome.error}: {outcome.error_message}"
        run = Run(schedule.function_id, schedule.event_name, scheduled, failure, manual)
        if failure and not manual:
            logger.warning("%s, scheduled %s, failed: %s", schedule.name, scheduled.isoformat(), failure)
        with self._lock:
            self._runs.append(run)
        if self._on_run is not None:
            self._on_run(run)
        return run, outcome

    # -- status ---------------------------------------------------------------------------------

    @property
    def runs(self) -> list[Run]:
        """Every invocation so far, in the order they ended."""
        with self._lock:
            return list(self._runs)

    def next_fires(self) -> dict[str, datetime | None]:
        """The next fire time of every enabled schedule, by `Function.Event`."""
        with self._lock:
            return dict(self._next)
