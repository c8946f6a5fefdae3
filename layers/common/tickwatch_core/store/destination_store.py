"""Destinations as the CLI and the query API manage them: the item in the delivery table, the
secret in Secrets Manager, and for an e-mail destination its SNS subscription."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from tickwatch_core.domain.delivery.destinations import (
    DEFAULT_DESTINATION,
    MAX_DESTINATIONS,
    Destination,
    DestinationError,
    DestinationKind,
    NewDestination,
)
from tickwatch_core.pipeline.delivery.directory import default_destination, load_destinations
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.items import deserialize


class DestinationExistsError(ValueError):
    field = "name"


@dataclass(frozen=True, slots=True)
class DestinationStore:
    dynamodb: Any
    secretsmanager: Any
    sns: Any
    table_name: str
    secret_prefix: str
    alert_topic_arn: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def list(self) -> list[Destination]:
        """The built-in `email` (the alert topic's subscribers) first, then the stored ones by name."""
        stored_ones = load_destinations(self.dynamodb, self.table_name)
        return [default_destination(), *(stored_ones[name] for name in sorted(stored_ones))]

    def get(self, name: str) -> Destination | None:
        if name == DEFAULT_DESTINATION:
            return default_destination()
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key=stored.destination_key(name), ConsistentRead=True
        ).get("Item")
        return stored.destination_from_item(deserialize(item)) if item else None

    def add(self, new: NewDestination) -> Destination:
        """Store the secret, then the destination (so a destination never exists without its
        secret); an e-mail destination subscribes its address, filtered to itself."""
        destination = new.destination
        if destination.name == DEFAULT_DESTINATION:
            raise DestinationError("name", f"{DEFAULT_DESTINATION!r} is the alert topic's own; choose another name")
        if self.get(destination.name) is not None:
            raise DestinationExistsError(f"destination {destination.name!r} already exists; remove it first")
        if len(self.list()) > MAX_DESTINATIONS:
            raise DestinationError("name", f"a stack has at most {MAX_DESTINATIONS} destinations")
        secret_name = f"{self.secret_prefix}{destination.name}" if new.secret is not None else None
        if secret_name is not None and new.secret is not None:
            self._put_secret(secret_name, new.secret)
        subscription_arn = None
        if destination.kind is DestinationKind.EMAIL:
            subscription_arn = self._subscribe(destination)
        final = Destination(
            destination.name,
            destination.kind,
            destination.target,
            secret_name,
            destination.template,
            destination.rate,
            destination.symbols,
            destination.quiet_hours,
        )
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item=stored.destination_to_item(final, self.clock(), subscription_arn),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise DestinationExistsError(f"destination {destination.name!r} already exists") from None
            raise
        return final

    def remove(self, name: str) -> bool:
        """Delete the destination, its secret and its subscription. False if there was none.
        Rules that name it keep their other destinations; alerts for it are parked, saying so."""
        if name == DEFAULT_DESTINATION:
            raise DestinationError("name", f"{DEFAULT_DESTINATION!r} is the alert topic's own and cannot be removed")
        response = self.dynamodb.delete_item(
            TableName=self.table_name, Key=stored.destination_key(name), ReturnValues="ALL_OLD"
        )
        old = response.get("Attributes")
        if not old:
            return False
        values = deserialize(old)
        if values.get("subscription_arn", "").startswith("arn:"):
            self.sns.unsubscribe(SubscriptionArn=values["subscription_arn"])
        if values.get("secret_name"):
            try:
                # At once: a name removed and added again must be able to take a new secret.
                self.secretsmanager.delete_secret(SecretId=values["secret_name"], ForceDeleteWithoutRecovery=True)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
        return True

    def secret(self, destination: Destination) -> str | None:
        if destination.secret_name is None:
            return None
        return self.secretsmanager.get_secret_value(SecretId=destination.secret_name)["SecretString"]

    def _put_secret(self, name: str, value: str) -> None:
        try:
            self.secretsmanager.create_secret(
                Name=name, SecretString=value, Description="tickwatch destination (URL, token or signing secret)"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            self.secretsmanager.put_secret_value(SecretId=name, SecretString=value)

    def _subscribe(self, destination: Destination) -> str:
        policy: dict[str, Any] = {"destination": [destination.name]}
        if destination.symbols:
            policy["symbol"] = list(destination.symbols)
        response = self.sns.subscribe(
            TopicArn=self.alert_topic_arn,
            Protocol="email",
            Endpoint=destination.target,
            Attributes={"FilterPolicyScope": "MessageAttributes", "FilterPolicy": json.dumps(policy)},
            ReturnSubscriptionArn=True,
        )
        return response["SubscriptionArn"]
