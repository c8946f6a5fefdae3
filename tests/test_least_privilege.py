"""The IAM roles CloudFormation gets: template.yaml translated by SAM's own translator, so the roles
SAM generates (and the managed policies it attaches) are checked too, not only what we wrote.

The translator runs in the SAM CLI's virtualenv (`make install`): it pins a pydantic older than the
one the functions' layer ships, so it cannot share the development environment.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tickwatch.template import load_template

REPOSITORY = Path(__file__).resolve().parent.parent
SAM_PYTHON = REPOSITORY / ".venv" / "sam" / "bin" / "python"
# Reads a template (JSON) on stdin and writes what SAM turns it into: what `sam deploy` would send.
_TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicyLookup:
    def load(self):
        return {}

print(json.dumps(transform(json.load(sys.stdin), {}, NoManagedPolicyLookup())))
"""

# Services whose actions read or change data. None of them may be allowed on every resource.
DATA_SERVICES = {"s3", "dynamodb", "kinesis", "sqs", "sns", "execute-api", "apigateway", "athena", "glue", "kms"}
# Allowed on "*" because the service has no narrower resource for it, and it reads no data.
NO_NARROWER_RESOURCE = {"kinesis:ListStreams": "lists stream names; Lambda's Kinesis mapping asks for it"}
# The managed policies SAM may attach: logs and traces only.
ALLOWED_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole",  # logs:CreateLogGroup, CreateLogStream, PutLogEvents
    "AWSXrayWriteOnlyAccess",  # xray:Put*, Get sampling rules
    "AmazonAPIGatewayPushToCloudWatchLogs",  # API Gateway's account-wide logging role
}
STREAM_CONSUMERS = {
    "ProcessorFunction": ("kinesis", {"Fn::GetAtt": ["TickStream", "Arn"]}),
    "AlertsFunction": ("dynamodb", {"Fn::Sub": "${MarketTable.Arn}/stream/*"}),
    "BroadcastFunction": ("dynamodb", {"Fn::Sub": "${MarketTable.Arn}/stream/*"}),
    "DeliveryFunction": ("dynamodb", {"Fn::Sub": "${DeliveryTable.Arn}/stream/*"}),
}


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    assert SAM_PYTHON.exists(), f"{SAM_PYTHON} is missing: run make install"
    template = copy.deepcopy(load_template())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):  # as `sam package` leaves them
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://packaged-artifacts/{properties[key].strip('/')}"
    environment = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}  # the translator asks for a region
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSLATE],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _roles(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in role.get("Policies", []) for statement in policy["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_role_allows_a_data_action_on_every_resource(translated):
    offending = []
    for logical_id, role in _roles(translated).items():
        for statement in _statements(role):
            if statement["Effect"] != "Allow" or "*" not in _as_list(statement["Resource"]):
                continue
            for action in _as_list(statement["Action"]):
                service = action.split(":", 1)[0]
                if (service in DATA_SERVICES or action == "*") and action not in NO_NARROWER_RESOURCE:
                    offending.append(f"{logical_id}: {action} on *")
    assert offending == []


def test_only_logging_and_tracing_managed_policies_are_attached(translated):
    attached = {
        (logical_id, str(arn).rsplit("/", 1)[-1])
        for logical_id, role in _roles(translated).items()
        for arn in role.get("ManagedPolicyArns", [])
        for arn in [arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn]
    }
    assert {name for _, name in attached} <= ALLOWED_MANAGED_POLICIES, attached


@pytest.mark.parametrize("function", sorted(STREAM_CONSUMERS))
def test_each_stream_consumer_reads_only_its_own_stream(translated, function):
    service, stream = STREAM_CONSUMERS[function]
    template = load_template()
    role_id = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = _roles(translated)[role_id]
    assert "ManagedPolicyArns" not in role  # no AWSLambda*ExecutionRole
    reads = [
        statement
        for statement in _statements(role)
        if any(action.startswith(f"{service}:Get") for action in _as_list(statement["Action"]))
    ]
    stream_reads = [s for s in reads if "GetRecords" in str(s["Action"])]
    assert [statement["Resource"] for statement in stream_reads] == [stream]
    # Logs go to its own log group only.
    (logs,) = [s for s in _statements(role) if s.get("Sid") == "WriteItsLogs"]
    assert "Fn::GetAtt" in logs["Resource"]


def test_the_failure_queues_take_messages_from_their_functions_roles_only(translated):
    for function, queue in (
        ("ProcessorFunction", "ProcessorFailureQueue"),
        ("AlertsFunction", "AlertsFailureQueue"),
        ("DeliveryFunction", "DeliveryFailureQueue"),
    ):
        role_id = load_template()["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        (send,) = [s for s in _statements(_roles(translated)[role_id]) if "sqs:SendMessage" in _as_list(s["Action"])]
        assert send["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_only_the_alerts_and_delivery_functions_may_publish_alerts_and_only_over_tls():
    resources = load_template()["Resources"]
    policy = resources["AlertTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlertTopic"}]
    statements = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
    publish = statements["PublishOnlyFromTheAlertsPath"]
    assert (publish["Effect"], publish["Principal"], publish["Action"]) == ("Deny", "*", "sns:Publish")
    roles = [{"Fn::GetAtt": ["AlertsRole", "Arn"]}, {"Fn::GetAtt": ["DeliveryRole", "Arn"]}]
    assert publish["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": roles}}
    assert resources["AlertsFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["AlertsRole", "Arn"]}
    assert resources["DeliveryFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["DeliveryRole", "Arn"]}
    tls = statements["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny"
    assert "sns:Publish" in tls["Action"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
