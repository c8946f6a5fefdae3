"""The fetch loop: provider -> validation against the shared schema -> writer, with progress.

Ctrl-C and SIGTERM stop the provider and flush the writer (spooling what cannot be sent), so
nothing produced is lost. `--duration` and `--count` bound a run.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from tickwatch.fetch.writer import Record, WriterStats
from tickwatch_core.domain.ticks import TickRejected
from tickwatch_core.sources.kinesis_put import tick_record

TTY_REFRESH = 0.5
LOG_EVERY = 10.0


class TickSource(Protocol):
    name: str

    def ticks(self, stop: threading.Event) -> Iterator[dict | None]: ...


class TickSink(Protocol):
    stats: WriterStats
    in_outage: bool

    def add(self, record: Record) -> None: ...
    def poll(self) -> None: ...
    def close(self, timeout: float = ...) -> None: ...


@dataclass
class FetchSummary:
    produced: int = 0
    invalid: int = 0
    provider_problems: int = 0
    elapsed: float = 0.0
    stopped_by: str = "end of input"
    invalid_reasons: Counter[str] = field(default_factory=Counter)


class Progress:
    """A live line on a terminal; plain log lines every `LOG_EVERY` seconds otherwise."""

    def __init__(
        self, out: IO[str] | None = None, *, is_tty: bool | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.out = out or sys.stderr
        self.is_tty = self.out.isatty() if is_tty is None else is_tty
        self.clock = clock
        self.started = clock()
        # A terminal shows the line at once; logs get their first line after LOG_EVERY.
        self._last = 0.0 if self.is_tty else self.started
        self._line_shown = False
        self.provider_problems = 0
        self.extra: Callable[[], str] | None = None  # more status, appended to the line

    def provider_problem(self, message: str) -> None:
        """The providers' `report`: an error, rate limit or malformed reply that was skipped."""
        self.provider_problems += 1
        self.problem(message)

    def problem(self, message: str) -> None:
        self._clear()
        self.out.write(f"{_now()} {message}\n")
        self.out.flush()

    def update(self, summary: FetchSummary, stats: WriterStats, *, force: bool = False) -> None:
        now = self.clock()
        interval = TTY_REFRESH if self.is_tty else LOG_EVERY
        if not force and now - self._last < interval:
            return
        self._last = now
        line = self.status(summary, stats)
        if self.is_tty:
            self.out.write("\r\x1b[2K" + line)
            self._line_shown = True
        else:
            self.out.write(f"{_now()} {line}\n")
        self.out.flush()

    def status(self, summary: FetchSummary, stats: WriterStats) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        line = (
            f"sent {stats.sent:,}  rate {stats.sent / elapsed:,.0f}/s  retried {stats.retried:,}  "
            f"spooled {stats.spooled:,}  errors {summary.invalid + self.provider_problems + stats.failed_calls:,}"
        )
        return line + (self.extra() if self.extra else "")

    def finish(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def _clear(self) -> None:
        if self.is_tty and self._line_shown:
            self.out.write("\r\x1b[2K")
            self._line_shown = False


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def run_fetch(
    provider: TickSource,
    writer: TickSink,
    progress: Progress,
    *,
    count: int | None = None,
    duration: float | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_tick: Callable[[dict], None] | None = None,
) -> FetchSummary:
    """Run until the provider ends, `count` ticks were produced, `duration` passed, or `stop` is set."""
    stop = stop or threading.Event()
    summary = FetchSummary()
    started = clock()
    deadline = started + duration if duration else None
    try:
        for document in provider.ticks(stop):
            if document is not None:
                _take(document, writer, summary, progress, on_tick)
            writer.poll()
            progress.update(summary, writer.stats)
            if count is not None and summary.produced >= count:
                summary.stopped_by = f"--count {count}"
                break
            if deadline is not None and clock() >= deadline:
                summary.stopped_by = "--duration"
                break
            if stop.is_set():
                summary.stopped_by = "a stop signal"
                break
        else:
            if stop.is_set():
                summary.stopped_by = "a stop signal"
    finally:
        stop.set()
        writer.close()
        summary.elapsed = clock() - started
        summary.provider_problems = progress.provider_problems
    return summary


def _take(
    document: dict, writer: TickSink, summary: FetchSummary, progress: Progress, on_tick: Callable[[dict], None] | None
) -> None:
    # Validate the bytes the processor will receive, through the processor's own parser, so the
    # producer rejects exactly what the pipeline would quarantine.
    try:
        record = tick_record(document, received_at=datetime.now(UTC))
    except TickRejected as rejection:
        reason = rejection.reason
        summary.invalid += 1
        summary.invalid_reasons[reason] += 1
        progress.problem(f"invalid tick not sent: {reason}")
        return
    writer.add(record)
    summary.produced += 1
    if on_tick is not None:
        on_tick(document)


def describe(
    summary: FetchSummary, stats: WriterStats, destination: str, spool_path: Any = None, pending: int = 0
) -> str:
    rate = stats.sent / summary.elapsed if summary.elapsed > 0 else 0.0
    lines = [
        f"fetch stopped by {summary.stopped_by} after {summary.elapsed:.1f} s",
        f"  sent       {stats.sent:,} ticks to {destination} ({rate:,.0f}/s)",
        f"  retried    {stats.retried:,} records the stream reported as failed",
        f"  spooled    {stats.spooled:,}" + (f"; {pending:,} waiting in {spool_path}" if pending else ""),
        f"  invalid    {summary.invalid:,} ticks not sent",
        f"  problems   {summary.provider_problems:,} provider errors, {stats.failed_calls:,} failed calls",
    ]
    return "\n".join(lines)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` instead of killing the process, so the writer can flush."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
