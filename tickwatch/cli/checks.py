"""Checks of command-line input that raise InputError: symbols and e-mail addresses."""

from __future__ import annotations

import re

from tickwatch.resources import InputError
from tickwatch_core.domain.rules import validate_symbol

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_symbol(symbol: str) -> str:
    try:
        return validate_symbol(symbol)
    except ValueError as error:
        raise InputError(str(error)) from None


def _check_email(email: str) -> str:
    if not EMAIL_PATTERN.match(email):
        raise InputError(f"{email!r} is not an e-mail address")
    return email
