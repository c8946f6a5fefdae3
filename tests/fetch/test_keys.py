"""API keys from the environment or Secrets Manager, never echoed."""

from __future__ import annotations

import json

import pytest

from tickwatch.fetch.keys import ApiKeyError, api_key

KEY = "d1a2b3c4e5f6-secret"


def test_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("FINNHUB_API_KEY", f"  {KEY}\n")
    assert api_key("finnhub", secret_id=None, session=None) == KEY


def test_missing_key_says_where_to_put_one(monkeypatch):
    monkeypatch.delenv("TWELVEDATA_API_KEY", raising=False)
    with pytest.raises(ApiKeyError, match="set TWELVEDATA_API_KEY or pass --api-key-secret"):
        api_key("twelvedata", secret_id=None, session=None)


@pytest.mark.parametrize("stored", [KEY, json.dumps({"finnhub": KEY}), json.dumps({"api_key": KEY}), json.dumps(KEY)])
def test_key_from_a_secret_as_text_or_json(aws, stored):
    aws.client("secretsmanager").create_secret(Name="tickwatch/finnhub", SecretString=stored)
    assert api_key("finnhub", secret_id="tickwatch/finnhub", session=aws) == KEY


def test_secret_errors_name_the_secret_not_the_key(aws):
    with pytest.raises(ApiKeyError, match="secret 'missing' does not exist"):
        api_key("finnhub", secret_id="missing", session=aws)
    aws.client("secretsmanager").create_secret(Name="wrong-shape", SecretString=json.dumps({"token": KEY}))
    with pytest.raises(ApiKeyError) as raised:
        api_key("finnhub", secret_id="wrong-shape", session=aws)
    assert KEY not in str(raised.value)
    assert "without an 'finnhub' or 'api_key' field" in str(raised.value)
