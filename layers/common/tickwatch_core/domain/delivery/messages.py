"""What each channel is sent: one alert, a digest of several, or a test. Pure.

`compose` makes the words once (a template's, or the alert's own e-mail texts, which stay as they
always were); `email_message`, `slack_payload`, `discord_payload`, `telegram_payload` and
`webhook_body` put them in each receiver's documented format, within its size limit. A digest lists
every alert, or as many as fit and then how many more and the dashboard's link: never fewer
alerts than it stands for without saying so.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tickwatch_core.domain.delivery.notices import AlertNotice, format_instant
from tickwatch_core.domain.delivery.templates import dashboard_link, render
from tickwatch_core.domain.rules.text import format_decimal

WEBHOOK_BODY_VERSION = "1"
SUBJECT_LIMIT = 99  # SNS: an e-mail subject must be "less than 100 characters", with no control characters
EMAIL_BODY_LIMIT = 200_000  # SNS takes 256 KB a message; room for the attributes and headers
SLACK_TEXT_LIMIT = 3_000  # a section's text in Slack's Block Kit; plain text may be longer, readers may not
DISCORD_CONTENT_LIMIT = 2_000  # Discord: a message's content
TELEGRAM_TEXT_LIMIT = 4_096  # Telegram Bot API: sendMessage text, after entity parsing


class MessageKind(StrEnum):
    ALERT = "alert"
    DIGEST = "digest"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one destination: `text` is complete and plain; `subject` is for e-mail."""

    kind: MessageKind
    notices: tuple[AlertNotice, ...]
    subject: str
    text: str
    link: str  # the dashboard (at the symbol for one alert); empty without a dashboard

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(notice.alert_id for notice in self.notices)


def compose(
    notices: list[AlertNotice] | tuple[AlertNotice, ...],
    *,
    destination_template: str | None = None,
    dashboard_url: str | None = None,
    limit: int = EMAIL_BODY_LIMIT,
) -> Message:
    """One alert's message, or a digest of several, in at most `limit` characters of text."""
    if not notices:
        raise ValueError("a message needs at least one alert")
    if len(notices) == 1:
        notice = notices[0]
        template = notice.template or destination_template  # the rule's own words come first
        link = dashboard_link(dashboard_url, notice.symbol)
        if template is None:
            return Message(MessageKind.ALERT, (notice,), notice.subject, _fit(notice.body, limit), link)
        words = render(template, notice, dashboard_url)
        subject = email_subject("tickwatch: " + words.split("\n", 1)[0])
        return Message(MessageKind.ALERT, (notice,), subject, _fit(words + "\n\n" + notice.body, limit), link)
    return _digest(tuple(notices), dashboard_url, limit)


def _digest(notices: tuple[AlertNotice, ...], dashboard_url: str | None, limit: int) -> Message:
    symbols = Counter(notice.symbol for notice in notices)
    only = next(iter(symbols)) if len(symbols) == 1 else None
    link = dashboard_link(dashboard_url, only)
    counts = ", ".join(f"{symbol} {count}" for symbol, count in symbols.most_common())
    subject = f"tickwatch: {len(notices)} alerts ({counts})"
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 2] + "…)"
    first, last = notices[0].fired_at, notices[-1].fired_at
    header = [
        f"{len(notices)} alerts from {_clock(first)} to {_clock(last)} UTC, sent as one message so that "
        "this destination stays within its rate limit.",
        "",
    ]
    footer = ["", f"Dashboard: {link}"] if link else []
    lines = [_digest_line(notice) for notice in notices]
    text = "\n".join(header + lines + footer)
    if len(text) <= limit:
        return Message(MessageKind.DIGEST, notices, subject, text, link)
    # As many lines as fit, then what was left out, counted; `tickwatch alerts` lists every one.
    kept: list[str] = []
    budget = limit - len("\n".join(header + footer)) - 80
    for line in lines:
        if sum(len(kept_line) + 1 for kept_line in kept) + len(line) + 1 > budget:
            break
        kept.append(line)
    more = [f"… and {len(notices) - len(kept)} more: `tickwatch alerts` or the dashboard lists every one."]
    return Message(MessageKind.DIGEST, notices, subject, "\n".join(header + kept + more + footer), link)


def email_subject(text: str) -> str:
    """What SNS takes as a subject: no control characters (a template's tab), under 100 characters."""
    cleaned = "".join(" " if ord(character) < 32 or ord(character) == 127 else character for character in text)
    return cleaned if len(cleaned) <= SUBJECT_LIMIT else cleaned[: SUBJECT_LIMIT - 1] + "…"


def _digest_line(notice: AlertNotice) -> str:
    return f"{_clock(notice.fired_at)}  {notice.subject.removeprefix('tickwatch: ')}  [{notice.alert_id}]"


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def probe_message(destination_name: str, now: datetime, dashboard_url: str | None = None) -> Message:
    """What `destinations test NAME` sends: says what it is, so nobody acts on it."""
    text = (
        f"tickwatch test message for destination {destination_name!r}, sent {format_instant(now)}. "
        "If you read this, alerts will reach you here. No action needed."
    )
    subject = f"tickwatch: test message for {destination_name}"
    return Message(MessageKind.TEST, (), subject, text, dashboard_link(dashboard_url))


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Each channel's format. Compose with the channel's limit first, so nothing is cut mid-line.


def email_message(message: Message) -> tuple[str, str, dict[str, Any]]:
    """Subject, body and SNS message attributes. `symbol` is a String.Array of every symbol in the
    message, so a subscriber's symbol filter lets it through when any of them is theirs."""
    symbols = sorted({notice.symbol for notice in message.notices})
    attributes: dict[str, Any] = {"message_kind": {"DataType": "String", "StringValue": message.kind.value}}
    if symbols:
        attributes["symbol"] = {"DataType": "String.Array", "StringValue": json.dumps(symbols)}
    if len(message.notices) == 1:
        notice = message.notices[0]
        attributes |= {
            "rule_id": {"DataType": "String", "StringValue": notice.rule_id},
            "direction": {"DataType": "String", "StringValue": notice.direction},
            # The same for every delivery of one alert: lets a subscriber drop a duplicate.
            "alert_id": {"DataType": "String", "StringValue": notice.alert_id},
        }
    return email_subject(message.subject), message.text, attributes


def slack_payload(message: Message) -> dict[str, Any]:
    """Slack's incoming webhook: `text` in mrkdwn, where &, < and > must be escaped."""
    return {"text": _slack_escape(message.text), "unfurl_links": False}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def discord_payload(message: Message) -> dict[str, Any]:
    """Discord's execute-webhook body; no mentions, whatever the text says (a symbol named @everyone)."""
    return {"content": message.text[:DISCORD_CONTENT_LIMIT], "allowed_mentions": {"parse": []}}


def telegram_payload(message: Message, chat_id: str) -> dict[str, Any]:
    """The Bot API's sendMessage, plain text (no parse_mode: nothing in an alert needs escaping)."""
    chat: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
    return {"chat_id": chat, "text": message.text[:TELEGRAM_TEXT_LIMIT], "link_preview_options": {"is_disabled": True}}


def webhook_body(message: Message, destination: str, delivery_id: str, sent_at: datetime) -> bytes:
    """The webhook's JSON body, version 1 (documented in the README's delivery section)."""
    document = {
        "version": WEBHOOK_BODY_VERSION,
        "type": message.kind.value,
        "delivery_id": delivery_id,
        "destination": destination,
        "sent_at": format_instant(sent_at),
        "text": message.text,
        "link": message.link or None,
        "alerts": [
            {
                "alert_id": notice.alert_id,
                "rule_id": notice.rule_id,
                "symbol": notice.symbol,
                "kind": notice.kind,
                "direction": notice.direction,
                "level": notice.level,
                "price": format_decimal(notice.price),
                "reference": None if notice.reference is None else format_decimal(notice.reference),
                "change_percent": None if notice.change_percent is None else str(notice.change_percent),
                "fired_at": format_instant(notice.fired_at),
                "text": notice.headline,
            }
            for notice in message.notices
        ],
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


CHANNEL_TEXT_LIMITS = {
    "email": EMAIL_BODY_LIMIT,
    "webhook": EMAIL_BODY_LIMIT,
    "slack": SLACK_TEXT_LIMIT,
    "discord": DISCORD_CONTENT_LIMIT,
    "telegram": TELEGRAM_TEXT_LIMIT,
}
