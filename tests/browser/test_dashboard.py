"""The live dashboard in a real browser (Debian's chromium, driven by Playwright) against the local
stack: tiles equal to `tickwatch quotes`, candles in the chart, a rule added in the rules panel that
then fires into the alert feed, move and cross rules with trading hours added and listed in words,
their alerts in the feed in the e-mail's words, and a clear message for a wrong key. Screenshots are
saved in test-artifacts/browser/."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickwatch.cli import main as tickwatch
from tickwatch.fetch.simulator import MarketSimulator
from tickwatch.fetch.writer import KinesisWriter, Record, Spool
from tickwatch.local.stack import LocalStack, LocalStackOptions
from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain import exact_json
from tickwatch_core.domain.rules import Direction, make_rule_id
from tickwatch_core.store import items

SYMBOLS = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "NVDA": Decimal("140.00")}
HISTORY = timedelta(minutes=90)
VIEWPORT = {"width": 1440, "height": 900}
NARROW_VIEWPORT = {"width": 900, "height": 900}  # the one-column layout
# The browser's zone, which the rules panel offers for trading hours: not UTC, so the default shows.
BROWSER_ZONE = "Asia/Tokyo"


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
    context = browser.new_context(viewport=VIEWPORT, timezone_id=BROWSER_ZONE)
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


def rule_form(page):
    """The rules form, emptied (as after an added rule)."""
    form = page.locator("[data-rules-form]")
    form.evaluate("form => form.reset()")
    return form


def choose_kind(form, kind: str) -> None:
    form.locator("[name=kind]").select_option(kind)


def add_in_form(page, kind: str, symbol: str, direction: str, level: str, rule_id: str, **fields: str):
    """Fill and send the form; the rule's row once the list shows it."""
    form = rule_form(page)
    choose_kind(form, kind)
    form.locator("[name=symbol]").fill(symbol)
    form.locator("[name=direction]").select_option(direction)
    form.locator("[name=threshold]").fill(level)
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("[type=submit]").click()
    return page.wait_for_selector(f"[data-rule-id='{rule_id}']")


def test_move_and_cross_rules_with_hours_are_added_and_listed_in_words(page, artifacts):
    form = rule_form(page)
    choose_kind(form, "move")
    # A move reads up/down; its window is asked for only now.
    assert form.locator("[name=direction] option").all_inner_texts() == ["up", "down"]
    assert form.locator("[name=within]").is_visible()
    form.locator("[name=symbol]").fill("msft")
    form.locator("[name=direction]").select_option("below")
    form.locator("[name=threshold]").fill("2")  # the panel adds the %
    form.locator("[name=within]").fill("15")  # and the minutes
    form.locator("[name=hours]").fill("09:30-16:00")
    form.locator("[name=tz]").fill("America/New_York")
    form.locator("[name=weekdays]").check()
    form.locator("[name=holidays]").fill("nyse")
    form.locator("[type=submit]").click()
    move = page.wait_for_selector("[data-rule-id='MSFT-move-down-2pct-15m']")
    assert move.query_selector(".rule-condition").inner_text() == "down 2% within 15m"
    assert "09:30–16:00 America/New_York, weekdays, not on NYSE holidays" in move.inner_text()

    choose_kind(form, "cross")
    assert form.locator("[name=direction] option").all_inner_texts() == ["above", "below"]
    assert not form.locator("[name=within]").is_visible()
    # Hours are wall-clock times: the zone offered is the browser's.
    assert form.locator("[name=tz]").input_value() == BROWSER_ZONE
    form.locator("[name=symbol]").fill("NVDA")
    form.locator("[name=direction]").select_option("above")
    form.locator("[name=threshold]").fill("sma:20@1m")
    form.locator("[name=hours]").fill("22:00 – 06:00")
    form.locator("[type=submit]").click()
    cross = page.wait_for_selector("[data-rule-id='NVDA-cross-above-sma20-1m']")
    assert cross.query_selector(".rule-condition").inner_text() == "crosses above sma:20@1m"
    assert f"22:00–06:00 {BROWSER_ZONE}" in cross.inner_text()
    assert "weekdays" not in cross.inner_text()
    # The form is ready for the next rule: a price, the browser's zone again.
    assert form.locator("[name=kind]").input_value() == "price"
    assert form.locator("[name=tz]").input_value() == BROWSER_ZONE
    page.screenshot(path=artifacts / "dashboard-rule-kinds.png")
    page.set_viewport_size(NARROW_VIEWPORT)
    try:
        page.locator(".rules-panel").screenshot(path=artifacts / "rules-panel-narrow.png")
    finally:
        page.set_viewport_size(VIEWPORT)


# (condition, level, more fields, the field whose error shows, words in it)
BAD_RULES = {
    "a window longer than 4h": ("move", "1%", {"within": "5h"}, "within", "4h"),
    "a move without its window": ("move", "1%", {}, "within", "window"),
    "an average of one bar": ("cross", "sma:1@1m", {}, "threshold", "period"),
    "hours that are not times": ("price", "100", {"hours": "9-17"}, "hours", "09:30-16:00"),
    "an unknown zone": ("price", "100", {"hours": "09:30-16:00", "tz": "Mars/Olympus"}, "tz", "IANA"),
    "weekdays without hours": ("change", "3%", {"weekdays": True}, "hours", "hours"),
    "an unknown market calendar": ("price", "100", {"hours": "09:30-16:00", "holidays": "MOON"}, "holidays", "NYSE"),
}


@pytest.mark.parametrize("case", BAD_RULES.values(), ids=BAD_RULES.keys())
def test_a_bad_rule_shows_the_apis_message_under_its_field(page, artifacts, case):
    kind, level, more, field, words = case
    form = rule_form(page)
    choose_kind(form, kind)
    form.locator("[name=symbol]").fill("MSFT")
    form.locator("[name=threshold]").fill(level)
    for name, value in more.items():
        if value is True:
            form.locator(f"[name={name}]").check()
        else:
            form.locator(f"[name={name}]").fill(value)
    form.locator("[type=submit]").click()
    error = page.locator(f"[data-error-for={field}]")
    error.wait_for(state="visible")
    assert words in error.inner_text()
    assert form.locator(f"[name={field}]").get_attribute("aria-invalid") == "true"
    assert page.locator("[data-role=form-error]").is_hidden()
    if field == "within":
        page.locator(".rules-panel").screenshot(path=artifacts / "rules-within-error.png")


def email_of(stack: LocalStack, rule_id: str) -> str:
    """The first line of the e-mail the rule's alert sent (the local inbox saves what SNS sends)."""

    def first_line() -> str | None:
        for alert in list(stack.inbox.received):
            if re.search(rf"^Rule:\s+{re.escape(rule_id)}$", alert.body, re.MULTILINE):
                return alert.body.splitlines()[0]
        return None

    line = wait_until(first_line, timeout=20)
    assert line, f"no e-mail for {rule_id}"
    return line


def same_numbers(text: str) -> str:
    """`text` with every decimal number without trailing zeros: 187.30 and 187.3 are one price."""
    return re.sub(r"\d+\.\d+", lambda number: format(Decimal(number[0]).normalize(), "f"), text)


def shown_alert_of(page, stack: LocalStack, rule_id: str):
    """The feed's entry of the rule's (one) alert, once the alert is stored and shown."""
    assert wait_until(lambda: [a for a in stored_alerts(stack) if a["rule_id"] == rule_id], timeout=30)
    (fired,) = [a for a in stored_alerts(stack) if a["rule_id"] == rule_id]
    return page.wait_for_selector(f"[data-alert-id='{fired['alert_id']}']", timeout=20_000)


def test_a_move_alert_is_shown_in_the_words_of_its_email(page, local, artifacts):
    stack, feed = local
    rule_id = "AAPL-move-up-0.5pct-1m"
    add_in_form(page, "move", "AAPL", "above", "0.5%", rule_id, within="1m")

    # Below anything of the last minutes, then 1 % up from there.
    low = (cli_quotes(stack)["AAPL"] * Decimal("0.98")).quantize(Decimal("0.01"))
    high = (low * Decimal("1.01")).quantize(Decimal("0.01"))
    for price in (low, high):
        feed.send({"symbol": "AAPL", "price": price, "timestamp": _now(), "volume": 100})
    feed.writer.close()
    alert = shown_alert_of(page, stack, rule_id)
    assert alert.get_attribute("data-kind") == "move"
    shown = f"AAPL {alert.query_selector('.alert-text').inner_text()}"
    assert shown == f"AAPL moved up {(high - low) / low * 100:.2f} % within 1m, from {low} to {high}"
    # The e-mail's words; it writes its prices without trailing zeros, the page as the API gives them.
    assert same_numbers(shown) == same_numbers(email_of(stack, rule_id).split(": at least")[0])
    page.locator(".alerts-panel").screenshot(path=artifacts / "alert-move.png")


def test_a_cross_alert_is_shown_in_the_words_of_its_email(page, local, artifacts):
    stack, feed = local
    rule_id = "NVDA-cross-above-sma2-1m"
    row = add_in_form(page, "cross", "NVDA", "above", "sma:2@1m", rule_id)
    # A cross rule waits for the price on the other side of its average first.
    assert row.query_selector(".rule-state").inner_text() == "not armed"

    # Far below the average of the last two minutes (arms it), then far above (fires it).
    price = cli_quotes(stack)["NVDA"]
    for factor in ("0.9", "1.1"):
        level = (price * Decimal(factor)).quantize(Decimal("0.01"))
        feed.send({"symbol": "NVDA", "price": level, "timestamp": _now(), "volume": 100})
    feed.writer.close()
    alert = shown_alert_of(page, stack, rule_id)
    assert alert.get_attribute("data-kind") == "cross"
    shown = f"NVDA {alert.query_selector('.alert-text').inner_text()}"
    assert re.fullmatch(r"NVDA crossed above its SMA\(2\) of 1m bars \([0-9.]+\) at [0-9.]+", shown), shown
    # The e-mail's sentence, which says ", trading at" where the feed's short line says "at".
    email = email_of(stack, rule_id).replace("), trading at ", ") at ").removesuffix(".")
    assert same_numbers(shown) == same_numbers(email)
    page.screenshot(path=artifacts / "dashboard-alert-kinds.png")


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
    # Chromium logs every non-2xx fetch; the 422s are the invalid rules the tests above sent on purpose.
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
