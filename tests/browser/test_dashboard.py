"""The live dashboard in a real browser (Debian's chromium, driven by Playwright) against the local
stack: tiles equal to `tickwatch quotes`, candles in the chart, a rule added in the rules panel that
then fires into the alert feed, and a clear message for a wrong key. Screenshots are saved in
test-artifacts/browser/."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch.cli import main as tickwatch
from tickwatch.fetch.simulator import MarketSimulator
from tickwatch.fetch.writer import KinesisWriter, Record, Spool
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch_core import exact_json, items
from tickwatch_core.aws import AwsClients
from tickwatch_core.live.connections import ConnectionStore
from tickwatch_core.rules import Direction, make_rule_id

SYMBOLS = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "NVDA": Decimal("140.00")}
HISTORY = timedelta(minutes=90)
VIEWPORT = {"width": 1440, "height": 900}


class Feed:
    """Ticks into the local stack's stream: a history of the last 90 minutes, then live ones."""

    def __init__(self, stack: LocalStack, workdir) -> None:
        names = stack.names()
        self.writer = KinesisWriter(
            stack.session.client("kinesis"), names["TickStreamName"], Spool(workdir / "spool.jsonl")
        )
        self.simulator = MarketSimulator(symbols=SYMBOLS, seed=20261130)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def history(self) -> None:
        start = datetime.now(UTC) - HISTORY
        for n in range(int(HISTORY.total_seconds() // 2)):  # a tick every 2 s, spread over the symbols
            self.send(self.simulator.next_tick(start + timedelta(seconds=2 * n)))
        self.writer.close()

    def send(self, tick: dict) -> None:
        self.writer.add(Record(exact_json.dumps(tick).encode(), tick["symbol"]))

    def start_live(self, per_second: float = 20) -> None:
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(1 / per_second):
                self.send(self.simulator.next_tick())
                self.writer.poll()  # sends what has lingered, as `tickwatch fetch` does

        self._thread = threading.Thread(target=run, name="live-feed", daemon=True)
        self._thread.start()

    def stop_live(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.writer.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard")
    stack = LocalStack(
        LocalStackOptions(outbox=workdir / "outbox", kinesis_poll_interval=0.2, dynamodb_poll_interval=0.1)
    ).start()
    try:
        feed = Feed(stack, workdir)
        feed.history()
        assert stack.wait_until_caught_up(timeout=120)
        yield stack, feed
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _cli_reaches_the_local_stack(local, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", local[0].endpoint_url)


@pytest.fixture(scope="module")
def page(browser, local):
    stack, _ = local
    names = stack.names()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.problems = []  # console errors, page errors and content security policy violations
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(f"{names['DashboardUrl']}#key={names['QueryApiKey']}")
    yield page
    context.close()


def cli_quotes(stack: LocalStack) -> dict[str, Decimal]:
    """Symbol -> price, as `tickwatch quotes` prints them."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert tickwatch(["quotes", "--table", stack.names()["MarketTableName"]]) == 0
    lines = output.getvalue().splitlines()[1:]  # below the header
    return {line.split()[0]: Decimal(line.split()[1]) for line in lines if line.split()}


def tile_prices(page) -> dict[str, Decimal]:
    found = page.eval_on_selector_all(
        "[data-symbol]",
        "tiles => tiles.map(t => [t.dataset.symbol, t.querySelector('[data-field=price]').dataset.price])",
    )
    return {symbol: Decimal(price) for symbol, price in found if price}


def wait_until(condition, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def test_the_key_leaves_the_address_bar_and_the_page_connects(page):
    page.wait_for_selector("[data-connection][data-state=open]", timeout=20_000)
    assert "key=" not in page.url


def test_tiles_show_the_prices_tickwatch_quotes_prints(page, local, artifacts):
    stack, feed = local
    page.wait_for_selector("[data-symbol]")
    feed.start_live()
    try:
        # Live updates move the tiles while ticks flow.
        before = tile_prices(page)
        assert wait_until(lambda: tile_prices(page) != before, timeout=20)
    finally:
        feed.stop_live()
    assert stack.wait_until_caught_up(timeout=60)
    expected = cli_quotes(stack)
    assert set(expected) == set(SYMBOLS)
    assert wait_until(lambda: tile_prices(page) == expected, timeout=20), (tile_prices(page), expected)
    page.screenshot(path=artifacts / "tiles.png")


def chart_state(page) -> dict[str, str]:
    return page.eval_on_selector("[data-chart]", "chart => ({...chart.dataset})")


def test_the_chart_draws_the_selected_symbols_candles(page, artifacts):
    page.click("[data-symbol=MSFT]")
    # Functions, not expressions: the page's content security policy forbids eval.
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.chartSymbol === 'MSFT'")
    page.wait_for_function("() => Number(document.querySelector('[data-chart]').dataset.chartCandles) > 40")
    assert page.locator("[data-chart] canvas").count() > 0
    one_minute = int(chart_state(page)["chartCandles"])
    page.click("[data-interval='5m']")
    page.wait_for_function(
        "() => document.querySelector('[data-chart]').dataset.chartInterval === '5m'"
        " && Number(document.querySelector('[data-chart]').dataset.chartCandles) > 0"
    )
    five_minutes = int(chart_state(page)["chartCandles"])
    # 90 minutes of history: 18 or 19 five-minute candles, against one per minute with trades.
    assert 18 <= five_minutes <= 20
    assert five_minutes < one_minute
    page.click("[data-interval='1m']")
    page.wait_for_function("() => document.querySelector('[data-chart]').dataset.chartInterval === '1m'")
    page.screenshot(path=artifacts / "chart.png")


def test_a_rule_added_in_the_panel_fires_into_the_alert_feed(page, local, artifacts):
    stack, feed = local
    form = page.locator("[data-rules-form]")
    form.locator("[name=symbol]").fill("NVDA")
    form.locator("[name=direction]").select_option("above")
    form.locator("[name=threshold]").fill("-5")
    form.locator("[type=submit]").click()
    error = page.locator("[data-error-for=threshold]")
    error.wait_for(state="visible")
    assert "greater than zero" in error.inner_text() or "positive" in error.inner_text()

    price = cli_quotes(stack)["NVDA"]
    threshold = (price + Decimal("1.00")).quantize(Decimal("0.01"))
    form.locator("[name=threshold]").fill(str(threshold))
    form.locator("[name=rearm]").fill("0.5")  # the panel adds the %
    form.locator("[name=once]").check()
    form.locator("[type=submit]").click()
    rule_id = make_rule_id("NVDA", Direction.ABOVE, threshold)
    row = page.wait_for_selector(f"[data-rule-id='{rule_id}']")
    assert error.inner_text().strip() == ""
    assert "re-arm 0.5%" in row.inner_text()
    assert "once" in row.inner_text()

    feed.send({"symbol": "NVDA", "price": float(threshold + 1), "timestamp": _now(), "volume": 100})
    feed.writer.close()
    alert = page.wait_for_selector("[data-alert-id]:has-text('NVDA')", timeout=30_000)
    assert stack.wait_until_caught_up(timeout=60)
    fired = [a for a in stored_alerts(stack) if a["rule_id"] == rule_id]
    assert [a["alert_id"] for a in fired] == [alert.get_attribute("data-alert-id")]
    assert "above" in alert.inner_text()
    # A one-shot rule that fired is listed as ended once the panel reads the rules again.
    page.wait_for_selector(f"[data-rule-id='{rule_id}'] .rule-state:has-text('ended')", timeout=20_000)
    page.screenshot(path=artifacts / "dashboard.png")

    # A percentage in the same field is a day-change rule.
    form.locator("[name=symbol]").fill("AAPL")
    form.locator("[name=threshold]").fill("3%")
    form.locator("[type=submit]").click()
    change_row = page.wait_for_selector("[data-rule-id='AAPL-change-above-3pct']")
    assert "above +3%/day" in change_row.inner_text()
    page.screenshot(path=artifacts / "dashboard-rules.png")


def stored_alerts(stack: LocalStack) -> list[dict]:
    dynamodb = stack.session.client("dynamodb")
    found = dynamodb.scan(TableName=stack.names()["MarketTableName"])["Items"]
    return [items.deserialize(item) for item in found if item["sk"]["S"].startswith("ALERT#")]


def test_a_dropped_connection_reconnects_and_subscribes_again(page, local):
    stack, _ = local
    gateway = stack.websockets["LiveApi"]
    (dropped,) = gateway.open_connections()
    status, _, _ = gateway.manage("DELETE", f"/{gateway.api.stage}/@connections/{dropped}", b"")
    assert status == 204
    assert wait_until(lambda: gateway.open_connections() not in ([], [dropped]), timeout=30)
    (again,) = gateway.open_connections()
    store = ConnectionStore(AwsClients(dynamodb=stack.session.client("dynamodb")), stack.names()["ConnectionTableName"])
    assert wait_until(lambda: store.symbols_of(again) == set(SYMBOLS), timeout=20)
    page.wait_for_selector("[data-connection][data-state=open]")


def test_no_console_errors_or_policy_violations(page):
    # Chromium logs every non-2xx fetch; the one 422 is the rule the test above made invalid.
    expected = "Failed to load resource: the server responded with a status of 422"
    assert [problem for problem in page.problems if not problem.startswith(expected)] == []


def test_a_wrong_key_gets_a_clear_message(browser, local, artifacts):
    stack, _ = local
    context = browser.new_context(viewport=VIEWPORT)
    try:
        wrong = context.new_page()
        wrong.goto(f"{stack.names()['DashboardUrl']}#key=not-the-key")
        message = wrong.locator("[data-role=key-error]")
        message.wait_for(state="visible", timeout=20_000)
        assert "refused" in message.inner_text().lower()
        assert wrong.locator("[data-connection][data-state=open]").count() == 0
        wrong.screenshot(path=artifacts / "wrong-key.png")
    finally:
        context.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
