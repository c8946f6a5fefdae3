"""Destinations, templates and each channel's message: what a person receives, within limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch_core.domain.delivery.destinations import (
    DestinationError,
    DestinationKind,
    mask_url,
    new_destination,
    parse_notify,
    parse_quiet_hours,
    unpack_webhook_secret,
)
from tickwatch_core.domain.delivery.messages import (
    DISCORD_CONTENT_LIMIT,
    SLACK_TEXT_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    MessageKind,
    compose,
    discord_payload,
    email_message,
    probe_message,
    slack_payload,
    telegram_payload,
    webhook_body,
)
from tickwatch_core.domain.delivery.notices import AlertNotice
from tickwatch_core.domain.delivery.templates import TemplateError, check_template, render

T0 = datetime(2026, 12, 7, 14, 30, 1, 250000, tzinfo=UTC)
DASHBOARD = "https://d111.cloudfront.net/"


def notice(index: int = 0, symbol: str = "AAPL", **changes) -> AlertNotice:
    values = {
        "alert_id": f"a{index:019d}",
        "rule_id": f"{symbol}-above-200",
        "symbol": symbol,
        "kind": "price",
        "direction": "above",
        "level": "200",
        "price": Decimal("201.5"),
        "fired_at": T0 + timedelta(seconds=index),
        "subject": f"tickwatch: {symbol} rose to 201.5 (above 200)",
        "body": f"{symbol} traded at 201.5, at or above your threshold of 200.\n\nSymbol:     {symbol}\n",
    }
    return AlertNotice(**(values | changes))


def test_a_notice_survives_its_json_and_refuses_another_version():
    original = notice(reference=Decimal("195.25"), template="{symbol} {price}", notify=("ops", "phone"))
    assert AlertNotice.from_json(json.loads(original.encode())) == original
    with pytest.raises(ValueError, match="version"):
        AlertNotice.from_json({**original.to_json(), "v": 2})


def test_one_alert_without_a_template_keeps_the_email_texts_as_they_were():
    message = compose([notice()], dashboard_url=DASHBOARD)
    assert message.kind is MessageKind.ALERT
    assert (message.subject, message.text) == (notice().subject, notice().body)
    assert message.link == "https://d111.cloudfront.net/#symbol=AAPL"


def test_a_template_fills_every_placeholder():
    template = check_template(
        "{symbol} {direction} {level}: {price} ({change}) {kind} {rule_id} {alert_id} {time} {link} {{x}}"
    )
    text = render(template, notice(kind="change", level="+3%", reference=Decimal("195")), DASHBOARD)
    assert text == (
        "AAPL above +3%: 201.5 (+3.33%) change AAPL-above-200 a0000000000000000000 2026-12-07 14:30:01 UTC "
        "https://d111.cloudfront.net/#symbol=AAPL {x}"
    )
    # A price rule measures from nothing: {change} is empty, not made up.
    assert render("[{change}]", notice(), None) == "[]"
    assert render("[{link}]", notice(), None) == "[]"


def test_the_rules_template_wins_over_the_destinations():
    own = notice(template="rule says {symbol}")
    message = compose([own], destination_template="destination says {symbol}")
    assert message.text.startswith("rule says AAPL\n\n")
    assert message.subject == "tickwatch: rule says AAPL"
    assert compose([notice()], destination_template="destination says {symbol}").text.startswith("destination says")


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{price", "lone '{'"),
        ("{volume}", "{volume} is not one of"),
        ("{0}", "{0}"),
        ("{symbol.__class__}", "not one"),
        ("", "empty"),
    ],
)
def test_a_bad_template_is_refused_when_saved(template, says):
    with pytest.raises(TemplateError, match=says.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        check_template(template)


def test_a_digest_lists_every_alert_counts_symbols_and_links():
    burst = [notice(i, "AAPL" if i % 3 else "TSLA") for i in range(12)]
    message = compose(burst, dashboard_url=DASHBOARD)
    assert message.kind is MessageKind.DIGEST
    assert message.subject == "tickwatch: 12 alerts (AAPL 8, TSLA 4)"
    for alert in burst:
        assert alert.alert_id in message.text
    assert message.text.endswith("Dashboard: https://d111.cloudfront.net/")
    assert message.alert_ids == tuple(alert.alert_id for alert in burst)


@pytest.mark.parametrize("limit", [SLACK_TEXT_LIMIT, DISCORD_CONTENT_LIMIT, TELEGRAM_TEXT_LIMIT])
def test_a_digest_too_long_for_its_channel_lists_what_fits_and_counts_the_rest(limit):
    burst = [notice(i) for i in range(500)]
    message = compose(burst, dashboard_url=DASHBOARD, limit=limit)
    assert len(message.text) <= limit
    listed = sum(alert.alert_id in message.text for alert in burst)
    assert 10 < listed < 500
    assert f"… and {500 - listed} more" in message.text
    assert len(message.notices) == 500


def test_email_carries_every_symbol_for_the_subscribers_filter():
    subject, _, attributes = email_message(compose([notice(0, "AAPL"), notice(1, "TSLA")]))
    assert json.loads(attributes["symbol"]["StringValue"]) == ["AAPL", "TSLA"]
    assert attributes["symbol"]["DataType"] == "String.Array"
    assert attributes["message_kind"]["StringValue"] == "digest"
    assert len(subject) <= 100
    _, _, single = email_message(compose([notice()]))
    assert single["alert_id"]["StringValue"] == notice().alert_id


def test_chat_payloads_follow_each_channels_format():
    message = compose([notice(body="AAPL <b> & co\n")])
    assert slack_payload(message)["text"] == "AAPL &lt;b&gt; &amp; co\n"
    discord = discord_payload(message)
    assert discord["allowed_mentions"] == {"parse": []}
    assert discord["content"] == "AAPL <b> & co\n"
    telegram = telegram_payload(message, "-1001234567890")
    assert telegram["chat_id"] == -1001234567890
    assert telegram_payload(message, "@alerts")["chat_id"] == "@alerts"
    assert "parse_mode" not in telegram


def test_the_webhook_body_is_versioned_and_carries_each_alert_id():
    sent = T0 + timedelta(seconds=2)
    body = json.loads(webhook_body(compose([notice(0), notice(1)]), "ops", "d-123", sent))
    assert body["version"] == "1"
    assert body["type"] == "digest"
    assert body["delivery_id"] == "d-123"
    assert body["sent_at"] == "2026-12-07T14:30:03.250Z"
    assert [alert["alert_id"] for alert in body["alerts"]] == [notice(0).alert_id, notice(1).alert_id]
    assert body["alerts"][0]["price"] == "201.5"


def test_a_probe_message_says_it_is_a_test():
    message = probe_message("ops", T0)
    assert message.kind is MessageKind.TEST
    assert "test message" in message.text
    assert message.notices == ()


def test_destinations_check_every_field_and_keep_secrets_apart():
    slack = new_destination("team", "slack", url="https://hooks.slack.com/services/T0/B0/XYZsecret")
    assert slack.destination.target == "https://hooks.slack.com/services/…"
    assert slack.secret == "https://hooks.slack.com/services/T0/B0/XYZsecret"
    assert slack.destination.secret_name == "tickwatch/destinations/team"
    hook = new_destination("ops", "webhook", url="https://example.com/hook?token=abc", secret="s" * 16, rate="2/s")
    assert "abc" not in hook.destination.target
    assert unpack_webhook_secret(hook.secret) == ("https://example.com/hook?token=abc", "s" * 16)
    assert hook.destination.limits[0].count == 2
    phone = new_destination("phone", "telegram", token="123456:" + "A" * 35, chat_id="-100123")
    assert phone.destination.kind is DestinationKind.TELEGRAM
    assert phone.secret == "123456:" + "A" * 35
    assert "AAAA" not in repr(phone.destination)
    mail = new_destination("me", "email", email="Me@Example.com", symbols=("AAPL",))
    assert (mail.destination.target, mail.secret, mail.destination.pacing_key) == ("me@example.com", None, "email")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": "Ops!", "kind": "slack", "url": "https://hooks.slack.com/x"}, "name"),
        ({"name": "ops", "kind": "pager", "url": "https://x.com"}, "kind"),
        ({"name": "ops", "kind": "slack", "url": "http://hooks.slack.com/x"}, "url"),
        ({"name": "ops", "kind": "slack", "url": "https://user:pw@hooks.slack.com/x"}, "url"),
        ({"name": "ops", "kind": "slack"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "https://x.com/h"}, "secret"),
        ({"name": "ops", "kind": "webhook", "url": "https://x.com/h", "secret": "short"}, "secret"),
        ({"name": "ops", "kind": "webhook", "url": "https://x.com/h", "secret": "s" * 16, "rate": "9000/s"}, "rate"),
        ({"name": "ops", "kind": "slack", "url": "https://x.com/h", "rate": "1/s"}, "rate"),
        ({"name": "ops", "kind": "telegram", "token": "nope", "chat_id": "1"}, "token"),
        ({"name": "ops", "kind": "telegram", "token": "123456:" + "A" * 35, "chat_id": "me"}, "chat_id"),
        ({"name": "ops", "kind": "email", "email": "not-an-address"}, "email"),
        ({"name": "ops", "kind": "email", "email": "a@b.co", "url": "https://x.com"}, "url"),
        ({"name": "ops", "kind": "slack", "url": "https://x.com/h", "symbols": ("AAPL",)}, "symbols"),
        ({"name": "ops", "kind": "slack", "url": "https://x.com/h", "template": "{nope}"}, "template"),
    ],
)
def test_a_bad_destination_names_its_field(arguments, field):
    with pytest.raises((DestinationError, TemplateError)) as raised:
        new_destination(**arguments)
    assert raised.value.field == field


def test_loopback_http_is_for_the_local_stack_only():
    url = "http://127.0.0.1:8123/services/T/B/C"
    assert new_destination("l", "slack", url=url, allow_loopback_http=True).secret == url
    with pytest.raises(DestinationError):
        new_destination("l", "slack", url=url)
    with pytest.raises(DestinationError):
        new_destination("l", "slack", url="http://example.com/x", allow_loopback_http=True)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/…"),
        ("https://discord.com/api/webhooks/123/tok", "https://discord.com/api/…"),
        ("https://example.com/hook?key=1", "https://example.com/hook/…"),
        ("https://example.com/", "https://example.com/"),
        ("http://127.0.0.1:9000/x/y", "http://127.0.0.1:9000/x/…"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_notify_lists_names_once_and_refuses_bad_ones():
    assert parse_notify("ops, phone,ops") == ("ops", "phone")
    assert parse_notify(["ops"]) == ("ops",)
    assert parse_notify(None) == ()
    with pytest.raises(DestinationError, match="not a destination name"):
        parse_notify("Ops Team")
    with pytest.raises(DestinationError, match="at most"):
        parse_notify([f"d{i}" for i in range(11)])


def test_quiet_hours():
    quiet = parse_quiet_hours("22:00-07:00", "Europe/Berlin", "hold")
    assert quiet.text == "22:00-07:00 Europe/Berlin (hold)"
    with pytest.raises(DestinationError) as raised:
        parse_quiet_hours("22:00-07:00", "Mars/Olympus")
    assert raised.value.field == "quiet_tz"
    with pytest.raises(DestinationError):
        parse_quiet_hours("22:00-22:00", "UTC")


def test_an_email_subject_is_one_line_under_100_characters():
    from tickwatch_core.domain.delivery.messages import email_subject

    assert email_subject("tickwatch: a\tb\nc") == "tickwatch: a b c"
    long = email_subject("x" * 150)
    assert len(long) == 99
    assert long.endswith("…")
    templated = compose([notice(template="{symbol}\t" + "y" * 120)])
    subject, _, _ = email_message(templated)
    assert len(subject) <= 99
    assert "\t" not in subject


@pytest.mark.parametrize("host", ["10.0.0.5", "169.254.169.254", "127.0.0.1", "[::1]", "192.168.1.1"])
def test_a_url_to_a_private_address_is_refused(host):
    with pytest.raises(DestinationError, match="not a public address"):
        new_destination("x", "slack", url=f"https://{host}/hook")
