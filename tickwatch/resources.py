"""Finding the pipeline's resources: explicit flags first, else the deployed stack's Outputs.

The stack defaults to the one samconfig.toml deploys. `AWS_ENDPOINT_URL` is honoured by boto3
itself, so every command works against a local emulator too. Problems become a `CliError` with one
line that says what to do.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
FALLBACK_STACK = "tickwatch-dev"
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)


class CliError(Exception):
    """A problem to report in one line. Exit code 2 for bad input, 1 for everything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class InputError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def default_stack_name(search: tuple[Path, ...] = (Path.cwd(), REPOSITORY_ROOT)) -> str:
    """The stack samconfig.toml's [default] environment deploys."""
    for directory in search:
        config = directory / "samconfig.toml"
        if config.is_file():
            try:
                parsed = tomllib.loads(config.read_text(encoding="utf-8"))
                return parsed["default"]["global"]["parameters"]["stack_name"]
            except (tomllib.TOMLDecodeError, KeyError, TypeError):
                continue
    return FALLBACK_STACK


# Output keys of template.yaml, and the flag that overrides each.
OUTPUTS = {
    "stream": ("TickStreamName", "--stream"),
    "table": ("MarketTableName", "--table"),
    "topic_arn": ("AlertTopicArn", "--topic-arn"),
    "bucket": ("RawBucketName", "--bucket"),
    "processor_failure_queue": ("ProcessorFailureQueueUrl", "--processor-failure-queue"),
    "alerts_failure_queue": ("AlertsFailureQueueUrl", "--alerts-failure-queue"),
    "processor_function": ("ProcessorFunctionName", "--processor-function"),
    "alerts_function": ("AlertsFunctionName", "--alerts-function"),
    "broadcast_function": ("BroadcastFunctionName", "--broadcast-function"),
    "query_api_key_id": ("QueryApiKeyId", "--key-id"),
    "query_api_url": ("QueryApiUrl", "--query-api-url"),
    "live_api_url": ("LiveApiUrl", "--live-api-url"),
    "dashboard_bucket": ("DashboardBucketName", "--dashboard-bucket"),
    "dashboard_distribution": ("DashboardDistributionId", "--distribution-id"),
    "dashboard_url": ("DashboardUrl", "--dashboard-url"),
    "athena_workgroup": ("AthenaWorkGroupName", "--workgroup"),
    "analytics_database": ("AnalyticsDatabaseName", "--database"),
    "delivery_table": ("DeliveryTableName", "--delivery-table"),
    "delivery_function": ("DeliveryFunctionName", "--delivery-function"),
    "delivery_failure_queue": ("DeliveryFailureQueueUrl", "--delivery-failure-queue"),
    "destination_secret_prefix": ("DestinationSecretPrefix", "--secret-prefix"),
}


@dataclass
class AwsContext:
    """Session options and resource names for one command."""

    region: str | None = None
    profile: str | None = None
    stack: str | None = None
    overrides: dict[str, str | None] = field(default_factory=dict)
    session_factory: Any = None  # tests pass their own session

    @cached_property
    def local(self) -> Any:
        """A running `tickwatch local up`, used when no stack, region, profile or endpoint is given."""
        if (
            self.session_factory is not None
            or self.stack
            or self.region
            or self.profile
            or os.environ.get("AWS_ENDPOINT_URL")
        ):
            return None
        from tickwatch.local.state import LocalState

        return LocalState.read()

    @cached_property
    def session(self) -> Any:
        if self.session_factory is not None:
            return self.session_factory()
        if self.local is not None:
            from tickwatch.local.stack import LOCAL_CREDENTIALS

            return boto3.session.Session(**{**LOCAL_CREDENTIALS, "region_name": self.local.region})
        try:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound:
            raise CliError(
                f"AWS profile {self.profile!r} is not configured: check ~/.aws/config or drop --profile"
            ) from None

    def client(self, service: str, config: Config | None = None) -> Any:
        endpoint = {"endpoint_url": self.local.endpoint_url} if self.local is not None else {}
        try:
            # Merged, so a caller's retry settings keep the short connect and read timeouts.
            return self.session.client(
                service, config=CLIENT_CONFIG.merge(config) if config else CLIENT_CONFIG, **endpoint
            )
        except NoRegionError:
            raise CliError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None

    @property
    def stack_name(self) -> str:
        return self.stack or default_stack_name()

    def resource(self, name: str) -> str:
        """A resource name from its flag, else from the stack's outputs."""
        explicit = self.overrides.get(name)
        if explicit:
            return explicit
        output_key, flag = OUTPUTS[name]
        outputs = self.local.outputs if self.local is not None else self.stack_outputs
        if output_key not in outputs:
            raise CliError(
                f"stack {self.stack_name} has no output {output_key}: redeploy it with this version, or pass {flag}"
            )
        return outputs[output_key]

    @cached_property
    def stack_outputs(self) -> dict[str, str]:
        cloudformation = self.client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", "")
            if "does not exist" in message:
                region = cloudformation.meta.region_name
                raise CliError(
                    f"stack {self.stack_name} not found in {region}: deploy it (sam deploy --guided), "
                    "pass --stack/--region, or name resources with --stream/--table/--topic-arn"
                ) from None
            raise explain(error) from None
        except BotoCoreError as error:
            raise explain(error) from None
        return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def explain(error: Exception) -> CliError:
    """One line for an AWS error, saying what to do where we know."""
    if isinstance(error, NoCredentialsError):
        return CliError("no AWS credentials found: run `aws configure`, set AWS_PROFILE, or pass --profile")
    if isinstance(error, NoRegionError):
        return CliError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, message = details.get("Code", "Error"), details.get("Message", "")
        if code in (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "ExpiredToken",
            "ExpiredTokenException",
        ):
            return CliError(f"AWS rejected the credentials ({code}): refresh them or pass --profile")
        if code in ("AccessDenied", "AccessDeniedException", "AuthorizationError"):
            return CliError(f"not allowed: {message or code}")
        if code == "ResourceNotFoundException":
            return CliError(f"{message or 'resource not found'}: check --stack/--region or the resource flags")
        return CliError(f"AWS error {code}: {message}")
    if isinstance(error, BotoCoreError):
        return CliError(f"cannot reach AWS: {error}")
    return CliError(str(error))
