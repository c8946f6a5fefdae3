"""`make soak`: the local stack under a steady feed, measured, then checked for correctness.

    python -m tickwatch.local.soak --rate 2000 --duration 10m

Runs the simulator at `--rate` ticks per second over `--symbols` symbols (one rule above and one
below each start price), samples the processor's lag behind the stream every second, records every
invocation's duration and the process's peak memory, waits for the pipeline to drain, and checks
raw data, bars, quotes and alerts against tickwatch.local.verify. Prints a report and writes it as
JSON. Not part of CI: it takes as long as you ask.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tickwatch.fetch.simulator import DEFAULT_SYMBOLS
from tickwatch.local.run import function_output_to
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.verify import RuleSpec, read_stream, verify
from tickwatch_core.domain.rules import parse_duration
from tickwatch_core.store.rule_store import RuleStore


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def soak(
    rate: float, symbol_count: int, duration: float, workdir: Path, drain_timeout: float, out: Any
) -> dict[str, Any]:
    symbols = dict(list(DEFAULT_SYMBOLS.items())[:symbol_count]) if symbol_count <= len(DEFAULT_SYMBOLS) else {
        **DEFAULT_SYMBOLS, **{f"SYM{n}": Decimal("100.00") for n in range(symbol_count - len(DEFAULT_SYMBOLS))}
    }  # fmt: skip
    rules = [
        RuleSpec(
            symbol, direction, (price * (1 + sign * Decimal("0.004"))).quantize(Decimal("0.01")), timedelta(seconds=60)
        )
        for symbol, price in symbols.items()
        for direction, sign in (("above", 1), ("below", -1))
    ]
    # The emulator and the feed run in processes of their own, as AWS and a producer would: the
    # functions do not share an interpreter lock with them.
    stack = LocalStack(LocalStackOptions(outbox=workdir / "outbox", server_process=True)).start()
    lag: list[float] = []
    peak_rss_kb = 0
    try:
        names = stack.names()
        store = RuleStore(stack.session.client("dynamodb"), names["MarketTableName"])
        for rule in rules:
            store.add(rule.symbol, rule.direction, rule.threshold, cooldown=rule.cooldown)
        processor = next(m for m in stack.mappings if m.settings.source == "Kinesis")
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak_rss_kb
            while not sampling.wait(1.0):
                lag.append(processor.stats.iterator_age())
                peak_rss_kb = max(peak_rss_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        feed = subprocess.Popen(
            [
                sys.executable, "-m", "tickwatch", "fetch", "--stream", names["TickStreamName"], "--rate", str(rate),
                "--duration", f"{duration:.0f}s", "--seed", "2026",
                "--symbols", ",".join(f"{s}={p}" for s, p in symbols.items()),
                "--spool-dir", str(workdir / "spool"),
            ],
            env={**os.environ, "AWS_ENDPOINT_URL": stack.endpoint_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        started = time.monotonic()
        while feed.poll() is None:
            elapsed = time.monotonic() - started
            out.write(
                f"\r\x1b[2K{elapsed:5.0f} s  processed {processor.stats.records_succeeded:,}  "
                f"lag {processor.stats.iterator_age():.1f} s"
            )
            out.flush()
            time.sleep(1.0)
        feed_report = feed.stderr.read()
        sent = int(
            next(
                (
                    line.split()[1].replace(",", "")
                    for line in feed_report.splitlines()
                    if line.strip().startswith("sent ")
                ),
                "0",
            )
        )
        fed = time.monotonic() - started
        drain_started = time.monotonic()
        caught_up = stack.wait_until_caught_up(timeout=drain_timeout, settle=2.0)
        drained = time.monotonic() - drain_started
        sampling.set()
        stack.inbox.drain()
        out.write("\nfeed stopped; checking correctness ...\n")
        check = verify(stack, read_stream(stack.session.client("kinesis"), names["TickStreamName"]), rules, set())
        durations = {
            logical_id: [d * 1000 for d in function.durations] for logical_id, function in stack.functions.items()
        }
        report = {
            "rate_asked": rate,
            "symbols": len(symbols),
            "duration_s": round(fed, 1),
            "ticks_sent": sent,
            "rate_achieved": round(sent / fed, 1) if fed else 0.0,
            "feed_exit_code": feed.returncode,
            "lag_s": {"p50": percentile(lag, 0.5), "p95": percentile(lag, 0.95), "max": max(lag, default=0.0)},
            "drain_s": round(drained, 1),
            "caught_up": caught_up,
            "handler_ms": {
                name: {
                    "invocations": len(values),
                    "p50": round(percentile(values, 0.5), 1),
                    "p95": round(percentile(values, 0.95), 1),
                    "p99": round(percentile(values, 0.99), 1),
                    "mean": round(statistics.fmean(values), 1) if values else 0.0,
                }
                for name, values in durations.items()
            },
            "peak_rss_mb": round(max(peak_rss_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024, 1),
            "correct": not check.problems,
            "problems": check.problems,
            "facts": check.facts,
        }
    finally:
        stack.stop()
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"soak: {report['rate_asked']:,.0f} ticks/s asked over {report['symbols']} symbols "
        f"for {report['duration_s']:.0f} s",
        f"  sent              {report['ticks_sent']:,} ticks ({report['rate_achieved']:,.0f}/s achieved)",
        f"  lag behind stream p50 {report['lag_s']['p50']:.1f} s, p95 {report['lag_s']['p95']:.1f} s, "
        f"max {report['lag_s']['max']:.1f} s",
        f"  drain after feed  {report['drain_s']:.1f} s" + ("" if report["caught_up"] else " (did not catch up)"),
    ]
    for name, stats in report["handler_ms"].items():
        lines.append(
            f"  {name:17} {stats['invocations']:,} invocations, p50 {stats['p50']:.0f} ms, "
            f"p95 {stats['p95']:.0f} ms, p99 {stats['p99']:.0f} ms"
        )
    lines.append(f"  peak memory (RSS) {report['peak_rss_mb']:,.0f} MB")
    facts = report["facts"]
    lines.append(
        f"  correctness       {'OK' if report['correct'] else 'FAILED'}: {facts.get('ticks', 0):,} ticks, "
        f"{facts.get('bars', 0):,} bars, "
        f"{facts.get('quotes', 0)} quotes, {facts.get('alerts', 0)} alerts"
    )
    lines += [f"    - {problem}" for problem in report["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tickwatch.local.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="ticks per second in total (default 2000)")
    parser.add_argument("--symbols", type=int, default=20, help="how many symbols (default 20)")
    parser.add_argument("--duration", default="10m", help="how long to feed, like 60s or 10m (default 10m)")
    parser.add_argument(
        "--drain-timeout", default="15m", help="how long to wait for the pipeline to catch up (default 15m)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".tickwatch/soak"),
        help="outbox, logs and report (default .tickwatch/soak)",
    )
    args = parser.parse_args(argv)
    try:
        duration = parse_duration(args.duration).total_seconds()
        drain_timeout = parse_duration(args.drain_timeout).total_seconds()
    except ValueError as error:
        parser.error(str(error))
    if args.rate <= 0 or args.symbols <= 0:
        parser.error("--rate and --symbols must be greater than zero")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with function_output_to(args.workdir / "functions.log") as terminal:
        report = soak(args.rate, args.symbols, duration, args.workdir, drain_timeout, terminal)
        (args.workdir / "soak.json").write_text(json.dumps(report, indent=2, default=str))
        print(render(report), file=terminal)
        print(f"report: {args.workdir / 'soak.json'}", file=terminal)
    return 0 if report["correct"] and report["caught_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
