"""The query API over HTTP on the local stack: the gateway built from template.yaml in front of the
same QueryFunction, with the key, the usage plan and CORS as API Gateway applies them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.local.workload import run_workload
from tests.test_query_api import DAY, store_minute_bars
from tickwatch.fetch.simulator import DEFAULT_SYMBOLS
from tickwatch.local.gateway import RestApi, RestGateway
from tickwatch.local.ingest_demo import post_sample_ticks
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch.template import Template

SYMBOLS = dict(list(DEFAULT_SYMBOLS.items())[:3])


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        run_workload(stack, workdir, symbols=SYMBOLS, ticks=600, rules=[], bad_records=[])
        assert stack.wait_until_caught_up(timeout=60)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _functions_reach_the_local_stack(local, monkeypatch):
    # The handlers create their clients on first use, from the process's environment, which the
    # suite's isolation resets for every test; the local stack's own process keeps it set.
    monkeypatch.setenv("AWS_ENDPOINT_URL", local.endpoint_url)


def request(url, *, method="GET", key=None, body=None, headers=None):
    """(status, headers, parsed body) of one HTTP request."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {**({"x-api-key": key} if key else {}), **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    call = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            status, response_headers, text = response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        status, response_headers, text = error.code, dict(error.headers), error.read().decode()
    return (
        status,
        {k.lower(): v for k, v in response_headers.items()},
        (json.loads(text, parse_float=Decimal) if text.startswith(("{", "[")) else text),
    )


def urls(stack):
    names = stack.names()
    return names["QueryApiUrl"], names["QueryApiKey"]


def test_the_stack_serves_the_api_under_its_stage_and_names_it(local):
    url, key = urls(local)
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    status, _, body = request(f"{url}/quotes", key=key)
    assert status == 200
    assert {quote["symbol"] for quote in body["quotes"]} == set(SYMBOLS)


def test_a_missing_or_wrong_key_is_403_as_api_gateway_answers(local):
    url, key = urls(local)
    assert request(f"{url}/quotes")[::2] == (403, {"message": "Forbidden"})
    assert request(f"{url}/quotes", key=key + "x")[::2] == (403, {"message": "Forbidden"})


def test_the_gateway_s_own_answers_carry_the_cors_header_of_its_gateway_responses(local):
    # Without it a browser sees a network error, not the 403, and cannot say the key is wrong.
    url, key = urls(local)
    status, headers, _ = request(f"{url}/quotes", key="wrong", headers={"Origin": "http://localhost:8080"})
    assert status == 403
    assert headers["access-control-allow-origin"] == "*"
    assert request(f"{url}/nothing-here", key=key)[1]["access-control-allow-origin"] == "*"


def test_overlapping_requests_each_get_their_own_answer_and_cors_headers(local):
    # Powertools' resolver keeps the current request on its class; requests overlapping in one
    # process must not answer with each other's event.
    url, key = urls(local)
    symbols = list(SYMBOLS)

    def one(index: int):
        symbol = symbols[index % len(symbols)]
        origin = {"Origin": "http://localhost:8080"} if index % 2 else {}
        status, headers, body = request(f"{url}/quotes/{symbol}", key=key, headers=origin)
        return index, symbol, status, headers, body

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(48)))
    for index, symbol, status, headers, body in answers:
        assert (status, body["symbol"]) == (200, symbol)
        assert ("access-control-allow-origin" in headers) == bool(index % 2), (index, headers)


def test_the_documents_need_no_key(local):
    url, _ = urls(local)
    status, _, document = request(f"{url}/openapi.json")
    assert status == 200
    assert "/bars/{symbol}" in document["paths"]
    status, headers, page = request(f"{url}/docs")
    assert (status, headers["content-type"].split(";")[0]) == (200, "text/html")
    assert "SwaggerUIBundle" in page


def test_an_unknown_route_is_missing_authentication_token(local):
    url, key = urls(local)
    assert request(f"{url}/nothing", key=key)[::2] == (403, {"message": "Missing Authentication Token"})
    assert request(url.removesuffix("/v1") + "/quotes", key=key)[0] == 403  # outside the stage


def test_bars_page_over_http_and_errors_are_the_function_s_json(local):
    url, key = urls(local)
    table = local.names()["MarketTableName"]
    stored = store_minute_bars(local.session, table, "PAGED", DAY, 120)
    pages, query = [], "from=2026-11-19T00:00:00Z&to=2026-11-19T02:00:00Z&limit=50"
    while query:
        status, _, page = request(f"{url}/bars/PAGED?{query}", key=key)
        assert status == 200, page
        pages.append(page)
        query = f"cursor={page['next']}" if page["next"] else None
    assert [len(page["bars"]) for page in pages] == [50, 50, len(stored) - 100]
    status, _, error = request(f"{url}/bars/PAGED?interval=7m", key=key)
    assert status == 422
    assert error["error"]["field"] == "interval"
    assert error["request_id"]


def test_a_rule_posted_over_http_fires_in_the_local_pipeline(local):
    url, key = urls(local)
    symbol, price = next(iter(SYMBOLS.items()))
    status, _, rule = request(
        f"{url}/rules",
        method="POST",
        key=key,
        body={"symbol": symbol, "direction": "above", "threshold": str(price / 2)},
    )
    assert status == 201, rule
    before = local.inbox.count()
    workdir = local.options.outbox.parent
    run_workload(local, workdir, symbols={symbol: price}, ticks=20, rules=[], bad_records=[])
    assert local.wait_until_caught_up(timeout=60)
    local.inbox.drain()
    deadline = time.monotonic() + 10
    while local.inbox.count() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rule["rule_id"] in {alert.attributes.get("rule_id") for alert in local.inbox.received}
    status, _, listed = request(f"{url}/rules?symbol={symbol}", key=key)
    assert [r["armed"] for r in listed["rules"] if r["rule_id"] == rule["rule_id"]] == [False]


def test_ticks_posted_over_http_feed_the_local_pipeline_and_need_the_key(local):
    url, key = urls(local)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    ticks = [{"symbol": "INGST", "price": 12.5, "timestamp": now}, {"symbol": "INGST", "price": -1, "timestamp": now}]
    assert request(f"{url}/ticks", method="POST", body=ticks)[::2] == (403, {"message": "Forbidden"})
    status, _, answer = request(f"{url}/ticks", method="POST", key=key, body=ticks)
    assert (status, answer["accepted"], [r["index"] for r in answer["rejected"]]) == (207, 1, [1])
    assert local.wait_until_caught_up(timeout=60)
    status, _, quote = request(f"{url}/quotes/INGST", key=key)
    assert (status, quote["price"]) == (200, Decimal("12.5"))


def test_make_run_s_sample_post_is_answered_tick_by_tick(local):
    url, key = urls(local)
    line = post_sample_ticks(url, key)
    assert "answered 207: 2 accepted, 1 rejected (#2: price: 0 is less than or equal to the minimum of 0)" in line


def test_cors_preflight_and_answers_allow_the_dashboard_origin(local):
    url, key = urls(local)
    status, headers, _ = request(f"{url}/quotes", method="OPTIONS", headers={"Origin": "http://localhost:8080"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    assert "x-api-key" in headers["access-control-allow-headers"]
    assert "GET" in headers["access-control-allow-methods"]
    _, headers, _ = request(f"{url}/quotes", key=key, headers={"Origin": "http://localhost:8080"})
    assert headers["access-control-allow-origin"] == "*"


def test_the_usage_plan_throttles_beyond_its_burst_with_429(local):
    template = Template.load(
        stack_name=local.template.stack_name, parameter_overrides={"ApiRateLimit": "1", "ApiBurstLimit": "3"}
    )
    moment = [0.0]
    gateway = RestGateway(template, local.functions, api_logical_id="QueryApi", api_key="k", clock=lambda: moment[0])
    gateway.start()
    try:
        statuses = [request(f"{gateway.url}/quotes", key="k")[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert request(f"{gateway.url}/quotes", key="k")[2] == {"message": "Too Many Requests"}
        moment[0] += 1.0  # a second later, one more request is allowed
        assert request(f"{gateway.url}/quotes", key="k")[0] == 200
    finally:
        gateway.stop()


def test_the_monthly_quota_is_enforced_with_429_limit_exceeded(local):
    template = Template.load(stack_name=local.template.stack_name, parameter_overrides={"ApiMonthlyQuota": "2"})
    gateway = RestGateway(template, local.functions, api_logical_id="QueryApi", api_key="k").start()
    try:
        assert [request(f"{gateway.url}/quotes", key="k")[0] for _ in range(2)] == [200, 200]
        assert request(f"{gateway.url}/quotes", key="k")[::2] == (429, {"message": "Limit Exceeded"})
    finally:
        gateway.stop()


def test_path_parameters_are_percent_decoded_and_the_path_is_not_as_in_api_gateway(local):
    # REST APIs hand the function `path` as sent and `pathParameters` decoded (Powertools routes on
    # the path, so an encoded symbol is refused there as on AWS).
    route = next(
        route
        for route in RestApi.from_template(local.template, "QueryApi").routes
        if route.resource == "/quotes/{symbol}"
    )
    assert route.match("/quotes/BRK%2EB") == {"symbol": "BRK.B"}
