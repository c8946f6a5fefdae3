"""Destinations: the named places alerts go, and what each kind needs. Pure, no AWS.

A destination is stored without its secrets: a webhook's signing secret, a Telegram bot's token and
a Slack or Discord webhook URL (whose path is the credential) live in Secrets Manager, and the
destination keeps only the secret's name and a masked form of what it hides, for listings.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import time
from enum import StrEnum
from urllib.parse import urlsplit

from tickwatch_core.domain.delivery.pacing import RateLimit, channel_limits, parse_rate

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# The route every rule without `notify` takes: the stack's alert topic, as before destinations.
DEFAULT_DESTINATION = "email"
MAX_DESTINATIONS = 50
MAX_NOTIFY = 10
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TELEGRAM_TOKEN = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{20,100}")
_TELEGRAM_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class DestinationKind(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    SLACK = "slack"
    DISCORD = "discord"
    TELEGRAM = "telegram"


class DestinationError(ValueError):
    """A destination's field is wrong; `field` names it for the API's 422 and the CLI's exit 2."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Hours of the day in a time zone when a destination gets nothing: alerts are held for one
    digest at the end (`hold`) or not delivered (`drop`; still in the history, marked so)."""

    start: time
    end: time
    zone: str
    then: str = "hold"  # or "drop"

    @property
    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone} ({self.then})"


@dataclass(frozen=True, slots=True)
class Destination:
    """A named place alerts go.

    `target` is what may be shown: the e-mail address, the masked URL, the Telegram chat id.
    `secret_name` names the Secrets Manager secret holding what must not be shown (None for e-mail).
    """

    name: str
    kind: DestinationKind
    target: str
    secret_name: str | None = None
    template: str | None = None
    rate: RateLimit | None = None  # a webhook's own rate; the other kinds use their channel's limits
    symbols: tuple[str, ...] = ()  # e-mail: the subscriber's symbol filter (empty: every symbol)
    quiet_hours: QuietHours | None = None

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        """What this destination may be sent, at most: see `pacing.channel_limits`."""
        if self.kind is DestinationKind.WEBHOOK and self.rate is not None:
            return (self.rate,)
        return channel_limits(self.kind.value, self.target)

    @property
    def pacing_key(self) -> str:
        """Destinations sharing one receiver share one budget: every e-mail destination is a
        subscription of the one alert topic, and SNS counts what a subscription receives."""
        return "email" if self.kind is DestinationKind.EMAIL else f"{self.kind.value}:{self.name}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise DestinationError(
            "name", f"destination name {name!r}: 1-32 of a-z, 0-9, - and _, starting with a letter or digit"
        )
    return name


def parse_notify(names: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    """A rule's destinations: `ops,phone` or a list; checked for form here, for existence by the store."""
    if names is None:
        return ()
    listed = names.split(",") if isinstance(names, str) else list(names)
    cleaned = []
    for name in listed:
        if not isinstance(name, str):
            raise DestinationError("notify", "notify must list destination names")
        name = name.strip()
        if not name:
            continue
        if not NAME_PATTERN.fullmatch(name):
            raise DestinationError("notify", f"notify: {name!r} is not a destination name")
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_NOTIFY:
        raise DestinationError("notify", f"notify names {len(cleaned)} destinations; at most {MAX_NOTIFY}")
    return tuple(cleaned)


@dataclass(frozen=True, slots=True)
class NewDestination:
    """What `destinations add` and `POST /destinations` take, checked: the destination as stored,
    and the secret to keep in Secrets Manager (None for e-mail)."""

    destination: Destination
    secret: str | None


def new_destination(
    name: str,
    kind: str,
    *,
    url: str | None = None,
    email: str | None = None,
    token: str | None = None,
    chat_id: str | None = None,
    secret: str | None = None,
    symbols: tuple[str, ...] = (),
    rate: str | None = None,
    template: str | None = None,
    quiet_hours: QuietHours | None = None,
    secret_prefix: str = "tickwatch/destinations/",
    allow_loopback_http: bool = False,
) -> NewDestination:
    """Check every field of a new destination. Raises DestinationError naming the field.

    `allow_loopback_http` lets the local stack point a destination at its loopback receivers over
    plain HTTP; everywhere else a URL must be HTTPS (it carries alerts and, for chat, a token)."""
    from tickwatch_core.domain.delivery.templates import check_template

    check_name(name)
    try:
        kind_value = DestinationKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in DestinationKind)
        raise DestinationError("kind", f"kind {kind!r} is not one of {choices}") from None
    given = {"url": url, "email": email, "token": token, "chat_id": chat_id, "secret": secret}
    wanted = {
        DestinationKind.EMAIL: {"email"},
        DestinationKind.WEBHOOK: {"url", "secret"},
        DestinationKind.SLACK: {"url"},
        DestinationKind.DISCORD: {"url"},
        DestinationKind.TELEGRAM: {"token", "chat_id"},
    }[kind_value]
    for field_name, value in given.items():
        if value is not None and field_name not in wanted and not (field_name == "secret" and value == ""):
            raise DestinationError(field_name, f"a {kind_value} destination takes no {field_name}")
    if symbols and kind_value is not DestinationKind.EMAIL:
        raise DestinationError("symbols", "only an email destination filters by symbol (rules choose their symbols)")
    if rate is not None and kind_value is not DestinationKind.WEBHOOK:
        raise DestinationError("rate", f"a {kind_value} destination's rate is its channel's documented limit")
    checked_template = check_template(template) if template is not None else None
    secret_name = f"{secret_prefix}{name}"
    base = Destination(name, kind_value, "", template=checked_template, quiet_hours=quiet_hours)

    if kind_value is DestinationKind.EMAIL:
        if not email or not _EMAIL.fullmatch(email) or len(email) > 254:
            raise DestinationError("email", f"email {email!r} is not an e-mail address")
        return NewDestination(replace(base, target=email.lower(), symbols=tuple(symbols)), None)
    if kind_value is DestinationKind.TELEGRAM:
        if not token or not _TELEGRAM_TOKEN.fullmatch(token):
            raise DestinationError("token", "token is not a Telegram bot token (123456:ABC-DEF..., from @BotFather)")
        if not chat_id or not _TELEGRAM_CHAT.fullmatch(str(chat_id)):
            raise DestinationError("chat_id", f"chat_id {chat_id!r} is not a Telegram chat id (-100123, 123 or @name)")
        return NewDestination(replace(base, target=str(chat_id), secret_name=secret_name), token)
    checked_url = check_url(url, allow_loopback_http=allow_loopback_http)
    if kind_value is DestinationKind.WEBHOOK:
        if not secret:
            # A webhook without a secret could not prove to its receiver that tickwatch sent it.
            raise DestinationError("secret", "a webhook needs a signing secret (at least 16 characters)")
        if len(secret) < 16 or len(secret) > 256:
            raise DestinationError("secret", "the signing secret must be 16 to 256 characters")
        parsed_rate = _parse_rate_field(rate) if rate is not None else None
        # The URL is kept with the secret: a receiver's URL often carries a token of its own.
        return NewDestination(
            replace(base, target=mask_url(checked_url), secret_name=secret_name, rate=parsed_rate),
            _pack_webhook_secret(checked_url, secret),
        )
    return NewDestination(replace(base, target=mask_url(checked_url), secret_name=secret_name), checked_url)


def _parse_rate_field(rate: str) -> RateLimit:
    try:
        return parse_rate(rate)
    except ValueError as error:
        raise DestinationError("rate", str(error)) from None


def check_url(url: str | None, *, allow_loopback_http: bool) -> str:
    if not url:
        raise DestinationError("url", "url is required")
    if len(url) > 2048:
        raise DestinationError("url", "url is longer than 2048 characters")
    parts = urlsplit(url)
    if parts.scheme == "http" and allow_loopback_http and parts.hostname in _LOOPBACK_HOSTS:
        return url
    if parts.scheme != "https" or not parts.hostname:
        raise DestinationError("url", "url must be https://... (it carries alerts and often a token)")
    if parts.username or parts.password:
        raise DestinationError("url", "url must not carry a user name or password")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url  # a name: resolved by the sender, at send time
    if not address.is_global:
        # A private, loopback or link-local address is no receiver on the internet, and the delivery
        # function would report what it answered.
        raise DestinationError("url", f"url's host {parts.hostname} is not a public address")
    return url


def mask_url(url: str) -> str:
    """Scheme, host and the path's first part; the rest (where webhook URLs keep their token) as
    `…`: `https://hooks.slack.com/services/…`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    first = next((segment for segment in parts.path.split("/") if segment), "")
    hidden = parts.path.strip("/") != first or bool(parts.query)
    return f"{parts.scheme}://{host}/{first}" + ("/…" if hidden else "")


def mask_secret(secret: str) -> str:
    """For a listing: only enough to tell two secrets apart."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


_WEBHOOK_SECRET_SEPARATOR = "\n"


def _pack_webhook_secret(url: str, signing_secret: str) -> str:
    return f"{url}{_WEBHOOK_SECRET_SEPARATOR}{signing_secret}"


def unpack_webhook_secret(value: str) -> tuple[str, str]:
    """(url, signing secret) from a webhook's stored secret."""
    url, _, signing_secret = value.partition(_WEBHOOK_SECRET_SEPARATOR)
    return url, signing_secret


def parse_quiet_hours(text: str, zone: str, then: str = "hold") -> QuietHours:
    """`"22:00-07:00"` in `zone` -> QuietHours. Raises DestinationError on `quiet_hours`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from tickwatch_core.domain.rules.text import parse_hours

    try:
        start, end = parse_hours(text)
    except ValueError as error:
        raise DestinationError("quiet_hours", str(error)) from None
    if start == end:
        raise DestinationError("quiet_hours", "quiet hours must not start and end at the same time")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DestinationError("quiet_tz", f"time zone {zone!r} is not an IANA zone like Europe/Berlin") from None
    if then not in {"hold", "drop"}:
        raise DestinationError("quiet_then", "quiet hours either hold alerts for a digest (hold) or drop them (drop)")
    return QuietHours(start, end, zone, then)
