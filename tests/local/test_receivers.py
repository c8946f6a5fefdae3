"""The loopback receivers hold senders to each service's documented limit: past it, a 429 in the
service's own form (Retry-After, Discord's `retry_after`, Telegram's `parameters.retry_after`)."""

from __future__ import annotations

import json

import pytest

from tickwatch.local.receivers import Receivers
from tickwatch_core.pipeline.delivery.senders import Urllib3Client

TOKEN = "123456789:AAHfakeTelegramTokenForTests_0123456789"


@pytest.fixture
def receivers():
    served = Receivers().start()
    yield served
    served.stop()


def post(url: str, document: dict):
    return Urllib3Client().post(url, json.dumps(document).encode(), {"Content-Type": "application/json"})


def test_slack_takes_one_message_a_second_per_webhook(receivers):
    url = receivers.slack_url("team")
    assert post(url, {"text": "one"}).status == 200
    second = post(url, {"text": "two"})
    assert (second.status, second.body) == (429, b"rate_limited")
    assert float(second.headers["retry-after"]) >= 1
    assert post(receivers.slack_url("other"), {"text": "another webhook"}).status == 200
    assert post(url, {}).status == 429  # still limited: a rate check comes before the payload's


def test_discord_takes_five_per_two_seconds_per_webhook(receivers):
    url = receivers.discord_url("guild") + "?wait=true"
    assert [post(url, {"content": f"m{i}"}).status for i in range(5)] == [200] * 5
    sixth = post(url, {"content": "m5"})
    assert sixth.status == 429
    assert json.loads(sixth.body)["retry_after"] > 0
    assert sixth.headers["x-ratelimit-remaining"] == "0"


def test_telegram_takes_one_a_second_per_chat_and_refuses_a_bad_token(receivers):
    url = f"{receivers.telegram_api}/bot{TOKEN}/sendMessage"
    assert post(url, {"chat_id": 7, "text": "one"}).status == 200
    second = post(url, {"chat_id": 7, "text": "two"})
    answer = json.loads(second.body)
    assert (second.status, answer["ok"], answer["error_code"]) == (429, False, 429)
    assert answer["parameters"]["retry_after"] >= 1
    assert post(url, {"chat_id": 8, "text": "another chat"}).status == 200
    refused = post(f"{receivers.telegram_api}/botnot-a-token/sendMessage", {"chat_id": 7, "text": "x"})
    assert refused.status == 401
    assert len(receivers.refused_for_rate()) == 1
