"""`tickwatch local --rules FILE`: rules from YAML or JSON, checked like POST /rules before anything starts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tickwatch.cli import main
from tickwatch.local.rule_file import RuleFileError, add_rules, load_rule_file
from tickwatch_core.domain.rules import Direction, TradingHours
from tickwatch_core.store.rule_store import RuleStore

NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_file_gives_rules_with_their_options(tmp_path):
    path = write(
        tmp_path,
        "rules.yaml",
        """
- {symbol: AAPL, direction: above, threshold: 230.10, rearm: 0.5%, once: true, for: 7d}
- symbol: TSLA
  direction: below
  threshold: 240
  cooldown: 5m
  hours: 09:30-16:00
  tz: America/New_York
  weekdays: true
  expires: 2026-12-31T21:00:00Z
""",
    )
    aapl, tsla = load_rule_file(path, now=NOW)
    assert (aapl.symbol, aapl.condition.direction, aapl.condition.threshold) == (
        "AAPL",
        Direction.ABOVE,
        Decimal("230.1"),
    )
    assert (aapl.options.rearm_margin, aapl.options.once) == (Decimal("0.005"), True)
    assert aapl.options.expires_at == NOW + timedelta(days=7)
    assert tsla.cooldown == timedelta(minutes=5)
    assert tsla.options.hours == TradingHours(time(9, 30), time(16, 0), "America/New_York", weekdays_only=True)
    assert tsla.options.expires_at == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)


def test_a_json_file_keeps_every_digit_of_a_threshold(tmp_path):
    path = write(tmp_path, "rules.json", '[{"symbol": "BTC-USD", "direction": "above", "threshold": 64123.123456789}]')
    (rule,) = load_rule_file(path, now=NOW)
    assert rule.condition.threshold == Decimal("64123.123456789")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{symbol: AAPL}", "rules.yaml must be a list of rules"),
        ("[]", "rules.yaml must be a list of rules"),
        ("- AAPL above 200", "rules.yaml rule 1: not a mapping"),
        ("- {symbol: AAPL, direction: above}", "rules.yaml rule 1: threshold: give one of threshold (a price), change"),
        ("- {symbol: AAPL, direction: up, threshold: 1}", "rules.yaml rule 1: direction:"),
        ("- {symbol: AAPL, direction: above, threshold: 1, colour: red}", "rules.yaml rule 1: colour: Extra inputs"),
        (
            "- {symbol: AAPL, direction: above, threshold: 1}\n"
            "- {symbol: AAPL, direction: above, threshold: 2, rearm: x}",
            "rules.yaml rule 2: rearm: re-arm margin 'x' is not a percentage",
        ),
        ("- {symbol: aapl, direction: above, threshold: 1}", "rules.yaml rule 1: 'aapl' is not a symbol"),
        ("- {symbol: AAPL, direction: above, threshold: -1}", "rules.yaml rule 1: threshold: threshold -1 must be"),
        ("- [unclosed", "rules.yaml is not YAML or JSON"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_entry_and_the_field(tmp_path, text, message):
    with pytest.raises(RuleFileError) as error:
        load_rule_file(write(tmp_path, "rules.yaml", text), now=NOW)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_rules_are_added_to_the_table(aws, stack, tmp_path):
    path = write(tmp_path, "rules.yaml", "- {symbol: AAPL, direction: above, threshold: 230, once: true}\n")
    store = RuleStore(aws.client("dynamodb"), stack.physical["MarketTable"].ref)
    assert add_rules(store, load_rule_file(path, now=NOW)) == ["AAPL-above-230"]
    (stored,) = store.list("AAPL")
    assert stored.rule.once


def test_tickwatch_local_refuses_a_bad_rule_file_before_starting_anything(tmp_path, capsys):
    path = write(tmp_path, "rules.yaml", "- {symbol: AAPL, direction: above, threshold: 0}\n")
    assert main(["local", "--rules", str(path), "--count", "1"]) == 2
    error = capsys.readouterr().err
    assert "rules.yaml rule 1: threshold: threshold 0 must be a number greater than zero" in error
    assert error.count("\n") == 1
    assert main(["local", "--rules", str(tmp_path / "missing.yaml"), "--count", "1"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_one_command_tries_a_rule_file_against_a_recorded_replay(tmp_path, capsys):
    """The README's example: `tickwatch local --rules FILE --provider replay --file SERIES`."""
    path = write(
        tmp_path,
        "rules.yaml",
        """
- {symbol: TSLA, direction: below, move: 1.2%, within: 1h30m}
- {symbol: NVDA, direction: above, cross: sma:20@1m}
""",
    )
    series = Path(__file__).parent.parent / "data" / "replay-rule-kinds.jsonl"
    argv = ["local", "--rules", str(path), "--provider", "replay", "--file", str(series), "--speed", "0"]
    assert main([*argv, "--workdir", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    assert "rules from the file: TSLA-move-down-1.2pct-1h30m; NVDA-cross-above-sma20-1m" in out
    assert "ALERT  tickwatch: TSLA moved down" in out
    assert "ALERT  tickwatch: NVDA crossed above its SMA(20) of 1m bars" in out
    # The summary compacts the hours of the recorded ticks, however long ago they were.
    assert "5 hour(s) compacted: 2,117 ticks" in out
