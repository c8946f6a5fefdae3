"""Read template.yaml and create the resources it declares in an emulator (moto).

The tests and the local stack build their stream, bucket, table, topic and queues from the
template's own definitions (key schemas, indexes, stream settings, TTL, filter policies...) and
give each function the environment variables the template sets, with references resolved to the
local names. There is no second list of resources that could drift from the template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(ValueError):
    """The template uses something this reader cannot resolve."""


# --- loading ------------------------------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML loader that turns the short intrinsic tags (!Ref, !Sub, ...) into their long forms."""


def _intrinsic(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in (
    "Ref",
    "Sub",
    "GetAtt",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Split",
    "Join",
    "Select",
    "FindInMap",
    "Condition",
):
    _CloudFormationLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)


# --- resolving ----------------------------------------------------------------------------------


@dataclass
class PhysicalResource:
    """What `Ref` and `Fn::GetAtt` of one logical resource resolve to locally."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Template:
    """A loaded template with parameter values, conditions and the physical resources created so far."""

    body: dict[str, Any]
    stack_name: str = "tickwatch-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)
    physical: dict[str, PhysicalResource] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, **options: Any) -> Template:
        return cls(load_template(path), **options)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.body["Resources"]

    def parameter(self, name: str) -> str:
        if name in self.parameter_overrides:
            return str(self.parameter_overrides[name])
        definition = self.body.get("Parameters", {}).get(name)
        if definition is None or "Default" not in definition:
            raise TemplateError(f"parameter {name} has no default and no override")
        return str(definition["Default"])

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.body["Conditions"][name]))

    def logical_ids(self, resource_type: str) -> list[str]:
        """Logical ids of one resource type whose Condition (if any) holds, in template order."""
        return [
            logical_id
            for logical_id, resource in self.resources.items()
            if resource["Type"] == resource_type
            and ("Condition" not in resource or self.condition(resource["Condition"]))
        ]

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Environment variables of a function: Globals merged with its own, references resolved."""
        global_variables = self.body.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.resources[logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
        return {name: str(value) for name, value in self.resolve({**global_variables, **own}).items()}

    def function_events(self, logical_id: str) -> dict[str, dict[str, Any]]:
        return self.resolve(self.resources[logical_id].get("Properties", {}).get("Events", {}))

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsic functions against parameters, conditions and physical resources."""
        if isinstance(value, list):
            resolved = [self.resolve(item) for item in value]
            return [item for item in resolved if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref" or name.startswith("Fn::") or name == "Condition":
                return self._intrinsic(name, argument)
        resolved_map = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved_map.items() if item is not _NO_VALUE}

    def _intrinsic(self, name: str, argument: Any) -> Any:
        match name:
            case "Ref":
                return self._ref(argument)
            case "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(logical_id, attribute)
            case "Fn::Sub":
                return self._sub(argument)
            case "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            case "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            case "Fn::Not":
                return not self.resolve(argument[0])
            case "Fn::And":
                return all(self.resolve(item) for item in argument)
            case "Fn::Or":
                return any(self.resolve(item) for item in argument)
            case "Condition":
                return self.condition(argument)
            case "Fn::Split":
                delimiter, text = argument
                return str(self.resolve(text)).split(delimiter)
            case "Fn::Join":
                delimiter, parts = argument
                return delimiter.join(str(part) for part in self.resolve(parts))
            case "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
        raise TemplateError(f"{name} is not supported by the local template reader")

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.body.get("Parameters", {}):
            return self.parameter(name)
        if name in self.physical:
            return self.physical[name].ref
        raise TemplateError(f"Ref {name}: no parameter or created resource has that name")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.physical[logical_id].attributes[attribute]
        except KeyError:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not available locally") from None

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def physical_name(self, logical_id: str) -> str:
        """A local name for a resource: `<stack>-<logicalid>`, lowercase (valid for S3 too)."""
        return f"{self.stack_name}-{logical_id}".lower()


# --- creating -----------------------------------------------------------------------------------


def _exists(create: Callable[[], Any], *codes: str) -> bool:
    """Run a create call; True if it failed only because the resource already exists.

    Creating is idempotent so that the local stack can attach to an emulator that already has them.
    """
    try:
        create()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in codes:
            return True
        raise
    return False


def create_resources(template: Template, session: Any, *, api_key: str | None = None) -> dict[str, PhysicalResource]:
    """Create every data resource of the template with `session` (a boto3 session or client factory).

    `session.client(service)` must return clients for the emulator. Functions, layers and APIs are
    not created: the tests and the local stack run the handlers in-process, behind a local gateway.
    `api_key` is the value of the APIs' keys (default: one moto makes up).
    """
    creators: list[tuple[str, Callable[[Template, str, Any], PhysicalResource]]] = [
        ("AWS::KMS::Key", _create_key),
        ("AWS::Kinesis::Stream", _create_stream),
        ("AWS::S3::Bucket", _create_bucket),
        ("AWS::DynamoDB::Table", _create_table),
        ("AWS::SNS::Topic", _create_topic),
        ("AWS::SQS::Queue", _create_queue),
        ("AWS::S3::BucketPolicy", _create_bucket_policy),
        ("AWS::SNS::Subscription", _create_subscription),
    ]
    # Served in-process (functions), by the local gateways (REST and WebSocket APIs) or by the
    # local dashboard server (CloudFront): named, not created. A WebSocket stage's Ref is its name.
    for resource_type in (
        "AWS::Serverless::Function",
        "AWS::Serverless::Api",
        "AWS::ApiGatewayV2::Api",
        "AWS::CloudFront::Distribution",
    ):
        for logical_id in template.logical_ids(resource_type):
            name = template.physical_name(logical_id)
            # A distribution's domain only names it in URLs and policies here (DashboardUrl, ...).
            attributes = {"DomainName": f"{name}.local"} if resource_type == "AWS::CloudFront::Distribution" else {}
            template.physical[logical_id] = PhysicalResource(ref=name, attributes=attributes)
    for logical_id in template.logical_ids("AWS::ApiGatewayV2::Stage"):
        stage_name = template.resolve(template.resources[logical_id]["Properties"]["StageName"])
        template.physical[logical_id] = PhysicalResource(ref=str(stage_name))
    for resource_type, create in creators:
        for logical_id in template.logical_ids(resource_type):
            template.physical[logical_id] = create(template, logical_id, session)
    for logical_id in template.logical_ids("AWS::Serverless::Api"):
        _create_usage_plan(template, logical_id, session, api_key)
    return template.physical


def _create_usage_plan(template: Template, api_id: str, session: Any, api_key: str | None) -> None:
    """The usage plan and key SAM creates for an API with `Auth.UsagePlan` (PER_API), with SAM's
    logical ids (`<Api>UsagePlan`, `<Api>ApiKey`): the local gateway serves the key's value, and the
    WebSocket API's `$connect` reads the plan's keys as it does on AWS. Found again by name when the
    emulator already has them."""
    plan_settings = template.resources[api_id].get("Properties", {}).get("Auth", {}).get("UsagePlan", {})
    if plan_settings.get("CreateUsagePlan") != "PER_API":
        return
    apigateway = session.client("apigateway")
    plan_name, key_name = template.physical_name(f"{api_id}UsagePlan"), template.physical_name(f"{api_id}ApiKey")
    plan = next((p for p in apigateway.get_usage_plans(limit=500)["items"] if p["name"] == plan_name), None)
    if plan is None:
        plan = apigateway.create_usage_plan(name=plan_name)
    keys = apigateway.get_api_keys(nameQuery=key_name, includeValues=True, limit=500)["items"]
    key = next((k for k in keys if k["name"] == key_name and api_key in (None, k["value"])), None)
    if key is None:
        key = apigateway.create_api_key(name=key_name, enabled=True, **({"value": api_key} if api_key else {}))
        apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    template.physical[f"{api_id}UsagePlan"] = PhysicalResource(ref=plan["id"])
    template.physical[f"{api_id}ApiKey"] = PhysicalResource(ref=key["id"], attributes={"Value": key["value"]})


def _create_stream(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    kinesis = session.client("kinesis")
    name = template.physical_name(logical_id)
    mode = properties.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    arguments: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
    if mode == "PROVISIONED":
        arguments["ShardCount"] = int(properties.get("ShardCount", 1))
    created = not _exists(lambda: kinesis.create_stream(**arguments), "ResourceInUseException")
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    hours = int(properties.get("RetentionPeriodHours", 24))
    if hours > summary["RetentionPeriodHours"]:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=hours)
    encryption = properties.get("StreamEncryption")
    if created and encryption:
        kinesis.start_stream_encryption(
            StreamName=name, EncryptionType=encryption["EncryptionType"], KeyId=encryption["KeyId"]
        )
    return PhysicalResource(ref=name, attributes={"Arn": summary["StreamARN"]})


def _create_bucket(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    s3 = session.client("s3")
    name = template.physical_name(logical_id)
    location = (
        {} if template.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": template.region}}
    )
    _exists(lambda: s3.create_bucket(Bucket=name, **location), "BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    if "BucketEncryption" in properties:
        # CloudFormation and the S3 API name the same setting differently.
        rules = [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            | ({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {})
            for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    lifecycle = properties.get("LifecycleConfiguration", {}).get("Rules")
    if lifecycle:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in lifecycle]}
        )
    return PhysicalResource(
        ref=name, attributes={"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
    )


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        days = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    if rule.get("ExpiredObjectDeleteMarker"):
        converted["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return converted


def _create_table(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    dynamodb = session.client("dynamodb")
    name = template.physical_name(logical_id)
    arguments: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in properties:
        arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if "StreamSpecification" in properties:
        arguments["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    if properties.get("SSESpecification", {}).get("SSEEnabled"):
        arguments["SSESpecification"] = {"Enabled": True}
    _exists(lambda: dynamodb.create_table(**arguments), "ResourceInUseException")
    description = dynamodb.describe_table(TableName=name)["Table"]
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    attributes = {"Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    return PhysicalResource(ref=name, attributes=attributes)


def _create_key(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    """A customer-managed key (the ops topic's), found again by its alias when the emulator has it,
    so a topic encrypted with it is created with the same attributes. Key policies are not set:
    moto does not enforce them."""
    kms = session.client("kms")
    alias = f"alias/{template.physical_name(logical_id)}"
    try:
        metadata = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        description = str(template.properties(logical_id).get("Description", logical_id))
        metadata = kms.create_key(Description=description)["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    return PhysicalResource(ref=metadata["KeyId"], attributes={"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]})


def _create_topic(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    attributes = {
        name: str(properties[key])
        for key, name in (("DisplayName", "DisplayName"), ("KmsMasterKeyId", "KmsMasterKeyId"))
        if key in properties
    }
    arn = session.client("sns").create_topic(Name=template.physical_name(logical_id), Attributes=attributes)["TopicArn"]
    return PhysicalResource(ref=arn, attributes={"TopicArn": arn, "TopicName": template.physical_name(logical_id)})


def _create_queue(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    sqs = session.client("sqs")
    attributes = {
        name: str(properties[key]).lower() if isinstance(properties[key], bool) else str(properties[key])
        for key, name in (
            ("MessageRetentionPeriod", "MessageRetentionPeriod"),
            ("VisibilityTimeout", "VisibilityTimeout"),
            ("SqsManagedSseEnabled", "SqsManagedSseEnabled"),
        )
        if key in properties
    }
    url = sqs.create_queue(QueueName=template.physical_name(logical_id), Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return PhysicalResource(
        ref=url, attributes={"Arn": arn, "QueueName": template.physical_name(logical_id), "QueueUrl": url}
    )


def _create_bucket_policy(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    document = dict(properties["PolicyDocument"])
    # moto ignores policy conditions, so a conditional Deny (like "deny unless TLS") would deny
    # everything locally. Such statements only make sense against real AWS; they are left out here.
    document["Statement"] = [
        statement
        for statement in document["Statement"]
        if not (statement.get("Effect") == "Deny" and "Condition" in statement)
    ]
    if document["Statement"]:
        session.client("s3").put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(document))
    return PhysicalResource(ref=properties["Bucket"])


def _create_subscription(template: Template, logical_id: str, session: Any) -> PhysicalResource:
    properties = template.properties(logical_id)
    attributes = {}
    if "FilterPolicy" in properties:
        attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
        attributes["FilterPolicyScope"] = properties.get("FilterPolicyScope", "MessageAttributes")
    response = session.client("sns").subscribe(
        TopicArn=properties["TopicArn"],
        Protocol=properties["Protocol"],
        Endpoint=properties["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return PhysicalResource(ref=response["SubscriptionArn"])
