"""`sam local invoke` with every sample event, in a container, against the local stack.

In-process tests can't catch packaging faults: layer paths, handler strings, missing or
wrong-architecture requirements, build output. These run the real `sam build` output in Docker
with a stand-in for the Lambda Python image (tickwatch/local/container.py), the functions reaching
the local stack through the Docker bridge as `events/env.json` says, and check each function's
response and its effect on the stack. `make test-container` runs them (CI too).
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.fake_provider import API_KEY, FakeQuoteProvider, serving
from tickwatch.local.container import (
    ensure_docker,
    ensure_image,
    machine_architecture,
    runtime_of,
    sam_build,
    template_for,
)
from tickwatch.local.run import DOCKER_BRIDGE_GATEWAY
from tickwatch.local.stack import LocalStack, LocalStackOptions, MotoServer
from tickwatch.template import Template
from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.ticks import TickRejected, parse_tick
from tickwatch_core.history.layout import history_key
from tickwatch_core.history.plan import FINGERPRINT_METADATA
from tickwatch_core.pipeline.processor import StreamRecord, batch_suffix, plan_raw_objects, split_batch
from tickwatch_core.store.rule_store import RuleStore

REPOSITORY = Path(__file__).resolve().parents[2]
EVENTS = REPOSITORY / "events"
SAM = REPOSITORY / ".venv" / "sam" / "bin" / "sam"
PORT = 5000  # the port events/env.json names

pytestmark = pytest.mark.skipif(
    os.environ.get("TICKWATCH_CONTAINER_TESTS") != "1",
    reason="needs Docker and sam local invoke: run `make test-container`",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(stand-in image, built template) for this machine's architecture."""
    work = tmp_path_factory.mktemp("container")
    ensure_docker(work / "dockerd.log")
    template = Template.load()
    architecture = machine_architecture()
    image = ensure_image(runtime_of(template), architecture, work)
    derived = template_for(architecture, REPOSITORY / "template.yaml", work / "template.yaml")
    return image, sam_build(SAM, derived, REPOSITORY, work / "build", architecture)


@pytest.fixture(scope="module")
def stack(built, tmp_path_factory):
    """The local stack's resources and inbox (no functions of its own), also on the Docker bridge."""
    options = LocalStackOptions(port=PORT, outbox=tmp_path_factory.mktemp("outbox"), run_functions=False)
    local = LocalStack(options).start()
    bridge = MotoServer(DOCKER_BRIDGE_GATEWAY, PORT)
    RuleStore(local.session.client("dynamodb"), local.names()["MarketTableName"]).add("AAPL", "above", 200)
    try:
        yield local
    finally:
        bridge.stop()
        local.stop()


def invoke(built, function: str, event: str) -> dict:
    image, template = built
    result = subprocess.run(
        [
            str(SAM), "local", "invoke", function,
            "--template-file", str(template),
            "--event", str(EVENTS / event),
            "--env-vars", str(EVENTS / "env.json"),
            "--invoke-image", image,
            "--skip-pull-image",
            "--region", "us-east-1",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr[-3000:]
    response = json.loads(lines[-1])
    assert "errorType" not in response, (response, result.stderr[-3000:])
    return response


def classify(event: str) -> tuple[set[str], set[str], set[str]]:
    """(valid sequence numbers, bad ones, symbols) of a Kinesis sample event, by the tick contract."""
    valid, bad, symbols = set(), set(), set()
    for record in json.loads((EVENTS / event).read_text())["Records"]:
        data = base64.b64decode(record["kinesis"]["data"])
        sequence = record["kinesis"]["sequenceNumber"]
        try:
            tick = parse_tick(
                data, received_at=datetime.fromtimestamp(record["kinesis"]["approximateArrivalTimestamp"], UTC)
            )
        except TickRejected:
            bad.add(sequence)
            continue
        if tick.symbol != record["kinesis"]["partitionKey"]:
            bad.add(sequence)
            continue
        valid.add(sequence)
        symbols.add(tick.symbol)
    return valid, bad, symbols


def quotes(stack) -> set[str]:
    dynamodb = stack.session.client("dynamodb")
    items = dynamodb.scan(TableName=stack.names()["MarketTableName"])["Items"]
    return {item["symbol"]["S"] for item in items if item["sk"]["S"] == "QUOTE"}


def alert_history(stack) -> list[str]:
    dynamodb = stack.session.client("dynamodb")
    items = dynamodb.scan(TableName=stack.names()["MarketTableName"])["Items"]
    return [item["rule_id"]["S"] for item in items if item["sk"]["S"].startswith("ALERT#")]


def test_every_sample_event_is_covered():
    events = {path.name for path in EVENTS.glob("*.json")} - {"env.json"}
    assert events == set(EXPECTED_ORDER)


def test_processor_valid_ticks(built, stack):
    valid, bad, symbols = classify("processor-batch-valid-ticks.json")
    assert invoke(built, "ProcessorFunction", "processor-batch-valid-ticks.json") == {"batchItemFailures": []}
    assert valid
    assert not bad
    assert valid <= {line["sequence_number"] for line in stack.raw_lines("raw/")}
    assert symbols <= quotes(stack)


def test_processor_bad_records_are_quarantined(built, stack):
    valid, bad, symbols = classify("processor-batch-with-bad-records.json")
    assert invoke(built, "ProcessorFunction", "processor-batch-with-bad-records.json") == {"batchItemFailures": []}
    assert bad
    assert bad <= {line["sequence_number"] for line in stack.raw_lines("quarantine/")}
    assert valid <= {line["sequence_number"] for line in stack.raw_lines("raw/")}
    assert symbols <= quotes(stack)


def test_alerts_quote_without_crossing_sends_nothing(built, stack):
    assert invoke(built, "AlertsFunction", "alerts-quote-no-crossing.json") == {"batchItemFailures": []}
    assert alert_history(stack) == []


def test_alerts_quote_crossing_the_rule_is_published_once(built, stack):
    assert invoke(built, "AlertsFunction", "alerts-quote-crosses-rule.json") == {"batchItemFailures": []}
    assert alert_history(stack) == ["AAPL-above-200"]
    stack.inbox.drain()
    assert [alert.attributes.get("rule_id") for alert in stack.inbox.received] == ["AAPL-above-200"]


@pytest.fixture(scope="module")
def api(built, stack, tmp_path_factory):
    """`sam local start-api` on the built template, its QueryFunction reaching the local stack."""
    image, template = built
    port = free_port()
    log = (tmp_path_factory.mktemp("start-api") / "sam.log").open("w")
    server = subprocess.Popen(
        [
            str(SAM), "local", "start-api",
            "--template-file", str(template),
            "--env-vars", str(EVENTS / "env.json"),
            "--invoke-image", image,
            "--skip-pull-image",
            "--region", "us-east-1",
            "--host", "127.0.0.1",
            "--port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if http(f"{url}/openapi.json")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise AssertionError(f"sam local start-api did not answer: {Path(log.name).read_text()[-3000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def http(url: str, method: str = "GET", body: dict | list | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"x-api-key": "local", **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_live_subscribe_follows_both_symbols(built, stack):
    event = json.loads((EVENTS / "live-subscribe.json").read_text())
    table = stack.template.physical["ConnectionTable"].ref
    ConnectionStore(AwsClients(dynamodb=stack.session.client("dynamodb")), table).connect(
        event["requestContext"]["connectionId"]
    )
    response = invoke(built, "LiveFunction", "live-subscribe.json")
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"type": "subscribed", "symbols": ["AAPL", "MSFT"]}


def test_broadcast_survives_a_connection_it_cannot_reach(built, stack):
    # AAPL's follower (the connection above) has no WebSocket gateway here, so its post fails:
    # counted and logged, and the batch still succeeds.
    assert invoke(built, "BroadcastFunction", "broadcast-market-changes.json") == {}


def test_sam_local_start_api_serves_every_route_from_the_local_stack(api, stack):
    # After the events above: quotes of the sample ticks, their bars, the AAPL rule and its alert.
    status, body = http(f"{api}/quotes")
    assert (status, {quote["symbol"] for quote in body["quotes"]}) == (200, quotes(stack))
    assert http(f"{api}/quotes/AAPL")[0] == 200
    assert http(f"{api}/quotes/ZZZZ")[0] == 404
    dynamodb = stack.session.client("dynamodb")
    items = dynamodb.scan(TableName=stack.names()["MarketTableName"])["Items"]
    first_bar = min(
        item["start"]["S"] for item in items if item["sk"]["S"].startswith("BAR#") and item["symbol"]["S"] == "AAPL"
    )
    day = datetime.fromisoformat(first_bar).replace(hour=0, minute=0, second=0, microsecond=0)
    span = f"from={day:%Y-%m-%dT%H:%M:%SZ}&to={day + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
    status, bars = http(f"{api}/bars/AAPL?{span}&interval=1h&indicators=vwap")
    assert status == 200, bars
    assert bars["bars"][0]["trades"] > 0
    status, alerts = http(f"{api}/alerts?symbol=AAPL")
    assert (status, [a["rule_id"] for a in alerts["alerts"]]) == (200, alert_history(stack))
    assert [r["rule_id"] for r in http(f"{api}/rules")[1]["rules"]] == ["AAPL-above-200"]
    created = http(f"{api}/rules", "POST", {"symbol": "MSFT", "direction": "below", "threshold": 300})
    assert created == (201, {**created[1], "rule_id": "MSFT-below-300"})
    assert http(f"{api}/rules/MSFT-below-300", "DELETE")[0] == 200
    assert http(f"{api}/bars/AAPL?interval=2m")[0] == 422
    assert http(f"{api}/openapi.json")[1]["openapi"].startswith("3.1")
    # The ingest function behind the same API puts into the local stack's stream.
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    status, answer = http(f"{api}/ticks", "POST", [{"symbol": "AAPL", "price": 231.5, "timestamp": now}, {"price": 1}])
    assert (status, answer["accepted"], [r["index"] for r in answer["rejected"]]) == (207, 1, [1])


def test_compactor_scheduled_compacts_the_hour_that_ended(built, stack):
    # Raw ticks of 14h, planned by the processor's own code, stored as the processor stores them;
    # the sample event fires at 15:07, after 14h has ended.
    hour = datetime(2026, 11, 20, 14, tzinfo=UTC)
    records = [
        StreamRecord(
            data=json.dumps({"symbol": "AAPL", "price": 201 + n, "timestamp": f"2026-11-20T14:5{n}:00Z"}).encode(),
            sequence_number=str(49590338271490256608559692538361571095921575989136600000 + n),
            shard_id="shardId-000000000009",
            partition_key="AAPL",
            arrival=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
        )
        for n in range(3)
    ]
    accepted, quarantined = split_batch(records)
    assert (len(accepted), quarantined) == (3, [])
    s3 = stack.session.client("s3")
    bucket = stack.names()["RawBucketName"]
    for raw_object in plan_raw_objects(accepted, batch_suffix(records)):
        s3.put_object(
            Bucket=bucket,
            Key=raw_object.key,
            Body=raw_object.body,
            ContentType=raw_object.content_type,
            ContentEncoding=raw_object.content_encoding,
        )

    response = invoke(built, "CompactorFunction", "compactor-scheduled.json")

    # Earlier sample events may have put raw ticks in 14h too; they are compacted with these.
    assert hour.isoformat() in response["compacted"]
    assert response["left_for_later"] == []
    head = s3.head_object(Bucket=bucket, Key=history_key(hour))
    assert head["Metadata"][FINGERPRINT_METADATA]
    body = s3.get_object(Bucket=bucket, Key=history_key(hour))["Body"].read()
    sequence_numbers = set(pq.read_table(io.BytesIO(body)).column("sequence_number").to_pylist())
    assert {record.sequence_number for record in records} <= sequence_numbers


def test_ingest_post_ticks_puts_the_valid_ticks_into_the_stream(built, stack):
    response = invoke(built, "IngestFunction", "ingest-post-ticks.json")
    assert response["statusCode"] == 207, response
    answer = json.loads(response["body"])
    assert (answer["accepted"], [r["index"] for r in answer["rejected"]], answer["failed"]) == (2, [2], [])


def test_producer_scheduled_quotes_the_symbols_from_the_provider_on_the_bridge(built, stack):
    # env.json points the function at a stand-in provider on the Docker bridge and at the secret
    # `tickwatch local up` keeps the key in.
    environment = json.loads((EVENTS / "env.json").read_text())["ProducerFunction"]
    secrets = stack.session.client("secretsmanager")
    secrets.create_secret(Name=environment["API_KEY_SECRET"], SecretString=API_KEY)
    port = int(environment["PROVIDER_URL"].rsplit(":", 1)[1])
    with serving(FakeQuoteProvider({"AAPL": "231.50", "MSFT": "418.25"}), DOCKER_BRIDGE_GATEWAY, port) as provider:
        response = invoke(built, "ProducerFunction", "producer-scheduled.json")
    assert (response["sent"], response["provider_error"], response["secret_error"]) == (2, None, None), response
    assert sorted(provider.symbols_asked) == ["AAPL", "MSFT"]


EXPECTED_ORDER = [
    "processor-batch-valid-ticks.json",
    "processor-batch-with-bad-records.json",
    "alerts-quote-no-crossing.json",
    "alerts-quote-crosses-rule.json",
    "live-subscribe.json",
    "broadcast-market-changes.json",
    "compactor-scheduled.json",
    "ingest-post-ticks.json",
    "producer-scheduled.json",
]
