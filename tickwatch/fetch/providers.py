"""Where ticks come from: the simulator, a file to replay, and real market-data services.

Every provider's `ticks(stop)` is a blocking generator of tick documents (dicts in the shape of the
tick schema). It also yields `None` at least every `HEARTBEAT` seconds while it has nothing, so the
caller can check its deadline and flush. Problems with the data or the service (error replies,
rate limits, malformed messages, dropped connections) go to `report` and are skipped; a problem
the provider cannot get past (a rejected API key) raises `ProviderError`.
"""

from __future__ import annotations

import csv
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tickwatch.fetch.simulator import MarketSimulator
from tickwatch_core.sources.quotes import (
    TWELVEDATA_URL,
    KeyRejected,
    RateLimited,
    ServiceProblem,
    TwelveDataQuotes,
    iso_timestamp,
    redact,
)

HEARTBEAT = 0.2
Report = Callable[[str], None]


class ProviderError(RuntimeError):
    """The provider cannot go on (for example its API key was rejected)."""


def _ignore(_: str) -> None:
    pass


_iso = iso_timestamp


class Backoff:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... up to `cap`, reset after success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.attempt = base, cap, 0
        self._random = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return self._random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


# --- simulator ----------------------------------------------------------------------------------


@dataclass
class SimulatorProvider:
    """Paced simulator trades. `rate` is ticks per second in total (0: as fast as possible)."""

    simulator: MarketSimulator
    rate: float = 50.0
    name: str = "simulator"
    clock: Callable[[], float] = time.monotonic

    def ticks(self, stop: threading.Event) -> Iterator[dict | None]:
        started = self.clock()
        emitted = 0
        while not stop.is_set():
            if self.rate > 0:
                due = started + emitted / self.rate
                wait = due - self.clock()
                if wait > 0:
                    stop.wait(min(wait, HEARTBEAT))
                    if due - self.clock() > 0:
                        yield None
                        continue
            yield self.simulator.next_tick()
            emitted += 1


# --- replay -------------------------------------------------------------------------------------

_NUMBER_FIELDS = ("price", "bid", "ask")


@dataclass
class ReplayProvider:
    """Ticks from a CSV (header: symbol,timestamp,price[,volume,bid,ask]) or JSON Lines file.

    `speed` 0 sends as fast as possible; N replays at N times the recorded pace. With
    `shift_to_now`, timestamps move so that the first tick is now and the spacing is kept.
    """

    path: Path
    speed: float = 0.0
    shift_to_now: bool = False
    report: Report = _ignore
    name: str = "replay"
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def ticks(self, stop: threading.Event) -> Iterator[dict | None]:
        first_recorded: datetime | None = None
        started = self.clock()
        shift = None
        for line_number, document in self._documents():
            if stop.is_set():
                return
            recorded = _timestamp_of(document)
            if recorded is not None:
                if first_recorded is None:
                    first_recorded = recorded
                    shift = self.now() - recorded if self.shift_to_now else None
                if self.speed > 0:
                    due = started + (recorded - first_recorded).total_seconds() / self.speed
                    while not stop.is_set() and (wait := due - self.clock()) > 0:
                        stop.wait(min(wait, HEARTBEAT))
                        yield None
                if shift is not None:
                    document["timestamp"] = _iso(recorded + shift)
            elif self.shift_to_now:
                self.report(
                    f"{self.path.name} line {line_number}: timestamp {document.get('timestamp')!r} cannot be shifted"
                )
            yield document

    def _documents(self) -> Iterator[tuple[int, dict]]:
        try:
            handle = self.path.open(encoding="utf-8", newline="")
        except OSError as error:
            raise ProviderError(f"cannot read {self.path}: {error.strerror}") from None
        with handle:
            if self.path.suffix.lower() == ".csv":
                yield from self._csv_rows(handle)
            else:
                yield from self._json_lines(handle)

    def _csv_rows(self, handle: Any) -> Iterator[tuple[int, dict]]:
        reader = csv.DictReader(handle)
        missing = {"symbol", "timestamp", "price"} - set(reader.fieldnames or [])
        if missing:
            raise ProviderError(f"{self.path.name}: the CSV header lacks {', '.join(sorted(missing))}")
        for row in reader:
            document: dict[str, Any] = {}
            try:
                for name, value in row.items():
                    if name is None or value is None or value.strip() == "":
                        continue
                    value = value.strip()
                    if name in _NUMBER_FIELDS:
                        document[name] = float(Decimal(value))
                    elif name == "volume":
                        document[name] = int(value)
                    else:
                        document[name] = value
            except (ValueError, ArithmeticError):
                self.report(f"{self.path.name} line {reader.line_num}: {name} {value!r} is not a number")
                continue
            yield reader.line_num, document

    def _json_lines(self, handle: Any) -> Iterator[tuple[int, dict]]:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as error:
                self.report(f"{self.path.name} line {line_number}: not JSON ({error.msg})")
                continue
            if not isinstance(document, dict):
                self.report(f"{self.path.name} line {line_number}: not a JSON object")
                continue
            yield line_number, document


def _timestamp_of(document: dict) -> datetime | None:
    text = document.get("timestamp")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return moment if moment.tzinfo else None


# --- Finnhub: trades over WebSocket -------------------------------------------------------------


@dataclass
class FinnhubTradesProvider:
    """Real-time trades from Finnhub's WebSocket API (free tier: US stocks, 50 symbols).

    Subscribes to each symbol, turns every trade into a tick, answers nothing to pings (the server
    only checks the connection is alive), and reconnects with backoff when the connection drops.
    """

    api_key: str
    symbols: Sequence[str]
    url: str = "wss://ws.finnhub.io"
    report: Report = _ignore
    name: str = "finnhub"
    backoff: Backoff = field(default_factory=Backoff)
    open_timeout: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def ticks(self, stop: threading.Event) -> Iterator[dict | None]:
        from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
        from websockets.sync.client import connect

        address = f"{self.url}?{urllib.parse.urlencode({'token': self.api_key})}"
        while not stop.is_set():
            try:
                with connect(address, open_timeout=self.open_timeout, close_timeout=2) as connection:
                    for symbol in self.symbols:
                        connection.send(json.dumps({"type": "subscribe", "symbol": symbol}))
                    self.backoff.reset()
                    while not stop.is_set():
                        try:
                            message = connection.recv(timeout=HEARTBEAT)
                        except TimeoutError:
                            yield None
                            continue
                        yield from self._ticks_in(message)
                    return
            except InvalidStatus as error:
                status = error.response.status_code
                if status in (401, 403):
                    raise ProviderError(f"finnhub rejected the API key (HTTP {status})") from None
                problem = f"finnhub refused the connection (HTTP {status})"
                if status == 429:
                    problem = "finnhub: rate limited (HTTP 429)"
            except InvalidURI:
                raise ProviderError(f"finnhub URL {self.url!r} is not a WebSocket URL") from None
            except ConnectionClosed as error:
                problem = f"finnhub connection closed ({error.rcvd.code if error.rcvd else 'no close frame'})"
            except (OSError, WebSocketException, TimeoutError) as error:
                problem = f"finnhub connection failed: {redact(str(error) or type(error).__name__, self.api_key)}"
            delay = self.backoff.next_delay()
            self.report(f"{problem}; reconnecting in {delay:.1f} s")
            deadline = self.clock() + delay
            while not stop.is_set() and self.clock() < deadline:
                stop.wait(min(HEARTBEAT, max(0.0, deadline - self.clock())))
                yield None

    def _ticks_in(self, message: str | bytes) -> Iterator[dict]:
        try:
            payload = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.report("finnhub sent a message that is not JSON; skipped")
            return
        if not isinstance(payload, dict):
            self.report("finnhub sent a message that is not an object; skipped")
            return
        kind = payload.get("type")
        if kind == "ping":
            return
        if kind == "error":
            self.report(f"finnhub error: {payload.get('msg', 'no message')}")
            return
        if kind != "trade":
            self.report(f"finnhub sent an unexpected message type {kind!r}; skipped")
            return
        trades = payload.get("data")
        if not isinstance(trades, list) or not trades:
            self.report("finnhub sent a trade message without trades; skipped")
            return
        for trade in trades:
            tick = _finnhub_tick(trade)
            if tick is None:
                self.report(f"finnhub sent a malformed trade {str(trade)[:80]}; skipped")
            else:
                yield tick


def _finnhub_tick(trade: Any) -> dict | None:
    if not isinstance(trade, dict):
        return None
    symbol, price, millis = trade.get("s"), trade.get("p"), trade.get("t")
    if not isinstance(symbol, str) or not isinstance(price, int | float) or not isinstance(millis, int):
        return None
    tick: dict[str, Any] = {
        "symbol": symbol,
        "price": price,
        "timestamp": _iso(datetime.fromtimestamp(millis / 1000, UTC)),
        "source": "finnhub",
    }
    volume = trade.get("v")
    # Stocks trade whole shares; a fractional volume (crypto) is left out rather than rounded.
    if isinstance(volume, int) or (isinstance(volume, float) and volume.is_integer()):
        tick["volume"] = int(volume)
    return tick


# --- Twelve Data: polled quotes over REST -------------------------------------------------------


@dataclass
class TwelveDataQuotesProvider:
    """Latest prices from Twelve Data's REST `/price` endpoint, polled within the plan's rate limit.

    A call for k symbols costs k API credits; the free plan allows 8 credits a minute. Symbols are
    polled in groups no larger than that, spaced so the plan is never exceeded, and a tick is sent
    only when a symbol's price has changed since it was last seen.
    """

    api_key: str
    symbols: Sequence[str]
    credits_per_minute: int = 8
    url: str = TWELVEDATA_URL
    report: Report = _ignore
    name: str = "twelvedata"
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    _last_price: dict[str, str] = field(default_factory=dict)

    def ticks(self, stop: threading.Event) -> Iterator[dict | None]:
        group_size = max(1, min(self.credits_per_minute, len(self.symbols)))
        groups = [list(self.symbols[i : i + group_size]) for i in range(0, len(self.symbols), group_size)]
        index = 0
        while not stop.is_set():
            group = groups[index % len(groups)]
            index += 1
            pause = 60.0 * len(group) / self.credits_per_minute
            try:
                ticks = list(self._poll(group))
            except RateLimited as limited:
                self.report(f"twelvedata: rate limited ({limited}); waiting")
                pause = max(pause, 60.0)
                ticks = []
            except ServiceProblem as problem:
                delay = self.backoff.next_delay()
                self.report(f"twelvedata: {problem}; retrying in {delay:.1f} s")
                pause, ticks = delay, []
            else:
                self.backoff.reset()
            yield from ticks
            deadline = self.clock() + pause
            while not stop.is_set() and self.clock() < deadline:
                stop.wait(min(HEARTBEAT, max(0.0, deadline - self.clock())))
                yield None

    def _poll(self, group: list[str]) -> Iterator[dict]:
        """One `/price` call for `group` (the layer's client, shared with the scheduled producer):
        the ticks whose price changed since last seen; symbols without a price are reported."""
        client = TwelveDataQuotes(self.api_key, url=self.url, timeout=self.timeout, now=self.now)
        try:
            batch = client.fetch(group)
        except KeyRejected as rejected:
            raise ProviderError(str(rejected)) from None
        for symbol, reason in batch.missing:
            self.report(f"twelvedata: {symbol}: {reason}")
        for tick in batch.ticks:
            price = str(Decimal(str(tick["price"])))
            if self._last_price.get(tick["symbol"]) == price:
                continue
            self._last_price[tick["symbol"]] = price
            yield tick
