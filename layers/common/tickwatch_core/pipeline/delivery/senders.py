"""Sending one message to one destination, and reading the receiver's answer.

Each channel speaks its receiver's documented protocol: SNS Publish for e-mail; an HTTPS POST of
JSON for webhooks (signed), Slack's and Discord's incoming webhooks and Telegram's sendMessage. A
`SendResult` says what the receiver answered, in a form `retry.classify` reads, and never carries a
URL, a token or a secret: errors are described by what happened, not by the exception's text
(urllib3 puts the URL, with a Telegram token in its path, into its messages).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tickwatch_core.aws import AWS_ERRORS
from tickwatch_core.domain.delivery.destinations import Destination, DestinationKind, unpack_webhook_secret
from tickwatch_core.domain.delivery.messages import (
    Message,
    discord_payload,
    email_message,
    slack_payload,
    telegram_payload,
    webhook_body,
)
from tickwatch_core.domain.delivery.retry import Outcome, classify, parse_retry_after
from tickwatch_core.domain.delivery.signing import signed_headers

USER_AGENT = "tickwatch-delivery/1 (+https://github.com/tickwatch)"
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 64 * 1024
TELEGRAM_API = "https://api.telegram.org"


@dataclass(frozen=True, slots=True)
class SendResult:
    status: int | None  # the receiver's HTTP status (SNS: 200 when accepted); None: no answer
    error: str | None = None  # what went wrong, short and free of secrets
    retry_after: float | None = None  # seconds, when the receiver said how long to wait
    message_id: str | None = None  # the receiver's id of what it accepted

    @property
    def outcome(self) -> Outcome:
        return classify(self.status)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        """POST once, no redirects; raises `TransportError` when no answer came."""
        ...


class TransportError(Exception):
    """No answer: a timeout, a refused or reset connection, a TLS failure. The message is ours."""


class Urllib3Client:
    """urllib3 (botocore's own HTTP library, so nothing new to ship): one pool per container,
    short timeouts, no redirects (a redirect could carry a signed body somewhere else) and no
    retries of its own (ours honour Retry-After and the rate limits)."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
        import urllib3

        self._urllib3 = urllib3
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout), retries=False, maxsize=4
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        exceptions = self._urllib3.exceptions
        try:
            response = self._pool.request(
                "POST", url, body=body, headers=headers, redirect=False, preload_content=False
            )
            try:
                data = response.read(MAX_ANSWER_BYTES)
            finally:
                response.release_conn()
        except exceptions.TimeoutError:
            raise TransportError("no answer in time") from None
        except exceptions.NewConnectionError:
            raise TransportError("connection refused or unreachable") from None
        except exceptions.SSLError:
            raise TransportError("TLS handshake failed") from None
        except exceptions.ProtocolError:
            raise TransportError("connection closed without an answer") from None
        except exceptions.HTTPError as error:
            raise TransportError(f"HTTP error ({type(error).__name__})") from None
        return HttpAnswer(response.status, {name.lower(): value for name, value in response.headers.items()}, data)


@dataclass(frozen=True, slots=True)
class Channels:
    """What the senders need besides the message: clients and where things are."""

    sns: Any
    http: HttpClient
    alert_topic_arn: str
    telegram_api: str = TELEGRAM_API


def send(
    channels: Channels,
    destination: Destination,
    secret: str | None,
    message: Message,
    *,
    delivery_id: str,
    now: datetime,
) -> SendResult:
    """Send `message` to `destination` once. `secret` is the destination's stored secret."""
    if destination.kind is DestinationKind.EMAIL:
        return _send_email(channels, destination, message)
    if secret is None:
        return SendResult(400, f"the destination's secret {destination.secret_name} is missing")
    if destination.kind is DestinationKind.TELEGRAM:
        url = f"{channels.telegram_api.rstrip('/')}/bot{secret}/sendMessage"
        return _post_json(channels, url, telegram_payload(message, destination.target), _telegram_answer, secret)
    if destination.kind is DestinationKind.SLACK:
        return _post_json(channels, secret, slack_payload(message), _slack_answer, secret)
    if destination.kind is DestinationKind.DISCORD:
        separator = "&" if "?" in secret else "?"
        # wait=true: Discord confirms the message was saved and returns it (else a silent 204).
        return _post_json(channels, f"{secret}{separator}wait=true", discord_payload(message), _discord_answer, secret)
    url, signing_secret = unpack_webhook_secret(secret)
    body = webhook_body(message, destination.name, delivery_id, now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signed_headers(signing_secret, int(now.timestamp()), body, delivery_id),
    }
    return _post(channels, url, body, headers, _webhook_answer, secret, signing_secret)


def _send_email(channels: Channels, destination: Destination, message: Message) -> SendResult:
    subject, body, attributes = email_message(message)
    # Each e-mail destination's subscriptions filter on it; the default ("email") is the topic's
    # subscribers as before destinations.
    attributes["destination"] = {"DataType": "String", "StringValue": destination.name}
    try:
        response = channels.sns.publish(
            TopicArn=channels.alert_topic_arn, Subject=subject, Message=body, MessageAttributes=attributes
        )
    except AWS_ERRORS as error:
        return _aws_result(error)
    return SendResult(200, message_id=response.get("MessageId"))


def _aws_result(error: Exception) -> SendResult:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        details = error.response.get("Error", {})
        code = details.get("Code", "Unknown")
        throttled = code in {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded"}
        return SendResult(429 if throttled else status or 500, f"SNS {code}: {details.get('Message', '')}"[:300])
    return SendResult(None, f"SNS unreachable ({type(error).__name__})")


def _post_json(channels: Channels, url: str, payload: dict[str, Any], read: Any, *secrets: str) -> SendResult:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    return _post(channels, url, body, headers, read, *secrets)


def _post(channels: Channels, url: str, body: bytes, headers: dict[str, str], read: Any, *secrets: str) -> SendResult:
    try:
        answer = channels.http.post(url, body, headers)
    except TransportError as error:
        return SendResult(None, str(error))
    result: SendResult = read(answer)
    if result.error:
        result = SendResult(result.status, redact(result.error, secrets), result.retry_after, result.message_id)
    return result


def _retry_after(answer: HttpAnswer) -> float | None:
    return parse_retry_after(answer.headers.get("retry-after"))


def _text(answer: HttpAnswer, limit: int = 200) -> str:
    return re.sub(r"\s+", " ", answer.body[:limit].decode(errors="replace")).strip()


def _slack_answer(answer: HttpAnswer) -> SendResult:
    # Slack answers 200 "ok", or an error code as text (invalid_payload, channel_not_found, ...).
    if 200 <= answer.status < 300:
        return SendResult(answer.status)
    return SendResult(answer.status, f"Slack {answer.status}: {_text(answer)}", _retry_after(answer))


def _discord_answer(answer: HttpAnswer) -> SendResult:
    document = _json(answer)
    if 200 <= answer.status < 300:
        return SendResult(answer.status, message_id=str(document.get("id")) if document.get("id") else None)
    retry_after = _retry_after(answer)
    if answer.status == 429 and isinstance(document.get("retry_after"), int | float):
        retry_after = max(retry_after or 0.0, float(document["retry_after"]))
    said = document.get("message") or _text(answer)
    return SendResult(answer.status, f"Discord {answer.status}: {said}", retry_after)


def _telegram_answer(answer: HttpAnswer) -> SendResult:
    document = _json(answer)
    if 200 <= answer.status < 300 and document.get("ok") is True:
        message_id = (document.get("result") or {}).get("message_id")
        return SendResult(answer.status, message_id=str(message_id) if message_id is not None else None)
    parameters = document.get("parameters") or {}
    retry_after = parameters.get("retry_after")
    status = int(document.get("error_code") or answer.status)
    if 200 <= status < 300:  # 200 with ok false: a malformed answer; try again rather than trust it
        status = 502
    description = document.get("description") or _text(answer)
    return SendResult(
        status,
        f"Telegram {status}: {description}",
        float(retry_after) if isinstance(retry_after, int | float) else _retry_after(answer),
    )


def _webhook_answer(answer: HttpAnswer) -> SendResult:
    if 200 <= answer.status < 300:
        return SendResult(answer.status)
    return SendResult(answer.status, f"webhook {answer.status}: {_text(answer)}", _retry_after(answer))


def _json(answer: HttpAnswer) -> dict[str, Any]:
    try:
        document = json.loads(answer.body or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """`text` with every secret, and every part of a secret URL's path, replaced by `…`."""
    for secret in secrets:
        if not secret:
            continue
        for part in [secret, *re.split(r"[/?&=\n]", secret)]:
            if len(part) >= 8:
                text = text.replace(part, "…")
    return text
