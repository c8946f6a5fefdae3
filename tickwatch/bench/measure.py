"""The measurements of `make bench`: the functions' handlers, run in this process.

* throughput: one processor invocation per batch size, with AWS answered by the in-memory fakes
  (the functions' own work) and by moto in-process (an emulator's cost added);
* a pipeline workload (ticks at a rate over some symbols, 1 s batching, one rule per symbol) run
  against moto, every AWS request counted from botocore's own events, with the item sizes that
  DynamoDB bills by, and the alerts function timed per stream batch (moto and fakes);
* an alerts burst: one stream batch whose trades fire a given number of alerts (a price swinging
  through 20 rules), timed on the fakes and on moto, with its requests counted;
* cold start: importing each handler module in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from tickwatch.bench.fake_aws import FakeDynamoDB, FakeS3, FakeSNS
from tickwatch.dlq import template_filters
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tickwatch.filters import matches_any
from tickwatch.local import events
from tickwatch.local.functions import LocalFunction
from tickwatch.template import Template, create_resources
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.rules import Direction
from tickwatch_core.store.rule_store import RuleStore

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent.parent
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/tickwatch-bench"
FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136588898
ALERTS_BATCH_SIZE = 100  # template.yaml: the alerts function's BatchSize
RULE_OFFSET = Decimal("0.002")
RULE_COOLDOWN = timedelta(minutes=1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 of durations, in milliseconds, as the report shows them."""
    return {"p50_ms": round(percentile(seconds, 0.5) * 1000, 2), "p95_ms": round(percentile(seconds, 0.95) * 1000, 2)}


class Context:
    """The Lambda context attributes Powertools reads."""

    function_name = "tickwatch-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tickwatch-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# --- loading the functions ----------------------------------------------------------------------


def load_handler(template: Template, logical_id: str) -> ModuleType:
    """A function's handler module, imported under the environment the template gives it."""
    quiet = {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",  # a log line per batch would be measured as well
    }
    return LocalFunction(template, logical_id, extra_environment=quiet).load_container()


def invoke(module: ModuleType, event: dict[str, Any]) -> tuple[Any, float]:
    """Run a handler; returns (response, seconds). Its metrics output (EMF on stdout) is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        response = module.lambda_handler(event, Context())
        return response, time.perf_counter() - started


# --- ticks --------------------------------------------------------------------------------------


class TickSource:
    """Simulator ticks at a rate, as Kinesis records of one shard per symbol group."""

    def __init__(self, symbol_count: int, rate: float, seed: int = 2026) -> None:
        names = list(DEFAULT_SYMBOLS)
        symbols = {
            (names[i] if i < len(names) else f"SYM{i}"): DEFAULT_SYMBOLS.get(names[i % len(names)]) or 100.0
            for i in range(symbol_count)
        }
        self.symbols = symbols
        self.simulator = MarketSimulator(symbols=symbols, seed=seed)
        self.rate = rate
        self.moment = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
        self.sequence = FIRST_SEQUENCE

    def records(self, count: int) -> list[dict[str, Any]]:
        records = []
        for _ in range(count):
            self.moment += timedelta(seconds=1 / self.rate)
            tick = self.simulator.next_tick(self.moment)
            self.sequence += 1
            records.append(
                events.kinesis_record(
                    data=json.dumps(tick).encode(),
                    sequence_number=str(self.sequence),
                    partition_key=tick["symbol"],
                    arrival=self.moment + timedelta(milliseconds=50),
                    shard_id="shardId-000000000000",
                    stream_arn=STREAM_ARN,
                )
            )
        return records


def fake_clients() -> AwsClients:
    return AwsClients(s3=FakeS3(), dynamodb=FakeDynamoDB(), sns=FakeSNS())


# --- 1. processor throughput --------------------------------------------------------------------


def processor_throughput(
    processor: ModuleType, make_clients: Callable[[], AwsClients], sizes: list[int], repeats: int
) -> dict[int, dict[str, float]]:
    """Ticks per second of one invocation, per batch size (median of `repeats` batches)."""
    results = {}
    # One source for every size: sequence numbers keep rising, so no tick is skipped as already
    # applied when the clients keep their state from one size to the next (moto).
    source = TickSource(20, rate=1000)
    for size in sizes:
        processor.processor.clients = make_clients()
        invoke(processor, {"Records": source.records(size)})  # warm: quotes and bars exist
        durations = [invoke(processor, {"Records": source.records(size)})[1] for _ in range(repeats)]
        median = statistics.median(durations)
        results[size] = {"ticks_per_s": round(size / median), "ms_per_invocation": round(median * 1000, 2)}
    return results


# --- 2. and 3. requests per tick, alerts time ---------------------------------------------------


@dataclass
class RequestCounter:
    """AWS requests by (service, operation), and the request units DynamoDB bills for them."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    write_units: int = 0
    read_units: float = 0.0
    quote_bytes: list[int] = field(default_factory=list)

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-call", lambda **kwargs: self._before(service, **kwargs))
        client.meta.events.register("after-call", lambda **kwargs: self._after(service, **kwargs))
        return client

    def _before(self, service: str, *, model: Any, params: dict[str, Any], context: dict, **_: Any) -> None:
        self.requests[(service, model.name)] += 1
        if service != "dynamodb":
            return
        body = json.loads(params.get("body") or b"{}")
        # Reads cost half a unit per 4 KB unless strongly consistent (BatchGetItem: per table).
        if model.name == "BatchGetItem":
            context["tickwatch_consistent"] = any(r.get("ConsistentRead") for r in body["RequestItems"].values())
        else:
            context["tickwatch_consistent"] = bool(body.get("ConsistentRead"))
        if model.name == "PutItem":
            size = item_bytes(body["Item"])
            self.write_units += math.ceil(size / 1024)
            if body["Item"]["sk"]["S"] == "QUOTE":
                self.quote_bytes.append(size)
        elif model.name == "BatchWriteItem":
            for requests in body["RequestItems"].values():
                self.write_units += sum(math.ceil(item_bytes(r["PutRequest"]["Item"]) / 1024) for r in requests)
        elif model.name == "UpdateItem":
            self.write_units += 1  # rule items are well under 1 KB

    def _after(self, service: str, *, model: Any, parsed: dict[str, Any], context: dict, **_: Any) -> None:
        if service != "dynamodb":
            return
        share = 1.0 if context.get("tickwatch_consistent") else 0.5
        if model.name == "BatchGetItem":
            for found in parsed.get("Responses", {}).values():
                self.read_units += share * sum(math.ceil(item_bytes(item) / 4096) for item in found)
        elif model.name == "Query":
            size = sum(item_bytes(item) for item in parsed.get("Items", []))
            self.read_units += share * max(1, math.ceil(size / 4096))
        elif model.name == "GetItem":
            self.read_units += share * max(1, math.ceil(item_bytes(parsed.get("Item", {})) / 4096))

    def by_operation(self) -> dict[str, int]:
        return {f"{service}:{operation}": count for (service, operation), count in sorted(self.requests.items())}


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (numbers ~1 byte per 2 digits)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Any) -> int:
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return len(content.lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(content)
    if kind == "M":
        return 3 + item_bytes(content)
    if kind == "L":
        return 3 + sum(_value_bytes(entry) + 1 for entry in content)
    return 1


@dataclass
class Workload:
    rate: int
    symbols: int
    seconds: int
    shards: int
    ticks: int = 0
    processor_invocations: int = 0
    alerts_invocations: int = 0
    alerts: int = 0
    raw_bytes: int = 0
    processor: RequestCounter = field(default_factory=RequestCounter)
    alerts_counter: RequestCounter = field(default_factory=RequestCounter)
    processor_seconds: list[float] = field(default_factory=list)
    alerts_seconds: list[float] = field(default_factory=list)
    alerts_events: list[dict[str, Any]] = field(default_factory=list)
    batch_ticks: list[int] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def moto_pipeline() -> Iterator[tuple[Any, Template, ModuleType, ModuleType]]:
    """moto in-process with the template's resources, and both handlers loaded against it."""
    from moto import mock_aws

    from tickwatch.local import moto_patches

    moto_patches.apply()  # the functions write from several threads, which moto's streams do not expect

    # moto answers only the regional endpoints; botocore would otherwise send calls naming a
    # DynamoDB ARN to an account-based one. No credentials are needed, but botocore wants some.
    for name, value in (
        ("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
    ):
        os.environ.setdefault(name, value)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        template = Template.load(stack_name="tickwatch-bench")
        create_resources(template, session)
        processor = load_handler(template, "ProcessorFunction")
        alerts = load_handler(template, "AlertsFunction")
        yield session, template, processor, alerts


def run_workload(rate: int, symbol_count: int, seconds: int, *, batch_size: int = 1000) -> Workload:
    """`seconds` of ticks at `rate` over `symbol_count` symbols through both functions on moto.

    Symbols spread over ceil(rate / 1,000) shards (a shard takes 1,000 records a second); each
    shard's ticks of one second form one batch (1 s window), cut at `batch_size`. Quote updates
    reach the alerts function through the table's stream, filtered as the template says, in
    batches of 100. One rule per symbol sits RULE_OFFSET from its start price, alternately above and
    below, with a cooldown: at most one alert per symbol and minute, a busy but believable rate.
    """
    shards = max(1, math.ceil(rate / 1000))
    result = Workload(rate, symbol_count, seconds, shards)
    with moto_pipeline() as (session, template, processor, alerts):
        table = template.physical["MarketTable"].ref
        bucket = template.physical["RawBucket"].ref
        processor.processor.clients = AwsClients(
            **{name: result.processor.attach(session.client(name)) for name in ("s3", "dynamodb", "sns")}
        )
        alerts.dispatcher.clients = AwsClients(
            **{name: result.alerts_counter.attach(session.client(name)) for name in ("s3", "dynamodb", "sns")}
        )
        source = TickSource(symbol_count, rate)
        store = RuleStore(session.client("dynamodb"), table)
        for index, (symbol, price) in enumerate(source.symbols.items()):
            direction = Direction.ABOVE if index % 2 == 0 else Direction.BELOW
            factor = 1 + RULE_OFFSET if direction is Direction.ABOVE else 1 - RULE_OFFSET
            threshold = (Decimal(str(price)) * factor).quantize(Decimal("0.01"))
            store.add(symbol, direction, threshold, cooldown=RULE_COOLDOWN)
        shard_of = {symbol: index % shards for index, symbol in enumerate(source.symbols)}
        filters = template_filters(template.body, "AlertsFunction")
        stream = _TableStream(session, table)

        for _ in range(seconds):
            records = source.records(rate)
            result.ticks += len(records)
            for shard in range(shards):
                own = [r for r in records if shard_of[r["kinesis"]["partitionKey"]] == shard]
                for start in range(0, len(own), batch_size):
                    batch = own[start : start + batch_size]
                    response, duration = invoke(processor, {"Records": batch})
                    assert response == {"batchItemFailures": []}, response
                    result.processor_invocations += 1
                    result.processor_seconds.append(duration)
                    result.batch_ticks.append(len(batch))
            updates = [r for r in stream.read() if matches_any(filters, r)]
            for start in range(0, len(updates), ALERTS_BATCH_SIZE):
                event = {"Records": updates[start : start + ALERTS_BATCH_SIZE]}
                response, duration = invoke(alerts, event)
                assert response == {"batchItemFailures": []}, response
                result.alerts_invocations += 1
                result.alerts_seconds.append(duration)
                result.alerts_events.append(event)
        result.alerts = len(_items_with_prefix(session, table, "ALERT#"))
        s3 = session.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/"):
            result.raw_bytes += sum(entry["Size"] for entry in page.get("Contents", []))
        result.rules = _items_with_prefix(session, table, "RULE#")
    return result


def alerts_on_fakes(workload: Workload) -> list[float]:
    """The workload's alerts batches again, against the in-memory fakes holding the same rules."""
    with moto_pipeline() as (_, template, _, alerts):
        table = template.physical["MarketTable"].ref
        dynamodb = FakeDynamoDB()
        for item in workload.rules:
            dynamodb.put_item(TableName=table, Item=item)
        alerts.dispatcher.clients = AwsClients(s3=FakeS3(), dynamodb=dynamodb, sns=FakeSNS())
        return [invoke(alerts, event)[1] for event in workload.alerts_events]


class _TableStream:
    """The market table's DynamoDB stream, read onward as Lambda records."""

    def __init__(self, session: Any, table: str) -> None:
        self.client = session.client("dynamodbstreams")
        self.arn = session.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = self.client.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        records = []
        while True:
            response = self.client.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = response["NextShardIterator"]
            records += [events.dynamodb_record_from_api(r, stream_arn=self.arn) for r in response["Records"]]
            if not response["Records"]:
                return records


def _items_with_prefix(session: Any, table: str, sort_key_prefix: str) -> list[dict[str, Any]]:
    found = []
    for page in (
        session.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=table,
            FilterExpression="begins_with(sk, :prefix)",
            ExpressionAttributeValues={":prefix": {"S": sort_key_prefix}},
        )
    ):
        found += page["Items"]
    return found


# --- 3b. an alerts burst ------------------------------------------------------------------------

BURST_SYMBOL = "AAPL"
BURST_LEVELS = 10  # rules each way: each swing of the price through them fires ten alerts


@dataclass
class AlertsBurst:
    firings: int
    published: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    seconds_fake: list[float] = field(default_factory=list)
    seconds_moto: list[float] = field(default_factory=list)


def alerts_burst(firings: int, repeats: int) -> AlertsBurst:
    """One alerts invocation whose single quote update fires `firings` alerts: ten rules above 200
    and ten below, no cooldown, and trades swinging from 198 to 202 and back, so each swing fires
    ten. Each run starts from fresh resources (a second run of the same batch would find every
    alert already recorded); moto's runs count the requests."""
    if firings % BURST_LEVELS:
        raise ValueError(f"the burst fires {BURST_LEVELS} alerts a swing: {firings} is not a multiple")
    burst = AlertsBurst(firings)
    for run in range(repeats):
        with moto_pipeline() as (session, template, processor, alerts):
            table = template.physical["MarketTable"].ref
            store = RuleStore(session.client("dynamodb"), table)
            for level in range(1, BURST_LEVELS + 1):
                store.add(BURST_SYMBOL, Direction.ABOVE, Decimal("200") + Decimal(level) / 10)
                store.add(BURST_SYMBOL, Direction.BELOW, Decimal("200") - Decimal(level) / 10)
            # Rules start armed: the swing up fires the ten above, the swing down the ten below.
            prices = [202.0 if swing % 2 == 0 else 198.0 for swing in range(firings // BURST_LEVELS)]
            moment = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
            records = [
                events.kinesis_record(
                    data=json.dumps(
                        {
                            "symbol": BURST_SYMBOL,
                            "price": price,
                            "timestamp": (moment + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z"),
                        }
                    ).encode(),
                    sequence_number=str(FIRST_SEQUENCE + n),
                    partition_key=BURST_SYMBOL,
                    arrival=moment + timedelta(milliseconds=n + 50),
                    shard_id="shardId-000000000000",
                    stream_arn=STREAM_ARN,
                )
                for n, price in enumerate(prices)
            ]
            assert invoke(processor, {"Records": records})[0] == {"batchItemFailures": []}
            filters = template_filters(template.body, "AlertsFunction")
            event = {"Records": [r for r in _TableStream(session, table).read() if matches_any(filters, r)]}
            rules = _items_with_prefix(session, table, "RULE#")

            counter = RequestCounter()
            alerts.dispatcher.clients = AwsClients(
                **{name: counter.attach(session.client(name)) for name in ("s3", "dynamodb", "sns")}
            )
            response, seconds = invoke(alerts, event)
            assert response == {"batchItemFailures": []}, response
            burst.seconds_moto.append(seconds)
            burst.published = len(_items_with_prefix(session, table, "ALERT#"))
            if burst.published != firings:
                raise AssertionError(f"the burst fired {burst.published} alerts, not {firings}")
            if run == 0:
                burst.requests = counter.by_operation()

            # Twice on fresh fakes, timing the second: the container's first invocation also pays
            # for what it sets up once (the thread pools' threads, first calls into the SDK).
            for _ in range(2):
                dynamodb = FakeDynamoDB()
                for item in rules:
                    dynamodb.put_item(TableName=table, Item=item)
                alerts.dispatcher.clients = AwsClients(s3=FakeS3(), dynamodb=dynamodb, sns=FakeSNS())
                seconds = invoke(alerts, event)[1]
            burst.seconds_fake.append(seconds)
    return burst


# --- 4. cold start ------------------------------------------------------------------------------


def build_layer(destination: Path) -> Path:
    """CommonLayer as `sam build` builds it (layers/common/Makefile: the wheels and tickwatch_core,
    compiled), for this machine's architecture; returns what Lambda mounts as /opt/python."""
    from tickwatch.local.container import machine_architecture

    environment = {
        **os.environ,
        "ARTIFACTS_DIR": str(destination),
        "TICKWATCH_BUILD_ARCHITECTURE": machine_architecture(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its python3.13
    }
    command = ["make", "--no-print-directory", "-C", str(REPOSITORY_ROOT / "layers" / "common"), "build-CommonLayer"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building CommonLayer failed: {result.stderr.strip()[-2000:]}")
    return destination / "python"


def cold_start_imports(template: Template, runs: int) -> dict[str, dict[str, float]]:
    """Milliseconds to import each handler module in a fresh interpreter, as Lambda's init does:
    the function's code as source (Lambda cannot write a .pyc next to it, so it compiles it every
    time), the layer as `sam build` ships it (compiled), the template's environment (`template` has
    its resources created, so that the names resolve), with tracing as the template's default turns
    it on, and off.

    The runs go round-robin, one import of every function and setting per round: a burst of noise
    on a shared machine (a neighbour, the CPU's clock) then lands on every function alike instead
    of on whichever was being measured, and the median of each is comparable with the others."""
    with tempfile.TemporaryDirectory(prefix="tickwatch-cold-start-") as work:
        layer = build_layer(Path(work) / "layer")
        commands: dict[tuple[str, str], tuple[list[str], dict[str, str]]] = {}
        for logical_id in template.logical_ids("AWS::Serverless::Function"):
            properties = template.resources[logical_id]["Properties"]
            module_name = properties["Handler"].rsplit(".", 1)[0]
            code = Path(work) / "functions" / logical_id
            shutil.copytree(REPOSITORY_ROOT / properties["CodeUri"], code, ignore=shutil.ignore_patterns("__pycache__"))
            environment = {
                **{name: value for name, value in os.environ.items() if name != "POWERTOOLS_TRACE_DISABLED"},
                **template.function_environment(logical_id),
                "PYTHONPATH": os.pathsep.join([str(code), str(layer)]),
                "PYTHONDONTWRITEBYTECODE": "1",  # as in Lambda: the handler's module compiles each time
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            script = f"import time; t = time.perf_counter(); import {module_name}; print(time.perf_counter() - t)"
            # Tracing=Disabled in the template sets this variable; the default (Active) leaves it unset.
            for label, extra in (("median_ms", {}), ("untraced_median_ms", {"POWERTOOLS_TRACE_DISABLED": "true"})):
                commands[(logical_id, label)] = ([sys.executable, "-c", script], {**environment, **extra})
        return _time_round_robin(commands, runs)


def _time_round_robin(
    commands: dict[tuple[str, str], tuple[list[str], dict[str, str]]], runs: int
) -> dict[str, dict[str, float]]:
    """The median milliseconds of each (function, setting), its commands run `runs` times in turn."""
    timings: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
    for _ in range(runs):
        for key, (command, environment) in commands.items():
            output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True, cwd="/")
            timings[key].append(float(output.stdout.strip().splitlines()[-1]))
    results: dict[str, dict[str, float]] = {}
    for (logical_id, label), seconds in timings.items():
        results.setdefault(logical_id, {"runs": runs})[label] = round(statistics.median(seconds) * 1000, 1)
    return results
