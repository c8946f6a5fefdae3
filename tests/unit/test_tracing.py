"""Tracing off means the X-Ray SDK is never imported; on, the handlers get Powertools' Tracer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickwatch.template import Template
from tickwatch_core.tracing import Untraced, handler_tracer, tracing_disabled

REPOSITORY = Path(__file__).resolve().parent.parent.parent

# What the first call imports, not the cold start: boto3 with the first AWS call, jsonschema with the
# first tick validated, Powertools' OpenAPI models (~150 ms) with the first request for the query
# API's documents. The X-Ray SDK never, with tracing off.
NOT_AT_COLD_START = {
    "aws_xray_sdk",
    "boto3",
    "jsonschema",
    "aws_lambda_powertools.event_handler.openapi.models",
}


def test_the_untraced_decorators_return_the_function_itself():
    def handler(event, context):
        return event

    untraced = Untraced()
    assert untraced.capture_lambda_handler(handler) is handler
    assert untraced.capture_lambda_handler()(handler) is handler
    assert untraced.capture_method(handler) is handler


@pytest.mark.parametrize(
    ("value", "disabled"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)]
)
def test_tracing_is_disabled_by_the_powertools_variable(value, disabled):
    assert tracing_disabled({"POWERTOOLS_TRACE_DISABLED": value}) is disabled


def test_with_tracing_on_the_handler_gets_powertools_tracer(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    assert type(handler_tracer()).__name__ == "Tracer"
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert isinstance(handler_tracer(), Untraced)


@pytest.mark.parametrize("function", sorted(Template.load().logical_ids("AWS::Serverless::Function")))
def test_a_handler_imported_with_tracing_disabled_imports_only_what_its_cold_start_needs(function):
    properties = Template.load().resources[function]["Properties"]
    module = properties["Handler"].rsplit(".", 1)[0]
    environment = {
        **os.environ,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY / properties["CodeUri"]), str(REPOSITORY / "layers" / "common")]),
        # What the template gives each function; names only, nothing is called at import.
        "RAW_BUCKET": "bucket",
        "STREAM_NAME": "stream",
        "TABLE_NAME": "table",
        "BAR_RETENTION_DAYS": "30",
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
        "ALERT_HISTORY_DAYS": "90",
        "DELIVERY_TABLE_NAME": "deliveries",
        "DESTINATION_SECRET_PREFIX": "tickwatch/stack/destinations/",
        "ALLOWED_ORIGIN": "*",
        "LOOKBACK_HOURS": "48",
        "CONNECTION_TABLE_NAME": "connections",
        "USAGE_PLAN_ID": "plan",
        "LIVE_API_ENDPOINT": "https://example.execute-api.us-east-1.amazonaws.com/live",
        # The scheduled producer's (and STREAM_NAME; API_KEY_SECRET and PROVIDER_URL may stay empty).
        "QUOTE_PROVIDER": "twelvedata",
        "SYMBOLS": "AAPL,MSFT",
        "CREDITS_PER_MINUTE": "8",
        "CREDITS_PER_DAY": "800",
    }
    script = f"import sys, {module}; print(sorted(set(sys.modules).intersection({sorted(NOT_AT_COLD_START)!r})))"
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_template_turns_tracing_off_everywhere_with_one_parameter():
    template = Template.load()
    function_globals = template.body["Globals"]["Function"]
    assert function_globals["Tracing"] == {"Ref": "Tracing"}
    assert function_globals["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["TracesFunctions", {"Ref": "AWS::NoValue"}, "true"]
    }
    assert template.resources["QueryApi"]["Properties"]["TracingEnabled"] == {
        "Fn::If": ["TracesFunctions", True, False]
    }
    assert template.body["Parameters"]["Tracing"]["Default"] == "Active"


def test_our_dynamodb_number_context_is_boto3s():
    from boto3.dynamodb.types import DYNAMODB_CONTEXT as BOTO3_CONTEXT

    from tickwatch_core.domain.numbers import DYNAMODB_CONTEXT

    assert (DYNAMODB_CONTEXT.prec, DYNAMODB_CONTEXT.Emin, DYNAMODB_CONTEXT.Emax) == (
        BOTO3_CONTEXT.prec,
        BOTO3_CONTEXT.Emin,
        BOTO3_CONTEXT.Emax,
    )
    assert {name for name, on in DYNAMODB_CONTEXT.traps.items() if on} == {
        name for name, on in BOTO3_CONTEXT.traps.items() if on
    }
