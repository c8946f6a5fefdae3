"""In-memory stand-ins for the S3, DynamoDB and SNS calls the functions make, for the benchmark.

They answer in microseconds, so a benchmark run against them measures the functions' own work
(parsing, folding, planning, serializing) without an emulator's cost. They keep real state and
check the condition expressions the functions use, so the functions take the same paths they take
against AWS; they are not a general emulator (tests use moto for that).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

_ASSIGNMENT = re.compile(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$")
_COMPARISON = re.compile(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$")
_SET_CHANGE = re.compile(r"^\s*(ADD|DELETE)\s+(#?\w+)\s+(:\w+)\s*$")
_FUNCTION = re.compile(r"^\s*(attribute_exists|attribute_not_exists)\((#?\w+)\)\s*$")


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        return {"ETag": f'"{uuid.uuid4().hex}"'}


class _Table(dict):
    """Items by (pk, sk), with each partition's sort keys kept, so a Query reads its partition only
    (the broadcast's table holds 20,000 subscriptions, of which one Query wants 1,000)."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[str, set[str]] = {}

    def __setitem__(self, key: tuple[str, str], item: dict[str, Any]) -> None:
        super().__setitem__(key, item)
        self.partitions.setdefault(key[0], set()).add(key[1])

    def pop(self, key: tuple[str, str], default: Any = None) -> Any:
        if key in self:
            self.partitions[key[0]].discard(key[1])
        return super().pop(key, default)


class FakeDynamoDB:
    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}

    def _table(self, name: str) -> _Table:
        return self.tables.setdefault(name, _Table())

    def batch_get_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        responses = {}
        for table, request in RequestItems.items():
            stored = self._table(table)
            found = [stored[_key(key)] for key in request["Keys"] if _key(key) in stored]
            responses[table] = [dict(item) for item in found]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: Mapping[str, str] | None = None,
        ExpressionAttributeValues: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        table = self._table(TableName)
        current = table.get(_key(Item))
        _check(ConditionExpression, current, ExpressionAttributeNames or {}, ExpressionAttributeValues or {}, "PutItem")
        table[_key(Item)] = dict(Item)
        return {}

    def batch_write_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        for table, requests in RequestItems.items():
            for request in requests:
                if "DeleteRequest" in request:
                    self._table(table).pop(_key(request["DeleteRequest"]["Key"]))
                    continue
                item = request["PutRequest"]["Item"]
                self._table(table)[_key(item)] = dict(item)
        return {"UnprocessedItems": {}}

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: Mapping[str, str] | None = None,
        ExpressionAttributeValues: Mapping[str, Any] | None = None,
        ReturnValues: str = "NONE",
    ) -> dict[str, Any]:
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        table = self._table(TableName)
        current = table.get(_key(Key))
        _check(ConditionExpression, current, names, values, "UpdateItem")
        updated = dict(current or Key)
        set_change = _SET_CHANGE.match(UpdateExpression)
        if set_change:  # ADD or DELETE members of a string set
            action, name, value = set_change.groups()
            name = names.get(name, name)
            members = set(updated.get(name, {}).get("SS", ()))
            members = members | set(values[value]["SS"]) if action == "ADD" else members - set(values[value]["SS"])
            if members:
                updated[name] = {"SS": sorted(members)}
            else:
                updated.pop(name, None)
        elif UpdateExpression.startswith("SET "):
            for assignment in UpdateExpression[4:].split(","):
                match = _ASSIGNMENT.match(assignment)
                if match is None:
                    raise NotImplementedError(f"assignment {assignment!r} is not supported")
                updated[names.get(match.group(1), match.group(1))] = values[match.group(2)]
        else:
            raise NotImplementedError(f"update {UpdateExpression!r} is not supported")
        table[_key(Key)] = updated
        return {"Attributes": dict(updated)} if ReturnValues == "ALL_NEW" else {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        item = self._table(TableName).get(_key(Key))
        return {} if item is None else {"Item": dict(item)}

    def delete_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        item = self._table(TableName).pop(_key(Key), None)
        return {} if item is None else {"Attributes": item}

    def query(
        self,
        *,
        TableName: str,
        KeyConditionExpression: str,
        ExpressionAttributeValues: Mapping[str, Any],
        IndexName: str | None = None,
        ScanIndexForward: bool = True,
        Limit: int | None = None,
        ExclusiveStartKey: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """The key conditions the functions use, in key order; ProjectionExpression is ignored
        (whole items come back), the ByKind index answers keys only, as it projects them."""
        values = ExpressionAttributeValues
        if IndexName is not None:
            return self._query_by_kind(
                TableName, KeyConditionExpression, values, ScanIndexForward, Limit, ExclusiveStartKey
            )
        pk = values[":pk"]["S"]
        if "begins_with(sk, :prefix)" in KeyConditionExpression:
            prefix = values[":prefix"]["S"]
            keep = lambda sk: sk.startswith(prefix)  # noqa: E731
        elif "sk BETWEEN :first AND :last" in KeyConditionExpression:
            first, last = values[":first"]["S"], values[":last"]["S"]
            keep = lambda sk: first <= sk <= last  # noqa: E731
        elif "sk BETWEEN :lower AND :upper" in KeyConditionExpression:
            lower, upper = values[":lower"]["S"], values[":upper"]["S"]
            keep = lambda sk: lower <= sk <= upper  # noqa: E731
        elif KeyConditionExpression.strip() == "pk = :pk":
            keep = lambda sk: True  # noqa: E731
        else:
            raise NotImplementedError(f"key condition {KeyConditionExpression!r} is not supported")
        table = self._table(TableName)
        found = [table[(pk, sk)] for sk in sorted(table.partitions.get(pk, ())) if keep(sk)]
        if not ScanIndexForward:
            found.reverse()
        if ExclusiveStartKey is not None:
            start = _key(ExclusiveStartKey)
            found = [item for item in found if (_key(item) > start) == ScanIndexForward and _key(item) != start]
        return _page(found, Limit, ("pk", "sk"))

    def _query_by_kind(
        self,
        table: str,
        condition: str,
        values: Mapping[str, Any],
        forward: bool,
        limit: int | None,
        start: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        kind = values[":kind"]["S"]
        upper = values[":upper"]["S"] if "kind_key < :upper" in condition else None
        found = sorted(
            (
                {name: item[name] for name in ("pk", "sk", "kind", "kind_key")}
                for item in self._table(table).values()
                if item.get("kind", {}).get("S") == kind and (upper is None or item["kind_key"]["S"] < upper)
            ),
            key=lambda item: (item["kind_key"]["S"], _key(item)),
            reverse=not forward,
        )
        if start is not None:
            position = (start["kind_key"]["S"], _key(start))
            found = [
                i for i in found if ((i["kind_key"]["S"], _key(i)) > position) == forward and _key(i) != _key(start)
            ]
        return _page(found, limit, ("pk", "sk", "kind", "kind_key"))


def _page(found: list[dict[str, Any]], limit: int | None, key_names: tuple[str, ...]) -> dict[str, Any]:
    page = found if limit is None else found[:limit]
    answer: dict[str, Any] = {"Items": [dict(item) for item in page], "Count": len(page)}
    if limit is not None and len(found) > limit:
        answer["LastEvaluatedKey"] = {name: page[-1][name] for name in key_names}
    return answer


class FakeSNS:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, *, TopicArn: str, Message: str, **fields: Any) -> dict[str, Any]:
        self.published.append({"Message": Message, **fields})
        return {"MessageId": str(uuid.uuid4())}

    def publish_batch(self, *, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> dict[str, Any]:
        self.published += PublishBatchRequestEntries
        return {
            "Successful": [{"Id": entry["Id"], "MessageId": str(uuid.uuid4())} for entry in PublishBatchRequestEntries]
        }


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return item["pk"]["S"], item["sk"]["S"]


def _check(
    expression: str | None,
    item: dict[str, Any] | None,
    names: Mapping[str, str],
    values: Mapping[str, Any],
    operation: str,
) -> None:
    """Evaluate `a AND b`, `a OR b` of attribute_exists/attribute_not_exists/`x = :v`."""
    if not expression:
        return
    if any(all(_term(term, item, names, values) for term in part.split(" AND ")) for part in expression.split(" OR ")):
        return
    raise ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}, operation
    )


def _term(term: str, item: dict[str, Any] | None, names: Mapping[str, str], values: Mapping[str, Any]) -> bool:
    function = _FUNCTION.match(term)
    if function:
        present = item is not None and names.get(function.group(2), function.group(2)) in item
        return present if function.group(1) == "attribute_exists" else not present
    comparison = _COMPARISON.match(term)
    if comparison:
        name = names.get(comparison.group(1), comparison.group(1))
        return item is not None and item.get(name) == values[comparison.group(2)]
    raise NotImplementedError(f"condition {term!r} is not supported")


class FakeKinesis:
    """PutRecords that keeps the records and accepts them all, numbering them as a shard does."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        results = []
        for record in Records:
            self.records.append((record["PartitionKey"], bytes(record["Data"])))
            results.append({"SequenceNumber": str(len(self.records)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": 0, "Records": results}
