"""Latest prices from market-data REST APIs: Twelve Data's `/price` and Finnhub's `/quote`.

Shared by `tickwatch fetch --provider twelvedata` and the scheduled producer function. A client
makes one HTTP call per `fetch(symbols)` and returns tick documents (dicts in the shape of the tick
schema) plus the symbols it got no usable price for, with the reason. What stops a call as a whole
is raised, classified so the caller can decide what to do next:

* `RateLimited`: the plan's credits are used up for now (HTTP 429, or Twelve Data's code 429);
* `KeyRejected`: the API key is wrong or revoked (HTTP 401/403; Finnhub's 403 is per symbol, see
  below), so no call will succeed until the key changes;
* `ServiceProblem`: anything else (5xx, timeouts, unreachable host, a reply that is not JSON).

Credits: Twelve Data charges one credit per symbol of a call (a call for 8 symbols costs 8) and
takes up to 120 symbols per call; Finnhub charges one call per symbol. `calls(symbols)` splits
symbols into the calls a client makes, and `credits(call)` says what one costs.

The API key travels in the query string, as both services require; it is never part of a message
these classes produce (`redact`), so errors can be logged as they are.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

TWELVEDATA_URL = "https://api.twelvedata.com"
FINNHUB_URL = "https://finnhub.io"
# Twelve Data accepts up to 120 symbols in one /price call.
TWELVEDATA_MAX_SYMBOLS_PER_CALL = 120
PROVIDERS = ("twelvedata", "finnhub")


class QuoteServiceError(Exception):
    """A call failed as a whole; the message never contains the API key."""


class RateLimited(QuoteServiceError):
    """The plan's credits are used up for now."""


class ServiceProblem(QuoteServiceError):
    """The service or the network failed; a later call may succeed."""


class KeyRejected(QuoteServiceError):
    """The service refused the API key."""


@dataclass
class QuoteBatch:
    """What one call returned: ticks, and the symbols without a usable price (symbol, reason)."""

    ticks: list[dict[str, Any]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


class QuoteClient(Protocol):
    name: str

    def calls(self, symbols: Sequence[str]) -> list[list[str]]: ...

    def credits(self, call: Sequence[str]) -> int: ...

    def fetch(self, call: Sequence[str]) -> QuoteBatch: ...


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced."""
    return text.replace(secret, "***") if secret else text


def iso_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the tick schema wants it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _finite(value: Any) -> Decimal | None:
    """A price the services send (a number or a numeric string) as a finite Decimal, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _get_json(url: str, query: dict[str, str], *, secret: str, timeout: float) -> tuple[int, Any]:
    """GET `url?query`: (HTTP status, parsed JSON). Network failures and replies that are not JSON
    raise ServiceProblem; an HTTP error status is returned with its JSON body (or None)."""
    request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(query)}", headers={"User-Agent": "tickwatch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        try:
            payload = json.loads(error.read())
        except (OSError, ValueError):
            payload = None
        return error.code, payload
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise ServiceProblem(f"request failed: {redact(str(reason) or type(error).__name__, secret)}") from None
    try:
        return status, json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServiceProblem("response is not JSON") from None


# --- Twelve Data --------------------------------------------------------------------------------


@dataclass
class TwelveDataQuotes:
    """Twelve Data's `/price`: the latest price of up to 120 symbols a call, one credit per symbol.

    The reply carries no time, so a tick's timestamp is when the reply arrived.
    """

    api_key: str
    url: str = TWELVEDATA_URL
    timeout: float = 10.0
    now: Callable[[], datetime] = _utc_now
    name: str = "twelvedata"

    def calls(self, symbols: Sequence[str]) -> list[list[str]]:
        size = TWELVEDATA_MAX_SYMBOLS_PER_CALL
        return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]

    def credits(self, call: Sequence[str]) -> int:
        return len(call)

    def fetch(self, call: Sequence[str]) -> QuoteBatch:
        status, payload = _get_json(
            f"{self.url}/price",
            {"symbol": ",".join(call), "apikey": self.api_key},
            secret=self.api_key,
            timeout=self.timeout,
        )
        received = self.now()
        if status == 429:
            raise RateLimited("HTTP 429")
        if status in (401, 403):
            raise KeyRejected(f"twelvedata rejected the API key (HTTP {status})")
        if status >= 400:
            raise ServiceProblem(f"HTTP {status}")
        if not isinstance(payload, dict) or not payload:
            raise ServiceProblem("empty response")
        if payload.get("status") == "error":
            code, message = payload.get("code"), redact(str(payload.get("message", "no message")), self.api_key)
            if code == 429:
                raise RateLimited(message)
            if code in (401, 403):
                raise KeyRejected(f"twelvedata rejected the API key: {message}")
            raise ServiceProblem(f"error {code}: {message}")
        # One symbol: the quote itself; several: an object of quotes by symbol.
        quotes = {call[0]: payload} if len(call) == 1 else payload
        batch = QuoteBatch()
        for symbol in call:
            quote = quotes.get(symbol)
            if not isinstance(quote, dict):
                batch.missing.append((symbol, "no price in the response"))
                continue
            if quote.get("status") == "error":
                batch.missing.append((symbol, redact(str(quote.get("message", "error")), self.api_key)))
                continue
            price = _finite(quote.get("price"))
            if price is None:
                batch.missing.append((symbol, f"price {quote.get('price')!r} is not a number"))
                continue
            batch.ticks.append(
                {"symbol": symbol, "price": float(price), "timestamp": iso_timestamp(received), "source": self.name}
            )
        return batch


# --- Finnhub ------------------------------------------------------------------------------------


@dataclass
class FinnhubQuotes:
    """Finnhub's `/api/v1/quote`: one symbol a call (one call of the plan's per-minute allowance).

    The reply's `c` is the current price and `t` the time of the last trade (Unix seconds), which
    becomes the tick's timestamp. `c` and `t` both 0 means Finnhub does not know the symbol; HTTP
    403 means the plan does not cover it (the key itself works): both are per-symbol problems.
    """

    api_key: str
    url: str = FINNHUB_URL
    timeout: float = 10.0
    name: str = "finnhub"

    def calls(self, symbols: Sequence[str]) -> list[list[str]]:
        return [[symbol] for symbol in symbols]

    def credits(self, call: Sequence[str]) -> int:
        return len(call)

    def fetch(self, call: Sequence[str]) -> QuoteBatch:
        batch = QuoteBatch()
        for symbol in call:
            status, payload = _get_json(
                f"{self.url}/api/v1/quote",
                {"symbol": symbol, "token": self.api_key},
                secret=self.api_key,
                timeout=self.timeout,
            )
            message = redact(str(payload.get("error", "")), self.api_key) if isinstance(payload, dict) else ""
            if status == 429:
                raise RateLimited(message or "HTTP 429")
            if status == 401:
                raise KeyRejected(f"finnhub rejected the API key (HTTP 401){': ' + message if message else ''}")
            if status == 403:
                batch.missing.append((symbol, f"not covered by the plan: {message or 'HTTP 403'}"))
                continue
            if status >= 400:
                raise ServiceProblem(f"HTTP {status}{': ' + message if message else ''}")
            tick = self._tick(symbol, payload, batch)
            if tick is not None:
                batch.ticks.append(tick)
        return batch

    def _tick(self, symbol: str, payload: Any, batch: QuoteBatch) -> dict[str, Any] | None:
        if not isinstance(payload, dict):
            batch.missing.append((symbol, "the response is not an object"))
            return None
        price, seconds = _finite(payload.get("c")), payload.get("t")
        if price == 0 and seconds == 0:
            batch.missing.append((symbol, "unknown symbol"))
            return None
        if price is None or isinstance(seconds, bool) or not isinstance(seconds, int):
            batch.missing.append((symbol, f"malformed quote {str(payload)[:80]}"))
            return None
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            batch.missing.append((symbol, f"timestamp {seconds!r} is out of range"))
            return None
        return {"symbol": symbol, "price": float(price), "timestamp": iso_timestamp(moment), "source": self.name}


def quote_client(
    provider: str, api_key: str, *, url: str = "", timeout: float = 10.0, now: Callable[[], datetime] = _utc_now
) -> QuoteClient:
    """The client of `provider` (twelvedata or finnhub), against `url` when given (a test's fake).
    `now` times Twelve Data's quotes, which carry no time of their own."""
    if provider == "twelvedata":
        return TwelveDataQuotes(api_key, url=url or TWELVEDATA_URL, timeout=timeout, now=now)
    if provider == "finnhub":
        return FinnhubQuotes(api_key, url=url or FINNHUB_URL, timeout=timeout)
    raise ValueError(f"unknown quote provider {provider!r}: expected one of {', '.join(PROVIDERS)}")
