"""Numbers DynamoDB can store: at most 38 significant digits, magnitudes from 1E-130 to 1E+126."""

from __future__ import annotations

from decimal import Clamped, Context, Decimal, DecimalException, Inexact, Overflow, Rounded, Underflow

# boto3's DYNAMODB_CONTEXT (boto3/dynamodb/types.py), spelled out so that validating a tick does
# not import boto3 (a quarter of a second of cold start); tests/unit compares the two.
DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])

# Decimal's default context rounds to 28 digits; normalising must never change a number.
_EXACT = Context(prec=100)


def storable_decimal(value: int | float | str | Decimal) -> Decimal:
    """`value` as a Decimal boto3 will serialize unchanged; ValueError says why it cannot be.

    A float goes through its shortest repr, so 201.05 stays 201.05 rather than the 48-digit
    expansion of the nearest double. Trailing zeros beyond 38 digits are dropped (they change
    nothing); any other loss of digits is refused rather than rounded.
    """
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value} is not a finite number")
    for candidate in (number, number.normalize(_EXACT)):
        try:
            DYNAMODB_CONTEXT.create_decimal(candidate)
        except DecimalException:
            continue
        return candidate
    digits = len(number.normalize(_EXACT).as_tuple().digits)
    if digits > DYNAMODB_CONTEXT.prec:
        raise ValueError(f"{value} has {digits} significant digits; at most {DYNAMODB_CONTEXT.prec}")
    raise ValueError(f"{value} is too {'small' if number.adjusted() < 0 else 'large'} to store")
