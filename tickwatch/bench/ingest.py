"""Part 6 of `make bench`, continued: `POST /ticks`, the HTTPS ingest route.

The IngestFunction handler (loaded under the template's environment) answers REST proxy events
with bodies of 1, 100 and 500 ticks (a JSON array, and 500 as JSON Lines), against an in-memory
Kinesis (its own work: decoding, validating every tick with the processor's parser, encoding) and
against moto. The cost is per million ticks: API Gateway's request and the function's time,
divided by the ticks a request carries, plus Kinesis' PUT payload units (one per record of up to
25 KB, in the template's default PROVISIONED mode). The stream's own hours are the pipeline's
(part 5), whoever writes into it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwatch.bench import cost
from tickwatch.bench.fake_aws import FakeKinesis
from tickwatch.bench.measure import RequestCounter, invoke, load_handler, moto_pipeline, percentiles_ms
from tickwatch.fetch.simulator import MarketSimulator
from tickwatch.local.events import api_gateway_rest_event
from tickwatch_core.aws import AwsClients

# (label, ticks in the body, content type)
CASES = [
    ("1 tick", 1, "application/json"),
    ("100 ticks", 100, "application/json"),
    ("500 ticks", 500, "application/json"),
    ("500 ticks as JSON Lines", 500, "application/x-ndjson"),
]


@dataclass
class IngestFigures:
    ticks: int
    body_bytes: int
    seconds_fake: list[float] = field(default_factory=list)
    seconds_moto: list[float] = field(default_factory=list)
    requests: dict[str, float] = field(default_factory=dict)  # per request


def sample_ticks(count: int) -> list[dict[str, Any]]:
    """`count` simulator trades of 20 symbols ending now, as a producer would send them."""
    simulator = MarketSimulator(seed=7)
    now = datetime.now(UTC)
    ticks = [simulator.next_tick() for _ in range(count)]
    for index, tick in enumerate(ticks):
        tick["timestamp"] = (now - timedelta(milliseconds=count - index)).isoformat().replace("+00:00", "Z")
    return ticks


def body_of(ticks: list[dict[str, Any]], content_type: str) -> bytes:
    if content_type == "application/json":
        return json.dumps(ticks).encode()
    return "\n".join(json.dumps(tick) for tick in ticks).encode()


def measure_ingest(repeats: int) -> dict[str, IngestFigures]:
    figures: dict[str, IngestFigures] = {}
    with moto_pipeline() as (session, template, _, _):
        ingest = load_handler(template, "IngestFunction")
        for label, count, content_type in CASES:
            body = body_of(sample_ticks(count), content_type)
            event = api_gateway_rest_event(
                method="POST",
                path="/ticks",
                resource="/ticks",
                path_parameters={},
                query=[],
                headers={"Content-Type": content_type},
                body=body,
                request_id="bench",
            )
            entry = figures[label] = IngestFigures(ticks=count, body_bytes=len(body))
            ingest.service.clients = AwsClients(kinesis=FakeKinesis())
            _check(invoke(ingest, event)[0], label, count)
            entry.seconds_fake = [invoke(ingest, event)[1] for _ in range(repeats)]

            counter = RequestCounter()
            ingest.service.clients = AwsClients(kinesis=counter.attach(session.client("kinesis")))
            entry.seconds_moto = [invoke(ingest, event)[1] for _ in range(repeats)]
            entry.requests = {op: n / repeats for op, n in counter.by_operation().items()}
    return figures


def report(figures: dict[str, IngestFigures], prices: dict[str, Any], memory_gb: float, architecture: str) -> list:
    rows = []
    for label, entry in figures.items():
        cpu = statistics.median(entry.seconds_fake)
        wait = cost.query_wait(entry.requests)
        rows.append(
            {
                "body": label,
                "ticks": entry.ticks,
                "body_bytes": entry.body_bytes,
                "in_memory_fake": percentiles_ms(entry.seconds_fake),
                "moto": percentiles_ms(entry.seconds_moto),
                "requests": entry.requests,
                "modelled_aws_wait_ms": round(wait * 1000, 1),
                "usd_per_million_ticks": cost.ingest_cost_per_million_ticks(
                    cpu + wait, entry.ticks, memory_gb, prices, architecture=architecture
                ),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "#### POST /ticks (per request: handler time, Kinesis requests; USD per million ticks ingested)",
        "",
        "| body | bytes | in-memory fake p50 / p95 | moto p50 / p95 | Kinesis requests | API Gateway | Lambda "
        "| Kinesis PUT units | total |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        fake, moto, usd = row["in_memory_fake"], row["moto"], row["usd_per_million_ticks"]
        requests = ", ".join(f"{n:g} {op.split(':')[1]}" for op, n in row["requests"].items())
        lines.append(
            f"| {row['body']} | {row['body_bytes']:,} | {fake['p50_ms']} / {fake['p95_ms']} ms "
            f"| {moto['p50_ms']} / {moto['p95_ms']} ms | {requests} | {usd['api_gateway']:.3f} | {usd['lambda']:.3f} "
            f"| {usd['kinesis_put_units']:.3f} | **{usd['total']:.3f}** |"
        )
    return lines


def _check(response: dict[str, Any], label: str, count: int) -> None:
    body = json.loads(response.get("body") or "{}")
    if response.get("statusCode") != 200 or body.get("accepted") != count:
        raise AssertionError(f"POST /ticks, {label}: {response.get('statusCode')} {response.get('body', '')[:300]}")
