"""HTTPS ingest: a request's body of ticks -> the tick stream, with an answer for every tick.

A body is a JSON array of tick objects (`application/json`) or JSON Lines, one tick per line
(`application/x-ndjson`, `application/jsonl`). At most `MAX_TICKS` ticks and `MAX_BODY_BYTES`. Each
tick is validated by the processor's own parser (`kinesis_put.tick_record`), so a tick accepted
here is never quarantined downstream for its content, and a refused one gets the very reason the
pipeline would give. The valid ticks go to Kinesis with PutRecords, partition key the symbol, and
the records Kinesis reports as failed are retried while the request's time allows.

Every tick of the body ends in exactly one of three lists, by its index (its position in the array,
or among the body's non-blank lines):
* accepted: in the stream;
* `rejected`: not a valid tick; sending it again will not help;
* `failed`: valid, but Kinesis did not take it in time (throttled); send those again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from tickwatch_core.domain.ticks import TickRejected
from tickwatch_core.sources.kinesis_put import Record, RetryPolicy, put_records, tick_record

MAX_TICKS = 500  # one PutRecords request
MAX_BODY_BYTES = 5 * 1024 * 1024
JSON_TYPES = frozenset({"application/json"})
JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})
# Time kept back from the invocation's remaining time for answering the client.
ANSWER_MARGIN_SECONDS = 1.0


class BodyError(ValueError):
    """The body as a whole is not ticks: nothing was sent. `status` is the HTTP answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index", "reason"}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"index", "error"}

    @property
    def status(self) -> HTTPStatus:
        return HTTPStatus.OK if not (self.rejected or self.failed) else HTTPStatus.MULTI_STATUS

    def body(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected, "failed": self.failed}


class _NotATick:
    """A body element the decoder already knows is not a tick (duplicate keys), with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _NotATick:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            return _NotATick(f"not JSON: duplicate key {key!r}")
        document[key] = value
    return document


# Numbers decode as exact Decimals (a price is never rounded through a float); NaN and Infinity as
# Decimals too, which the encoder then refuses with a reason for that tick alone.
_decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal, object_pairs_hook=_object)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(body: bytes, content_type: str | None) -> list[Any]:
    """The body's tick candidates, in order. Raises `BodyError` when the body is not ticks."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES | JSON_LINES_TYPES:
        shown = kind or "no Content-Type"
        raise BodyError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"send ticks as application/json (an array) or application/x-ndjson (JSON Lines), not {shown}",
        )
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body is {len(body):,} bytes; send at most {MAX_BODY_BYTES:,} per request",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body is not UTF-8 text") from None
    candidates = _json_lines(text) if kind in JSON_LINES_TYPES else _json_array(text)
    if not candidates:
        raise BodyError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body holds no ticks")
    if len(candidates) > MAX_TICKS:
        raise BodyError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body holds {len(candidates):,} ticks; send at most {MAX_TICKS} per request",
        )
    return candidates


def _json_array(text: str) -> list[Any]:
    try:
        document = _decoder.decode(text)
    except json.JSONDecodeError as error:
        raise BodyError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"the body is not JSON: {error.msg} (line {error.lineno}, column {error.colno})",
        ) from None
    except RecursionError:
        raise BodyError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body is not JSON: nested too deeply") from None
    if isinstance(document, _NotATick | dict):
        raise BodyError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "the body is one JSON object; send an array of ticks, even for one tick: [{...}]",
        )
    if not isinstance(document, list):
        raise BodyError(HTTPStatus.UNPROCESSABLE_ENTITY, "the body is JSON but not an array of ticks")
    return document


def _json_lines(text: str) -> list[Any]:
    """One candidate per non-blank line; a line that is not JSON is a rejected tick, not a bad body."""
    candidates: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            candidates.append(_decoder.decode(line))
        except json.JSONDecodeError as error:
            candidates.append(_NotATick(f"not JSON: {error.msg} (column {error.colno})"))
        except RecursionError:
            candidates.append(_NotATick("not JSON: nested too deeply"))
    return candidates


def ingest(
    candidates: Sequence[Any],
    *,
    kinesis: Any,
    stream_name: str,
    time_left: Callable[[], float],
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> IngestResult:
    """Validate `candidates` and put the valid ones into the stream; see the module docstring.

    `time_left()` is the seconds left of the request; retries stop in time to answer. Raises
    `kinesis_put.StreamUnavailable` when the stream cannot be used at all (nothing was sent).
    """
    received_at = now or datetime.now(UTC)
    result = IngestResult()
    records: list[Record] = []
    indexes: list[int] = []
    for index, candidate in enumerate(candidates):
        if isinstance(candidate, _NotATick):
            result.rejected.append({"index": index, "reason": candidate.reason})
            continue
        try:
            records.append(tick_record(candidate, received_at=received_at))
        except TickRejected as rejection:
            result.rejected.append({"index": index, "reason": rejection.reason})
            continue
        indexes.append(index)
    if records:
        outcome = put_records(
            kinesis,
            stream_name,
            records,
            policy=policy,
            time_left=lambda: time_left() - ANSWER_MARGIN_SECONDS,
        )
        result.accepted = outcome.sent
        result.failed = [{"index": indexes[i], "error": error} for i, error in sorted(outcome.failed.items())]
    return result
