"""What is in the functions' on-failure queues (`tickwatch dlq list`).

Each message is the metadata Lambda sends when it gives up on a batch of stream records: which
function, shard and sequence range, why (retries exhausted or records too old, and the function
error), and when. Listing does not consume the messages: they are made visible again at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Output key of each function's failure queue in template.yaml.
FAILURE_QUEUES = {"processor": "ProcessorFailureQueueUrl", "alerts": "AlertsFailureQueueUrl"}
_PEEK_SECONDS = 30


@dataclass(frozen=True, slots=True)
class FailedBatch:
    function: str
    message_id: str
    body: dict[str, Any]

    @property
    def source(self) -> str:
        return "Kinesis" if "KinesisBatchInfo" in self.body else "DynamoDB"

    @property
    def info(self) -> dict[str, Any]:
        return self.body.get("KinesisBatchInfo") or self.body.get("DDBStreamBatchInfo") or {}

    @property
    def reason(self) -> str:
        condition = self.body.get("requestContext", {}).get("condition", "unknown")
        error = self.body.get("responseContext", {}).get("functionError")
        invokes = self.body.get("requestContext", {}).get("approximateInvokeCount")
        return condition + (f" ({error}" + (f", {invokes} invocations)" if invokes else ")") if error else "")

    def age(self, now: datetime | None = None) -> float:
        stamp = self.body.get("timestamp")
        if not stamp:
            return 0.0
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return max(0.0, ((now or datetime.now(UTC)) - sent).total_seconds())


def failed_batches(sqs: Any, queue_url: str, function: str) -> list[FailedBatch]:
    """Every message in one failure queue, left in the queue."""
    found: dict[str, FailedBatch] = {}
    receipts: list[str] = []
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=_PEEK_SECONDS, WaitTimeSeconds=0
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in found]
            receipts += [m["ReceiptHandle"] for m in messages]
            if not fresh:
                break
            for message in fresh:
                try:
                    body = json.loads(message["Body"])
                except json.JSONDecodeError:
                    body = {"requestContext": {"condition": "not a Lambda on-failure message"}, "raw": message["Body"]}
                found[message["MessageId"]] = FailedBatch(function, message["MessageId"], body)
    finally:
        for receipt in receipts:  # back to visible: listing consumes nothing
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return sorted(found.values(), key=lambda batch: batch.body.get("timestamp", ""))


def describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
