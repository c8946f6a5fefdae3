"""template.yaml: names, encryption, least privilege, failure handling, filtering, subscription."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support import BASE_TIME, LambdaContext, StreamReader, kinesis_event, tick
from tickwatch.filters import matches_any
from tickwatch.template import Template, create_resources
from tickwatch_core.rule_store import RuleStore

TEMPLATE = Template.load()
RESOURCES = TEMPLATE.resources
DATA_STORE_SERVICES = ("s3", "dynamodb", "kinesis", "sns", "sqs")


def test_logical_ids_and_handlers():
    for logical_id, resource_type in {
        "TickStream": "AWS::Kinesis::Stream",
        "RawBucket": "AWS::S3::Bucket",
        "MarketTable": "AWS::DynamoDB::Table",
        "AlertTopic": "AWS::SNS::Topic",
        "ProcessorFunction": "AWS::Serverless::Function",
        "AlertsFunction": "AWS::Serverless::Function",
        "ProcessorFailureQueue": "AWS::SQS::Queue",
        "AlertsFailureQueue": "AWS::SQS::Queue",
        "CommonLayer": "AWS::Serverless::LayerVersion",
    }.items():
        assert RESOURCES[logical_id]["Type"] == resource_type
    assert RESOURCES["ProcessorFunction"]["Properties"]["CodeUri"] == "functions/processor/"
    assert RESOURCES["AlertsFunction"]["Properties"]["CodeUri"] == "functions/alerts/"
    for function in ("ProcessorFunction", "AlertsFunction"):
        assert RESOURCES[function]["Properties"]["Handler"] == "app.lambda_handler"


def test_functions_get_resource_names_only_from_their_environment():
    processor = RESOURCES["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    alerts = RESOURCES["AlertsFunction"]["Properties"]["Environment"]["Variables"]
    assert processor["RAW_BUCKET"] == {"Ref": "RawBucket"}
    assert processor["TABLE_NAME"] == {"Ref": "MarketTable"}
    assert alerts["TABLE_NAME"] == {"Ref": "MarketTable"}
    assert alerts["ALERT_TOPIC_ARN"] == {"Ref": "AlertTopic"}
    globals_ = TEMPLATE.body["Globals"]["Function"]
    assert globals_["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == ""
    assert (globals_["Runtime"], globals_["Architectures"]) == ("python3.13", ["arm64"])


def test_layer_is_built_by_sam_for_the_runtime():
    layer = RESOURCES["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/common/"


def test_every_data_store_is_encrypted_at_rest():
    properties = {logical_id: RESOURCES[logical_id]["Properties"] for logical_id in RESOURCES}
    assert properties["TickStream"]["StreamEncryption"]["EncryptionType"] == "KMS"
    assert properties["RawBucket"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert properties["MarketTable"]["SSESpecification"] == {"SSEEnabled": True}
    assert properties["AlertTopic"]["KmsMasterKeyId"]
    for queue in TEMPLATE.logical_ids("AWS::SQS::Queue"):
        assert properties[queue]["SqsManagedSseEnabled"] is True


def test_bucket_blocks_public_access_and_refuses_plain_http():
    bucket = RESOURCES["RawBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (statement,) = RESOURCES["RawBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Deny", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_raw_data_expires_by_a_parameter_and_logs_have_retention():
    rules = {rule["Id"]: rule for rule in RESOURCES["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireRawTicks"]["Prefix"] == "raw/"
    assert rules["ExpireRawTicks"]["ExpirationInDays"] == {"Ref": "RawRetentionDays"}
    for function, log_group in (
        ("ProcessorFunction", "ProcessorLogGroup"),
        ("AlertsFunction", "AlertsLogGroup"),
        ("QueryFunction", "QueryLogGroup"),
    ):
        assert RESOURCES[function]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": log_group}
        assert RESOURCES[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def _statements(function: str) -> list[dict]:
    policies = RESOURCES[function]["Properties"]["Policies"]
    return [statement for policy in policies for statement in policy["Statement"]]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "ProcessorFunction",
            # Reading raw/ and querying a day's bars: only when a replayed batch repairs items.
            {
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListBucket",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
            },
        ),
        (
            "AlertsFunction",
            {
                "dynamodb:Query",
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:UpdateItem",
                "sns:Publish",
            },
        ),
        (
            "QueryFunction",
            {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"},
        ),
    ],
)
def test_each_function_gets_only_the_actions_it_uses_on_its_own_resources(function, expected):
    actions = set()
    for statement in _statements(function):
        statement_actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in statement_actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources
        actions |= set(statement_actions)
    assert actions == expected


def test_processor_writes_only_under_raw_and_quarantine():
    (s3_statement,) = [s for s in _statements("ProcessorFunction") if s["Action"] == "s3:PutObject"]
    assert s3_statement["Resource"] == [
        {"Fn::Sub": "${RawBucket.Arn}/raw/*"},
        {"Fn::Sub": "${RawBucket.Arn}/quarantine/*"},
    ]


def test_processor_reads_and_lists_only_raw_ticks():
    statements = _statements("ProcessorFunction")
    (get,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert get["Resource"] == {"Fn::Sub": "${RawBucket.Arn}/raw/*"}
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "raw/*"}}


@pytest.mark.parametrize(("function", "event"), [("ProcessorFunction", "Ticks"), ("AlertsFunction", "QuoteChanges")])
def test_stream_events_report_partial_failures_with_bounded_retries_and_an_on_failure_queue(function, event):
    properties = RESOURCES[function]["Properties"]["Events"][event]["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert 0 <= properties["MaximumRetryAttempts"] <= 100
    assert 60 <= properties["MaximumRecordAgeInSeconds"] < 24 * 3600  # and so within the stream's retention
    on_failure = properties["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert RESOURCES[on_failure["Destination"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"


def test_scale_knobs_are_parameters_wired_into_the_template():
    parameters = TEMPLATE.body["Parameters"]
    for name in (
        "StreamMode",
        "ShardCount",
        "ProcessorBatchSize",
        "ProcessorBatchingWindowSeconds",
        "ProcessorParallelizationFactor",
        "RawRetentionDays",
    ):
        assert name in parameters
    ticks = RESOURCES["ProcessorFunction"]["Properties"]["Events"]["Ticks"]["Properties"]
    assert ticks["BatchSize"] == {"Ref": "ProcessorBatchSize"}
    assert ticks["MaximumBatchingWindowInSeconds"] == {"Ref": "ProcessorBatchingWindowSeconds"}
    assert ticks["ParallelizationFactor"] == {"Ref": "ProcessorParallelizationFactor"}
    assert RESOURCES["TickStream"]["Properties"]["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}


def test_outputs_name_everything_the_cli_and_tests_need():
    assert set(TEMPLATE.body["Outputs"]) >= {
        "TickStreamName",
        "RawBucketName",
        "MarketTableName",
        "MarketTableStreamArn",
        "AlertTopicArn",
        "ProcessorFunctionName",
        "AlertsFunctionName",
        "ProcessorFailureQueueUrl",
        "AlertsFailureQueueUrl",
        "QueryApiUrl",
        "QueryApiKeyId",
        "QueryFunctionName",
    }


def test_samconfig_has_dev_and_prod_stacks_whose_overrides_are_template_parameters():
    import shlex
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / "samconfig.toml").read_text())
    assert config["default"]["global"]["parameters"]["stack_name"] == "tickwatch-dev"
    assert config["prod"]["global"]["parameters"]["stack_name"] == "tickwatch-prod"
    for environment in ("default", "prod"):
        overrides = dict(
            pair.split("=", 1)
            for pair in shlex.split(config[environment]["deploy"]["parameters"]["parameter_overrides"])
        )
        assert set(overrides) <= set(TEMPLATE.body["Parameters"]), environment
        for name, value in overrides.items():
            allowed = TEMPLATE.body["Parameters"][name].get("AllowedValues")
            assert allowed is None or value in [str(v) for v in allowed], (environment, name)


def test_table_is_on_demand_with_new_and_old_images_and_ttl():
    table = RESOURCES["MarketTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_filter_criteria_let_only_latest_quote_changes_through(aws, stack, processor_app, alerts_app):
    """The template's pattern, applied to real stream records of every item kind."""
    RuleStore(aws.client("dynamodb"), stack.physical["MarketTable"].ref).add("AAPL", "above", "100")
    processor_app.lambda_handler(
        kinesis_event([tick("AAPL", 150, BASE_TIME), tick("AAPL", 151, BASE_TIME + timedelta(seconds=1))]),
        LambdaContext(),
    )
    reader = StreamReader(aws, stack.physical["MarketTable"].attributes["StreamArn"])
    alerts_app.lambda_handler(reader.new_event(), LambdaContext())  # fires: writes alert history and rule state
    processor_app.lambda_handler(
        kinesis_event([tick("AAPL", 152, BASE_TIME + timedelta(seconds=2))], first=2), LambdaContext()
    )
    RuleStore(aws.client("dynamodb"), stack.physical["MarketTable"].ref).remove("AAPL-above-100")

    records = reader.all_records()
    patterns = [
        f["Pattern"]
        for f in stack.function_events("AlertsFunction")["QuoteChanges"]["Properties"]["FilterCriteria"]["Filters"]
    ]
    passed = [
        (r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"].split("#")[0]) for r in records if matches_any(patterns, r)
    ]
    rejected = {
        (r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"].split("#")[0])
        for r in records
        if not matches_any(patterns, r)
    }
    assert passed == [("INSERT", "QUOTE"), ("MODIFY", "QUOTE")]
    assert rejected == {
        ("INSERT", "BAR"),
        ("MODIFY", "BAR"),
        ("INSERT", "RULE"),
        ("MODIFY", "RULE"),
        ("REMOVE", "RULE"),
        ("INSERT", "ALERT"),
    }


@pytest.mark.parametrize(
    ("overrides", "expected_filter"),
    [
        ({"AlertEmail": "trader@example.com", "AlertSymbols": "AAPL,MSFT"}, {"symbol": ["AAPL", "MSFT"]}),
        ({"AlertEmail": "trader@example.com"}, None),
    ],
)
def test_alert_email_parameter_subscribes_with_a_symbol_filter(aws, overrides, expected_filter):
    template = Template.load(parameter_overrides=overrides)
    create_resources(template, aws)
    (subscription,) = aws.client("sns").list_subscriptions()["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "trader@example.com")
    attributes = aws.client("sns").get_subscription_attributes(
        SubscriptionArn=template.physical["AlertEmailSubscription"].ref
    )["Attributes"]
    assert (json.loads(attributes["FilterPolicy"]) if "FilterPolicy" in attributes else None) == expected_filter


def test_no_alert_email_no_subscription(aws):
    create_resources(Template.load(), aws)
    assert aws.client("sns").list_subscriptions()["Subscriptions"] == []


def test_query_api_needs_a_key_on_every_route_but_the_documents():
    api = RESOURCES["QueryApi"]["Properties"]
    assert (api["StageName"], api["Auth"]["ApiKeyRequired"]) == ("v1", True)
    assert api["Auth"]["AddApiKeyRequiredToCorsPreflight"] is False  # browsers send no key on preflight
    events = RESOURCES["QueryFunction"]["Properties"]["Events"]
    open_routes = set()
    for event in events.values():
        assert event["Type"] == "Api"
        assert event["Properties"]["RestApiId"] == {"Ref": "QueryApi"}
        if event["Properties"].get("Auth", {}).get("ApiKeyRequired") is False:
            open_routes.add(event["Properties"]["Path"])
    assert open_routes == {"/docs", "/openapi.json"}
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
    assert routes >= {("GET", "/quotes"), ("GET", "/bars/{symbol}"), ("POST", "/rules"), ("DELETE", "/rules/{rule_id}")}


def test_query_api_throttling_quota_and_cors_are_parameters():
    plan = RESOURCES["QueryApi"]["Properties"]["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {"RateLimit": {"Ref": "ApiRateLimit"}, "BurstLimit": {"Ref": "ApiBurstLimit"}}
    assert plan["Quota"] == {"Limit": {"Ref": "ApiMonthlyQuota"}, "Period": "MONTH"}
    cors = RESOURCES["QueryApi"]["Properties"]["Cors"]["AllowOrigin"]
    assert cors == {"Fn::If": ["HasDashboardOrigin", {"Fn::Sub": "'${DashboardOrigin}'"}, "'*'"]}
    variables = RESOURCES["QueryFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ALLOWED_ORIGIN"] == {"Fn::If": ["HasDashboardOrigin", {"Ref": "DashboardOrigin"}, "*"]}


def test_query_api_access_logs_go_to_a_log_group_with_retention():
    destination = RESOURCES["QueryApi"]["Properties"]["AccessLogSetting"]["DestinationArn"]
    log_group = destination["Fn::GetAtt"][0]
    assert RESOURCES[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert json.loads(RESOURCES["QueryApi"]["Properties"]["AccessLogSetting"]["Format"])["requestId"]


def test_query_function_reads_the_table_and_its_index_only():
    (reads,) = [s for s in _statements("QueryFunction") if "dynamodb:Query" in s["Action"]]
    assert reads["Resource"] == [{"Fn::GetAtt": ["MarketTable", "Arn"]}, {"Fn::Sub": "${MarketTable.Arn}/index/ByKind"}]
