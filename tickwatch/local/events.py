"""Lambda event shapes for stream sources, exactly as Lambda delivers them (and the tests build them)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


def kinesis_record(
    *,
    data: bytes,
    sequence_number: str,
    partition_key: str,
    arrival: datetime,
    shard_id: str,
    stream_arn: str,
    region: str = DEFAULT_REGION,
    role_arn: str | None = None,
) -> dict[str, Any]:
    """One record of a Kinesis event: base64 data, eventID `<shard>:<sequence number>`."""
    account = stream_arn.split(":")[4] or DEFAULT_ACCOUNT
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": arrival.timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn or f"arn:aws:iam::{account}:role/tickwatch-local-function-role",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def kinesis_record_from_api(
    record: dict[str, Any], *, shard_id: str, stream_arn: str, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """A GetRecords record (boto3 shape) as a Lambda event record."""
    return kinesis_record(
        data=record["Data"],
        sequence_number=record["SequenceNumber"],
        partition_key=record["PartitionKey"],
        arrival=record["ApproximateArrivalTimestamp"],
        shard_id=shard_id,
        stream_arn=stream_arn,
        region=region,
    )


def dynamodb_record_from_api(
    record: dict[str, Any], *, stream_arn: str, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """A DynamoDB Streams GetRecords record (boto3 shape) as a Lambda event record."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }


def sequence_number_of(record: dict[str, Any]) -> str:
    """The checkpoint identifier of a stream record (what batchItemFailures name)."""
    if "kinesis" in record:
        return record["kinesis"]["sequenceNumber"]
    return record["dynamodb"]["SequenceNumber"]


def arrival_of(record: dict[str, Any]) -> datetime:
    if "kinesis" in record:
        return datetime.fromtimestamp(record["kinesis"]["approximateArrivalTimestamp"], UTC)
    return datetime.fromtimestamp(record["dynamodb"].get("ApproximateCreationDateTime", 0), UTC)


def partition_key_of(record: dict[str, Any]) -> str:
    if "kinesis" in record:
        return record["kinesis"]["partitionKey"]
    keys = record["dynamodb"].get("Keys", {})
    return "|".join(f"{name}={next(iter(value.values()))}" for name, value in sorted(keys.items()))


def on_failure_message(
    *,
    records: list[dict[str, Any]],
    function_arn: str,
    request_id: str,
    condition: str,
    invoke_count: int,
    function_error: str | None,
    shard_id: str,
) -> dict[str, Any]:
    """What Lambda sends to a stream event source's on-failure destination: metadata, not records."""
    first, last = records[0], records[-1]
    kind = "KinesisBatchInfo" if "kinesis" in first else "DDBStreamBatchInfo"
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(datetime.now(UTC)),
        kind: {
            "shardId": shard_id,
            "startSequenceNumber": sequence_number_of(first),
            "endSequenceNumber": sequence_number_of(last),
            "approximateArrivalOfFirstRecord": _iso(arrival_of(first)),
            "approximateArrivalOfLastRecord": _iso(arrival_of(last)),
            "batchSize": len(records),
            "streamArn": first["eventSourceARN"],
        },
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def api_gateway_rest_event(
    *,
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    stage: str = "v1",
    api_id: str = "local",
    api_key_id: str | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str = "",
    moment: datetime | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload 1.0), as Lambda gets it for `method path` on
    the route `resource` (like `/quotes/{symbol}`): single- and multi-value headers and query
    parameters, path parameters, the stage and the request context. A body that is not UTF-8
    text is base64-encoded, as API Gateway does."""
    moment = moment or datetime.now(UTC)
    query = query or []
    headers = headers or {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    encoded = False
    text: str | None = None
    if body is not None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers) or None,
        "multiValueHeaders": {name: [value] for name, value in headers.items()} or None,
        # API Gateway sends the last value of a repeated parameter here, and every value below.
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": account,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": int(moment.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "apiKey": None,
                "apiKeyId": api_key_id,
                "userAgent": headers.get("User-Agent"),
            },
            "domainName": f"{api_id}.execute-api.{DEFAULT_REGION}.amazonaws.com",
            "apiId": api_id,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }
