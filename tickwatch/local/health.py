"""What the template's alarms would say about the local stack.

The alarms of template.yaml that the local stack can evaluate, on its own counts: a function's
errors (since the stack started, where CloudWatch counts per minute), a stream consumer's iterator
age (its event source mapping's last batch, as Lambda reports it), and a failure queue's depth
(the emulator's queue). The others (throttling, the API's 5xx rate) have nothing local to measure
and are not listed. `local up` writes the states next to its state file every few seconds, for
`tickwatch status`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tickwatch.local.state import state_path


@dataclass(frozen=True, slots=True)
class AlarmState:
    alarm: str  # the alarm's logical id in template.yaml
    firing: bool
    value: str  # what was measured, in words
    threshold: str

    @property
    def state(self) -> str:
        return "ALARM" if self.firing else "OK"


def evaluate(stack: Any) -> list[AlarmState]:
    """The template's alarms on function errors, iterator age and failure-queue depth, evaluated."""
    template = stack.template
    states = []
    for logical_id in template.logical_ids("AWS::CloudWatch::Alarm"):
        properties = template.resources[logical_id]["Properties"]
        watched = (properties.get("Namespace"), properties.get("MetricName"))
        dimension = properties.get("Dimensions", [{}])[0].get("Value")
        if watched == ("AWS/Lambda", "Errors"):
            function = stack.functions.get(dimension["Ref"])
            errors = function.errors if function is not None else 0
            states.append(AlarmState(logical_id, errors > 0, f"{errors} failed invocations since start", "> 0"))
        elif watched == ("AWS/Lambda", "IteratorAge"):
            limit = float(template.parameter("IteratorAgeAlarmSeconds"))
            ages = [m.stats.iterator_age_metric() for m in stack.mappings if m.function.logical_id == dimension["Ref"]]
            measured = [age for age in ages if age is not None]
            if not measured:
                states.append(AlarmState(logical_id, False, "idle: no batch in the last minute", f"> {limit:g} s"))
                continue
            age = max(measured)
            states.append(AlarmState(logical_id, age > limit, f"{age:.1f} s behind its stream", f"> {limit:g} s"))
        elif watched == ("AWS/SQS", "ApproximateNumberOfMessagesVisible"):
            queue_url = template.physical[dimension["Fn::GetAtt"][0]].ref
            attributes = stack.session.client("sqs").get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            depth = int(attributes["ApproximateNumberOfMessages"])
            states.append(AlarmState(logical_id, depth > 0, f"{depth} messages", "> 0"))
    return states


def summary_lines(states: list[AlarmState]) -> list[str]:
    """For the end of `tickwatch local`: the firing alarms, or that all are quiet."""
    firing = [state for state in states if state.firing]
    if not firing:
        return [f"  alarms             none of the {len(states)} alarms evaluated locally would fire"]
    lines = [f"  alarms             {len(firing)} of {len(states)} would fire:"]
    lines += [f"    ALARM {state.alarm}: {state.value} ({state.threshold})" for state in firing]
    return lines


def health_path() -> Path:
    """Where `local up` keeps the latest alarm states: beside its state file."""
    return state_path().with_name("local-alarms.json")


def write(states: list[AlarmState], path: Path | None = None) -> None:
    path = path or health_path()
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([asdict(state) for state in states]))
    os.replace(temporary, path)


def read(path: Path | None = None) -> list[AlarmState] | None:
    try:
        return [AlarmState(**entry) for entry in json.loads((path or health_path()).read_text())]
    except (OSError, ValueError, TypeError):
        return None
