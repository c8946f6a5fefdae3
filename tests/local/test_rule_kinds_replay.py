"""Rules of every kind, replayed through the local stack, against an independent computation.

`tests/data/replay-rule-kinds.jsonl` is three hours of trades of four symbols across UTC midnight
(22:30 to 01:30 on the night of Friday 20 November 2026), one every 10 to 30 s with a few sharp
moves, a 20-minute pause of MSFT over midnight, a 12-minute pause of TSLA, some trades sharing a
millisecond, and trades exactly at a session's start and end, an expiry and midnight
(`record_series` made it). The rules of `RULE_FILE` cover every kind and option. They are added as
`tickwatch local --rules FILE` adds them, the series goes into the stream as `tickwatch fetch
--provider replay --file` sends it, as fast as it goes, and the alert history and the inbox must
hold exactly the alerts `tests/local/rule_oracle.py` computes from the README's definitions: code
that shares nothing with the pipeline's rule modules.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from tests.local.rule_oracle import OracleRule, alert_time_text, number_text, oracle_alerts, rule_from_entry
from tickwatch.fetch.providers import ReplayProvider
from tickwatch.fetch.runner import Progress, run_fetch
from tickwatch.fetch.writer import KinesisWriter, Spool
from tickwatch.local.rule_file import add_rules, load_rule_file
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.local.verify import read_stream, received_alert, table_items, valid_ticks
from tickwatch_core.store.rule_store import RuleStore

SERIES = Path(__file__).parent.parent / "data" / "replay-rule-kinds.jsonl"
SERIES_START = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
SERIES_END = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
# When the rules are added, as far as `for` and the check that an expiry is in the future go.
RULES_ADDED = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)

# The rule file as a user writes it: every kind, and every option (cooldown, rearm, once, expires,
# for, hours with and without a zone and weekdays). One session runs over UTC midnight
# (23:40-00:30); one is Friday evening in New York but Saturday in UTC (19:00-20:15, weekdays).
RULE_FILE = """
# price
- {symbol: AAPL, direction: above, threshold: 229.50, cooldown: 5m}
- {symbol: AAPL, direction: below, threshold: 228.90, rearm: 0.1%}
- {symbol: TSLA, direction: above, threshold: 345, once: true}
- {symbol: TSLA, direction: below, threshold: 347, expires: 2026-11-21T00:20:00Z}
- {symbol: MSFT, direction: above, threshold: 510, hours: 19:00-20:15, tz: America/New_York, weekdays: true}
- {symbol: NVDA, direction: below, threshold: 180.40}
# change on the day
- {symbol: AAPL, direction: above, change: 0.4%}
- {symbol: AAPL, direction: above, change: 0.6%, hours: 23:40-00:30}
- {symbol: TSLA, direction: below, change: -0.5%, rearm: 0.2%}
- {symbol: MSFT, direction: below, change: -0.3%, cooldown: 10m, for: 2h30m}
# move within a window (the 1h30m one reaches back over midnight; MSFT's pause empties its 10m one)
- {symbol: TSLA, direction: above, move: 0.8%, within: 15m}
- {symbol: TSLA, direction: below, move: 1.2%, within: 1h30m}
- {symbol: NVDA, direction: above, move: 0.5%, within: 5m, cooldown: 10m}
- {symbol: MSFT, direction: below, move: 0.4%, within: 10m, rearm: 0.2%}
# moving-average cross
- {symbol: NVDA, direction: above, cross: sma:20@1m}
- {symbol: NVDA, direction: below, cross: ema:10@5m, hours: 23:00-01:00}
- {symbol: AAPL, direction: below, cross: ema:20@1m, rearm: 0.1%}
- {symbol: MSFT, direction: above, cross: sma:6@5m, cooldown: 15m}
"""
KINDS = ("price", "change", "move", "cross")


def oracle_rules() -> list[OracleRule]:
    return [rule_from_entry(entry, now=RULES_ADDED) for entry in yaml.safe_load(RULE_FILE)]


def series_ticks() -> list[dict]:
    """The committed series as the oracle takes ticks, numbered in file order."""
    ticks = []
    for number, line in enumerate(SERIES.read_text(encoding="utf-8").splitlines()):
        document = json.loads(line, parse_float=Decimal)
        at = datetime.fromisoformat(document["timestamp"])
        ticks.append({"symbol": document["symbol"], "price": document["price"], "at": at, "sequence": number})
    return ticks


def add_rules_and_replay(stack: LocalStack, workdir: Path) -> list[str]:
    """Add the rules from a rule file as `tickwatch local --rules` does, and send the series into
    the stream as fast as the writer goes; the ids of the rules added."""
    names = stack.names()
    rule_file = workdir / "rules.yaml"
    rule_file.write_text(RULE_FILE, encoding="utf-8")
    store = RuleStore(stack.session.client("dynamodb"), names["MarketTableName"])
    added = add_rules(store, load_rule_file(rule_file, now=RULES_ADDED))

    writer = KinesisWriter(stack.session.client("kinesis"), names["TickStreamName"], Spool(workdir / "spool.jsonl"))
    summary = run_fetch(ReplayProvider(SERIES), writer, Progress(io.StringIO(), is_tty=False))
    assert summary.invalid == 0
    assert writer.stats.sent == len(series_ticks())
    return added


def stream_ticks(stack: LocalStack) -> list[dict]:
    """The ticks in the stream, as the oracle takes them."""
    return valid_ticks(read_stream(stack.session.client("kinesis"), stack.names()["TickStreamName"]), set())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Add the rules from a rule file, replay the series as fast as possible, wait until the
    alerts settle; the tests below each check one aspect of the result."""
    workdir = tmp_path_factory.mktemp("rule-kinds")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        added = add_rules_and_replay(stack, workdir)
        assert stack.wait_until_caught_up(timeout=60), "the pipeline did not catch up"
        stack.inbox.drain()
        yield stack, added, stream_ticks(stack)
    finally:
        stack.stop()


def test_the_stream_holds_the_series_in_its_order_for_each_symbol(run):
    _, _, ticks = run
    recorded = series_ticks()
    assert len(ticks) == len(recorded)
    for symbol in {t["symbol"] for t in recorded}:
        assert [(t["price"], t["at"]) for t in ticks if t["symbol"] == symbol] == [
            (t["price"], t["at"]) for t in recorded if t["symbol"] == symbol
        ]


def test_the_rule_file_gives_the_rule_ids_the_readme_defines(run):
    _, added, _ = run
    assert added == [rule.rule_id for rule in oracle_rules()]


def test_the_alert_history_is_exactly_the_oracles_alerts(run):
    stack, _, ticks = run
    items = table_items(stack.session.client("dynamodb"), stack.names()["MarketTableName"], "ALERT#")
    history = Counter(
        (item["rule_id"], number_text(item["price"]), alert_time_text(datetime.fromisoformat(item["fired_at"])))
        for item in items
    )
    expected = Counter(oracle_alerts(ticks, oracle_rules()))
    assert _difference(history, expected) == ([], [])


def test_the_inbox_is_exactly_the_oracles_alerts(run):
    stack, _, ticks = run
    inbox = Counter(received_alert(alert.body, alert.attributes) for alert in stack.inbox.received)
    expected = Counter(oracle_alerts(ticks, oracle_rules()))
    assert _difference(inbox, expected) == ([], [])


def _difference(actual: Counter, expected: Counter) -> tuple[list, list]:
    """(alerts missing or too few times, alerts unexpected or too many times), sorted."""
    return sorted((expected - actual).elements()), sorted((actual - expected).elements())


def test_every_kind_fires_at_least_twice_and_rules_fire_again_after_re_arming(run):
    stack, _, ticks = run
    rules = oracle_rules()
    kind_of = {rule.rule_id: rule.kind for rule in rules}
    received = Counter(received_alert(alert.body, alert.attributes)[0] for alert in stack.inbox.received)
    by_kind = Counter()
    for rule_id, count in received.items():
        by_kind[kind_of.get(rule_id, "unknown")] += count
    assert all(by_kind[kind] >= 2 for kind in KINDS), by_kind
    # A rule that fired twice was disarmed by its first alert and re-armed before the second.
    fired_again = {kind_of.get(rule_id, "unknown") for rule_id, count in received.items() if count >= 2}
    assert fired_again == set(KINDS)
    assert len(oracle_alerts(ticks, rules)) == sum(received.values())


# --- the series and the oracle, without the stack ------------------------------------------------


def test_the_series_makes_every_rule_fire_and_every_option_matter():
    """Each rule fires at least twice (a `once` rule: once, where it would fire again without it),
    and for each option the rule without it gives other alerts: the test cannot pass vacuously."""
    ticks = series_ticks()
    for rule in oracle_rules():
        alerts = oracle_alerts(ticks, [rule])
        assert (len(alerts) == 1) if rule.once else (len(alerts) >= 2), (rule.rule_id, alerts)
        for option in ("cooldown", "rearm", "once", "expires_at", "hours"):
            if getattr(rule, option):
                assert oracle_alerts(ticks, [rule.without(option)]) != alerts, (rule.rule_id, option)


def test_the_series_spans_midnight_with_pauses_and_shared_milliseconds():
    ticks = series_ticks()
    assert len(SERIES.read_bytes()) < 300_000
    assert [t["at"] for t in ticks] == sorted(t["at"] for t in ticks)
    assert ticks[0]["at"] >= SERIES_START
    assert ticks[-1]["at"] < SERIES_END
    assert {t["at"].date() for t in ticks} == {SERIES_START.date(), SERIES_END.date()}
    for symbol, pause in (("MSFT", timedelta(minutes=20)), ("TSLA", timedelta(minutes=12))):
        moments = [t["at"] for t in ticks if t["symbol"] == symbol]
        assert max(later - earlier for earlier, later in pairwise(moments)) >= pause
    moments = Counter((t["symbol"], t["at"]) for t in ticks)
    assert sum(1 for count in moments.values() if count > 1) >= 10
    for symbol, moment in (("AAPL", "2026-11-20T23:40:00Z"), ("AAPL", "2026-11-21T00:00:00Z")):
        assert (symbol, datetime.fromisoformat(moment)) in moments
    assert ("TSLA", datetime.fromisoformat("2026-11-21T00:20:00Z")) in moments


def _trades(*rows: tuple[str, str]) -> list[dict]:
    return [
        {"symbol": "AAPL", "price": Decimal(price), "at": datetime.fromisoformat(at), "sequence": n}
        for n, (at, price) in enumerate(rows)
    ]


def test_the_oracle_gives_the_readmes_re_arm_margin_example():
    prices = ["199.9", "200.1", "199.95", "200.05", "199.8", "200.2"]
    trades = _trades(*((f"2026-11-20T14:30:0{n}Z", price) for n, price in enumerate(prices)))
    with_margin = rule_from_entry(
        {"symbol": "AAPL", "direction": "above", "threshold": 200, "rearm": "0.5%"}, now=RULES_ADDED
    )
    assert [price for _, price, _ in oracle_alerts(trades, [with_margin])] == ["200.1"]
    assert [price for _, price, _ in oracle_alerts(trades, [with_margin.without("rearm")])] == [
        "200.05",
        "200.1",
        "200.2",
    ]


def test_the_oracle_gives_the_readmes_day_change_example():
    trades = _trades(
        *((f"2026-11-20T14:3{n}:00Z", price) for n, price in enumerate(["200", "204", "205.9", "206.5", "207"])),
        *((f"2026-11-21T14:3{n}:00Z", price) for n, price in enumerate(["210", "216.3"])),
    )
    rule = rule_from_entry({"symbol": "AAPL", "direction": "above", "change": "3%"}, now=RULES_ADDED)
    assert rule.rule_id == "AAPL-change-above-3pct"
    assert oracle_alerts(trades, [rule]) == [
        ("AAPL-change-above-3pct", "206.5", "2026-11-20 14:33:00.000 UTC"),
        ("AAPL-change-above-3pct", "216.3", "2026-11-21 14:31:00.000 UTC"),
    ]


def test_the_oracles_move_window_is_whole_minutes_back_from_the_trades_own():
    """Within 15m, a trade at 10:07:30 looks at trades stamped 09:53:00.000 to 10:07:59.999."""
    rule = rule_from_entry({"symbol": "AAPL", "direction": "above", "move": "2%", "within": "15m"}, now=RULES_ADDED)
    assert rule.rule_id == "AAPL-move-up-2pct-15m"
    outside = _trades(
        ("2026-11-20T09:52:59.999Z", "100"), ("2026-11-20T09:53:00.000Z", "101"), ("2026-11-20T10:07:30Z", "102.9")
    )
    inside = _trades(("2026-11-20T09:53:00.000Z", "100"), ("2026-11-20T10:07:30Z", "102"))
    assert oracle_alerts(outside, [rule]) == []  # 101 × 1.02 = 103.02
    assert oracle_alerts(inside, [rule]) == [("AAPL-move-up-2pct-15m", "102", "2026-11-20 10:07:30.000 UTC")]


def test_the_oracles_cross_rule_arms_below_the_average_then_fires_at_it():
    rule = rule_from_entry({"symbol": "AAPL", "direction": "above", "cross": "sma:2@1m"}, now=RULES_ADDED)
    assert rule.rule_id == "AAPL-cross-above-sma2-1m"
    trades = _trades(
        ("2026-11-20T10:00:10Z", "10"),
        ("2026-11-20T10:00:50Z", "11"),  # the 10:00 bar closes at 11
        ("2026-11-20T10:01:30Z", "13"),  # closes the 10:01 bar; one close: no average yet
        ("2026-11-20T10:02:10Z", "12.5"),  # (11 + 13) / 2 = 12: above it, but the rule is not armed
        ("2026-11-20T10:03:10Z", "12.5"),  # (13 + 12.5) / 2 = 12.75: below, arms
        ("2026-11-20T10:03:20Z", "12.75"),  # at the average: fires
    )
    assert oracle_alerts(trades, [rule]) == [("AAPL-cross-above-sma2-1m", "12.75", "2026-11-20 10:03:20.000 UTC")]
    ema = rule_from_entry({"symbol": "AAPL", "direction": "above", "cross": "ema:2@1m"}, now=RULES_ADDED)
    # Seed (11 + 13) / 2 = 12, then 2/3 × 12.5 + 1/3 × 12 = 12.333...: 12.3 arms, 12.34 fires.
    trades[-1]["price"], trades[-2]["price"] = Decimal("12.34"), Decimal("12.3")
    assert oracle_alerts(trades, [ema]) == [("AAPL-cross-above-ema2-1m", "12.34", "2026-11-20 10:03:20.000 UTC")]


# --- how the series was made ---------------------------------------------------------------------

START_PRICES = {
    "AAPL": Decimal("228.40"),
    "TSLA": Decimal("341.70"),
    "NVDA": Decimal("181.30"),
    "MSFT": Decimal("506.20"),
}
PAUSES = {
    "MSFT": (datetime(2026, 11, 20, 23, 52, tzinfo=UTC), datetime(2026, 11, 21, 0, 12, tzinfo=UTC)),
    "TSLA": (datetime(2026, 11, 21, 0, 41, tzinfo=UTC), datetime(2026, 11, 21, 0, 53, tzinfo=UTC)),
}
# Trades exactly at a session's start and end, at midnight and at an expiry.
EXACT_MOMENTS = {
    "AAPL": ["2026-11-20T23:40:00Z", "2026-11-21T00:00:00Z", "2026-11-21T00:30:00Z"],
    "TSLA": ["2026-11-21T00:20:00Z"],
    "MSFT": ["2026-11-21T00:30:00Z"],
}


def record_series(path: Path = SERIES, seed: int = 1117) -> None:
    """Write the series: per symbol a trade every 10 to 30 s (3 % of them twice in the same
    millisecond), a mean-reverting random walk of about 0.07 % a trade with four sharp moves of
    eight trades of 0.25 % each, prices in cents; all symbols merged in timestamp order.
    Run once: `python -c 'from tests.local.test_rule_kinds_replay import record_series; record_series()'`."""
    rng = random.Random(seed)
    ticks = []
    for symbol, start in START_PRICES.items():
        moments = [datetime.fromisoformat(moment) for moment in EXACT_MOMENTS.get(symbol, [])]
        at = SERIES_START + timedelta(milliseconds=rng.randrange(0, 15_000))
        pause = PAUSES.get(symbol)
        while at < SERIES_END:
            if not (pause and pause[0] <= at < pause[1]):
                moments += [at, at] if rng.random() < 0.03 else [at]
            at += timedelta(milliseconds=rng.randrange(10_000, 30_001))
        moments.sort()
        sharp = {rng.randrange(20, len(moments) - 20): rng.choice((-1, 1)) for _ in range(4)}
        drift, left, log_return = 0, 0, 0.0
        for index, moment in enumerate(moments):
            if index in sharp:
                drift, left = sharp[index], 8
            step = rng.gauss(0, 0.0007) - 0.01 * log_return + (drift * 0.0025 if left else 0)
            left = max(left - 1, 0)
            log_return += step
            price = (start * Decimal(repr(math.exp(log_return)))).quantize(Decimal("0.01"))
            ticks.append((moment, symbol, price))
    ticks.sort(key=lambda tick: tick[0])
    with path.open("w", encoding="utf-8") as out:
        for moment, symbol, price in ticks:
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            out.write(f'{{"symbol": "{symbol}", "price": {price}, "timestamp": "{stamp}"}}\n')
