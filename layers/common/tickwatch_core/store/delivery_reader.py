"""What became of each alert at each destination, for `GET /alerts` and `tickwatch alerts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tickwatch_core.domain.delivery.destinations import DEFAULT_DESTINATION
from tickwatch_core.pipeline.delivery.directory import DestinationDirectory
from tickwatch_core.store import deliveries as stored
from tickwatch_core.store.dynamodb import batch_get


def deliveries_of(
    dynamodb: Any, table_name: str, directory: DestinationDirectory, alerts: Sequence[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Each alert's deliveries by alert id: one BatchGetItem per 100 (alert, destination) pairs.

    An alert of a rule without destinations was published to the alert topic by the alerts
    function itself: its one delivery is `email`, `published` (SNS took it; SNS delivers it).
    A destination with no item yet is `pending` (the alerts function wrote it, or is about to)."""
    wanted: dict[str, list[tuple[str, tuple[str, str]]]] = {}
    keys = []
    names = {name for alert in alerts for name in alert.get("notify") or ()}
    pacing = directory.pacing_keys(names) if names else {}
    for alert in alerts:
        pairs = []
        for name in alert.get("notify") or ():
            key = stored.delivery_key(pacing[name], alert["alert_id"], name)
            keys.append(key)
            pairs.append((name, (key["pk"]["S"], key["sk"]["S"])))
        wanted[alert["alert_id"]] = pairs
    found = batch_get(dynamodb, table_name, keys, consistent=False) if keys else {}
    result: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        if not alert.get("notify"):
            result[alert["alert_id"]] = [
                {
                    "destination": DEFAULT_DESTINATION,
                    "status": "published",
                    "attempts": 1,
                    "last_error": None,
                    "delivered_at": alert.get("published_at"),
                    "digest_of": None,
                }
            ]
            continue
        result[alert["alert_id"]] = [_view(name, found.get(key)) for name, key in wanted[alert["alert_id"]]]
    return result


def _view(destination: str, values: dict[str, Any] | None) -> dict[str, Any]:
    if values is None:
        return {
            "destination": destination,
            "status": stored.DeliveryStatus.PENDING.value,
            "attempts": 0,
            "last_error": None,
            "delivered_at": None,
            "digest_of": None,
        }
    return {
        "destination": destination,
        "status": values["status"],
        "attempts": int(values.get("attempts", 0)),
        "last_error": values.get("last_error"),
        "delivered_at": values.get("delivered_at"),
        "digest_of": int(values["digest_of"]) if values.get("digest_of") else None,
    }
