"""The whole pipeline on one machine: a moto server, the template's resources, its functions run
in-process by emulated event source mappings, and an inbox showing what e-mail subscribers get."""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from tickwatch.local import moto_patches
from tickwatch.local.dashboard import DashboardServer, security_headers, site_config
from tickwatch.local.event_sources import EventSourceMapping, stream_mappings
from tickwatch.local.faults import FaultInjector, FaultPlan
from tickwatch.local.functions import LocalFunction
from tickwatch.local.gateway import RestApi, RestGateway
from tickwatch.local.inbox import Inbox
from tickwatch.local.receivers import Receivers
from tickwatch.local.schedules import ScheduleRunner, read_schedules
from tickwatch.local.websocket import WebSocketGateway
from tickwatch.template import Template, create_resources
from tickwatch_core.aws import add_client_customizer, remove_client_customizer

LOCAL_STACK_NAME = "tickwatch-local"
# Any credentials work with moto; setting them keeps boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": "us-east-1"}
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=50)


class EndpointSession:
    """boto3 clients for one endpoint (the emulator), created once per service."""

    def __init__(self, endpoint_url: str, region: str = "us-east-1") -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._session = boto3.session.Session(**{**LOCAL_CREDENTIALS, "region_name": region})
        self._clients: dict[str, Any] = {}

    def client(self, service: str, **options: Any) -> Any:
        if options:
            return self._session.client(service, endpoint_url=self.endpoint_url, **options)
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG
            )
        return self._clients[service]


class MotoServer:
    """A moto server in a background thread on a loopback address."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, separate_process: bool = False) -> None:
        if separate_process:
            self._start_process(host, port or _free_port(host))
            return
        self._process: subprocess.Popen[bytes] | None = None
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        moto_patches.apply()
        if port:
            # The server's thread would not report a failed bind (it would just never start).
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))

        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{bound_host}:{bound_port}"

    def _start_process(self, host: str, port: int) -> None:
        # Its own interpreter: the emulator then does not compete with the functions for the GIL.
        self._server = None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tickwatch.local.moto_patches", "-H", host, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint_url = f"http://{host}:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                if self._process.poll() is not None:
                    raise OSError(f"the moto server on {host}:{port} exited at start") from None
                time.sleep(0.1)
        self.stop()
        raise OSError(f"the moto server on {host}:{port} did not start within 30 s")

    def reset(self) -> None:
        """Forget every resource: moto keeps its state per process, not per server."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
            response.read()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:  # busy with a large state: it holds nothing to save
                self._process.kill()
                self._process.wait(10)
        elif self._server is not None:
            self._server.stop()


def _origin(url: str) -> str:
    """scheme://host:port of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class LocalStackOptions:
    endpoint_url: str | None = None  # use an emulator that is already running
    host: str = "127.0.0.1"
    port: int = 0
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    outbox: Path = Path(".tickwatch/outbox")
    kinesis_poll_interval: float | None = None
    dynamodb_poll_interval: float | None = None
    print_alert: Any = None  # called with each alert as it arrives
    faults: FaultPlan | None = None
    function_timeout: float | None = None  # instead of the template's (short ones make timeouts quick)
    server_process: bool = False  # run moto in a process of its own
    run_functions: bool = True  # False: resources and inbox only (the functions run elsewhere)
    api_port: int = 0  # the query API's gateway (0: any free port)
    api_key: str | None = None  # the local API key (default: a new random one)
    live_port: int = 0  # the WebSocket API's gateway (0: any free port)
    dashboard_port: int = 0  # the dashboard's site (0: any free port)
    # Secrets Manager secrets to create (name -> value): the scheduled producer's API key. Never
    # written to the state file or printed.
    secrets: dict[str, str] = field(default_factory=dict)
    # The loopback receivers of a stack already running (`attach`): where its delivery function
    # sends Telegram's Bot API calls.
    receivers_url: str | None = None


class LocalStack:
    """Start with `start()`, stop with `stop()`; `names()` lists the local resource names."""

    def __init__(self, options: LocalStackOptions | None = None) -> None:
        self.options = options or LocalStackOptions()
        self.server: MotoServer | None = None
        self.session: EndpointSession | None = None
        self.template = Template.load(stack_name=LOCAL_STACK_NAME, parameter_overrides=self.options.parameter_overrides)
        self.functions: dict[str, LocalFunction] = {}
        self.mappings: list[EventSourceMapping] = []
        self.schedules: ScheduleRunner | None = None
        self.inbox: Inbox | None = None
        self._saved_environment: dict[str, str | None] = {}
        self.faults: FaultInjector | None = None
        self.gateways: dict[str, RestGateway] = {}
        self.websockets: dict[str, WebSocketGateway] = {}
        self.dashboard: DashboardServer | None = None
        self._endpoint_rewrites: dict[str, str] = {}  # an AWS endpoint in the template -> the local one
        self.receivers: Receivers | None = None

    @property
    def endpoint_url(self) -> str:
        assert self.session is not None, "the local stack is not started"
        return self.session.endpoint_url

    def start(self) -> LocalStack:
        endpoint = self.options.endpoint_url
        if endpoint is None:
            self.server = MotoServer(self.options.host, self.options.port, separate_process=self.options.server_process)
            self.server.reset()  # a fresh stack, even after another one in this process
            endpoint = self.server.endpoint_url
        self._enter(endpoint)
        self._create_secrets()
        if self.options.faults is not None:
            timeout = self.options.function_timeout or float(
                self.template.body["Globals"]["Function"].get("Timeout", 3)
            )
            self.faults = FaultInjector(self.options.faults, hang_seconds=timeout + 1.0)
            add_client_customizer(self.faults.customize)
        self.inbox = Inbox.subscribe(
            self.template, self.session, self.options.outbox, on_alert=self.options.print_alert
        )
        if self.options.run_functions:
            # Where destinations point locally: webhook, Slack, Discord and Telegram stand-ins.
            self.receivers = Receivers(self.options.outbox.parent / "receivers").start()
            # First: the functions' environment points at these gateways' local endpoints.
            self._serve_websockets()
        for function_id, settings in stream_mappings(self.template) if self.options.run_functions else ():
            function = self._function(function_id, fault_injection=True)
            interval = (
                self.options.kinesis_poll_interval
                if settings.source == "Kinesis"
                else self.options.dynamodb_poll_interval
            )
            self.mappings.append(EventSourceMapping(settings, function, self.session, poll_interval=interval).start())
        if self.options.run_functions:
            self._serve_apis()
            self._serve_dashboard()
            self._run_schedules()
        self.inbox.start()
        return self

    def _create_secrets(self) -> None:
        """The secrets the options name, in the emulator's Secrets Manager (updated if they exist)."""
        if not self.options.secrets:
            return
        assert self.session is not None
        secretsmanager = self.session.client("secretsmanager")
        for name, value in self.options.secrets.items():
            try:
                secretsmanager.create_secret(Name=name, SecretString=value)
            except secretsmanager.exceptions.ResourceExistsException:
                secretsmanager.put_secret_value(SecretId=name, SecretString=value)

    def _serve_apis(self) -> None:
        """Every REST API of the template behind a local gateway, its functions in-process."""
        for api_id in self.template.logical_ids("AWS::Serverless::Api"):
            for route in RestApi.from_template(self.template, api_id).routes:
                self._function(route.function)
            self.gateways[api_id] = RestGateway(
                self.template,
                self.functions,
                api_logical_id=api_id,
                api_key=self.options.api_key,
                host=self.options.host,
                port=self.options.api_port,
            ).start()

    def _serve_websockets(self) -> None:
        """Every WebSocket API of the template behind a local gateway, its functions in-process.
        Functions reach its management API where the template gives them the AWS endpoint."""
        for api_id in self.template.logical_ids("AWS::ApiGatewayV2::Api"):
            if self.template.resources[api_id]["Properties"].get("ProtocolType") != "WEBSOCKET":
                continue
            gateway = WebSocketGateway(
                self.template,
                self.functions,
                api_logical_id=api_id,
                host=self.options.host,
                port=self.options.live_port,
            )
            self._endpoint_rewrites[f"https://{self._aws_host(api_id)}/{gateway.api.stage}"] = gateway.management_url
            self.websockets[api_id] = gateway.start()
            for route in gateway.api.routes.values():
                self._function(route.function)

    def _serve_dashboard(self) -> None:
        """The dashboard's site, pointed at the local APIs, under the template's security headers."""
        if "DashboardHeadersPolicy" not in self.template.resources or not self.websockets or not self.gateways:
            return
        origins = {f"https://{self._aws_host(api_id)}": _origin(rest.url) for api_id, rest in self.gateways.items()}
        origins |= {f"wss://{self._aws_host(api_id)}": _origin(live.url) for api_id, live in self.websockets.items()}
        query_api, live_api = next(iter(self.gateways.values())), next(iter(self.websockets.values()))
        self.dashboard = DashboardServer(
            site_config(query_api.url, live_api.url),
            security_headers(self.template, origins),
            host=self.options.host,
            port=self.options.dashboard_port,
        ).start()

    def _run_schedules(self) -> None:
        """Every Schedule and ScheduleV2 event of the template, its function invoked in-process at
        the fire times; the disabled ones' functions too, to be fired by hand."""
        schedules = read_schedules(self.template)
        for schedule in schedules:
            self._function(schedule.function_id)
        self.schedules = ScheduleRunner(schedules, self.functions).start()

    def _aws_host(self, api_id: str) -> str:
        """The host name of an API on AWS, as the template writes it into URLs."""
        return f"{self.template.physical[api_id].ref}.execute-api.{self.template.region}.amazonaws.com"

    def _function(self, function_id: str, *, fault_injection: bool = False) -> LocalFunction:
        """The function, loaded once, with the emulator's endpoint and the local gateways' URLs."""
        if function_id not in self.functions:
            environment = {"AWS_ENDPOINT_URL": self.endpoint_url}
            for name, value in self.template.function_environment(function_id).items():
                if value in self._endpoint_rewrites:
                    environment[name] = self._endpoint_rewrites[value]
            if self.receivers is not None:
                environment |= delivery_environment(self.template, function_id, self.receivers.base_url)
            self.functions[function_id] = LocalFunction(
                self.template,
                function_id,
                extra_environment=environment,
                timeout=self.options.function_timeout,
                before_invoke=self.faults.before_invoke if self.faults and fault_injection else None,
            )
        return self.functions[function_id]

    def attach(self) -> LocalStack:
        """The functions of a stack already running at `options.endpoint_url`, to invoke here
        (`tickwatch dlq replay`): no event source mappings, no inbox. `stop()` when done."""
        assert self.options.endpoint_url, "attach needs the endpoint of a running local stack"
        self._enter(self.options.endpoint_url)
        for function_id, _ in stream_mappings(self.template):
            environment = {"AWS_ENDPOINT_URL": self.options.endpoint_url}
            if self.options.receivers_url:
                environment |= delivery_environment(self.template, function_id, self.options.receivers_url)
            self.functions[function_id] = LocalFunction(self.template, function_id, extra_environment=environment)
        return self

    def _enter(self, endpoint: str) -> None:
        """Point this process at the emulator and make sure every resource exists there."""
        self.session = EndpointSession(endpoint, self.template.region)
        # The functions and the fetch script in this process talk to the emulator, never to AWS.
        local_environment = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.template.region,
            "AWS_REGION": self.template.region,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
        cleared = ("AWS_SESSION_TOKEN", "AWS_PROFILE")
        self._saved_environment = {name: os.environ.get(name) for name in (*local_environment, *cleared)}
        os.environ.update(local_environment)
        for name in cleared:
            os.environ.pop(name, None)
        create_resources(self.template, self.session, api_key=self.options.api_key)

    def stop(self) -> None:
        for gateway in [*self.gateways.values(), *self.websockets.values()]:
            gateway.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.schedules is not None:
            self.schedules.stop()
        for mapping in self.mappings:
            mapping.stop()
        if self.inbox:
            self.inbox.stop()
        if self.receivers is not None:
            self.receivers.stop()
        if self.server:
            self.server.stop()
        if self.faults is not None:
            remove_client_customizer(self.faults.customize)
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def names(self) -> dict[str, str]:
        """Resource names, keyed like the stack Outputs the CLI reads."""
        physical = self.template.physical
        return {
            "TickStreamName": physical["TickStream"].ref,
            "RawBucketName": physical["RawBucket"].ref,
            "MarketTableName": physical["MarketTable"].ref,
            "AlertTopicArn": physical["AlertTopic"].ref,
            "ProcessorFailureQueueUrl": physical["ProcessorFailureQueue"].ref,
            "AlertsFailureQueueUrl": physical["AlertsFailureQueue"].ref,
            "ConnectionTableName": physical["ConnectionTable"].ref,
            # Like the Outputs QueryApiUrl and QueryApiKeyId; locally the key's value itself.
            **{f"{api_id}Url": gateway.url for api_id, gateway in self.gateways.items()},
            **{f"{api_id}Key": gateway.api_key for api_id, gateway in self.gateways.items()},
            # Made up by the emulator: for events/env.json's USAGE_PLAN_ID under `sam local invoke`.
            **{
                f"{api_id}UsagePlanId": physical[f"{api_id}UsagePlan"].ref
                for api_id in self.gateways
                if f"{api_id}UsagePlan" in physical
            },
            **{f"{api_id}Url": gateway.url for api_id, gateway in self.websockets.items()},
            **({"DashboardUrl": self.dashboard.url} if self.dashboard else {}),
            "DeliveryTableName": physical["DeliveryTable"].ref,
            "DeliveryFailureQueueUrl": physical["DeliveryFailureQueue"].ref,
            "DeliveryFunctionName": physical["DeliveryFunction"].ref,
            "DestinationSecretPrefix": self.template.function_environment("DeliveryFunction")[
                "DESTINATION_SECRET_PREFIX"
            ],
            **({"ReceiversUrl": self.receivers.base_url} if self.receivers else {}),
        }

    def wait_until_caught_up(self, timeout: float = 60.0, settle: float = 1.5) -> bool:
        """Wait until every mapping has handled all it read and nothing new arrived for `settle` s."""
        began = time.monotonic()
        deadline = began + timeout
        quiet_since: float | None = None
        last_seen = -1
        while time.monotonic() < deadline:
            seen = sum(m.stats.records_read for m in self.mappings)
            if all([m.idle(since=began) for m in self.mappings]) and seen == last_seen:  # noqa: C419 - idle() of each must run: it raises a poller's error
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            last_seen = seen
            time.sleep(0.1)
        return False

    # -- what the pipeline produced, for summaries and tests --------------------------------------

    def raw_lines(self, prefix: str = "raw/") -> list[dict[str, Any]]:
        assert self.session is not None
        s3 = self.session.client("s3")
        bucket = self.template.physical["RawBucket"].ref
        lines: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                text = gzip.decompress(body).decode() if entry["Key"].endswith(".gz") else body.decode()
                lines += [json.loads(line) for line in text.splitlines() if line]
        return lines

    def object_count(self, prefix: str) -> int:
        assert self.session is not None
        s3 = self.session.client("s3")
        bucket = self.template.physical["RawBucket"].ref
        return sum(
            page.get("KeyCount", 0)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery item of the delivery table (deserialized): one per alert and destination."""
        assert self.session is not None
        from tickwatch_core.store.items import deserialize

        found = []
        for page in (
            self.session.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=self.template.physical["DeliveryTable"].ref,
                FilterExpression="begins_with(sk, :prefix)",
                ExpressionAttributeValues={":prefix": {"S": "ALERT#"}},
            )
        ):
            found += [deserialize(item) for item in page["Items"]]
        return found

    def count_items(self, sort_key_prefix: str) -> int:
        assert self.session is not None
        dynamodb = self.session.client("dynamodb")
        total = 0
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=self.template.physical["MarketTable"].ref,
            FilterExpression="begins_with(sk, :prefix)",
            ExpressionAttributeValues={":prefix": {"S": sort_key_prefix}},
            Select="COUNT",
        ):
            total += page["Count"]
        return total


def delivery_environment(template: Template, function_id: str, receivers_url: str) -> dict[str, str]:
    """What the local stack adds to a function that delivers alerts: its destinations may be the
    loopback receivers over plain HTTP, and the Bot API is the Telegram stand-in."""
    if "DESTINATION_SECRET_PREFIX" not in template.function_environment(function_id):
        return {}
    return {"ALLOW_LOOPBACK_DESTINATIONS": "true", "TELEGRAM_API_URL": f"{receivers_url}/telegram"}
