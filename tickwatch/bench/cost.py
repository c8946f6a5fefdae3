"""The cost model: dollars per million ticks, from measured request counts and the price table.

Request counts, bytes and invocation counts come from a measured workload (`measure.run_workload`)
at the same tick rate and symbol count; prices come from `prices.toml`. The one input that is not
measured here is AWS's own latency, which a function's billed duration includes: `LATENCY` holds
typical same-region figures, and the report says so.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickwatch.analytics.athena import athena_cost

PRICES_PATH = Path(__file__).with_name("prices.toml")
HOURS_PER_MONTH = 730
# Typical same-region service latency per call, in seconds: what a function waits for on AWS and
# pays for, but an in-process benchmark cannot measure. Check them against X-Ray on your stack.
LATENCY = {"s3:PutObject": 0.025, "default": 0.008}
WRITE_THREADS = 16  # the processor writes items this many at a time (processor.py)


def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class FunctionProfile:
    """One function's cost inputs for a workload, per invocation."""

    invocations_per_million_ticks: float
    cpu_seconds: float  # the handler's own work (measured against the in-memory fakes)
    wait_seconds: float  # time spent waiting for AWS (modelled with LATENCY)
    memory_gb: float

    @property
    def gb_seconds_per_million_ticks(self) -> float:
        return self.invocations_per_million_ticks * (self.cpu_seconds + self.wait_seconds) * self.memory_gb


def processor_wait(requests_per_invocation: dict[str, float]) -> float:
    """S3 PUTs and DynamoDB reads one after another; item writes 16 at a time, bars then quotes."""
    puts = requests_per_invocation.get("dynamodb:PutItem", 0.0)
    return (
        requests_per_invocation.get("s3:PutObject", 0.0) * LATENCY["s3:PutObject"]
        + requests_per_invocation.get("dynamodb:BatchGetItem", 0.0) * LATENCY["default"]
        + (2 + math.ceil(puts / WRITE_THREADS)) * LATENCY["default"]
    )


def alerts_wait(requests_per_invocation: dict[str, float]) -> float:
    """Rule reads (Query) and rule-state writes (UpdateItem) 16 at a time; the history lookup, and
    each PublishBatch followed by its history write, one after another (alerts.py)."""
    side_by_side = ("dynamodb:Query", "dynamodb:UpdateItem")
    rounds = sum(math.ceil(requests_per_invocation.get(op, 0.0) / WRITE_THREADS) for op in side_by_side)
    in_sequence = sum(n for op, n in requests_per_invocation.items() if op not in side_by_side)
    return (rounds + in_sequence) * LATENCY["default"]


def cost_per_million_ticks(
    workload: dict[str, Any],
    processor: FunctionProfile,
    alerts: FunctionProfile,
    prices: dict[str, Any],
    *,
    tick_bytes: float,
    architecture: str = "arm64",
) -> dict[str, float]:
    """Dollars per million ticks, by service, at the workload's rate and symbol count."""
    rate, ticks = workload["rate"], workload["ticks"]
    per_million = 1_000_000 / ticks
    hours_per_million = 1_000_000 / rate / 3600
    requests = workload["requests"]  # "service:Operation" -> count, both functions

    kinesis = prices["kinesis_provisioned"]
    shards = max(
        math.ceil(rate / kinesis["shard_records_per_second"]),
        math.ceil(rate * tick_bytes / kinesis["shard_bytes_per_second"]),
    )
    payload_units = math.ceil(tick_bytes / 25_600)
    kinesis_provisioned = (
        shards * kinesis["shard_hour"] * hours_per_million + payload_units * kinesis["put_payload_units_per_million"]
    )
    on_demand = prices["kinesis_on_demand"]
    gigabytes = 1_000_000 * math.ceil(tick_bytes / 1024) * 1024 / 1024**3
    kinesis_on_demand = (
        on_demand["stream_hour"] * hours_per_million
        + gigabytes * on_demand["data_in_per_gb"]
        + gigabytes * on_demand["data_out_per_gb"]
    )

    lam = prices["lambda"]
    gb_second = lam[f"{architecture.replace('-', '_')}_gb_second"]
    lambda_requests = (processor.invocations_per_million_ticks + alerts.invocations_per_million_ticks) / 1e6
    lambda_cost = lambda_requests * lam["requests_per_million"] + gb_second * (
        processor.gb_seconds_per_million_ticks + alerts.gb_seconds_per_million_ticks
    )

    s3 = prices["s3"]
    s3_puts = requests.get("s3:PutObject", 0) * per_million
    s3_cost = (
        s3_puts / 1000 * s3["put_per_thousand"] + workload["raw_bytes"] * per_million / 1024**3 * s3["storage_gb_month"]
    )

    dynamodb = prices["dynamodb"]
    dynamodb_cost = (
        workload["write_units"] * per_million / 1e6 * dynamodb["write_request_units_per_million"]
        + workload["read_units"] * per_million / 1e6 * dynamodb["read_request_units_per_million"]
    )

    sns = prices["sns"]
    alerts_per_million = workload["alerts"] * per_million
    sns_cost = (
        alerts_per_million / 1e6 * sns["publishes_per_million"]
        + alerts_per_million / 1e5 * sns["email_per_hundred_thousand"]
    )
    costs = {
        "kinesis_provisioned": kinesis_provisioned,
        "kinesis_on_demand": kinesis_on_demand,
        "lambda": lambda_cost,
        "s3": s3_cost,
        "dynamodb": dynamodb_cost,
        "sns": sns_cost,
    }
    costs["total_provisioned"] = kinesis_provisioned + lambda_cost + s3_cost + dynamodb_cost + sns_cost
    costs["total_on_demand"] = kinesis_on_demand + lambda_cost + s3_cost + dynamodb_cost + sns_cost
    return {name: round(value, 4) for name, value in costs.items()}


def lambda_per_million_invocations(
    seconds: float, memory_gb: float, prices: dict[str, Any], architecture: str = "arm64"
) -> float:
    """Dollars of a million invocations of `seconds` each at `memory_gb`: requests and duration."""
    lam = prices["lambda"]
    gb_second = lam[f"{architecture.replace('-', '_')}_gb_second"]
    return lam["requests_per_million"] + seconds * memory_gb * gb_second * 1e6


def _with_total(costs: dict[str, float]) -> dict[str, float]:
    costs["total"] = sum(costs.values())
    return {name: round(value, 4) for name, value in costs.items()}


def query_wait(requests_per_request: dict[str, float]) -> float:
    """The query function's calls one after another (a page of a Query waits for the one before)."""
    return sum(requests_per_request.values()) * LATENCY["default"]


def query_cost_per_million(
    seconds: float, read_units: float, memory_gb: float, prices: dict[str, Any], *, architecture: str = "arm64"
) -> dict[str, float]:
    """Dollars per million requests of one route: API Gateway, Lambda (a request and its time at
    `memory_gb`), DynamoDB reads."""
    return _with_total(
        {
            "api_gateway": prices["api_gateway"]["rest_requests_per_million"],
            "lambda": lambda_per_million_invocations(seconds, memory_gb, prices, architecture),
            "dynamodb": read_units * prices["dynamodb"]["read_request_units_per_million"],
        }
    )


def ingest_cost_per_million_ticks(
    seconds: float, ticks_per_request: int, memory_gb: float, prices: dict[str, Any], *, architecture: str = "arm64"
) -> dict[str, float]:
    """Dollars per million ticks sent to `POST /ticks` in requests of `ticks_per_request`: API
    Gateway's request and the function's time (`seconds` a request) per tick, and a Kinesis PUT
    payload unit per tick (a tick is one record, far below a unit's 25 KB)."""
    requests = 1e6 / ticks_per_request
    return _with_total(
        {
            "api_gateway": requests * prices["api_gateway"]["rest_requests_per_million"] / 1e6,
            "lambda": requests * lambda_per_million_invocations(seconds, memory_gb, prices, architecture) / 1e6,
            "kinesis_put_units": prices["kinesis_provisioned"]["put_payload_units_per_million"],
        }
    )


def broadcast_wait(queries: float, posts: float, parallel: int = 32) -> float:
    """The broadcast's Query per symbol, then its posts, each `parallel` at a time (broadcast.py)."""
    return (math.ceil(queries / parallel) + math.ceil(posts / parallel)) * LATENCY["default"]


def websocket_cost_per_million_messages(
    seconds_per_batch: float,
    messages_per_batch: float,
    memory_gb: float,
    prices: dict[str, Any],
    *,
    architecture: str = "arm64",
) -> dict[str, float]:
    """Dollars per million messages pushed to browsers: API Gateway's message charge (each message
    under 32 KB is one) and the BroadcastFunction's invocations and time, shared by their messages.
    Connection minutes are billed apart (per connection, whatever it receives)."""
    per_batch = lambda_per_million_invocations(seconds_per_batch, memory_gb, prices, architecture) / 1e6
    return _with_total(
        {
            "api_gateway": prices["api_gateway"]["websocket_messages_per_million"],
            "lambda": 1e6 / messages_per_batch * per_batch,
        }
    )


def websocket_route_cost_per_million(
    cpu_seconds: float,
    read_units: float,
    write_units: float,
    memory_gb: float,
    prices: dict[str, Any],
    *,
    architecture: str = "arm64",
) -> dict[str, float]:
    """Dollars per million calls of one WebSocket route: its message (or connection) on API
    Gateway, the LiveFunction's invocation (its own work plus one wait per table call), the
    connection table's units."""
    calls = math.ceil(read_units) + (1 if write_units else 0)
    seconds = cpu_seconds + calls * LATENCY["default"]
    return _with_total(
        {
            "api_gateway": prices["api_gateway"]["websocket_messages_per_million"],
            "lambda": lambda_per_million_invocations(seconds, memory_gb, prices, architecture),
            "dynamodb": read_units * prices["dynamodb"]["read_request_units_per_million"]
            + write_units * prices["dynamodb"]["write_request_units_per_million"],
        }
    )


# --- the tick history (part 8) ------------------------------------------------------------------

# What the compactor waits for on AWS, per call, in seconds, and how fast it moves bytes to and from
# S3: typical same-region figures, not measured here (the benchmark's S3 is in memory). A listing
# page of 1,000 keys takes longer than a small GET.
COMPACTOR_LATENCY = {"s3:ListObjectsV2": 0.05, "default": LATENCY["s3:PutObject"]}
S3_BYTES_PER_SECOND = 100 * 1024**2
DOWNLOAD_THREADS = 32  # the compactor downloads an hour's raw objects this many at a time (compaction.py)
LIST_PAGE_KEYS = 1000


def compactor_requests(raw_objects_per_hour: float, lookback_hours: int) -> dict[str, float]:
    """S3 requests of one hourly run that compacts the hour just ended (the steady state):
    `pending` lists the raw keys of the whole look-back window and the history files in it, and
    reads the fingerprint of each file it has (HEAD); `run` GETs the hour's raw objects and PUTs
    one Parquet file."""
    return {
        "s3:ListObjectsV2": math.ceil(lookback_hours * raw_objects_per_hour / LIST_PAGE_KEYS) + 1,
        "s3:HeadObject": lookback_hours - 1,
        "s3:GetObject": raw_objects_per_hour,
        "s3:PutObject": 1,
    }


def compactor_wait(requests: dict[str, float], raw_bytes: float, parquet_bytes: float) -> float:
    """Seconds a run waits for S3 on top of its own work: listing pages and HEADs one after
    another, GETs 32 at a time, then the bytes down and the Parquet file up."""
    default = COMPACTOR_LATENCY["default"]
    return (
        requests.get("s3:ListObjectsV2", 0) * COMPACTOR_LATENCY["s3:ListObjectsV2"]
        + requests.get("s3:HeadObject", 0) * default
        + math.ceil(requests.get("s3:GetObject", 0) / DOWNLOAD_THREADS) * default
        + requests.get("s3:PutObject", 0) * default
        + (raw_bytes + parquet_bytes) / S3_BYTES_PER_SECOND
    )


def compactor_month_cost(
    seconds_per_run: float,
    runs: int,
    memory_gb: float,
    requests_per_run: dict[str, float],
    prices: dict[str, Any],
    *,
    architecture: str = "arm64",
) -> dict[str, float]:
    """Dollars of `runs` compactor invocations: Lambda's requests and GB-seconds, and the S3
    requests they make (LIST and PUT at the PUT price, GET and HEAD at the GET price)."""
    lam, s3 = prices["lambda"], prices["s3"]
    gb_second = lam[f"{architecture.replace('-', '_')}_gb_second"]
    put_like = requests_per_run.get("s3:ListObjectsV2", 0) + requests_per_run.get("s3:PutObject", 0)
    get_like = requests_per_run.get("s3:GetObject", 0) + requests_per_run.get("s3:HeadObject", 0)
    return _with_total(
        {
            "lambda_duration": runs * seconds_per_run * memory_gb * gb_second,
            "lambda_requests": runs * lam["requests_per_million"] / 1e6,
            "s3_requests": runs * (put_like * s3["put_per_thousand"] + get_like * s3["get_per_thousand"]) / 1000,
        }
    )


def s3_storage_month(gigabytes: float, prices: dict[str, Any]) -> float:
    """Dollars of keeping `gigabytes` (GiB, as S3 bills) in S3 Standard for a month."""
    return gigabytes * prices["s3"]["storage_gb_month"]


def athena_query_cost(scanned_bytes: float) -> float:
    """Dollars of one Athena query that scans `scanned_bytes`: `tickwatch sql`'s own reckoning
    (per MB rounded up, at least 10 MB, at the price per TB of prices.toml)."""
    return float(athena_cost(math.ceil(scanned_bytes)))


# --- the scheduled producer (part 9) -------------------------------------------------------------

# What one HTTPS call to the quote provider takes, in seconds: an assumption (a provider across the
# internet, a new TLS connection per call as urllib makes it), not measured here, where the provider
# is a loopback stand-in. Check it against the function's duration on your stack.
PROVIDER_LATENCY = 0.150
# Runs a month (30 days) of the schedules priced.
PRODUCER_SCHEDULES = {"rate(1 minute)": 43_200, "rate(5 minutes)": 8_640}
# Hours a container of a function called every few minutes lives: an assumption (Lambda does not
# say; it replaces even busy containers after some hours). Each new one reads the secret once.
PRODUCER_CONTAINER_HOURS = 1


@dataclass(frozen=True)
class ProducerRun:
    """One run of the producer, as priced: its billed time, the ledger's write units, the ticks put."""

    seconds: float  # own work + waiting for AWS + waiting for the provider
    write_units: float  # UpdateItems on ledger items well under 1 KB: one unit each
    ticks: float  # one record each, one 25 KB PUT payload unit each


def producer_wait(requests_per_run: dict[str, float], provider_calls: float) -> tuple[float, float]:
    """(seconds waiting for AWS, seconds waiting for the provider) of a run: every call one after
    another (the secret, the ledger's UpdateItems, each provider call, PutRecords: producer.py)."""
    return sum(requests_per_run.values()) * LATENCY["default"], provider_calls * PROVIDER_LATENCY


def producer_month_cost(
    runs: list[tuple[int, ProducerRun]], memory_gb: float, prices: dict[str, Any], *, architecture: str = "arm64"
) -> dict[str, float]:
    """Dollars of a month of producer runs (`count` runs of each kind): Lambda's requests and
    GB-seconds, the ledger's write units, Secrets Manager (the secret's month, and a read per
    container: a new one every PRODUCER_CONTAINER_HOURS, at most one per run), Kinesis PUT payload
    units. The stream's shard-hours are the pipeline's (part 5), whoever writes into it."""
    lam, secrets = prices["lambda"], prices["secrets_manager"]
    gb_second = lam[f"{architecture.replace('-', '_')}_gb_second"]
    invocations = sum(count for count, _ in runs)
    secret_reads = min(invocations, 30 * 24 / PRODUCER_CONTAINER_HOURS)
    return _with_total(
        {
            "lambda_requests": invocations * lam["requests_per_million"] / 1e6,
            "lambda_duration": sum(count * run.seconds for count, run in runs) * memory_gb * gb_second,
            "dynamodb": sum(count * run.write_units for count, run in runs)
            * prices["dynamodb"]["write_request_units_per_million"]
            / 1e6,
            "secrets_manager": secrets["secret_month"] + secret_reads * secrets["api_calls_per_ten_thousand"] / 1e4,
            "kinesis_put_units": sum(count * run.ticks for count, run in runs)
            * prices["kinesis_provisioned"]["put_payload_units_per_million"]
            / 1e6,
        }
    )
