"""Ordering of Kinesis sequence numbers.

Sequence numbers are decimal strings of up to 129 digits (56 are common), more than a DynamoDB
number can hold (38 significant digits). We store them as *sortable keys*: the digit count as three
digits, then the digits. For numbers without leading zeros, comparing two keys as strings (in
Python or in a DynamoDB condition expression) gives the same answer as comparing the numbers.
"""

from __future__ import annotations

MAX_SEQUENCE_DIGITS = 129


def sortable_sequence(sequence_number: str) -> str:
    """`"49590338271490256608559692538361571095921575989136588898"` -> `"056495903..."`."""
    if not sequence_number.isdigit() or not sequence_number.isascii():
        raise ValueError(f"sequence number {sequence_number!r} is not a decimal string")
    digits = sequence_number.lstrip("0") or "0"
    if len(digits) > MAX_SEQUENCE_DIGITS:
        raise ValueError(f"sequence number has {len(digits)} digits; at most {MAX_SEQUENCE_DIGITS}")
    return f"{len(digits):03d}{digits}"


def sequence_from_sortable(key: str) -> str:
    """Inverse of `sortable_sequence`."""
    return key[3:]
