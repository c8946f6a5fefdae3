from __future__ import annotations

import pytest

from tickwatch_core.domain.sequence import sequence_from_sortable, sortable_sequence


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("1", "2"),
        ("9", "10"),  # moto's short numbers: string order alone would get this wrong
        (
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588899",
        ),
        (
            "99999999999999999999999999999999999999999999999999999999",
            "100000000000000000000000000000000000000000000000000000000",
        ),
    ],
)
def test_sortable_keys_order_like_the_numbers(smaller, larger):
    assert sortable_sequence(smaller) < sortable_sequence(larger)


def test_round_trip_and_width():
    number = "4959033827149025660855969253836157109592157598913658889812345678901234567890"
    key = sortable_sequence(number)
    assert key.startswith("076")
    assert sequence_from_sortable(key) == number


@pytest.mark.parametrize("bad", ["", "12a", "-1", "1" * 130, "١٢"])
def test_non_sequence_numbers_are_refused(bad):
    with pytest.raises(ValueError, match="sequence number"):
        sortable_sequence(bad)
