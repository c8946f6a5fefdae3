"""`tickwatch local`: the demo (`make run`), `local up` / `local down`, and `local trigger`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any

from botocore.config import Config

from tickwatch.fetch.runner import Progress, run_fetch, stop_on_signals
from tickwatch.fetch.writer import KinesisWriter, Spool
from tickwatch.local import health
from tickwatch.local.faults import FaultPlan
from tickwatch.local.functions import LocalFunction
from tickwatch.local.history import compact_and_query
from tickwatch.local.inbox import ReceivedAlert
from tickwatch.local.ingest_demo import post_sample_ticks
from tickwatch.local.rule_file import RuleSpec, add_rules
from tickwatch.local.schedules import ScheduleRunner, read_schedules
from tickwatch.local.stack import LocalStack, LocalStackOptions, MotoServer
from tickwatch.local.state import LocalState, process_start, state_path
from tickwatch.template import Template
from tickwatch_core.domain.rules import Direction, RuleOptions, format_duration
from tickwatch_core.store.rule_store import RuleStore

CATCH_UP_TIMEOUT = 60.0
# Docker's default bridge gateway: the host as containers on the default network see it.
DOCKER_BRIDGE_GATEWAY = "172.17.0.1"


@dataclass(frozen=True, slots=True)
class DemoRule:
    symbol: str
    direction: Direction
    offset: Decimal  # relative to the start price
    cooldown_seconds: int | None
    notify: tuple[str, ...] = ()  # destinations; none: the alert topic's e-mail


# Close enough to the start prices that the simulator crosses them within a minute or two.
DEMO_RULES = (
    # These two also reach the demo's Slack and webhook destinations (the loopback receivers).
    DemoRule("AAPL", Direction.ABOVE, Decimal("0.003"), 30, ("email", "team", "hook")),
    DemoRule("TSLA", Direction.BELOW, Decimal("-0.003"), 30, ("email", "team", "hook")),
    DemoRule("NVDA", Direction.ABOVE, Decimal("0.006"), None),
    DemoRule("MSFT", Direction.BELOW, Decimal("-0.006"), None),
)


def add_demo_rules(store: RuleStore, start_prices: dict[str, Decimal]) -> list[str]:
    """The demo rules for the symbols being simulated (or their first four, if none of the usual)."""
    chosen = [rule for rule in DEMO_RULES if rule.symbol in start_prices]
    if not chosen:
        symbols = list(start_prices)[:4]
        chosen = [
            DemoRule(s, r.direction, r.offset, r.cooldown_seconds, r.notify)
            for s, r in zip(symbols, DEMO_RULES, strict=False)
        ]
    added = []
    for rule in chosen:
        threshold = (start_prices[rule.symbol] * (1 + rule.offset)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        from datetime import timedelta

        cooldown = timedelta(seconds=rule.cooldown_seconds) if rule.cooldown_seconds else None
        try:
            created = store.add(
                rule.symbol, rule.direction, threshold, cooldown=cooldown, options=RuleOptions(notify=rule.notify)
            )
        except ValueError:
            continue  # already there from an earlier run against the same emulator
        extra = f", cooldown {format_duration(created.cooldown)}" if created.cooldown else ""
        extra += f", to {', '.join(created.notify)}" if created.notify else ""
        added.append(f"{created.rule_id}{extra}")
    return added


DEMO_WEBHOOK_SECRET = "tickwatch-demo-signing-secret"


def add_demo_destinations(stack: LocalStack) -> list[str]:
    """A Slack destination `team` and a webhook `hook` on the stack's loopback receivers."""
    if stack.receivers is None:
        return []
    from tickwatch_core.domain.delivery.destinations import new_destination
    from tickwatch_core.store.destination_store import DestinationExistsError, DestinationStore

    names = stack.names()
    session = stack.session
    assert session is not None
    store = DestinationStore(
        session.client("dynamodb"),
        session.client("secretsmanager"),
        session.client("sns"),
        names["DeliveryTableName"],
        names["DestinationSecretPrefix"],
        names["AlertTopicArn"],
    )
    receivers = stack.receivers
    added = []
    for new in (
        new_destination("team", "slack", url=receivers.slack_url("team"), allow_loopback_http=True),
        new_destination(
            "hook", "webhook", url=receivers.webhook_url("hook"), secret=DEMO_WEBHOOK_SECRET, allow_loopback_http=True
        ),
    ):
        try:
            destination = store.add(new)
        except DestinationExistsError:
            continue  # from an earlier run against the same emulator
        added.append(f"{destination.name} ({destination.kind.value} {destination.target})")
    return added


def delivery_lines(stack: LocalStack, workdir: Path) -> list[str]:
    """Deliveries per destination: how many were delivered (how many in digests), failed, pending."""
    per_destination: dict[str, Counter[str]] = defaultdict(Counter)
    for delivery in stack.deliveries():
        counts = per_destination[delivery["destination"]]
        counts[delivery["status"]] += 1
        if delivery.get("digest_of"):
            counts["in digests"] += 1
    if not per_destination:
        return []
    lines = [f"  deliveries         (loopback receivers keep theirs in {workdir / 'receivers'}/)"]
    for destination, counts in sorted(per_destination.items()):
        words = ", ".join(f"{count:,} {status}" for status, count in sorted(counts.items()))
        lines.append(f"    {destination:<16} {words}")
    return lines


class Screen:
    """The terminal: alert lines above a live status line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.progress = Progress(out)

    def line(self, text: str) -> None:
        self.progress.problem(text)

    def alert(self, alert: ReceivedAlert) -> None:
        self.line(f"ALERT  {alert.subject}   -> {alert.path}")


@contextmanager
def function_output_to(path: Path) -> Iterator[IO[str]]:
    """Send what the handlers print (Powertools logs and metrics) to a file; yield the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    with path.open("a", encoding="utf-8", buffering=1) as log:
        sys.stdout = log
        try:
            yield terminal
        finally:
            sys.stdout = terminal


def run_demo(
    *,
    workdir: Path,
    build_provider: Callable[[Screen], Any],
    start_prices: dict[str, Decimal],
    demo_rules: bool,
    rules: list[RuleSpec] | None = None,
    count: int | None,
    duration: float | None,
    parameter_overrides: dict[str, str],
    kinesis_poll_interval: float | None = None,
    dynamodb_poll_interval: float | None = None,
    faults: FaultPlan | None = None,
    function_timeout: float | None = None,
) -> int:
    """Start the local stack, feed it, show alerts as they arrive, and summarise."""
    with function_output_to(workdir / "logs" / "functions.log") as terminal:
        screen = Screen(terminal)
        options = LocalStackOptions(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            parameter_overrides=parameter_overrides,
            outbox=workdir / "outbox",
            kinesis_poll_interval=kinesis_poll_interval,
            dynamodb_poll_interval=dynamodb_poll_interval,
            print_alert=screen.alert,
            faults=faults,
            function_timeout=function_timeout,
        )
        started = time.monotonic()
        run_started = datetime.now(UTC)
        stack = LocalStack(options).start()
        try:
            names = stack.names()
            screen.line(
                f"local AWS (moto) at {stack.endpoint_url}; "
                f"resources from template.yaml created in {time.monotonic() - started:.1f} s"
            )
            screen.line(
                f"  stream {names['TickStreamName']}, bucket {names['RawBucketName']}, table {names['MarketTableName']}"
            )
            screen.line(
                f"  function logs: {workdir / 'logs' / 'functions.log'}; alerts as e-mails: {workdir / 'outbox'}/"
            )
            if "QueryApiUrl" in names:
                screen.line(
                    f"  query API {names['QueryApiUrl']}  key {names['QueryApiKey']}  docs {names['QueryApiUrl']}/docs"
                )
                screen.line(f"    curl -H 'x-api-key: {names['QueryApiKey']}' {names['QueryApiUrl']}/quotes")
                screen.line(
                    f"    curl -H 'x-api-key: {names['QueryApiKey']}' -H 'Content-Type: application/json' "
                    f"--data @ticks.json {names['QueryApiUrl']}/ticks"
                )
            if "DashboardUrl" in names:
                screen.line(f"  live dashboard: {dashboard_link(names)}")
            if rules:
                added = add_rules(RuleStore(stack.session.client("dynamodb"), names["MarketTableName"]), rules)
                screen.line(f"  rules from the file: {'; '.join(added)}")
            if demo_rules:
                destinations = add_demo_destinations(stack)
                if destinations:
                    screen.line("  demo destinations (loopback receivers): " + "; ".join(destinations))
                store = RuleStore(stack.session.client("dynamodb"), names["MarketTableName"])
                added = add_demo_rules(store, start_prices)
                if added:
                    screen.line("  demo rules: " + "; ".join(added))
            provider = build_provider(screen)
            kinesis = stack.session.client("kinesis", config=Config(retries={"mode": "standard", "max_attempts": 1}))
            spool_path = workdir / "spool" / f"{names['TickStreamName']}.jsonl"
            if stack.server is not None:
                # Ticks an earlier demo could not send belong to that stack, not to this fresh one.
                for leftover in (spool_path, spool_path.with_name(spool_path.name + ".offset")):
                    leftover.unlink(missing_ok=True)
            writer = KinesisWriter(kinesis, names["TickStreamName"], Spool(spool_path))
            screen.progress.extra = lambda: _pipeline_status(stack)
            screen.line("running: Ctrl-C to stop" + (f", or it stops after {_seconds(duration)}" if duration else ""))
            stop = threading.Event()
            with stop_on_signals(stop):
                summary = run_fetch(provider, writer, screen.progress, count=count, duration=duration, stop=stop)
                if "QueryApiUrl" in names:
                    # The other way in: ticks over HTTPS, through the gateway and IngestFunction.
                    screen.line(post_sample_ticks(names["QueryApiUrl"], names["QueryApiKey"]))
                screen.line(f"fetch stopped by {summary.stopped_by}; letting the pipeline catch up ...")
                caught_up = stack.wait_until_caught_up(timeout=CATCH_UP_TIMEOUT)
            if stack.faults is not None:
                stack.faults.disable()
            stack.inbox.drain()
            summary_lines = _summary(stack, writer.stats.sent, summary.invalid, caught_up, workdir)
            summary_lines += "\n" + "\n".join(health.summary_lines(health.evaluate(stack)))
            summary_lines += "\n" + "\n".join(compact_and_query(stack, run_started, datetime.now(UTC), workdir))
            screen.progress.finish(summary_lines)
            return 0 if caught_up else 1
        finally:
            stack.stop()


def _pipeline_status(stack: LocalStack) -> str:
    processor = next((m for m in stack.mappings if m.settings.source == "Kinesis"), None)
    batches = sum(m.stats.batches for m in stack.mappings if m.settings.source == "Kinesis")
    lag = processor.stats.iterator_age() if processor else 0.0
    alerts = stack.inbox.count() if stack.inbox else 0
    return f"  | batches {batches:,}  lag {lag:.1f} s  alerts {alerts:,}"


def _summary(stack: LocalStack, sent: int, invalid: int, caught_up: bool, workdir: Path) -> str:
    raw = stack.raw_lines("raw/")
    raw_lines, distinct = len(raw), len({(line["shard_id"], line["sequence_number"]) for line in raw})
    quarantined = len(stack.raw_lines("quarantine/"))
    lines = [
        "",
        "summary" + ("" if caught_up else f" (the pipeline had not caught up after {CATCH_UP_TIMEOUT:.0f} s)"),
        f"  ticks sent         {sent:,}" + (f" ({invalid:,} invalid ones not sent)" if invalid else ""),
        f"  raw objects        {stack.object_count('raw/'):,} with {raw_lines:,} lines"
        + (f" ({distinct:,} distinct ticks; retries wrote some twice)" if distinct != raw_lines else ""),
        f"  quarantined        {quarantined:,}",
        f"  one-minute bars    {stack.count_items('BAR#'):,}",
        f"  latest quotes      {stack.count_items('QUOTE'):,}",
        f"  alerts             {stack.inbox.count() if stack.inbox else 0:,} in {workdir / 'outbox'}/",
    ]
    if stack.faults is not None:
        injected = ", ".join(f"{count} {kind}" for kind, count in sorted(stack.faults.injected.items())) or "none"
        lines.append(f"  faults injected    {injected}")
    lines += delivery_lines(stack, workdir)
    for mapping in stack.mappings:
        stats = mapping.stats
        if stats.retries or stats.sent_to_on_failure:
            lines.append(
                f"  {mapping.settings.name}: {stats.retries} retries, "
                f"{stats.sent_to_on_failure} records to the failure queue"
            )
    return "\n".join(lines)


def _seconds(duration: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=duration))


# --- local up / down -----------------------------------------------------------------------------


def dashboard_link(outputs: dict[str, str]) -> str:
    """The dashboard's URL with the key in its fragment: the browser keeps it, no server sees it."""
    return f"{outputs['DashboardUrl']}#key={outputs['QueryApiKey']}"


def run_up(
    *,
    workdir: Path,
    host: str,
    port: int,
    parameter_overrides: dict[str, str],
    secrets: dict[str, str] | None = None,
) -> int:
    """Keep a local stack running until Ctrl-C, SIGTERM or `tickwatch local down`. `secrets` are
    created in the emulator's Secrets Manager (see `producer_api_key_secret`)."""
    existing = LocalState.read()
    if existing is not None:
        print(
            f"a local stack is already running at {existing.endpoint_url} (pid {existing.pid}); "
            "stop it with: tickwatch local down",
            file=sys.stderr,
        )
        return 1
    with function_output_to(workdir / "logs" / "functions.log") as terminal:
        screen = Screen(terminal)
        options = LocalStackOptions(
            host=host,
            port=port,
            # The query API, the WebSocket API and the dashboard next to the emulator.
            api_port=port + 1 if port else 0,
            live_port=port + 2 if port else 0,
            dashboard_port=port + 3 if port else 0,
            parameter_overrides=parameter_overrides,
            outbox=workdir / "outbox",
            print_alert=screen.alert,
            secrets=dict(secrets or {}),
        )
        try:
            stack = LocalStack(options).start()
        except OSError as error:
            screen.line(
                f"cannot listen on {host}:{port} (the emulator) or {port + 1}-{port + 3} (the query API, the "
                f"WebSocket API, the dashboard): {error.strerror}; "
                "pass --port"
            )
            return 1
        state = LocalState(
            stack.endpoint_url,
            stack.template.region,
            os.getpid(),
            stack.names(),
            str((workdir / "outbox").resolve()),
            parameters=dict(parameter_overrides),
            started=process_start(os.getpid()),
        )
        state.write()
        bridge = _listen_on_docker_bridge(port, screen) if host in ("127.0.0.1", "localhost") else None
        try:
            screen.line(f"local stack up at {stack.endpoint_url}; state in {state_path()}")
            for key, value in state.outputs.items():
                screen.line(f"  {key:26} {value}")
            screen.line(
                "every tickwatch command now uses it (for example: tickwatch fetch, "
                "tickwatch rules add AAPL --above 230)"
            )
            if "QueryApiUrl" in state.outputs:
                url, key = state.outputs["QueryApiUrl"], state.outputs["QueryApiKey"]
                screen.line(f"query API: curl -H 'x-api-key: {key}' {url}/quotes  (or: tickwatch api-key)")
            if "DashboardUrl" in state.outputs:
                screen.line(f"live dashboard: {dashboard_link(state.outputs)}")
            for schedule in stack.schedules.schedules if stack.schedules else ():
                if schedule.enabled:
                    screen.line(f"scheduled: {schedule.function_id} at {schedule.expression} (UTC)")
                else:
                    trigger = f"tickwatch local trigger {schedule.function_id}"
                    screen.line(f"schedule disabled: {schedule.function_id} (run it now: {trigger})")
            screen.line(
                f"SQL over the history: tickwatch history compact --since {datetime.now(UTC):%Y-%m-%d}, "
                "then tickwatch sql --list"
            )
            screen.line("stop with Ctrl-C or: tickwatch local down")
            screen.line("alarms: tickwatch status shows what the template's alarms would say")
            stop = threading.Event()
            with stop_on_signals(stop):
                _watch_alarms(stack, screen, stop)
        finally:
            health.health_path().unlink(missing_ok=True)
            LocalState.remove()
            if bridge is not None:
                bridge.stop()
            stack.stop()
        screen.line("local stack stopped")
    return 0


def _watch_alarms(stack: LocalStack, screen: Screen, stop: threading.Event, every: float = 5.0) -> None:
    """Until `stop`: evaluate the alarms every few seconds for `tickwatch status`, and say when one
    fires or clears, as CloudWatch would notify OpsTopic."""
    firing: set[str] = set()
    while True:
        states = health.evaluate(stack)
        health.write(states)
        for state in states:
            if state.firing and state.alarm not in firing:
                screen.line(f"ALARM  {state.alarm}: {state.value} ({state.threshold})")
            elif not state.firing and state.alarm in firing:
                screen.line(f"OK     {state.alarm}: {state.value}")
        firing = {state.alarm for state in states if state.firing}
        if stop.wait(every):
            return


def _listen_on_docker_bridge(port: int, screen: Screen) -> MotoServer | None:
    """Serve the same emulator on the Docker bridge's gateway address, where containers started by
    `sam local invoke` reach the host (events/env.json names it). Moto's state is per process, so
    both addresses see the same resources."""
    try:
        server = MotoServer(DOCKER_BRIDGE_GATEWAY, port)
    except OSError:
        screen.line(
            f"  no Docker bridge at {DOCKER_BRIDGE_GATEWAY} here: sam local invoke --env-vars events/env.json "
            "needs Docker running to reach this stack"
        )
        return None
    screen.line(f"  also at {server.endpoint_url} for containers (sam local invoke --env-vars events/env.json)")
    return server


# --- the scheduled producer's key, and firing a schedule now ------------------------------------

LOCAL_PRODUCER_SECRET = "tickwatch-local/producer-api-key"


def producer_api_key_secret(
    parameter_overrides: dict[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The scheduled producer's key for `local up`: read from the variable `tickwatch fetch` reads
    for the provider (TWELVEDATA_API_KEY or FINNHUB_API_KEY), to be stored as the local secret
    LOCAL_PRODUCER_SECRET, which `parameter_overrides` then names as ProducerApiKeySecret (unless
    it names a secret already). The key goes only into the emulator, never into the state file."""
    from tickwatch_core.sources.provider_keys import ENVIRONMENT_VARIABLES

    environ = os.environ if environ is None else environ
    provider = Template.load(parameter_overrides=parameter_overrides).parameter("ProducerProvider")
    key = environ.get(ENVIRONMENT_VARIABLES.get(provider, ""), "").strip()
    if not key or parameter_overrides.get("ProducerApiKeySecret"):
        return {}
    parameter_overrides["ProducerApiKeySecret"] = LOCAL_PRODUCER_SECRET
    return {LOCAL_PRODUCER_SECRET: key}


def run_trigger(function_id: str, state: LocalState, out: IO[str] | None = None) -> int:
    """Invoke a scheduled function of the running local stack now, with its schedule's event, in
    this process: the handler loads as `local up` loads it (the template's environment, the
    parameters `local up` was given, the stack's emulator), so it reads and writes the same
    resources. Prints the function's response; its logs go to the stack's functions.log."""
    out = out or sys.stdout
    stack = LocalStack(
        LocalStackOptions(endpoint_url=state.endpoint_url, parameter_overrides=state.parameters, run_functions=False)
    )
    schedules = [s for s in read_schedules(stack.template) if s.function_id == function_id]
    log = Path(state.outbox).parent / "logs" / "functions.log"
    stack.attach()
    try:
        function = LocalFunction(
            stack.template, function_id, extra_environment={"AWS_ENDPOINT_URL": state.endpoint_url}
        )
        with function_output_to(log):
            response = ScheduleRunner(schedules, {function_id: function}).fire(function_id)
    finally:
        stack.stop()
    print(json.dumps(response, indent=2, default=str), file=out)
    print(f"{function_id} ran on the local stack at {state.endpoint_url}; its log: {log}", file=sys.stderr)
    return 0


def run_down(timeout: float = 20.0) -> int:
    state = LocalState.read()
    if state is None:
        print("no local stack is running", file=sys.stderr)
        return 1
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if LocalState.read() is None:
            print(f"stopped the local stack at {state.endpoint_url}")
            return 0
        time.sleep(0.2)
    print(f"the local stack (pid {state.pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
    return 1
