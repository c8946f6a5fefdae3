"""Batched DynamoDB reads and writes that finish the work DynamoDB hands back as unprocessed."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from tickwatch_core.store import items

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
_ATTEMPTS = 5


class UnprocessedItemsError(ClientError):
    """DynamoDB still returned unprocessed keys or items after every retry."""

    def __init__(self, operation: str, count: int) -> None:
        super().__init__(
            {"Error": {"Code": "UnprocessedItems", "Message": f"{count} still unprocessed after {_ATTEMPTS} attempts"}},
            operation,
        )


def batch_get(
    client: Any, table_name: str, keys: Sequence[items.Key], *, consistent: bool = True
) -> dict[tuple[str, str], dict[str, Any]]:
    """Reads of `keys` (strongly consistent unless `consistent=False`, which costs half the read
    units); returns deserialized items by (pk, sk), absent keys left out."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table_name: {"Keys": list(keys[start : start + BATCH_GET_LIMIT]), "ConsistentRead": consistent}
        }
        for attempt in range(_ATTEMPTS):
            response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table_name, []):
                found[items.key_of(item)] = items.deserialize(item)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            _back_off(attempt)
        else:
            raise UnprocessedItemsError("BatchGetItem", len(request[table_name]["Keys"]))
    return found


def batch_put(client: Any, table_name: str, new_items: Sequence[dict[str, Any]]) -> None:
    """Unconditional puts, 25 a call, retrying what DynamoDB hands back unprocessed."""
    batch_write(client, table_name, [{"PutRequest": {"Item": item}} for item in new_items])


def batch_write(client: Any, table_name: str, requests: Sequence[dict[str, Any]]) -> None:
    """Put and delete requests, 25 a call, retrying what DynamoDB hands back unprocessed."""
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        request: dict[str, Any] = {table_name: list(requests[start : start + BATCH_WRITE_LIMIT])}
        for attempt in range(_ATTEMPTS):
            response = client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                break
            _back_off(attempt)
        else:
            raise UnprocessedItemsError("BatchWriteItem", len(request[table_name]))


def keys_by_kind(
    client: Any, table_name: str, kind: str, *, newest_first: bool = False, limit: int | None = None
) -> list[items.Key]:
    """Keys of every item of one kind (QUOTE, RULE, ALERT) from the keys-only ByKind index."""
    keys: list[items.Key] = []
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": items.KIND_INDEX,
        "KeyConditionExpression": "kind = :kind",
        "ExpressionAttributeValues": {":kind": {"S": kind}},
        "ScanIndexForward": not newest_first,
    }
    while True:
        if limit is not None:
            arguments["Limit"] = limit - len(keys)
        response = client.query(**arguments)
        keys += [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response or (limit is not None and len(keys) >= limit):
            return keys
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _back_off(attempt: int) -> None:
    # Full jitter, as DynamoDB's guidance for unprocessed items suggests.
    time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
