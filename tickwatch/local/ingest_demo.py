"""`make run`'s proof of `POST /ticks`: a small body over HTTP through the local gateway.

Two ticks of a symbol of its own (so the demo's rules and the simulator's symbols are untouched)
and one that breaks the contract, so the summary shows the per-tick answer: 207, two accepted and
one rejected with the pipeline's reason.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

SYMBOL = "HTTPS"


def sample_body(now: datetime) -> list[dict]:
    def at(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return [
        {"symbol": SYMBOL, "price": 100.25, "volume": 10, "timestamp": at(2)},
        {"symbol": SYMBOL, "price": 100.5, "volume": 5, "timestamp": at(1)},
        {"symbol": SYMBOL, "price": 0, "timestamp": at(0)},  # not a price: rejected, with the reason
    ]


def post_sample_ticks(api_url: str, key: str, *, timeout: float = 10.0) -> str:
    """POST the sample body to `<api_url>/ticks`; one line saying what the API answered."""
    ticks = sample_body(datetime.now(UTC))
    body = json.dumps(ticks).encode()
    request = urllib.request.Request(
        f"{api_url}/ticks",
        data=body,
        method="POST",
        headers={"x-api-key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, answer = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return f"POST /ticks answered {error.code}: {error.read()[:300].decode(errors='replace')}"
    rejected = "; ".join(f"#{r['index']}: {r['reason']}" for r in answer["rejected"])
    accepted, failed = answer["accepted"], len(answer["failed"])
    return (
        f"POST /ticks ({len(ticks)} ticks of {SYMBOL}) answered {status}: {accepted} accepted, "
        f"{len(answer['rejected'])} rejected ({rejected}), {failed} failed"
    )
