"""`make bench`: measure the functions, model their cost, write docs/performance.md and .json.

python -m tickwatch.bench                 # the full run (a few minutes)
python -m tickwatch.bench --smoke --out DIR  # tiny sizes, so the benchmark cannot rot (CI)
python -m tickwatch.bench --parts 9       # only part 9, its tables printed (files only with --out)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tickwatch.bench import cost, delivery, history, ingest, live, measure, producer, query, rules
from tickwatch.template import Template

DOCS = measure.REPOSITORY_ROOT / "docs"


@dataclass(frozen=True)
class Plan:
    batch_sizes: list[int]
    repeats: int
    request_workload: tuple[int, int, int]  # rate, symbols, seconds: parts 2 and 3
    cost_rates: list[int]
    cost_symbols: list[int]
    cost_seconds: int
    cold_start_runs: int
    burst: tuple[int, int]  # alerts fired by one batch, runs
    query_repeats: int  # requests per route and AWS stand-in
    broadcast_repeats: int  # broadcast batches per audience, and requests per WebSocket route
    history: tuple[int, int]  # part 8: ticks of the hour compacted, shards they come from
    producer_runs: int  # part 9: warm runs of the producer per case and AWS stand-in
    # part 10: days of stored bars, minutes of warm-up and measured updates, timed runs
    rule_kinds: tuple[int, int, int, int]
    delivery_repeats: int = 5  # part 11: runs per channel and case


FULL = Plan(
    batch_sizes=[100, 1000, 10000],
    repeats=5,
    request_workload=(1000, 20, 30),
    cost_rates=[100, 1000, 10000],
    cost_symbols=[5, 20, 100],
    cost_seconds=10,
    cold_start_runs=15,
    burst=(200, 5),
    query_repeats=30,
    broadcast_repeats=20,
    history=(3_600_000, 2),
    producer_runs=30,
    rule_kinds=(8, 240, 20, 5),
    delivery_repeats=5,
)
SMOKE = Plan([10, 50], 2, (50, 4, 2), [20, 50], [2, 4], 2, 1, (20, 1), 2, 2, (20_000, 2), 2, (2, 20, 2, 2), 1)
# Parts 1 to 5 share their measurements, so they run together; 6 to 10 stand alone.
PARTS = ("1-5", "6", "7", "8", "9", "10", "11")


def parse_parts(text: str) -> set[str]:
    """`8`, `6,9` or `1-5,7` (any of 1 to 5 selects the five) -> the set of PARTS to run."""
    chosen = set()
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        if part in {"1", "2", "3", "4", "5", "1-5"}:
            chosen.add("1-5")
        elif part in PARTS:
            chosen.add(part)
        else:
            raise argparse.ArgumentTypeError(f"no part {part!r}: the parts are 1 to 11 (1 to 5 run together)")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tickwatch.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that the benchmark runs")
    parser.add_argument("--out", type=Path, help=f"directory for performance.md and .json (default {DOCS})")
    parser.add_argument(
        "--parts", type=parse_parts, default=set(PARTS), help="only these parts, like 9 or 6,9 (1 to 5 run together)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --parts: measure those parts again and keep the others' figures from the existing performance.json",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    started = time.monotonic()
    report = run(plan, progress=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True), parts=args.parts)
    report["seconds"] = elapsed = round(time.monotonic() - started, 1)
    if args.merge:
        out = args.out or DOCS
        previous = json.loads((out / "performance.json").read_text(encoding="utf-8"))
        report = previous | {name: value for name, value in report.items() if name not in ("date", "seconds")}
        report["remeasured"] = {**previous.get("remeasured", {}), ", ".join(sorted(args.parts)): report_date()}
        args.out = out
    elif args.out is None and args.parts != set(PARTS):
        # Some parts only: print them, and leave docs/ to a full run.
        print(render_tables(report))
        print(f"bench: parts {', '.join(sorted(args.parts))} in {report['seconds']} s", file=sys.stderr)
        return 0
    args.out = args.out or DOCS
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "performance.md").write_text(render(report), encoding="utf-8")
    print(render_tables(report))
    print(f"bench: wrote {args.out / 'performance.md'} and performance.json in {elapsed} s", file=sys.stderr)
    return 0


def report_date() -> str:
    return datetime.now(UTC).date().isoformat()


def run(plan: Plan, progress: Any, parts: Collection[str] = PARTS) -> dict[str, Any]:
    template = Template.load()
    memory_gb = template.body["Globals"]["Function"]["MemorySize"] / 1024
    architecture = template.body["Globals"]["Function"]["Architectures"][0]
    prices = cost.load_prices()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "smoke": plan is SMOKE,
        "function_memory_mb": int(memory_gb * 1024),
        "architecture": architecture,
        "prices": {name: value["source"] for name, value in prices.items() if isinstance(value, dict)},
        "latency_assumed_s": cost.LATENCY,
    }

    if "1-5" in parts:
        _run_1_to_5(plan, progress, report, memory_gb, architecture, prices)
    if "6" in parts:
        progress(f"6. query API: every route, {plan.query_repeats} requests each")
        report["query_api"] = query.report(query.measure_routes(plan.query_repeats), prices, memory_gb, architecture)
        progress(f"6. POST /ticks: bodies of 1 to 500 ticks, {plan.query_repeats} requests each")
        report["ingest_api"] = ingest.report(ingest.measure_ingest(plan.query_repeats), prices, memory_gb, architecture)
    if "7" in parts:
        progress(f"7. live dashboard: a broadcast to {live.CONNECTIONS:,} connections, {plan.broadcast_repeats} times")
        report["live"] = live.report(
            live.measure_broadcast(plan.broadcast_repeats),
            live.measure_routes(plan.broadcast_repeats),
            prices,
            memory_gb,
            architecture,
        )
    if "8" in parts:
        ticks, shards = plan.history
        progress(f"8. history: compacting {ticks:,} ticks from {shards} shards into Parquet")
        report["history"] = history.measure(ticks, shards, prices, progress)
    if "9" in parts:
        progress(f"9. scheduled producer: {len(producer.SYMBOLS)} symbols, {plan.producer_runs} runs per case")
        report["producer"] = producer.report(
            producer.measure_producer(plan.producer_runs), prices, memory_gb, architecture
        )
    if "10" in parts:
        days, warm_up, minutes, runs = plan.rule_kinds
        progress(f"10. rule kinds: {len(rules.CASES)} rules, {minutes} min of updates after {warm_up} min, {runs} runs")
        report["rule_kinds"] = rules.report(
            rules.measure_rule_kinds(days, warm_up, minutes, runs), prices, memory_gb, architecture
        )
    if "11" in parts:
        progress(
            f"11. delivery: {len(delivery.CHANNELS)} channels, one at a time and a burst, {plan.delivery_repeats} runs"
        )
        report["delivery"] = delivery.report(
            delivery.measure_delivery(plan.delivery_repeats), prices, memory_gb, architecture
        )
    return report


def _run_1_to_5(
    plan: Plan, progress: Any, report: dict[str, Any], memory_gb: float, architecture: str, prices: dict[str, Any]
) -> None:
    progress("1. processor throughput")
    with measure.moto_pipeline() as (session, _, processor, _):
        on_fakes = measure.processor_throughput(processor, measure.fake_clients, plan.batch_sizes, plan.repeats)
        on_moto = measure.processor_throughput(
            processor,
            lambda: measure.AwsClients(**{name: session.client(name) for name in ("s3", "dynamodb", "sns")}),
            plan.batch_sizes,
            plan.repeats,
        )
    report["processor_throughput"] = {
        str(size): {"in_memory_fake": on_fakes[size], "moto": on_moto[size]} for size in plan.batch_sizes
    }

    rate, symbols, seconds = plan.request_workload
    progress(f"2./3. requests and alerts: {rate} ticks/s over {symbols} symbols for {seconds} s")
    workload = measure.run_workload(rate, symbols, seconds)
    alerts_fake = measure.alerts_on_fakes(workload)
    report["requests"] = _requests_report(workload)
    report["alerts_time"] = {
        "batches": len(workload.alerts_seconds),
        "moto": measure.percentiles_ms(workload.alerts_seconds),
        "in_memory_fake": measure.percentiles_ms(alerts_fake),
    }

    firings, runs = plan.burst
    progress(f"3b. alerts burst: one batch firing {firings} alerts, {runs} runs")
    burst = measure.alerts_burst(firings, runs)
    report["alerts_burst"] = {
        "firings": burst.firings,
        "runs": runs,
        "requests": burst.requests,
        "in_memory_fake": measure.percentiles_ms(burst.seconds_fake),
        "moto": measure.percentiles_ms(burst.seconds_moto),
        "modelled_aws_wait_ms": round(cost.alerts_wait(burst.requests) * 1000, 1),
    }

    progress("4. cold start")
    with measure.moto_pipeline() as (_, created, _, _):
        report["cold_start"] = measure.cold_start_imports(created, plan.cold_start_runs)

    progress("5. cost model")
    ms_per_tick = _cpu_per_tick(report["processor_throughput"])
    alerts_cpu = statistics.median(alerts_fake) if alerts_fake else 0.0
    rows = []
    for rate in plan.cost_rates:
        for symbol_count in plan.cost_symbols:
            if symbol_count != symbols and rate != plan.request_workload[0]:
                continue  # how cost grows: along the rate at `symbols`, and along the symbols at `rate`
            progress(f"   {rate} ticks/s, {symbol_count} symbols")
            measured = measure.run_workload(rate, symbol_count, plan.cost_seconds)
            rows.append(_cost_row(measured, ms_per_tick, alerts_cpu, memory_gb, architecture, prices))
    report["cost"] = rows


def _requests_report(workload: measure.Workload) -> dict[str, Any]:
    per_thousand = 1000 / workload.ticks
    return {
        "workload": {
            "rate": workload.rate,
            "symbols": workload.symbols,
            "seconds": workload.seconds,
            "ticks": workload.ticks,
            "rules": workload.symbols,
            "alerts": workload.alerts,
            "processor_invocations": workload.processor_invocations,
            "alerts_invocations": workload.alerts_invocations,
        },
        "per_1000_ticks": {
            "processor": {op: round(n * per_thousand, 3) for op, n in workload.processor.by_operation().items()},
            "alerts": {op: round(n * per_thousand, 3) for op, n in workload.alerts_counter.by_operation().items()},
        },
        "dynamodb_units_per_1000_ticks": {
            "write": round((workload.processor.write_units + workload.alerts_counter.write_units) * per_thousand, 3),
            "read": round((workload.processor.read_units + workload.alerts_counter.read_units) * per_thousand, 3),
        },
        "quote_item_bytes_p50": int(measure.percentile([float(b) for b in workload.processor.quote_bytes], 0.5)),
    }


def _cpu_per_tick(throughput: dict[str, Any]) -> list[tuple[int, float]]:
    """(batch size, seconds per tick) from the in-memory runs, to interpolate from."""
    return sorted((int(size), 1 / entry["in_memory_fake"]["ticks_per_s"]) for size, entry in throughput.items())


def _cpu_seconds(points: list[tuple[int, float]], ticks: float) -> float:
    below = [p for p in points if p[0] <= ticks] or points[:1]
    above = [p for p in points if p[0] >= ticks] or points[-1:]
    (low, low_cost), (high, high_cost) = below[-1], above[0]
    share = 0.0 if high == low else (ticks - low) / (high - low)
    return ticks * (low_cost + share * (high_cost - low_cost))


def _cost_row(
    workload: measure.Workload,
    cpu_points: list[tuple[int, float]],
    alerts_cpu: float,
    memory_gb: float,
    architecture: str,
    prices: dict[str, Any],
) -> dict[str, Any]:
    per_million = 1_000_000 / workload.ticks
    ticks_per_invocation = workload.ticks / workload.processor_invocations
    processor_requests = {op: n / workload.processor_invocations for op, n in workload.processor.by_operation().items()}
    alerts_requests = {
        op: n / max(1, workload.alerts_invocations) for op, n in workload.alerts_counter.by_operation().items()
    }
    processor = cost.FunctionProfile(
        workload.processor_invocations * per_million,
        _cpu_seconds(cpu_points, ticks_per_invocation),
        cost.processor_wait(processor_requests),
        memory_gb,
    )
    alerts = cost.FunctionProfile(
        workload.alerts_invocations * per_million, alerts_cpu, cost.alerts_wait(alerts_requests), memory_gb
    )
    requests = workload.processor.by_operation()
    for op, n in workload.alerts_counter.by_operation().items():
        requests[op] = requests.get(op, 0) + n
    summary = {
        "rate": workload.rate,
        "ticks": workload.ticks,
        "raw_bytes": workload.raw_bytes,
        "write_units": workload.processor.write_units + workload.alerts_counter.write_units,
        "read_units": workload.processor.read_units + workload.alerts_counter.read_units,
        "alerts": workload.alerts,
        "requests": requests,
    }
    return {
        "rate": workload.rate,
        "symbols": workload.symbols,
        "ticks_measured": workload.ticks,
        "processor_invocations_per_million": round(processor.invocations_per_million_ticks),
        "processor_seconds_per_invocation": round(processor.cpu_seconds + processor.wait_seconds, 4),
        "alerts_invocations_per_million": round(alerts.invocations_per_million_ticks),
        "alerts_seconds_per_invocation": round(alerts.cpu_seconds + alerts.wait_seconds, 4),
        "dynamodb_write_units_per_million": round(summary["write_units"] * per_million),
        "alerts_per_million": round(workload.alerts * per_million),
        "usd_per_million_ticks": cost.cost_per_million_ticks(
            summary, processor, alerts, prices, tick_bytes=_tick_bytes(), architecture=architecture
        ),
    }


def _tick_bytes() -> float:
    """Bytes of one simulator tick as sent to Kinesis."""
    source = measure.TickSource(20, rate=1000)
    records = source.records(200)
    return statistics.mean(len(r["kinesis"]["data"]) * 3 / 4 for r in records)


# --- output -------------------------------------------------------------------------------------


def render_tables(report: dict[str, Any]) -> str:
    """The results' tables of the parts the report holds."""
    lines: list[str] = []
    if "processor_throughput" in report:
        lines += _tables_1_to_5(report)
    if "query_api" in report:
        lines += _table_6(report)
    if "ingest_api" in report:
        lines += ingest.render(report["ingest_api"])
    if "live" in report:
        lines += _table_7(report)
    if "history" in report:
        lines += history.render(report["history"])
    if "producer" in report:
        lines += producer.render(report["producer"])
    if "rule_kinds" in report:
        lines += rules.render(report["rule_kinds"])
    if "delivery" in report:
        lines += delivery.render(report["delivery"])
    return "\n".join(lines).lstrip("\n") + "\n"


def _tables_1_to_5(report: dict[str, Any]) -> list[str]:
    lines = ["### 1. Processor throughput (one invocation, 20 symbols)", ""]
    lines += ["| batch | in-memory fake | moto in-process |", "|---:|---:|---:|"]
    for size, entry in report["processor_throughput"].items():
        fake, moto = entry["in_memory_fake"], entry["moto"]
        lines.append(
            f"| {int(size):,} | {fake['ticks_per_s']:,} ticks/s ({fake['ms_per_invocation']} ms) "
            f"| {moto['ticks_per_s']:,} ticks/s ({moto['ms_per_invocation']} ms) |"
        )
    requests = report["requests"]
    w = requests["workload"]
    lines += [
        "",
        f"### 2. AWS requests per 1,000 ticks ({w['rate']:,} ticks/s, {w['symbols']} symbols, {w['seconds']} s, "
        f"1 s window, one rule per symbol: {w['alerts']} alerts from {w['ticks']:,} ticks)",
        "",
        "| function | service:API | requests per 1,000 ticks |",
        "|---|---|---:|",
    ]
    for function in ("processor", "alerts"):
        for op, n in requests["per_1000_ticks"][function].items():
            lines.append(f"| {function} | {op} | {n:g} |")
    units = requests["dynamodb_units_per_1000_ticks"]
    lines += [
        "",
        f"DynamoDB request units per 1,000 ticks: {units['write']:g} write, {units['read']:g} read "
        f"(a quote item is {requests['quote_item_bytes_p50']} bytes at the median).",
        "",
        "### 3. Alerts function time per stream batch "
        f"({report['alerts_time']['batches']} batches of up to 100 quote updates)",
        "",
        "| AWS answered by | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for name, label in (("in_memory_fake", "in-memory fake"), ("moto", "moto in-process")):
        entry = report["alerts_time"][name]
        lines.append(f"| {label} | {entry['p50_ms']} ms | {entry['p95_ms']} ms |")
    burst = report["alerts_burst"]
    requests = ", ".join(f"{n} {op}" for op, n in burst["requests"].items())
    lines += [
        "",
        f"One batch firing {burst['firings']} alerts ({burst['runs']} runs): {requests}.",
        "",
        "| AWS answered by | p50 | p95 |",
        "|---|---:|---:|",
        f"| in-memory fake | {burst['in_memory_fake']['p50_ms']} ms | {burst['in_memory_fake']['p95_ms']} ms |",
        f"| moto in-process | {burst['moto']['p50_ms']} ms | {burst['moto']['p95_ms']} ms |",
        f"| on AWS, modelled: fake time + {burst['modelled_aws_wait_ms']} ms waiting for AWS "
        f"| {round(burst['in_memory_fake']['p50_ms'] + burst['modelled_aws_wait_ms'], 1)} ms | |",
    ]
    lines += [
        "",
        "### 4. Cold start: importing the handler module",
        "",
        "| function | Tracing=Active (default) | Tracing=Disabled |",
        "|---|---:|---:|",
    ]
    for function, entry in report["cold_start"].items():
        lines.append(
            f"| {function} | {entry['median_ms']} ms | {entry['untraced_median_ms']} ms ({entry['runs']} runs each) |"
        )
    lines += [
        "",
        "Medians of runs taken round-robin (one import of every function and setting per round), so that",
        "noise on the machine falls on all of them alike.",
    ]
    lines += [
        "",
        "### 5. Cost per million ticks (USD)",
        "",
        "| ticks/s | symbols | Kinesis provisioned | Kinesis on-demand | Lambda | S3 | DynamoDB | SNS "
        "| total (provisioned) | total (on-demand) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["cost"]:
        c = row["usd_per_million_ticks"]
        lines.append(
            f"| {row['rate']:,} | {row['symbols']} | {c['kinesis_provisioned']:.3f} | {c['kinesis_on_demand']:.3f} "
            f"| {c['lambda']:.3f} | {c['s3']:.3f} | {c['dynamodb']:.3f} | {c['sns']:.3f} "
            f"| **{c['total_provisioned']:.3f}** | **{c['total_on_demand']:.3f}** |"
        )
    lines += [
        "",
        "| ticks/s | symbols | processor invocations per M ticks | s each | alerts invocations per M ticks "
        "| s each | DynamoDB WRU per M ticks | alerts per M ticks |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["cost"]:
        lines.append(
            f"| {row['rate']:,} | {row['symbols']} | {row['processor_invocations_per_million']:,} "
            f"| {row['processor_seconds_per_invocation']} | {row['alerts_invocations_per_million']:,} "
            f"| {row['alerts_seconds_per_invocation']} | {row['dynamodb_write_units_per_million']:,} "
            f"| {row['alerts_per_million']:,} |"
        )
    return lines


def _table_6(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "### 6. Query API per route (per request: handler time, DynamoDB requests and read units; "
        "USD per million requests)",
        "",
        "| route | in-memory fake p50 / p95 | moto p50 / p95 | DynamoDB requests | read units | API Gateway | Lambda "
        "| DynamoDB | total |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["query_api"]:
        fake, moto, usd = row["in_memory_fake"], row["moto"], row["usd_per_million_requests"]
        requests = ", ".join(f"{n:g} {op.split(':')[1]}" for op, n in row["requests"].items())
        lines.append(
            f"| {row['route']} | {fake['p50_ms']} / {fake['p95_ms']} ms | {moto['p50_ms']} / {moto['p95_ms']} ms "
            f"| {requests} | {row['read_units']:g} | {usd['api_gateway']:.2f} | {usd['lambda']:.2f} "
            f"| {usd['dynamodb']:.2f} | **{usd['total']:.2f}** |"
        )
    return lines


def _table_7(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "### 7. Live dashboard: one broadcast batch (20 quotes, 20 bars, 2 alerts) to 1,000 connections "
        "(USD per million messages pushed)",
        "",
        "| audience | handler on fakes p50 / p95 | PostToConnection per batch | Query per batch | message bytes p50 "
        "/ max | modelled AWS wait | API Gateway | Lambda | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["live"]["audiences"]:
        fake, usd = row["in_memory_fake"], row["usd_per_million_messages"]
        lines.append(
            f"| {row['audience']} | {fake['p50_ms']} / {fake['p95_ms']} ms | {row['post_to_connection_per_batch']:g} "
            f"| {row['queries_per_batch']} | {row['message_bytes_p50']:,} / {row['message_bytes_max']:,} "
            f"| {row['modelled_aws_wait_ms']} ms | {usd['api_gateway']:.2f} | {usd['lambda']:.4f} "
            f"| **{usd['total']:.2f}** |"
        )
    lines += [
        "",
        f"Connection minutes: USD {report['live']['connection_minutes_per_million_usd']:.2f} per million "
        "(one dashboard open all day: 1,440 a day).",
        "",
        "| WebSocket route | handler on fakes p50 / p95 | read / write units | API Gateway | Lambda | DynamoDB "
        "| total (USD per million) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["live"]["routes"]:
        fake, usd = row["in_memory_fake"], row["usd_per_million"]
        lines.append(
            f"| {row['route']} | {fake['p50_ms']} / {fake['p95_ms']} ms | {row['read_units']:g} / "
            f"{row['write_units']:g} | {usd['api_gateway']:.2f} | {usd['lambda']:.2f} | {usd['dynamodb']:.2f} "
            f"| **{usd['total']:.2f}** |"
        )
    return lines


def render(report: dict[str, Any]) -> str:
    header = (METHOD_PATH.read_text(encoding="utf-8") if METHOD_PATH.exists() else "").format(
        date=report["date"],
        machine=report["machine"],
        seconds=report.get("seconds", "?"),
        memory=report["function_memory_mb"],
        architecture=report["architecture"],
        latency=", ".join(f"{name} {value * 1000:.0f} ms" for name, value in report["latency_assumed_s"].items()),
        prices="\n".join(f"- {name}: {source}" for name, source in report["prices"].items()),
        burst_firings=report.get("alerts_burst", {}).get("firings", "?"),
        burst_runs=report.get("alerts_burst", {}).get("runs", "?"),
        history_ticks=f"{report['history']['measured']['ticks']:,}" if "history" in report else "?",
        history_shards=report["history"]["measured"]["shards"] if "history" in report else "?",
        producer_runs=report.get("producer", {}).get("runs_per_case", "?"),
        producer_latency=report.get("producer", {}).get("provider_latency_assumed_ms", "?"),
        container_hours=report.get("producer", {}).get("container_hours_assumed", "?"),
        rules_history_days=report.get("rule_kinds", {}).get("history_days", "?"),
        rules_warm_up=report.get("rule_kinds", {}).get("warm_up_minutes", "?"),
        rules_updates=f"{report['rule_kinds']['measured_seconds']:,}" if "rule_kinds" in report else "?",
        rules_runs=report.get("rule_kinds", {}).get("runs", "?"),
        rules_write_wait=f"{report['rule_kinds']['write_wait_assumed_ms']:g}" if "rule_kinds" in report else "?",
    )
    note = "\n> Smoke run (tiny sizes): these figures only show that the benchmark runs.\n" if report["smoke"] else ""
    for parts, day in report.get("remeasured", {}).items():
        note += f"\n> Part(s) {parts} measured again on {day} (`make bench ARGS='--parts {parts} --merge'`); "
        note += "the other parts are from the run above.\n"
    return header + note + "\n## Results\n\n" + render_tables(report)


METHOD_PATH = Path(__file__).with_name("method.md")


if __name__ == "__main__":
    sys.exit(main())
