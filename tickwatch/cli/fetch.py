"""`tickwatch fetch`: put ticks into the stream, and the tick provider its options describe."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from botocore.config import Config

from tickwatch.resources import AwsContext, CliError, InputError


def default_spool_dir() -> Path:
    """Where ticks wait while the stream is unreachable: $XDG_CACHE_HOME/tickwatch/spool."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwatch" / "spool"


def command_fetch(args: argparse.Namespace, context: AwsContext) -> int:
    from tickwatch.fetch.runner import Progress, describe, run_fetch, stop_on_signals
    from tickwatch.fetch.writer import DryRunWriter, KinesisWriter, Spool, StreamUnavailable

    progress = Progress()
    provider = _build_provider(args, context, progress)
    if args.dry_run:
        writer: Any = DryRunWriter()
        destination, spool_path = "stdout", None
    else:
        stream = context.resource("stream")
        # The writer retries failed records itself, with backoff and a spool; SDK retries on top
        # would only delay noticing an outage.
        kinesis = context.client("kinesis", config=Config(retries={"mode": "standard", "max_attempts": 1}))
        spool_dir = args.spool_dir or default_spool_dir()
        try:
            spool = Spool(spool_dir / f"{stream}.jsonl")
        except OSError as error:
            raise CliError(f"cannot use the spool directory {spool_dir}: {error.strerror}; pass --spool-dir") from None
        if spool.pending:
            progress.problem(f"sending {spool.pending:,} ticks spooled by an earlier run first")
        try:
            writer = KinesisWriter(kinesis, stream, spool)
        except StreamUnavailable as error:
            raise CliError(f"{error}: check --stream/--stack/--region") from None
        destination, spool_path = stream, spool.path

    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            summary = run_fetch(provider, writer, progress, count=args.count, duration=args.duration, stop=stop)
    except StreamUnavailable as error:
        waiting = writer.spool.pending if getattr(writer, "spool", None) is not None else 0
        raise CliError(f"{error}; {waiting:,} unsent ticks wait in {spool_path} for the next run") from None
    except _provider_errors() as error:
        raise CliError(str(error)) from None
    pending = writer.spool.pending if writer.spool is not None else 0
    progress.finish(describe(summary, writer.stats, destination, spool_path, pending))
    if pending:
        # Nothing is lost, but the run did not do its job: a script or CI step must see that.
        print(f"tickwatch: {pending:,} ticks were not sent; the next fetch sends them first", file=sys.stderr)
        return 1
    return 0


def _provider_errors() -> tuple[type[Exception], ...]:
    from tickwatch.fetch.keys import ApiKeyError
    from tickwatch.fetch.providers import ProviderError

    return (ProviderError, ApiKeyError)


def _build_provider(args: argparse.Namespace, context: AwsContext, progress: Any) -> Any:
    from tickwatch.fetch.keys import ApiKeyError, api_key
    from tickwatch.fetch.providers import (
        FinnhubTradesProvider,
        ReplayProvider,
        SimulatorProvider,
        TwelveDataQuotesProvider,
    )
    from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, MarketSimulator, parse_symbols

    try:
        symbols = parse_symbols(args.symbols) if args.symbols else dict(DEFAULT_SYMBOLS)
    except ValueError as error:
        raise InputError(str(error)) from None
    if args.provider != "simulator" and (args.seed is not None or args.rate is not None or args.rate_per_symbol):
        raise InputError(f"--seed, --rate and --rate-per-symbol are simulator options, not {args.provider}'s")
    if args.provider == "simulator":
        rate = (
            args.rate_per_symbol * len(symbols) if args.rate_per_symbol else (50.0 if args.rate is None else args.rate)
        )
        return SimulatorProvider(MarketSimulator(symbols=symbols, seed=args.seed), rate=rate)
    if args.provider == "replay":
        if args.file is None:
            raise InputError("replay needs --file (a CSV or JSON Lines file of ticks)")
        if not args.file.is_file():
            raise InputError(f"replay file {args.file} does not exist")
        return ReplayProvider(args.file, speed=args.speed, shift_to_now=args.shift_to_now, report=_report(progress))
    try:
        key = api_key(args.provider, secret_id=args.api_key_secret, session=context.session)
    except ApiKeyError as error:
        raise CliError(str(error)) from None
    if args.provider == "finnhub":
        url = os.environ.get("TICKWATCH_FINNHUB_URL", "wss://ws.finnhub.io")
        return FinnhubTradesProvider(key, list(symbols), url=url, report=_report(progress))
    url = os.environ.get("TICKWATCH_TWELVEDATA_URL", "https://api.twelvedata.com")
    return TwelveDataQuotesProvider(
        key, list(symbols), credits_per_minute=args.credits_per_minute, url=url, report=_report(progress)
    )


def _report(progress: Any) -> Any:
    return progress.provider_problem if progress is not None else (lambda message: None)
