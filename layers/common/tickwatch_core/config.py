"""Settings of each function, read once from the environment the template sets."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


class ConfigurationError(RuntimeError):
    """An environment variable the template should have set is missing or malformed."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set; template.yaml sets it for the function")
    return value


def _days(environ: Mapping[str, str], name: str) -> timedelta:
    text = _required(environ, name)
    if not text.isdigit() or int(text) <= 0:
        raise ConfigurationError(f"environment variable {name}={text!r} is not a whole number of days above zero")
    return timedelta(days=int(text))


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    raw_bucket: str
    table_name: str
    bar_retention: timedelta

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProcessorSettings:
        environ = os.environ if environ is None else environ
        return cls(
            raw_bucket=_required(environ, "RAW_BUCKET"),
            table_name=_required(environ, "TABLE_NAME"),
            bar_retention=_days(environ, "BAR_RETENTION_DAYS"),
        )


@dataclass(frozen=True, slots=True)
class AlertsSettings:
    table_name: str
    alert_topic_arn: str
    alert_history_retention: timedelta
    delivery_table_name: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AlertsSettings:
        environ = os.environ if environ is None else environ
        return cls(
            table_name=_required(environ, "TABLE_NAME"),
            alert_topic_arn=_required(environ, "ALERT_TOPIC_ARN"),
            alert_history_retention=_days(environ, "ALERT_HISTORY_DAYS"),
            delivery_table_name=_required(environ, "DELIVERY_TABLE_NAME"),
        )


@dataclass(frozen=True, slots=True)
class QuerySettings:
    table_name: str
    allowed_origin: str  # the dashboard's origin for CORS; "*" when the template's parameter is empty
    delivery_table_name: str = ""  # each alert's deliveries; empty: alerts are listed without them
    destination_secret_prefix: str = ""
    alert_topic_arn: str = ""  # an e-mail destination subscribes to it
    allow_loopback_destinations: bool = False  # only the local stack sets it

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> QuerySettings:
        environ = os.environ if environ is None else environ
        return cls(
            table_name=_required(environ, "TABLE_NAME"),
            allowed_origin=_required(environ, "ALLOWED_ORIGIN"),
            delivery_table_name=_required(environ, "DELIVERY_TABLE_NAME"),
            destination_secret_prefix=_required(environ, "DESTINATION_SECRET_PREFIX"),
            alert_topic_arn=_required(environ, "ALERT_TOPIC_ARN"),
            allow_loopback_destinations=environ.get("ALLOW_LOOPBACK_DESTINATIONS", "").strip() == "true",
        )


@dataclass(frozen=True, slots=True)
class IngestSettings:
    stream_name: str
    allowed_origin: str  # as the query API's: the same API, the same CORS answer

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        environ = os.environ if environ is None else environ
        return cls(stream_name=_required(environ, "STREAM_NAME"), allowed_origin=_required(environ, "ALLOWED_ORIGIN"))


@dataclass(frozen=True, slots=True)
class LiveSettings:
    connection_table_name: str
    usage_plan_id: str  # the query API's usage plan: its keys open WebSocket connections too

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LiveSettings:
        environ = os.environ if environ is None else environ
        return cls(
            connection_table_name=_required(environ, "CONNECTION_TABLE_NAME"),
            usage_plan_id=_required(environ, "USAGE_PLAN_ID"),
        )


@dataclass(frozen=True, slots=True)
class BroadcastSettings:
    connection_table_name: str
    live_api_endpoint: str  # https://<api>.execute-api.<region>.amazonaws.com/<stage>: the management API

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BroadcastSettings:
        environ = os.environ if environ is None else environ
        endpoint = _required(environ, "LIVE_API_ENDPOINT")
        if not endpoint.startswith(("https://", "http://")):
            raise ConfigurationError(f"environment variable LIVE_API_ENDPOINT={endpoint!r} is not an http(s) URL")
        return cls(connection_table_name=_required(environ, "CONNECTION_TABLE_NAME"), live_api_endpoint=endpoint)


@dataclass(frozen=True, slots=True)
class CompactorSettings:
    raw_bucket: str
    lookback: timedelta  # hours whose raw objects may still change (late or replayed batches)
    memory_limit_mb: int | None  # the function's memory: DuckDB gets most of it

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CompactorSettings:
        environ = os.environ if environ is None else environ
        hours = _required(environ, "LOOKBACK_HOURS")
        if not hours.isdigit() or int(hours) <= 0:
            raise ConfigurationError(f"environment variable LOOKBACK_HOURS={hours!r} is not a whole number above zero")
        memory = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        return cls(
            raw_bucket=_required(environ, "RAW_BUCKET"),
            lookback=timedelta(hours=int(hours)),
            memory_limit_mb=int(memory) if memory.isdigit() else None,
        )


_SYMBOL = re.compile(r"[A-Z][A-Z0-9.-]{0,9}")


def _whole_number(environ: Mapping[str, str], name: str) -> int:
    text = _required(environ, name)
    if not text.isdigit() or int(text) <= 0:
        raise ConfigurationError(f"environment variable {name}={text!r} is not a whole number above zero")
    return int(text)


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    stream_name: str
    table_name: str  # the market table: the credit ledger lives there
    provider: str  # twelvedata or finnhub
    symbols: tuple[str, ...]
    api_key_secret: str  # a Secrets Manager name or ARN; "" until the user sets one (reported per run)
    provider_url: str  # "" for the provider's own API; a fake one's in tests and the local stack
    credits_per_minute: int
    credits_per_day: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProducerSettings:
        from tickwatch_core.sources.quotes import PROVIDERS

        environ = os.environ if environ is None else environ
        provider = _required(environ, "QUOTE_PROVIDER")
        if provider not in PROVIDERS:
            raise ConfigurationError(
                f"environment variable QUOTE_PROVIDER={provider!r} is not one of {', '.join(PROVIDERS)}"
            )
        symbols = tuple(dict.fromkeys(s.strip() for s in _required(environ, "SYMBOLS").split(",") if s.strip()))
        bad = [symbol for symbol in symbols if not _SYMBOL.fullmatch(symbol)]
        if bad or not symbols:
            problem = f"has symbols that are not tickers like AAPL: {', '.join(bad)}" if bad else "lists no symbol"
            raise ConfigurationError(f"environment variable SYMBOLS {problem}")
        url = environ.get("PROVIDER_URL", "").strip().rstrip("/")
        if url and not url.startswith(("https://", "http://")):
            raise ConfigurationError(f"environment variable PROVIDER_URL={url!r} is not an http(s) URL")
        return cls(
            stream_name=_required(environ, "STREAM_NAME"),
            table_name=_required(environ, "TABLE_NAME"),
            provider=provider,
            symbols=symbols,
            api_key_secret=environ.get("API_KEY_SECRET", "").strip(),
            provider_url=url,
            credits_per_minute=_whole_number(environ, "CREDITS_PER_MINUTE"),
            credits_per_day=_whole_number(environ, "CREDITS_PER_DAY"),
        )


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    delivery_table_name: str
    alert_topic_arn: str
    secret_prefix: str  # every destination's secret is named <prefix><destination>
    dashboard_url: str | None  # for links in messages; None when the stack has no dashboard
    telegram_api: str  # the Bot API's base URL: Telegram's, or the local stack's loopback fake
    allow_loopback_http: bool  # only the local stack sets it: destinations on its loopback receivers

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DeliverySettings:
        environ = os.environ if environ is None else environ
        telegram = environ.get("TELEGRAM_API_URL", "").strip() or "https://api.telegram.org"
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", telegram):
            raise ConfigurationError(f"environment variable TELEGRAM_API_URL={telegram!r} is not a URL")
        return cls(
            delivery_table_name=_required(environ, "DELIVERY_TABLE_NAME"),
            alert_topic_arn=_required(environ, "ALERT_TOPIC_ARN"),
            secret_prefix=_required(environ, "DESTINATION_SECRET_PREFIX"),
            dashboard_url=environ.get("DASHBOARD_URL", "").strip() or None,
            telegram_api=telegram,
            allow_loopback_http=environ.get("ALLOW_LOOPBACK_DESTINATIONS", "").strip() == "true",
        )
