"""The REST quote clients shared by `tickwatch fetch` and the scheduled producer, against a
loopback fake of Twelve Data and Finnhub: ticks, per-symbol problems, and errors classified the
way their callers act on them, never carrying the API key."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import pytest

from tests.fake_provider import API_KEY, FakeQuoteProvider, serving
from tickwatch_core.sources.provider_keys import ApiKeyError, key_in_secret_text
from tickwatch_core.sources.quotes import (
    FinnhubQuotes,
    KeyRejected,
    RateLimited,
    ServiceProblem,
    TwelveDataQuotes,
    quote_client,
)

RECEIVED = datetime(2026, 11, 20, 14, 30, 7, 250000, tzinfo=UTC)


def twelvedata(url: str, key: str = API_KEY) -> TwelveDataQuotes:
    return TwelveDataQuotes(key, url=url, now=lambda: RECEIVED)


# --- Twelve Data --------------------------------------------------------------------------------


def test_twelvedata_quotes_several_symbols_in_one_call_and_names_the_unknown_ones():
    with serving(FakeQuoteProvider({"AAPL": "228.51000", "MSFT": "415.30000"})) as fake:
        batch = twelvedata(fake.url).fetch(["AAPL", "MSFT", "XYZ"])
    assert batch.ticks == [
        {"symbol": "AAPL", "price": 228.51, "timestamp": "2026-11-20T14:30:07.250Z", "source": "twelvedata"},
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2026-11-20T14:30:07.250Z", "source": "twelvedata"},
    ]
    assert batch.missing == [("XYZ", "**symbol** not found: XYZ")]
    assert fake.requests == [{"path": "/price", "symbol": "AAPL,MSFT,XYZ", "apikey": API_KEY}]


def test_twelvedata_answers_one_symbol_with_the_quote_itself():
    with serving(FakeQuoteProvider({"NVDA": "181.2"})) as fake:
        batch = twelvedata(fake.url).fetch(["NVDA"])
    assert [(tick["symbol"], tick["price"]) for tick in batch.ticks] == [("NVDA", 181.2)]


def test_a_call_costs_a_credit_per_symbol_and_holds_at_most_120_symbols():
    client = twelvedata("http://127.0.0.1:9")
    symbols = [f"S{n}" for n in range(250)]
    assert [len(call) for call in client.calls(symbols)] == [120, 120, 10]
    assert sum(client.credits(call) for call in client.calls(symbols)) == 250
    finnhub = FinnhubQuotes(API_KEY, url="http://127.0.0.1:9")
    assert finnhub.calls(["AAPL", "MSFT"]) == [["AAPL"], ["MSFT"]]
    assert finnhub.credits(["AAPL"]) == 1


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (429, "", RateLimited, "HTTP 429"),
        (
            200,
            json.dumps(
                {"code": 429, "message": "You have run out of API credits for the current minute.", "status": "error"}
            ),
            RateLimited,
            "run out of API credits",
        ),
        (
            200,
            json.dumps({"code": 401, "message": "**apikey** parameter is incorrect", "status": "error"}),
            KeyRejected,
            "rejected the API key",
        ),
        (403, "", KeyRejected, r"rejected the API key \(HTTP 403\)"),
        (500, "Internal Server Error", ServiceProblem, "HTTP 500"),
        (502, "<html>bad gateway</html>", ServiceProblem, "HTTP 502"),
        (200, "<html>gateway</html>", ServiceProblem, "response is not JSON"),
        (200, "{}", ServiceProblem, "empty response"),
        (
            200,
            json.dumps({"code": 500, "message": "internal", "status": "error"}),
            ServiceProblem,
            "error 500: internal",
        ),
    ],
)
def test_twelvedata_failures_are_classified(status, body, error, message):
    with (
        serving(FakeQuoteProvider({"AAPL": "1"}, failures=[(status, body)])) as fake,
        pytest.raises(error, match=message),
    ):
        twelvedata(fake.url).fetch(["AAPL", "MSFT"])


def test_a_price_that_is_not_a_number_is_a_problem_of_that_symbol():
    with serving(FakeQuoteProvider({"AAPL": "NaN", "MSFT": "abc", "NVDA": "181.2"})) as fake:
        batch = twelvedata(fake.url).fetch(["AAPL", "MSFT", "NVDA"])
    assert [tick["symbol"] for tick in batch.ticks] == ["NVDA"]
    assert batch.missing == [("AAPL", "price 'NaN' is not a number"), ("MSFT", "price 'abc' is not a number")]


def test_an_error_that_echoes_the_key_does_not_carry_it():
    echo = json.dumps({"code": 401, "message": f"apikey {API_KEY} is not valid", "status": "error"})
    with serving(FakeQuoteProvider({}, failures=[(200, echo)])) as fake, pytest.raises(KeyRejected) as raised:
        twelvedata(fake.url).fetch(["AAPL"])
    assert API_KEY not in str(raised.value)
    assert "apikey *** is not valid" in str(raised.value)


def test_an_unreachable_service_is_a_service_problem():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ServiceProblem, match="request failed") as raised:
        twelvedata(f"http://127.0.0.1:{port}").fetch(["AAPL"])
    assert API_KEY not in str(raised.value)


# --- Finnhub ------------------------------------------------------------------------------------


def test_finnhub_quotes_one_symbol_a_call_timed_by_the_last_trade():
    with serving(FakeQuoteProvider({"AAPL": "228.51", "MSFT": "415.3"})) as fake:
        client = FinnhubQuotes(API_KEY, url=fake.url)
        batches = [client.fetch(call) for call in client.calls(["AAPL", "MSFT", "XYZ"])]
    assert [tick for batch in batches for tick in batch.ticks] == [
        {"symbol": "AAPL", "price": 228.51, "timestamp": "2026-11-20T14:30:05.000Z", "source": "finnhub"},
        {"symbol": "MSFT", "price": 415.3, "timestamp": "2026-11-20T14:30:05.000Z", "source": "finnhub"},
    ]
    assert batches[2].missing == [("XYZ", "unknown symbol")]
    assert fake.requests[0] == {"path": "/api/v1/quote", "symbol": "AAPL", "token": API_KEY}
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            401,
            json.dumps({"error": "Invalid API key"}),
            KeyRejected,
            r"finnhub rejected the API key \(HTTP 401\): Invalid",
        ),
        (429, json.dumps({"error": "API limit reached. Please try again later."}), RateLimited, "API limit reached"),
        (500, "oops", ServiceProblem, "HTTP 500"),
        (200, "not json", ServiceProblem, "response is not JSON"),
    ],
)
def test_finnhub_failures_are_classified(status, body, error, message):
    with (
        serving(FakeQuoteProvider({"AAPL": "1"}, failures=[(status, body)])) as fake,
        pytest.raises(error, match=message),
    ):
        FinnhubQuotes(API_KEY, url=fake.url).fetch(["AAPL"])


def test_finnhub_403_is_a_symbol_the_plan_does_not_cover_not_a_bad_key():
    body = json.dumps({"error": "You don't have access to this resource."})
    with serving(FakeQuoteProvider({"AAPL": "1"}, failures=[(403, body)])) as fake:
        batch = FinnhubQuotes(API_KEY, url=fake.url).fetch(["BRK.A"])
    assert batch.ticks == []
    assert batch.missing == [("BRK.A", "not covered by the plan: You don't have access to this resource.")]


@pytest.mark.parametrize("quote", [{"c": "x", "t": 1}, {"c": 1.5, "t": "soon"}, {"c": 1.5}, [1, 2]])
def test_a_malformed_finnhub_quote_is_a_problem_of_that_symbol(quote):
    with serving(FakeQuoteProvider({}, failures=[(200, json.dumps(quote))])) as fake:
        batch = FinnhubQuotes(API_KEY, url=fake.url).fetch(["AAPL"])
    assert batch.ticks == []
    assert [symbol for symbol, _ in batch.missing] == ["AAPL"]


def test_quote_client_picks_the_provider_and_the_url_override():
    assert isinstance(quote_client("twelvedata", API_KEY), TwelveDataQuotes)
    assert quote_client("finnhub", API_KEY, url="http://127.0.0.1:1").url == "http://127.0.0.1:1"
    assert quote_client("finnhub", API_KEY).url == "https://finnhub.io"
    with pytest.raises(ValueError, match="unknown quote provider 'polygon'"):
        quote_client("polygon", API_KEY)


# --- the key in a secret ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        API_KEY,
        f"  {API_KEY}\n",
        json.dumps(API_KEY),
        json.dumps({"twelvedata": API_KEY, "finnhub": "other"}),
        json.dumps({"api_key": API_KEY}),
        json.dumps({"TWELVEDATA_API_KEY": API_KEY}),
    ],
)
def test_the_key_in_a_secret_as_text_or_json(text):
    assert key_in_secret_text("twelvedata", "tickwatch/key", text) == API_KEY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no text value"),
        (None, "has no text value"),
        (json.dumps({"token": API_KEY}), "JSON without an 'twelvedata' or 'api_key' field"),
        (json.dumps(42), "does not hold a key"),
    ],
)
def test_a_secret_without_a_key_is_named_never_echoed(text, message):
    with pytest.raises(ApiKeyError, match=message) as raised:
        key_in_secret_text("twelvedata", "tickwatch/key", text)
    assert "tickwatch/key" in str(raised.value)
    assert API_KEY not in str(raised.value)
