"""The query API's indicators, checked against talipp (an independent implementation) and against
a textbook example where the two define a seed differently."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from talipp.indicators import BB, EMA, RSI, SMA, VWAP
from talipp.ohlcv import OHLCV

from tickwatch_core.domain import indicators
from tickwatch_core.domain.indicators import BarPoint, Indicator

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def random_bars(count: int, *, seed: int = 7, step: timedelta = timedelta(minutes=1)) -> list[BarPoint]:
    generator = random.Random(seed)
    price, bars = 200.0, []
    for index in range(count):
        close = round(price * (1 + generator.gauss(0, 0.002)), 2)
        high = round(max(price, close) * (1 + abs(generator.gauss(0, 0.001))), 2)
        low = round(min(price, close) * (1 - abs(generator.gauss(0, 0.001))), 2)
        bars.append(BarPoint(START + index * step, high, low, close, float(generator.randint(0, 5000))))
        price = close
    return bars


def talipp_values(indicator, count: int) -> list:
    return [indicator[i] for i in range(count)]


BARS = random_bars(600)
CLOSES = [bar.close for bar in BARS]


@pytest.mark.parametrize("period", [2, 5, 20, 50])
def test_sma_matches_talipp(period):
    expected = talipp_values(SMA(period, CLOSES), len(CLOSES))
    actual = indicators.compute(Indicator("sma", period), BARS)
    assert actual == [None if e is None else round(e, 6) for e in expected]


@pytest.mark.parametrize("period", [2, 12, 26, 50])
def test_ema_seeded_with_the_sma_matches_talipp(period):
    expected = talipp_values(EMA(period, CLOSES), len(CLOSES))
    actual = indicators.compute(Indicator("ema", period), BARS)
    assert [a is None for a in actual] == [e is None for e in expected]
    assert [a for a in actual if a is not None] == pytest.approx([e for e in expected if e is not None], abs=2e-6)


@pytest.mark.parametrize(("period", "width"), [(20, Decimal(2)), (10, Decimal("1.5"))])
def test_bollinger_bands_match_talipp(period, width):
    expected = talipp_values(BB(period, float(width), CLOSES), len(CLOSES))
    actual = indicators.compute(Indicator("bollinger", period, width), BARS)
    for mine, theirs in zip(actual, expected, strict=True):
        if theirs is None:
            assert mine is None
        else:
            assert mine == pytest.approx({"lower": theirs.lb, "middle": theirs.cb, "upper": theirs.ub}, abs=2e-6)


def test_vwap_restarts_each_utc_day_and_matches_talipp_within_a_day():
    bars = random_bars(3 * 24 * 4, step=timedelta(minutes=15))  # three UTC days of 15-minute bars
    actual = indicators.compute(Indicator("vwap"), bars)
    for day in range(3):
        own = [i for i, bar in enumerate(bars) if bar.start.date() == (START + timedelta(days=day)).date()]
        reference = VWAP([OHLCV(0, bars[i].high, bars[i].low, bars[i].close, bars[i].volume) for i in own])
        assert [actual[i] for i in own] == pytest.approx([reference[k] for k in range(len(own))], abs=2e-6)


def test_vwap_is_none_until_the_day_has_volume():
    bars = [BarPoint(START, 10, 9, 9.5, 0), BarPoint(START + timedelta(minutes=1), 11, 10, 10.5, 100)]
    assert indicators.compute(Indicator("vwap"), bars) == [None, round((11 + 10 + 10.5) / 3, 6)]


def test_rsi_is_wilders_on_the_textbook_example():
    # Wilder's 14-period RSI on the closes of the StockCharts "RSI" article's worked example: the
    # first value averages the first 14 changes, later ones are smoothed.
    closes = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28,
              46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18,
              44.22, 44.57, 43.42, 42.66, 43.13]  # fmt: skip
    values = indicators.rsi(closes, 14)
    assert values[:14] == [None] * 14
    assert [round(v, 2) for v in values[14:]] == [
        70.46, 66.25, 66.48, 69.35, 66.29, 57.92, 62.88, 63.21, 56.01, 62.34, 54.67, 50.39, 40.02, 41.49,
        41.90, 45.50, 37.32, 33.09, 37.79,
    ]  # fmt: skip


def test_rsi_converges_to_talipps_which_seeds_on_one_change_fewer():
    # talipp averages the first n - 1 changes for its seed; the smoothing forgets the seed, so after
    # many periods both agree closely.
    period = 14
    expected = talipp_values(RSI(period, CLOSES), len(CLOSES))
    actual = indicators.rsi(CLOSES, period)
    assert actual[period - 1] is None
    assert actual[period] is not None
    assert actual[20 * period :] == pytest.approx(expected[20 * period :], abs=1e-3)


def test_rsi_of_a_flat_series_is_50_and_of_a_rising_one_100():
    assert indicators.rsi([10.0] * 5, 3)[3:] == [50.0, 50.0]
    assert indicators.rsi([1.0, 2, 3, 4, 5], 3)[3:] == [100.0, 100.0]


def test_indicators_have_no_value_until_their_history_exists():
    short = BARS[:5]
    for spec in ("sma:20", "ema:20", "rsi:14", "bollinger:20:2"):
        assert indicators.compute(Indicator.parse(spec), short) == [None] * 5


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("sma:20", Indicator("sma", 20)),
        ("EMA:12", Indicator("ema", 12)),
        ("vwap", Indicator("vwap")),
        ("bollinger:20:2", Indicator("bollinger", 20, Decimal(2))),
        ("bollinger:20:2.50", Indicator("bollinger", 20, Decimal("2.5"))),
    ],
)
def test_indicator_specs_parse(text, parsed):
    assert Indicator.parse(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("macd:12", "is not one of"),
        ("sma", "needs a period"),
        ("sma:1", "between 2 and 500"),
        ("sma:20:2", "only bollinger takes a width"),
        ("bollinger:20", "needs a width"),
        ("bollinger:20:0", "above 0"),
        ("vwap:5", "takes no period"),
    ],
)
def test_bad_indicator_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        Indicator.parse(text)


def test_keys_name_the_fields_of_a_bar():
    assert [Indicator.parse(s).key for s in ("sma:20", "vwap", "bollinger:20:2")] == [
        "sma_20",
        "vwap",
        "bollinger_20_2",
    ]
