"""Scheduled invocations: EventBridge schedule expressions, the template's Schedule and ScheduleV2
events, and the runner that fires them (on a fake clock: hours of schedule in milliseconds)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tickwatch.local.functions import Invocation
from tickwatch.local.schedules import (
    Schedule,
    ScheduledInvocationError,
    ScheduleRunner,
    next_fire,
    parse_expression,
    read_schedules,
)
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.template import Template


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- expressions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2026, 11, 20, 15, 6, 59), utc(2026, 11, 20, 15, 7)),
        (utc(2026, 11, 20, 15, 7), utc(2026, 11, 20, 16, 7)),  # strictly after
        (utc(2026, 11, 20, 23, 30), utc(2026, 11, 21, 0, 7)),  # next day
        (utc(2026, 11, 30, 23, 8), utc(2026, 12, 1, 0, 7)),  # next month
        (utc(2026, 12, 31, 23, 59, 59), utc(2027, 1, 1, 0, 7)),  # next year
    ],
)
def test_the_compactor_cron_fires_at_minute_7_of_every_hour(after, expected):
    assert next_fire("cron(7 * * * ? *)", after) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # Day-of-week: names and numbers (1 = SUN), Friday afternoon -> Monday morning.
        ("cron(0 9 ? * MON-FRI *)", utc(2026, 11, 20, 10), utc(2026, 11, 23, 9)),
        ("cron(0 9 ? * 2-6 *)", utc(2026, 11, 20, 10), utc(2026, 11, 23, 9)),
        ("cron(0 9 ? * sun *)", utc(2026, 11, 20, 10), utc(2026, 11, 22, 9)),
        ("cron(0 12 ? * SAT,1 *)", utc(2026, 11, 22, 12), utc(2026, 11, 28, 12)),
        # Steps: */n, a/n, a-b/n.
        ("cron(0/15 * * * ? *)", utc(2026, 11, 20, 15, 16), utc(2026, 11, 20, 15, 30)),
        ("cron(*/20 * * * ? *)", utc(2026, 11, 20, 15, 41), utc(2026, 11, 20, 16)),
        ("cron(5/20 * * * ? *)", utc(2026, 11, 20, 15, 45), utc(2026, 11, 20, 16, 5)),
        ("cron(0 1/6 * * ? *)", utc(2026, 11, 20, 8), utc(2026, 11, 20, 13)),
        ("cron(0 8-17/4 * * ? *)", utc(2026, 11, 20, 16, 1), utc(2026, 11, 21, 8)),
        # Lists, month names, days of the month.
        ("cron(0,30 12 1,15 * ? *)", utc(2026, 11, 15, 12, 10), utc(2026, 11, 15, 12, 30)),
        ("cron(0,30 12 1,15 * ? *)", utc(2026, 11, 15, 12, 30), utc(2026, 12, 1, 12)),
        ("cron(0 0 1 JAN,jul ? *)", utc(2026, 7, 1, 0, 0, 1), utc(2027, 1, 1)),
        ("cron(0 0 31 * ? *)", utc(2026, 11, 1), utc(2026, 12, 31)),  # November has no 31st
        ("cron(0 0 29 2 ? *)", utc(2026, 3, 1), utc(2028, 2, 29)),  # the next leap year
        # Years.
        ("cron(0 0 1 1 ? 2028-2030)", utc(2026, 11, 20), utc(2028, 1, 1)),
        ("cron(0 0 1 1 ? 2027,2029)", utc(2027, 1, 1), utc(2029, 1, 1)),
        # Rates: from `after` on.
        ("rate(1 minute)", utc(2026, 11, 20, 15, 7, 30), utc(2026, 11, 20, 15, 8, 30)),
        ("rate(5 minutes)", utc(2026, 11, 20, 15, 7), utc(2026, 11, 20, 15, 12)),
        ("rate(2 hours)", utc(2026, 11, 20, 23), utc(2026, 11, 21, 1)),
        ("rate(1 day)", utc(2026, 12, 31, 12), utc(2027, 1, 1, 12)),
        # One-time (ScheduleV2).
        ("at(2026-12-24T18:00:00)", utc(2026, 11, 20), utc(2026, 12, 24, 18)),
    ],
)
def test_next_fire(expression, after, expected):
    assert next_fire(expression, after) == expected


@pytest.mark.parametrize(
    "expression",
    ["cron(0 0 1 1 ? 2020-2025)", "at(2026-01-01T00:00:00)"],
)
def test_a_schedule_that_is_over_never_fires_again(expression):
    assert next_fire(expression, utc(2026, 11, 20)) is None


def test_a_naive_time_is_read_as_utc():
    assert next_fire("cron(7 * * * ? *)", datetime(2026, 11, 20, 15)) == utc(2026, 11, 20, 15, 7)


def test_a_time_zone_follows_daylight_saving_time():
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert next_fire("cron(0 9 * * ? *)", utc(2026, 11, 20), timezone="America/New_York") == utc(2026, 11, 20, 14)
    assert next_fire("cron(0 9 * * ? *)", utc(2026, 7, 1), timezone="America/New_York") == utc(2026, 7, 1, 13)


def test_a_wall_clock_time_skipped_in_spring_does_not_fire_and_one_repeated_in_autumn_fires_once():
    # New York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00.
    spring = next_fire("cron(30 2 * * ? *)", utc(2026, 3, 7, 12), timezone="America/New_York")
    assert spring == utc(2026, 3, 9, 6, 30)  # not on the 8th
    autumn = next_fire("cron(30 1 * * ? *)", utc(2026, 11, 1, 4), timezone="America/New_York")
    assert autumn == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert next_fire("cron(30 1 * * ? *)", autumn, timezone="America/New_York") == utc(2026, 11, 2, 6, 30)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "is not a schedule expression"),
        ("every hour", "expected rate(value unit), cron("),
        ("rate(0 minutes)", "whole number of at least 1"),
        ("rate(-5 minutes)", "whole number of at least 1"),
        ("rate(1 minutes)", "a value of 1 takes the singular unit, rate(1 minute)"),
        ("rate(5 minute)", "a value above 1 takes the plural unit, rate(5 minutes)"),
        ("rate(2 weeks)", "the unit must be minute(s), hour(s) or day(s)"),
        ("cron(7 * * * ?)", "expected 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), got 5"),
        ("cron(0 12 * * * *)", "one of Day-of-month and Day-of-week must be ? and the other not"),
        ("cron(0 12 ? * ? *)", "one of Day-of-month and Day-of-week must be ? and the other not"),
        ("cron(? 12 * * ? *)", "? is only allowed in Day-of-month or Day-of-week, not in Minutes"),
        ("cron(60 * * * ? *)", "Minutes 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "Hours 24 is out of range 0-23"),
        ("cron(0 0 ? * 0 *)", "Day-of-week 0 is out of range 1-7"),
        ("cron(0 0 1 13 ? *)", "Month 13 is out of range 1-12"),
        ("cron(0 0 1 1 ? 1969)", "Year 1969 is out of range 1970-2199"),
        ("cron(0 0 ? * FRI-MON *)", "Day-of-week range 'FRI-MON' runs backwards"),
        ("cron(0/0 * * * ? *)", "the step after / must be a whole number >= 1"),
        ("cron(0 0 ? * MONDAY *)", "Day-of-week 'MONDAY' is not a number or a name (SUN, MON"),
        ("cron(0 0 L * ? *)", "the wildcards L, W and # are not supported by the local scheduler"),
        ("cron(0 0 15W * ? *)", "the wildcards L, W and # are not supported"),
        ("cron(0 0 ? * 6#3 *)", "the wildcards L, W and # are not supported"),
        ("cron(0 0 ? * 5L *)", "the wildcards L, W and # are not supported"),
        ("at(2026-12-24 18:00)", "the time must be yyyy-mm-ddThh:mm:ss"),
    ],
)
def test_a_bad_expression_is_refused_with_a_message_saying_why(expression, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_expression(expression)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        next_fire("rate(1 hour)", utc(2026, 11, 20), timezone="Mars/Olympus")


# --- the template's schedules -------------------------------------------------------------------


def test_the_template_schedules_the_compactor_hourly():
    template = Template.load()
    (compactor,) = [s for s in read_schedules(template) if s.function_id == "CompactorFunction"]
    assert compactor.event_name == "Hourly"
    assert compactor.expression == "cron(7 * * * ? *)"
    assert compactor.enabled
    assert compactor.next_fire(utc(2026, 11, 20, 15, 30)) == utc(2026, 11, 20, 16, 7)


def test_the_compactor_gets_eventbridges_scheduled_event_timed_at_the_fire_time():
    template = Template.load()
    (compactor,) = [s for s in read_schedules(template) if s.function_id == "CompactorFunction"]
    event = compactor.event(utc(2026, 11, 20, 15, 7))
    assert event == {
        "version": "0",
        "id": event["id"],
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-20T15:07:00Z",
        "region": template.region,
        "resources": [f"arn:aws:events:{template.region}:123456789012:rule/tickwatch-local-compactorfunctionhourly"],
        "detail": {},
    }
    assert uuid.UUID(event["id"])
    assert compactor.event(utc(2026, 11, 20, 15, 7))["id"] != event["id"]


def schedule_template(events: dict, parameters: dict | None = None, overrides: dict | None = None) -> Template:
    """A template with one function and these events."""
    body = {
        "Parameters": parameters or {},
        "Resources": {"ProducerFunction": {"Type": "AWS::Serverless::Function", "Properties": {"Events": events}}},
    }
    return Template(body, parameter_overrides=overrides or {})


def test_an_empty_expression_parameter_disables_the_schedule_until_it_is_set():
    parameters = {"ProducerSchedule": {"Type": "String", "Default": ""}}
    events = {"Tick": {"Type": "Schedule", "Properties": {"Schedule": {"Ref": "ProducerSchedule"}}}}
    (disabled,) = read_schedules(schedule_template(events, parameters))
    assert not disabled.enabled
    assert disabled.next_fire(utc(2026, 11, 20)) is None

    overridden = schedule_template(events, parameters, {"ProducerSchedule": "rate(5 minutes)"})
    (enabled,) = read_schedules(overridden)
    assert enabled.enabled
    assert enabled.next_fire(utc(2026, 11, 20)) == utc(2026, 11, 20, 0, 5)


@pytest.mark.parametrize(
    "event",
    [
        {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)", "Enabled": False}},
        {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)", "Enabled": "false"}},
        {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)", "State": "DISABLED"}},
        {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 hour)", "State": "DISABLED"}},
    ],
)
def test_a_disabled_schedule_never_fires(event):
    (schedule,) = read_schedules(schedule_template({"Tick": event}))
    assert not schedule.enabled
    assert schedule.next_fire(utc(2026, 11, 20)) is None


def test_input_replaces_the_scheduled_event_and_schedulev2_sends_an_empty_object_without_it():
    events = {
        "RuleWithInput": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)", "Input": '{"symbols": 3}'}},
        "Scheduler": {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 hour)"}},
        "SchedulerWithInput": {
            "Type": "ScheduleV2",
            "Properties": {"ScheduleExpression": "cron(0 9 * * ? *)", "Input": '{"mode": "open"}'},
        },
        "NotASchedule": {"Type": "Kinesis", "Properties": {"Stream": {"Fn::GetAtt": ["TickStream", "Arn"]}}},
    }
    schedules = {s.event_name: s for s in read_schedules(schedule_template(events))}
    assert set(schedules) == {"RuleWithInput", "Scheduler", "SchedulerWithInput"}
    fire_time = utc(2026, 11, 20, 15)
    assert schedules["RuleWithInput"].event(fire_time) == {"symbols": 3}
    assert schedules["Scheduler"].event(fire_time) == {}
    assert schedules["SchedulerWithInput"].event(fire_time) == {"mode": "open"}


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"Schedule": "rate(1 minutes)"}, "ProducerFunction event Tick: rate(1 minutes): a value of 1 takes"),
        ({"Schedule": "rate(1 hour)", "Input": "{not json"}, "ProducerFunction event Tick: Input is not valid JSON"),
    ],
)
def test_a_bad_schedule_in_the_template_is_refused_naming_the_event(properties, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_schedules(schedule_template({"Tick": {"Type": "Schedule", "Properties": properties}}))


# --- the runner ---------------------------------------------------------------------------------


class ScriptedFunction:
    """Stands in for a LocalFunction: records each event, answers with `behaviour(event)`; an
    exception from it is the function's error, reported as Lambda reports it."""

    def __init__(self, behaviour=None):
        self.behaviour = behaviour or (lambda event: {"ok": True})
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def invoke(self, event) -> Invocation:
        with self.lock:
            self.events.append(event)
        try:
            return Invocation(str(uuid.uuid4()), response=self.behaviour(event))
        except Exception as error:
            return Invocation(str(uuid.uuid4()), error="Unhandled", error_message=f"{type(error).__name__}: {error}")


class FakeClock:
    """Time that moves only when the runner sleeps, up to `end`; there it idles in real time."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.now, self.end = start, end

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.now >= self.end:
            time.sleep(0.005)
        self.now = min(self.now + timedelta(seconds=seconds), self.end)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


COMPACTOR = Schedule(
    "CompactorFunction",
    "Hourly",
    "cron(7 * * * ? *)",
    resource_arn="arn:aws:events:us-east-1:123456789012:rule/hourly",
)


def test_the_runner_fires_at_each_scheduled_time_with_that_time_in_the_event():
    function = ScriptedFunction()
    clock = FakeClock(utc(2026, 11, 20, 14, 50), end=utc(2026, 11, 20, 17, 30))
    runner = ScheduleRunner([COMPACTOR], {"CompactorFunction": function}, clock=clock, sleep=clock.sleep).start()
    try:
        assert wait_for(lambda: clock.now == clock.end and len(runner.runs) == 3)
    finally:
        runner.stop()

    fired = [utc(2026, 11, 20, hour, 7) for hour in (15, 16, 17)]
    assert sorted(run.scheduled for run in runner.runs) == fired
    assert all(run.ok and not run.manual for run in runner.runs)
    assert sorted(event["time"] for event in function.events) == [
        "2026-11-20T15:07:00Z",
        "2026-11-20T16:07:00Z",
        "2026-11-20T17:07:00Z",
    ]
    assert {event["detail-type"] for event in function.events} == {"Scheduled Event"}
    assert {event["resources"][0] for event in function.events} == {COMPACTOR.resource_arn}
    assert runner.next_fires() == {"CompactorFunction.Hourly": utc(2026, 11, 20, 18, 7)}


def test_a_late_fire_still_carries_the_scheduled_time_and_missed_times_are_not_made_up():
    function = ScriptedFunction()
    clock = FakeClock(utc(2026, 11, 20, 14, 50), end=utc(2026, 11, 21))
    runner = ScheduleRunner([COMPACTOR], {"CompactorFunction": function}, clock=clock)
    clock.now = utc(2026, 11, 20, 19, 42)  # asleep since before 15:07
    assert runner.run_due() == utc(2026, 11, 20, 20, 7)
    assert runner.wait_idle()

    (run,) = runner.runs
    assert run.scheduled == utc(2026, 11, 20, 15, 7)
    assert [event["time"] for event in function.events] == ["2026-11-20T15:07:00Z"]


def test_a_failing_invocation_is_recorded_and_the_runner_goes_on():
    calls = []

    def fail_the_first_time(event):
        calls.append(event["time"])
        if len(calls) == 1:
            raise RuntimeError("DuckDB ran out of memory")
        return {"compacted": []}

    class Unloadable:
        def invoke(self, event):
            raise ImportError("No module named 'duckdb'")

    every_ten_minutes = Schedule("BrokenFunction", "Often", "cron(0/10 * * * ? *)")
    clock = FakeClock(utc(2026, 11, 20, 14, 50), end=utc(2026, 11, 20, 16, 30))
    runner = ScheduleRunner(
        [COMPACTOR, every_ten_minutes],
        {"CompactorFunction": ScriptedFunction(fail_the_first_time), "BrokenFunction": Unloadable()},
        clock=clock,
        sleep=clock.sleep,
    ).start()
    try:
        assert wait_for(lambda: clock.now == clock.end and len(runner.runs) == 2 + 10)
    finally:
        runner.stop()

    compactor = sorted((r for r in runner.runs if r.function_id == "CompactorFunction"), key=lambda r: r.scheduled)
    assert [(run.scheduled, run.ok) for run in compactor] == [
        (utc(2026, 11, 20, 15, 7), False),
        (utc(2026, 11, 20, 16, 7), True),
    ]
    assert compactor[0].error == "Unhandled: RuntimeError: DuckDB ran out of memory"
    broken = [r for r in runner.runs if r.function_id == "BrokenFunction"]
    assert len(broken) == 10
    assert {run.error for run in broken} == {"ImportError: No module named 'duckdb'"}


def test_fire_invokes_now_and_returns_the_response():
    function = ScriptedFunction(lambda event: {"compacted": ["2026-11-20T14:00:00+00:00"]})
    clock = FakeClock(utc(2026, 11, 20, 15, 31, 12, 500_000), end=utc(2026, 11, 21))
    runner = ScheduleRunner([COMPACTOR], {"CompactorFunction": function}, clock=clock)

    assert runner.fire("CompactorFunction") == {"compacted": ["2026-11-20T14:00:00+00:00"]}

    assert [event["time"] for event in function.events] == ["2026-11-20T15:31:12Z"]
    (run,) = runner.runs
    assert run.manual
    assert run.ok


def test_fire_raises_the_functions_error():
    runner = ScheduleRunner([COMPACTOR], {"CompactorFunction": ScriptedFunction(lambda event: 1 / 0)})
    with pytest.raises(ScheduledInvocationError, match="CompactorFunction failed: Unhandled: ZeroDivisionError"):
        runner.fire("CompactorFunction")
    assert not runner.runs[0].ok


def test_a_disabled_schedule_can_still_be_fired_by_hand():
    function = ScriptedFunction()
    disabled = Schedule("ProducerFunction", "Tick", "", event_type="ScheduleV2", input='{"burst": 10}', enabled=False)
    runner = ScheduleRunner([disabled], {"ProducerFunction": function})
    assert runner.next_fires() == {}
    runner.fire("ProducerFunction")
    assert function.events == [{"burst": 10}]


def test_fire_refuses_a_function_without_a_schedule():
    runner = ScheduleRunner([COMPACTOR], {"CompactorFunction": ScriptedFunction()})
    with pytest.raises(LookupError, match=r"QueryFunction has no schedule to fire \(scheduled functions: Compactor"):
        runner.fire("QueryFunction")


def test_a_schedulev2_rate_begins_at_once():
    clock = FakeClock(utc(2026, 11, 20, 15, 0, 30), end=utc(2026, 11, 21))
    every_five = Schedule("ProducerFunction", "Tick", "rate(5 minutes)", event_type="ScheduleV2")
    runner = ScheduleRunner([every_five], {"ProducerFunction": ScriptedFunction()}, clock=clock)
    assert runner.next_fires() == {"ProducerFunction.Tick": utc(2026, 11, 20, 15, 0, 30)}
    assert runner.run_due() == utc(2026, 11, 20, 15, 5, 30)


# --- in the local stack -------------------------------------------------------------------------


def test_the_local_stack_schedules_the_compactor_and_can_fire_it(tmp_path):
    stack = LocalStack(LocalStackOptions(outbox=tmp_path / "outbox")).start()
    try:
        assert stack.schedules is not None
        (fire_time,) = stack.schedules.next_fires().values()
        assert list(stack.schedules.next_fires()) == ["CompactorFunction.Hourly"]
        assert fire_time.minute == 7
        assert timedelta(0) < fire_time - datetime.now(UTC) <= timedelta(hours=1)

        # An empty raw bucket: nothing to compact, and no error.
        assert stack.schedules.fire("CompactorFunction") == {"compacted": [], "left_for_later": []}
    finally:
        stack.stop()
