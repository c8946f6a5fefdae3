"""Putting records into the tick stream: PutRecords, retrying the records it reports as failed.

One definition of how a producer writes, shared by `tickwatch fetch` (which adds a buffer and a
spool on top), the HTTPS ingest route and the scheduled producer. `put_records` splits records into
requests within Kinesis' limits (500 records, 5 MiB, the partition key counted), sends them, and
retries only the records a response marks as failed (throttled shards, internal errors) with
exponential backoff and full jitter. Errors that say the stream cannot be used at all (it does not
exist, access denied, bad credentials) raise `StreamUnavailable` at once: retrying would not help.

A caller with a deadline (a Lambda invocation, an HTTP request) passes `time_left`: no retry starts
unless its backoff fits in what is left, and the records still failed at the end come back with
their last error, by index, so nothing is silently dropped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_RECORDS_PER_REQUEST = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024

# Errors that say the stream cannot be used at all: retrying or spooling would not help.
_FATAL_CODES = {
    "ResourceNotFoundException": "stream {stream} does not exist",
    "AccessDeniedException": "not allowed to put records into {stream}",
    "UnrecognizedClientException": "the AWS credentials were rejected",
    "InvalidSignatureException": "the AWS credentials were rejected",
    "ExpiredTokenException": "the AWS session token has expired",
    "ValidationException": "Kinesis refused the request for {stream}",
}


class StreamUnavailable(RuntimeError):
    """The stream cannot take records and waiting will not change that."""


@dataclass(frozen=True, slots=True)
class Record:
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        # Kinesis counts the partition key towards the record and request limits.
        return len(self.data) + len(self.partition_key.encode())


@dataclass
class PutOutcome:
    """What became of the records given to `put_records`."""

    sent: int = 0
    retried: int = 0  # records a response reported as failed (retried while attempts and time last)
    failed_calls: int = 0  # calls that failed whole (throttled, timed out, unreachable)
    failed: dict[int, str] = field(default_factory=dict)  # index in the input -> the last error


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.05
    max_delay: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    random: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def tick_record(document: Any, *, received_at: datetime) -> Record:
    """`document` as the record the processor will receive (compact JSON, the symbol as partition
    key), validated by the processor's own parser so that a producer refuses exactly what the
    pipeline would quarantine, with the same reason. Raises `TickRejected`."""
    from tickwatch_core.domain import exact_json
    from tickwatch_core.domain.ticks import TickRejected, parse_tick

    try:
        data = exact_json.dumps(document).encode("utf-8")
    except (ValueError, TypeError) as error:
        raise TickRejected(f"not JSON: {error}") from None
    return Record(data, parse_tick(data, received_at=received_at).symbol)


def requests_of(records: Sequence[Record]) -> Iterator[list[int]]:
    """The indexes of `records`, split into PutRecords requests within Kinesis' limits."""
    request: list[int] = []
    size = 0
    for index, record in enumerate(records):
        if record.size > MAX_RECORD_BYTES:
            raise ValueError(f"a record of {record.size} bytes is over the Kinesis limit of {MAX_RECORD_BYTES}")
        if request and (len(request) == MAX_RECORDS_PER_REQUEST or size + record.size > MAX_REQUEST_BYTES):
            yield request
            request, size = [], 0
        request.append(index)
        size += record.size
    if request:
        yield request


def put_records(
    client: Any,
    stream_name: str,
    records: Sequence[Record],
    *,
    policy: RetryPolicy | None = None,
    time_left: Callable[[], float] | None = None,
) -> PutOutcome:
    """Send `records` (any number) and retry the failed ones; see the module docstring.

    `time_left()` returns the seconds the caller may still spend; a retry whose backoff would not
    leave at least a second for its call is not started.
    """
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    policy = policy or RetryPolicy()
    outcome = PutOutcome()
    for request in requests_of(records):
        pending = request
        last_error: dict[int, str] = {}
        for attempt in range(policy.max_attempts):
            if attempt:
                delay = policy.delay(attempt)
                if time_left is not None and time_left() < delay + 1.0:
                    break
                policy.sleep(delay)
            try:
                response = client.put_records(
                    StreamName=stream_name,
                    Records=[{"Data": records[i].data, "PartitionKey": records[i].partition_key} for i in pending],
                )
            except NoCredentialsError:
                raise StreamUnavailable("no AWS credentials found") from None
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code in _FATAL_CODES:
                    raise StreamUnavailable(_FATAL_CODES[code].format(stream=stream_name)) from None
                outcome.failed_calls += 1
                message = f"{code}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
                last_error = dict.fromkeys(pending, message)
                continue
            except BotoCoreError as error:  # unreachable endpoint, timeout, dropped connection
                outcome.failed_calls += 1
                last_error = dict.fromkeys(pending, f"{type(error).__name__}: {error}")
                continue
            failed = []
            for index, result in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in result:
                    failed.append(index)
                    last_error[index] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".rstrip(": ")
            outcome.sent += len(pending) - len(failed)
            outcome.retried += len(failed)
            pending = failed
            if not pending:
                break
        outcome.failed.update({index: last_error[index] for index in pending})
    return outcome
