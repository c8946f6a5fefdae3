"""The query API's routes on one Powertools resolver (see the package docstring).

Routes validate their input with pydantic (Powertools' data validation), read through
`MarketReader` and `RuleStore`, and answer exact JSON (`exact_json`). Every failure is an `ApiError`
or turned into one here, so a client always gets `{"error": {...}, "request_id"}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from botocore.exceptions import ClientError

from tickwatch_core.apps.query_api import documents, models
from tickwatch_core.apps.query_api.bars import MAX_BARS, bars_page, bars_query, bars_query_from_cursor, parse_time
from tickwatch_core.apps.query_api.errors import ApiError, checked, internal, invalid, not_found, unknown_route
from tickwatch_core.apps.query_api.views import (
    alert_view,
    decode_cursor,
    destination_view,
    encode_cursor,
    quote_view,
    rule_view,
)
from tickwatch_core.aws import AwsClients
from tickwatch_core.config import QuerySettings
from tickwatch_core.domain import exact_json
from tickwatch_core.domain.delivery.destinations import DestinationError, new_destination
from tickwatch_core.domain.delivery.templates import TemplateError
from tickwatch_core.domain.rules import (
    SYMBOL_PATTERN,
    RuleOptionError,
    parse_cooldown,
    split_rule_id,
    validate_symbol,
)
from tickwatch_core.pipeline.delivery.directory import DestinationDirectory, load_destinations
from tickwatch_core.store.delivery_reader import deliveries_of
from tickwatch_core.store.destination_store import DestinationExistsError, DestinationStore
from tickwatch_core.store.market_reader import MarketReader
from tickwatch_core.store.rule_store import RuleExistsError, RuleStore, UnknownRuleError

logger = Logger(child=True)

DEFAULT_ALERTS = 50
MAX_ALERTS = 500
RETRY_AFTER_SECONDS = 1
# UnprocessedItems: DynamoDB kept handing keys back through every retry of a batch read (throttling).
_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "UnprocessedItems",
}
_SYMBOL = SYMBOL_PATTERN.pattern


@dataclass
class QueryService:
    """What the routes read and write: the market table, through clients created once."""

    settings: QuerySettings
    clients: AwsClients = field(default_factory=AwsClients)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _directory: DestinationDirectory | None = field(default=None, init=False, repr=False)

    @property
    def reader(self) -> MarketReader:
        return MarketReader(self.clients.dynamodb, self.settings.table_name)

    @property
    def rules(self) -> RuleStore:
        return RuleStore(self.clients.dynamodb, self.settings.table_name, clock=self.clock)

    @property
    def destinations(self) -> DestinationStore:
        settings = self.settings
        return DestinationStore(
            self.clients.dynamodb,
            self.clients.secretsmanager,
            self.clients.sns,
            settings.delivery_table_name,
            settings.destination_secret_prefix,
            settings.alert_topic_arn,
            clock=self.clock,
        )

    def deliveries(self, alerts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's deliveries (see `delivery_reader`); none without a delivery table."""
        if not self.settings.delivery_table_name:
            return {}
        table = self.settings.delivery_table_name
        if self._directory is None:
            self._directory = DestinationDirectory(lambda: load_destinations(self.clients.dynamodb, table), self.clock)
        return deliveries_of(self.clients.dynamodb, table, self._directory, alerts)


def _json(payload: Any, status: int = HTTPStatus.OK, headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", exact_json.dumps(payload), headers=headers)


def _answers(model: type, description: str, *errors: int) -> dict[int, Any]:
    """The OpenAPI responses of a route: its success model and the error shape for each error.
    422 is always ours: Powertools would otherwise document its own validation shape there."""
    responses: dict[int, Any] = {200: {"description": description, "content": {"application/json": {"model": model}}}}
    for status in (*errors, 422, 503, 500):
        responses[status] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"model": models.ErrorOut}},
        }
    return responses


def build_app(service: QueryService, *, allowed_origin: str = "*") -> APIGatewayRestResolver:
    """The resolver with every route of the query API, reading through `service`."""
    app = APIGatewayRestResolver(
        enable_validation=True,
        cors=CORSConfig(allow_origin=allowed_origin, allow_headers=["x-api-key"], max_age=600),
    )
    # Routes carry no return annotation: Powertools would validate the answer against it, and they
    # return ready exact JSON (their OpenAPI answers are declared with `responses=` instead).

    def request_id() -> str | None:
        try:
            return app.current_event.request_context.request_id
        except (AttributeError, KeyError, TypeError):
            return None

    # -- quotes ---------------------------------------------------------------------------------

    @app.get("/quotes", summary="The latest quote of every symbol", responses=_answers(models.QuotesOut, "Quotes"))
    def list_quotes():
        return _json({"quotes": [quote_view(quote) for quote in service.reader.quotes()]})

    @app.get(
        "/quotes/<symbol>",
        summary="The latest quote of one symbol",
        responses=_answers(models.QuoteOut, "The quote", 404, 422),
    )
    def get_quote(symbol: Annotated[str, Path(pattern=_SYMBOL)]):
        quote = service.reader.quote(symbol)
        if quote is None:
            raise not_found("symbol", f"no quote for {symbol}")
        return _json(quote_view(quote))

    # -- bars -----------------------------------------------------------------------------------

    @app.get(
        "/bars/<symbol>",
        summary="OHLCV bars of one symbol, oldest first, with indicators",
        responses=_answers(models.BarsOut, "A page of bars", 422),
    )
    def get_bars(
        symbol: Annotated[str, Path(pattern=_SYMBOL)],
        interval: Annotated[Literal["1m", "5m", "15m", "1h", "1d"], Query()] = "1m",
        from_: Annotated[
            str | None, Query(alias="from", description="RFC 3339; default: `to` - 2 h (its interval on)")
        ] = None,
        to: Annotated[str | None, Query(description="RFC 3339: bars that start before it; default: now")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_BARS)] = MAX_BARS,
        indicators_: Annotated[
            str | None,
            Query(alias="indicators", description="comma-separated: sma:20,ema:12,vwap,rsi:14,bollinger:20:2"),
        ] = None,
        cursor: Annotated[str | None, Query(description="the `next` of the previous page, alone")] = None,
    ):
        if cursor is not None:
            _cursor_alone()
            query = bars_query_from_cursor(symbol, cursor, service.clock())
        else:
            query = bars_query(
                symbol,
                interval=interval,
                from_text=from_,
                to_text=to,
                limit=limit,
                indicators_text=indicators_,
                now=service.clock(),
            )
        return _json(bars_page(service.reader, query))

    # -- alerts ---------------------------------------------------------------------------------

    @app.get(
        "/alerts", summary="Alert history, newest first", responses=_answers(models.AlertsOut, "A page of alerts", 422)
    )
    def list_alerts(
        symbol: Annotated[str | None, Query(pattern=_SYMBOL)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = DEFAULT_ALERTS,
        before: Annotated[str | None, Query(description="RFC 3339: only alerts fired before")] = None,
        cursor: Annotated[str | None, Query(description="the `next` of the previous page, alone")] = None,
    ):
        start_key = None
        if cursor is not None:
            _cursor_alone()
            symbol, limit, before_time, start_key = _alerts_cursor(cursor)
        else:
            before_time = parse_time("before", before) if before is not None else None
        result = service.reader.alerts(symbol=symbol, limit=limit, before=before_time, start_key=start_key)
        following = None
        if result.next_key is not None:
            following = encode_cursor(
                {
                    "kind": "alerts",
                    "symbol": symbol,
                    "limit": limit,
                    "before": before_time.isoformat() if before_time else None,
                    "key": result.next_key,
                }
            )
        deliveries = service.deliveries(result.alerts)
        views = [alert_view(values, deliveries.get(values["alert_id"])) for values in result.alerts]
        return _json({"alerts": views, "next": following})

    def _cursor_alone() -> None:
        others = set(app.current_event.query_string_parameters or {}) - {"cursor"}
        if others:
            raise invalid("cursor", f"pass cursor alone: the page it continues fixes {', '.join(sorted(others))}")

    # -- rules ----------------------------------------------------------------------------------

    @app.get("/rules", summary="Alert rules, with their state", responses=_answers(models.RulesOut, "Rules", 422))
    def list_rules(symbol: Annotated[str | None, Query(pattern=_SYMBOL)] = None):
        now = service.clock()
        return _json({"rules": [rule_view(stored, now=now) for stored in service.rules.list(symbol)]})

    @app.post(
        "/rules",
        summary="Add a rule (as tickwatch rules add): a price, a day change, a move or a cross",
        responses={**_answers(models.RuleOut, "The rule", 409, 422), 201: {"description": "Created"}},
    )
    def add_rule(rule: Annotated[models.RuleIn, Body()]):
        symbol = checked("symbol", validate_symbol, rule.symbol)
        # Powertools parsed the body through floats; the threshold is read again, digit for digit.
        raw = json.loads(app.current_event.decoded_body or "{}", parse_float=Decimal)
        cooldown = checked("cooldown", parse_cooldown, rule.cooldown)
        now = service.clock()
        try:
            condition = rule.condition(raw.get("threshold", rule.threshold))
            options = rule.options(now)
        except RuleOptionError as error:
            raise invalid(error.field, str(error)) from None
        missing = [name for name in options.notify if service.destinations.get(name) is None]
        if missing:
            raise invalid("notify", f"no destination named {missing[0]!r}; add it first (POST /destinations)")
        try:
            created = service.rules.add_condition(symbol, condition, cooldown=cooldown, options=options)
        except RuleExistsError as error:
            field = {"price": "threshold"}.get(condition.kind.value, condition.kind.value)
            raise ApiError(HTTPStatus.CONFLICT, "conflict", str(error), field=field) from None
        except ValueError as error:
            raise invalid("rule", str(error)) from None
        stored = next(s for s in service.rules.list(created.symbol) if s.rule.rule_id == created.rule_id)
        return _json(rule_view(stored, now=now), HTTPStatus.CREATED)

    @app.delete(
        "/rules/<rule_id>",
        summary="Remove a rule",
        responses=_answers(models.DeletedRuleOut, "The removed rule", 404, 422),
    )
    def delete_rule(rule_id: Annotated[str, Path(max_length=128)]):
        symbol = checked("rule_id", split_rule_id, rule_id)
        stored = next((s for s in service.rules.list(symbol) if s.rule.rule_id == rule_id), None)
        try:
            service.rules.remove(rule_id)
        except UnknownRuleError:
            raise not_found("rule_id", f"no rule {rule_id}") from None
        return _json({"deleted": rule_view(stored, now=service.clock()) if stored else {"rule_id": rule_id}})

    # -- destinations ---------------------------------------------------------------------------

    @app.get(
        "/destinations",
        summary="Where alerts go (URLs, tokens and secrets masked); email is the alert topic's subscribers",
        responses=_answers(models.DestinationsOut, "Destinations"),
    )
    def list_destinations():
        return _json({"destinations": [destination_view(d) for d in service.destinations.list()]})

    @app.post(
        "/destinations",
        summary="Add a destination (as tickwatch destinations add); its secrets go to Secrets Manager",
        responses={**_answers(models.DestinationOut, "The destination", 409, 422), 201: {"description": "Created"}},
    )
    def add_destination(destination: Annotated[models.DestinationIn, Body()]):
        try:
            new = new_destination(
                destination.name,
                destination.kind,
                url=destination.url,
                email=destination.email,
                token=destination.token,
                chat_id=destination.chat_id,
                secret=destination.secret,
                symbols=tuple(destination.symbols or ()),
                rate=destination.rate,
                template=destination.template,
                allow_loopback_http=service.settings.allow_loopback_destinations,
            )
            added = service.destinations.add(new)
        except DestinationExistsError as error:
            raise ApiError(HTTPStatus.CONFLICT, "conflict", str(error), field="name") from None
        except (DestinationError, TemplateError) as error:
            raise invalid(error.field, str(error)) from None
        return _json(destination_view(added), HTTPStatus.CREATED)

    @app.delete(
        "/destinations/<name>",
        summary="Remove a destination, its secret and its subscription",
        responses=_answers(models.DeletedDestinationOut, "The removed destination", 404, 422),
    )
    def delete_destination(name: Annotated[str, Path(max_length=32)]):
        try:
            removed = service.destinations.remove(name)
        except DestinationError as error:
            raise invalid("name", str(error)) from None
        if not removed:
            raise not_found("name", f"no destination named {name!r}")
        return _json({"deleted": name})

    # -- documents ------------------------------------------------------------------------------

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document():
        return documents.openapi_document(app)

    @app.get("/docs", include_in_schema=False)
    def swagger_page():
        return documents.swagger_page(app)

    # -- errors ---------------------------------------------------------------------------------

    def answer(error: ApiError) -> Response:
        return _json(error.body(request_id()), error.status, headers=error.headers or None)

    @app.exception_handler(ApiError)
    def api_error(error: ApiError) -> Response:
        return answer(error)

    @app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
    def validation_error(error: RequestValidationError | RequestUnsupportedContentType) -> Response:
        content_type = (app.current_event.headers or {}).get("content-type", "") or ""
        if app.current_event.body and content_type and not content_type.startswith("application/json"):
            # `curl -d` says x-www-form-urlencoded: say what to send rather than which field is missing.
            return answer(
                invalid("body", f"send the body as JSON with Content-Type: application/json, not {content_type}")
            )
        return answer(_from_validation(error))

    @app.exception_handler(UnicodeDecodeError)
    def not_text(_: UnicodeDecodeError) -> Response:
        return answer(invalid("body", "the body is not UTF-8 text: send JSON"))

    @app.not_found
    def no_route(_: NotFoundError) -> Response:
        return answer(unknown_route(app.current_event.path))

    @app.exception_handler(ClientError)
    def aws_error(error: ClientError) -> Response:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _THROTTLING:
            return answer(
                ApiError(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "throttled",
                    "the table is busy; retry after the Retry-After seconds",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            )
        return unexpected(error)

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("query failed", request_id=request_id(), error_type=type(error).__name__)
        return answer(internal(request_id()))

    return app


# -- helpers ------------------------------------------------------------------------------------


def _alerts_cursor(cursor: str) -> tuple[str | None, int, datetime | None, dict[str, str]]:
    """(symbol, limit, before, start key) of an alerts cursor, checked like the parameters it stands for."""
    page = decode_cursor(cursor, "alerts")
    symbol, limit, before, key = page.get("symbol"), page.get("limit"), page.get("before"), page.get("key")
    valid = (
        (symbol is None or (isinstance(symbol, str) and SYMBOL_PATTERN.match(symbol)))
        and isinstance(limit, int)
        and 1 <= limit <= MAX_ALERTS
        and (before is None or isinstance(before, str))
        and isinstance(key, dict)
        and set(key) in ({"pk", "sk"}, {"pk", "sk", "kind", "kind_key"})
        and all(isinstance(value, str) for value in key.values())
    )
    if not valid:
        raise invalid("cursor", "cursor is not one this API gave out")
    try:
        before_time = parse_time("before", before) if before is not None else None
    except ApiError:
        raise invalid("cursor", "cursor is not one this API gave out") from None
    return symbol, limit, before_time, key


def _from_validation(error: RequestValidationError) -> ApiError:
    """Powertools' validation errors as ours: the first problem, naming its field."""
    problems = list(error.errors())
    if not problems:
        return invalid("request", "the request is not valid")
    first = problems[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body", "header")]
    field_name = location[0] if location else "body"
    field_name = {"from_": "from", "indicators_": "indicators"}.get(field_name, field_name)
    message = first.get("msg", "is not valid")
    if first.get("type") == "json_invalid":
        return invalid("body", "the body is not JSON")
    return invalid(field_name, f"{field_name}: {message}")
