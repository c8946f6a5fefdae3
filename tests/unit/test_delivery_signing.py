"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`, checked as a receiver would."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from tickwatch_core.domain.delivery.signing import sign, signed_headers, verify

SECRET = "whsec-0123456789abcdef"
BODY = b'{"version":"1","type":"alert"}'


def test_the_signature_is_hmac_sha256_of_the_timestamp_and_the_body():
    # Computed independently, as the README's verification snippet does.
    expected = hmac.new(SECRET.encode(), b"1765117800." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1765117800, BODY) == f"v1={expected}"


def test_a_receiver_accepts_what_was_signed_and_refuses_changes_and_old_requests():
    headers = signed_headers(SECRET, 1765117800, BODY, "d-1")
    assert headers["Tickwatch-Delivery"] == "d-1"
    assert verify(SECRET, headers, BODY, now=1765117800 + 299)
    assert not verify(SECRET, headers, BODY + b" ", now=1765117800)
    assert not verify("another-secret-0000", headers, BODY, now=1765117800)
    assert not verify(SECRET, headers, BODY, now=1765117800 + 301)
    assert not verify(SECRET, {**headers, "Tickwatch-Timestamp": "1765117801"}, BODY, now=1765117800)
    assert not verify(SECRET, {}, BODY, now=1765117800)
    # Header names are case-insensitive in HTTP.
    assert verify(SECRET, {name.lower(): value for name, value in headers.items()}, BODY, now=1765117800)


def test_the_readmes_verification_snippet_accepts_our_signature_and_refuses_a_changed_body():
    # The snippet a receiver copies from the README, run as it stands.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (snippet,) = [block for block in readme.split("```python\n")[1:] if "def verify(secret" in block]
    namespace: dict = {}
    exec(snippet.split("```", 1)[0], namespace)
    now = int(time.time())
    headers = signed_headers(SECRET, now, BODY, "d-1")
    assert namespace["verify"](SECRET, headers, BODY)
    assert not namespace["verify"](SECRET, headers, BODY + b"x")
    assert not namespace["verify"](SECRET, signed_headers(SECRET, now - 301, BODY, "d-1"), BODY)  # too old
