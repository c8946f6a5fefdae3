"""The stored destinations, read through a short cache: the alerts and delivery functions both
need them on every batch, and they change rarely."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from tickwatch_core.domain.delivery.destinations import DEFAULT_DESTINATION, Destination, DestinationKind
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.items import deserialize

DESTINATIONS_TTL = timedelta(seconds=30)


def default_destination() -> Destination:
    """Where a rule without `notify` goes: the alert topic's subscribers, as before destinations."""
    return Destination(DEFAULT_DESTINATION, DestinationKind.EMAIL, "the alert topic's subscribers")


def load_destinations(dynamodb: Any, table_name: str) -> dict[str, Destination]:
    """Every stored destination, by name (one Query: a stack has at most 50)."""
    found: dict[str, Destination] = {}
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": stored.DESTINATION_PARTITION}},
        "ConsistentRead": True,
    }
    while True:
        response = dynamodb.query(**arguments)
        for item in response.get("Items", []):
            destination = stored.destination_from_item(deserialize(item))
            found[destination.name] = destination
        if "LastEvaluatedKey" not in response:
            return found
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class DestinationDirectory:
    """Destinations by name, re-read at most every 30 s, and at once for a name not seen yet (one
    added a moment ago). The default e-mail route is built in and never read."""

    def __init__(self, load: Callable[[], dict[str, Destination]], clock: Callable[[], datetime]) -> None:
        self._load = load
        self._clock = clock
        self._known: dict[str, Destination] = {}
        self._read_at: datetime | None = None
        self._lock = threading.Lock()

    def get(self, name: str) -> Destination | None:
        if name == DEFAULT_DESTINATION:
            return default_destination()
        now = self._clock()
        with self._lock:
            fresh = self._read_at is not None and now - self._read_at < DESTINATIONS_TTL
            if not (fresh and name in self._known):
                self._known = self._load()
                self._read_at = now
            return self._known.get(name)

    def pacing_keys(self, names: Iterable[str]) -> dict[str, str]:
        """The receiver each destination's deliveries are paced as. A name with no destination
        gets a key of its own: the delivery function parks its deliveries, saying so."""
        keys = {}
        for name in names:
            destination = self.get(name)
            keys[name] = destination.pacing_key if destination is not None else f"missing:{name}"
        return keys
