"""Webhook signatures: HMAC-SHA256 over the timestamp and the body. Pure.

Headers on every webhook POST:
- `Tickwatch-Timestamp`: Unix seconds when it was signed;
- `Tickwatch-Signature`: `v1=` and the hex HMAC-SHA256, keyed with the destination's secret, of
  `<timestamp>.<body>` (the body's exact bytes);
- `Tickwatch-Delivery`: the delivery's id, the same on every retry of it (a receiver's idempotency key).

A receiver recomputes the HMAC, compares it in constant time, and refuses a timestamp more than
five minutes old (a replayed request): `verify` is that check, and the README has it standalone.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "Tickwatch-Timestamp"
SIGNATURE_HEADER = "Tickwatch-Signature"
DELIVERY_HEADER = "Tickwatch-Delivery"
SIGNATURE_VERSION = "v1"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Tickwatch-Signature` value for `body` signed at `timestamp`."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(secret: str, timestamp: int, body: bytes, delivery_id: str) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))
