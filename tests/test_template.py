"""template.yaml: names, encryption, least privilege, failure handling, filtering, subscription."""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import BASE_TIME, LambdaContext, StreamReader, kinesis_event, tick
from tickwatch.filters import matches_any
from tickwatch.template import Template, create_resources
from tickwatch_core.domain.market import ReceivedTick
from tickwatch_core.domain.ticks import parse_tick
from tickwatch_core.history.columns import PARTITION_COLUMNS, QUARANTINE_FIELDS, RAW_FIELDS, TICK_COLUMNS
from tickwatch_core.history.layout import HISTORY_PREFIX, QUARANTINE_PREFIX, RAW_PREFIX
from tickwatch_core.pipeline.processor import (
    QuarantinedRecord,
    StreamRecord,
    hour_partition,
    plan_quarantine_object,
    raw_line,
)
from tickwatch_core.store.rule_store import RuleStore

REPOSITORY = Path(__file__).resolve().parent.parent
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
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
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
        ("IngestFunction", "IngestLogGroup"),
        ("CompactorFunction", "CompactorLogGroup"),
    ):
        assert RESOURCES[function]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": log_group}
        assert RESOURCES[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# What every stream consumer's own role holds besides its function's work: reading its stream,
# the failure queue, logs and traces (tests/test_least_privilege.py checks those).
PLATFORM_STATEMENTS = {
    "ReadTheTickStream",
    "ListStreamNames",
    "ReadTheMarketTableStream",
    "ReadTheDeliveryTableStream",
    "SendFailedBatchesToTheFailureQueue",
    "WriteItsLogs",
    "WriteTraces",
}


def _statements(function: str) -> list[dict]:
    """The statements of the function's own work: its `Policies`, or those of the role it names."""
    properties = RESOURCES[function]["Properties"]
    if "Role" in properties:
        role = RESOURCES[properties["Role"]["Fn::GetAtt"][0]]["Properties"]
        documents = [policy["PolicyDocument"] for policy in role["Policies"]]
        return [s for document in documents for s in document["Statement"] if s["Sid"] not in PLATFORM_STATEMENTS]
    return [statement for policy in properties["Policies"] for statement in policy["Statement"]]


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
                "dynamodb:PutItem",
                "sns:Publish",
            },
        ),
        (
            "DeliveryFunction",
            {
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "sns:Publish",
                "secretsmanager:GetSecretValue",
            },
        ),
        (
            "QueryFunction",
            {
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:DeleteSecret",
                "sns:Subscribe",
                "sns:Unsubscribe",
            },
        ),
        ("CompactorFunction", {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}),
        ("IngestFunction", {"kinesis:PutRecords"}),
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
        "CompactorFunctionName",
        "AnalyticsDatabaseName",
        "TicksTableName",
        "RawTicksTableName",
        "QuarantineTableName",
        "AthenaWorkGroupName",
        "AthenaResultsBucketName",
    }


def test_samconfig_has_dev_and_prod_stacks_whose_overrides_are_template_parameters():
    import shlex

    config = tomllib.loads((REPOSITORY / "samconfig.toml").read_text())
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


def _prod_overrides() -> dict[str, str]:
    import shlex

    config = tomllib.loads((REPOSITORY / "samconfig.toml").read_text())
    pairs = shlex.split(config["prod"]["deploy"]["parameters"]["parameter_overrides"])
    return dict(pair.split("=", 1) for pair in pairs)


def test_prod_keeps_a_week_of_stream_a_year_of_logs_and_protects_the_table():
    overrides = _prod_overrides()
    assert overrides["StreamRetentionHours"] == "168"
    assert overrides["LogRetentionDays"] == "365"
    assert overrides["TableDeletionProtection"] == "true"
    assert overrides["RawBucketAccessLogging"] == "true"
    assert "@" in overrides["OpsEmail"]  # the alarms reach the operator


def test_raw_bucket_keeps_previous_versions_for_a_while_and_can_log_access():
    bucket = RESOURCES["RawBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpirePreviousVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "RawVersionRetentionDays"}
    }
    assert rules["RemoveDeleteMarkersOfExpiredObjects"]["ExpiredObjectDeleteMarker"] is True
    condition, logging, no_logging = bucket["LoggingConfiguration"]["Fn::If"]
    assert (condition, no_logging) == ("HasRawBucketAccessLogging", {"Ref": "AWS::NoValue"})
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    for logical_id in ("AccessLogBucket", "AccessLogBucketPolicy"):
        assert TEMPLATE.resources[logical_id]["Condition"] == "HasRawBucketAccessLogging"
    statements = RESOURCES["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (delivery,) = [s for s in statements if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"]["ArnLike"] == {"aws:SourceArn": {"Fn::GetAtt": ["RawBucket", "Arn"]}}


def test_the_market_table_can_be_protected_from_deletion_by_a_parameter():
    table = RESOURCES["MarketTable"]["Properties"]
    assert table["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectsTable", True, False]}
    assert TEMPLATE.body["Conditions"]["ProtectsTable"] == {"Fn::Equals": [{"Ref": "TableDeletionProtection"}, "true"]}
    assert TEMPLATE.body["Parameters"]["TableDeletionProtection"]["Default"] == "false"


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


def test_the_ingest_function_may_only_put_records_into_the_tick_stream_behind_the_key():
    assert _statements("IngestFunction") == [
        {
            "Sid": "PutTicks",
            "Effect": "Allow",
            "Action": "kinesis:PutRecords",
            "Resource": {"Fn::GetAtt": ["TickStream", "Arn"]},
        }
    ]
    event = RESOURCES["IngestFunction"]["Properties"]["Events"]["PutTicks"]["Properties"]
    assert (event["RestApiId"], event["Path"], event["Method"]) == ({"Ref": "QueryApi"}, "/ticks", "POST")
    assert "Auth" not in event  # the API's default: the key is required


def test_query_function_reads_the_tables_and_the_index_only_and_keeps_only_its_destinations_secrets():
    deliveries, reads = [s for s in _statements("QueryFunction") if "dynamodb:Query" in s["Action"]]
    assert reads["Resource"] == [{"Fn::GetAtt": ["MarketTable", "Arn"]}, {"Fn::Sub": "${MarketTable.Arn}/index/ByKind"}]
    assert deliveries["Resource"] == {"Fn::GetAtt": ["DeliveryTable", "Arn"]}
    (secrets,) = [s for s in _statements("QueryFunction") if "secretsmanager:CreateSecret" in s["Action"]]
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:tickwatch/${AWS::StackName}/destinations/*")


# --- the tick history: compactor, Glue tables, Athena ------------------------------------------


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _arn(resource: dict) -> str:
    """A statement's resource as the text of its Fn::Sub (`${RawBucket.Arn}/raw/*`)."""
    if "Fn::GetAtt" in resource:
        return "${" + ".".join(resource["Fn::GetAtt"]) + "}"
    return resource["Fn::Sub"]


def test_compactor_reads_raw_and_history_and_writes_only_history_and_quarantine():
    allowed: dict[str, set[str]] = defaultdict(set)
    for statement in _statements("CompactorFunction"):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            allowed[action] |= {_arn(resource) for resource in _as_list(statement["Resource"])}

    def objects(prefix: str) -> str:
        return "${RawBucket.Arn}/" + prefix + "*"

    assert allowed == {
        # GetObject on history/ also answers HeadObject: the fingerprint recorded on a Parquet file.
        "s3:GetObject": {objects(RAW_PREFIX), objects(HISTORY_PREFIX)},
        "s3:PutObject": {objects(HISTORY_PREFIX), objects(QUARANTINE_PREFIX)},
        "s3:ListBucket": {"${RawBucket.Arn}"},
    }
    (listing,) = [s for s in _statements("CompactorFunction") if "s3:ListBucket" in _as_list(s["Action"])]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{RAW_PREFIX}*", f"{HISTORY_PREFIX}*"]}}


def test_compactor_runs_hourly_after_the_hour_ends_with_the_look_back_as_a_parameter():
    properties = RESOURCES["CompactorFunction"]["Properties"]
    assert (properties["CodeUri"], properties["Handler"]) == ("functions/compactor/", "app.lambda_handler")
    (event,) = properties["Events"].values()
    # Past the hour, so the hour before has ended; a failed hour waits for the next run, not a retry.
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "cron(7 * * * ? *)")
    assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert properties["Timeout"] <= 900
    variables = properties["Environment"]["Variables"]
    assert variables["RAW_BUCKET"] == {"Ref": "RawBucket"}
    assert variables["LOOKBACK_HOURS"] == {"Ref": "CompactionLookbackHours"}


def test_compactor_ships_the_duckdb_the_tests_run():
    requirements = (REPOSITORY / "functions" / "compactor" / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line.startswith("duckdb==")]
    dependencies = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pins == [dependency for dependency in dependencies if dependency.startswith("duckdb==")]
    assert len(pins) == 1


def _table_input(table: str) -> dict:
    return RESOURCES[table]["Properties"]["TableInput"]


def _columns(table: str) -> list[tuple[str, str]]:
    """(name, Glue type) of each column of a Glue table, in order."""
    return [(column["Name"], column["Type"]) for column in _table_input(table)["StorageDescriptor"]["Columns"]]


def _column_names(table: str) -> list[str]:
    return [name for name, _ in _columns(table)]


def test_ticks_table_columns_are_the_parquet_files_columns_in_order():
    assert _columns("TicksTable") == [(name, glue_type) for name, _, glue_type in TICK_COLUMNS]


def test_raw_ticks_table_has_a_column_for_every_field_of_a_raw_line():
    arrival = datetime(2026, 11, 20, 14, 30, 1, tzinfo=UTC)
    every_field = (
        b'{"symbol":"AAPL","price":1.5,"timestamp":"2026-11-20T14:30:00Z",'
        b'"volume":1,"bid":1.4,"ask":1.6,"source":"simulator"}'
    )
    received = ReceivedTick(
        tick=parse_tick(every_field, received_at=arrival),
        sequence_number="1",
        sequence_key="1",
        shard_id="shardId-000000000000",
        arrival=arrival,
    )
    written = list(json.loads(raw_line(received)))
    assert sorted(_column_names("RawTicksTable")) == sorted(written)
    # DuckDB reads the raw lines with the same fields (local SQL over hours not compacted yet).
    assert _column_names("RawTicksTable") == list(RAW_FIELDS)
    # And the numbers with the types of the history, so both tables answer alike.
    raw_types = dict(_columns("RawTicksTable"))
    history_types = {name: glue_type for name, _, glue_type in TICK_COLUMNS}
    for name in ("price", "bid", "ask", "volume"):
        assert raw_types[name] == history_types[name], name


def test_quarantine_table_has_a_column_for_every_field_the_processor_writes():
    record = StreamRecord(
        data=b"junk",
        sequence_number="1",
        shard_id="shardId-000000000000",
        partition_key="AAPL",
        arrival=datetime(2026, 11, 20, 14, 30, tzinfo=UTC),
    )
    quarantine_object = plan_quarantine_object([QuarantinedRecord(record, "not JSON")], "suffix")
    assert quarantine_object is not None
    written = {name for line in quarantine_object.body.decode().splitlines() for name in json.loads(line)}
    # The compactor's own lines (`object`, `reason`) are checked against the table in test_compactor.py.
    assert written <= set(_column_names("QuarantineTable"))
    assert _column_names("QuarantineTable") == list(QUARANTINE_FIELDS)


@pytest.mark.parametrize(
    ("table", "prefix"),
    [("TicksTable", HISTORY_PREFIX), ("RawTicksTable", RAW_PREFIX), ("QuarantineTable", QUARANTINE_PREFIX)],
)
def test_each_table_projects_hour_partitions_onto_the_keys_the_code_writes(table, prefix):
    table_input = _table_input(table)
    assert RESOURCES[table]["Properties"]["DatabaseName"] == {"Ref": "AnalyticsDatabase"}
    assert table_input["PartitionKeys"] == [{"Name": name, "Type": "string"} for name in PARTITION_COLUMNS]
    assert table_input["StorageDescriptor"]["Location"] == {"Fn::Sub": f"s3://${{RawBucket}}/{prefix}"}
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    for name, every_value in {"month": (1, 12), "day": (1, 31), "hour": (0, 23)}.items():
        assert parameters[f"projection.{name}.range"] == "{},{}".format(*every_value)
    location = parameters["storage.location.template"]["Fn::Sub"]
    assert location == f"s3://${{RawBucket}}/{prefix}year=${{!year}}/month=${{!month}}/day=${{!day}}/hour=${{!hour}}/"

    # Athena's projected location of an hour is exactly where the processor and compactor put it.
    hour = datetime(2026, 3, 5, 4, tzinfo=UTC)  # one-digit month, day and hour: the padding matters
    projected = location.replace("${RawBucket}", "bucket")
    for name, value in zip(PARTITION_COLUMNS, (hour.year, hour.month, hour.day, hour.hour), strict=True):
        assert parameters[f"projection.{name}.type"] == "integer"
        low, high = (int(bound) for bound in parameters[f"projection.{name}.range"].split(","))
        assert low <= value <= high
        digits = int(parameters.get(f"projection.{name}.digits", "1"))
        projected = projected.replace(f"${{!{name}}}", str(value).zfill(digits))
    assert projected == f"s3://bucket/{prefix}{hour_partition(hour)}/"


def test_athena_workgroup_enforces_its_scan_cutoff_and_encrypted_results():
    properties = RESOURCES["AthenaWorkGroup"]["Properties"]
    configuration = properties["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    assert TEMPLATE.body["Parameters"]["AthenaBytesScannedCutoff"]["MinValue"] >= 10 * 1024 * 1024  # Athena's least
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert results["OutputLocation"] == {"Fn::Sub": "s3://${AthenaResultsBucket}/results/"}
    for query in TEMPLATE.logical_ids("AWS::Athena::NamedQuery"):
        query_properties = RESOURCES[query]["Properties"]
        assert query_properties["WorkGroup"] == {"Ref": "AthenaWorkGroup"}, query
        assert query_properties["Database"] == {"Ref": "AnalyticsDatabase"}, query


def test_athena_results_bucket_expires_results_blocks_public_access_and_refuses_plain_http():
    bucket = RESOURCES["AthenaResultsBucket"]["Properties"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireQueryResults"]["ExpirationInDays"] == {"Ref": "AthenaResultsRetentionDays"}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    policy = RESOURCES["AthenaResultsBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "AthenaResultsBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["AthenaResultsBucket", "Arn"]},
        {"Fn::Sub": "${AthenaResultsBucket.Arn}/*"},
    ]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
