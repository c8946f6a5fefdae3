"""Simulator statistics over 100,000 ticks: spread, large trades, sane prices, reproducibility."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from tickwatch.fetch.simulator import BASE_VOLUME, DEFAULT_SYMBOLS, MarketSimulator, parse_symbols
from tickwatch_core.domain.ticks import validate_tick_document

AT = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def ticks() -> list[dict]:
    simulator = MarketSimulator(seed=2026)
    return list(simulator.ticks(100_000, at=AT))


def test_default_universe_is_the_twenty_tickers_each_with_its_own_start_price(ticks):
    assert list(DEFAULT_SYMBOLS) == [
        "AAPL", "TSLA", "GOOGL", "MSFT", "AMZN", "META", "NVDA", "AMD", "NFLX", "DIS",
        "PYPL", "INTC", "CSCO", "ADBE", "CRM", "ORCL", "IBM", "UBER", "LYFT", "SPOT",
    ]  # fmt: skip
    assert len(set(DEFAULT_SYMBOLS.values())) == 20
    assert {tick["symbol"] for tick in ticks} == set(DEFAULT_SYMBOLS)


def test_every_tick_meets_the_tick_contract(ticks):
    for tick in ticks[:5000]:
        validate_tick_document(tick, received_at=AT)


def test_spread_is_about_two_hundredths_of_a_percent_around_the_price(ticks):
    assert all(tick["bid"] < tick["price"] < tick["ask"] for tick in ticks)
    # Prices are in cents, so only prices above ~$100 can show a 0.02 % spread exactly.
    relative = [(tick["ask"] - tick["bid"]) / tick["price"] for tick in ticks if tick["price"] > 150]
    assert 0.00015 <= statistics.median(relative) <= 0.00025


def test_about_five_percent_of_trades_are_five_to_twenty_times_the_base_volume(ticks):
    volumes = [tick["volume"] for tick in ticks]
    large = [volume for volume in volumes if volume > 1.5 * BASE_VOLUME]
    assert 0.045 <= len(large) / len(volumes) <= 0.055
    assert all(2.5 * BASE_VOLUME <= volume <= 30 * BASE_VOLUME for volume in large)
    ordinary = [volume for volume in volumes if volume <= 1.5 * BASE_VOLUME]
    assert abs(statistics.mean(ordinary) - BASE_VOLUME) < 2


def test_mean_reversion_keeps_prices_sane_over_a_long_run(ticks):
    by_symbol = defaultdict(list)
    for tick in ticks:
        by_symbol[tick["symbol"]].append(tick["price"])
    for symbol, prices in by_symbol.items():
        start = float(DEFAULT_SYMBOLS[symbol])
        deviations = [math.log(price / start) for price in prices]
        assert max(abs(d) for d in deviations) < 0.12, symbol  # never more than ~12 % away
        assert abs(statistics.mean(deviations)) < 0.04, symbol  # and centred on the start price


def test_momentum_makes_consecutive_moves_lean_the_same_way(ticks):
    prices = [tick["price"] for tick in ticks if tick["symbol"] == "MSFT"]
    moves = [b - a for a, b in pairwise(prices) if b != a]
    same_direction = sum(1 for a, b in pairwise(moves) if (a > 0) == (b > 0))
    assert same_direction / (len(moves) - 1) > 0.53


def test_same_seed_same_ticks_other_seed_other_ticks():
    first = list(MarketSimulator(seed=42).ticks(1000, at=AT))
    again = list(MarketSimulator(seed=42).ticks(1000, at=AT))
    other = list(MarketSimulator(seed=43).ticks(1000, at=AT))
    assert first == again
    assert first != other


def test_symbols_option_with_start_prices():
    assert parse_symbols("AAPL, XYZ=12.5,MSFT") == {
        "AAPL": DEFAULT_SYMBOLS["AAPL"],
        "XYZ": 12.5,
        "MSFT": DEFAULT_SYMBOLS["MSFT"],
    }
    for bad, message in (
        ("aapl", "is not a symbol"),
        ("XYZ=-1", "greater than zero"),
        ("XYZ=abc", "not a number"),
        (",", "no symbols"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_symbols(bad)
