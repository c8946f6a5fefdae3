"""How delivery is stored: the delivery table (its own stream drives the delivery function).

| item        | pk                  | sk                               | notes |
|-------------|---------------------|----------------------------------|-------|
| delivery    | PACE#<pacing key>   | ALERT#<alert_id>#<destination>   | one per (alert, destination); `status` below |
| send log    | PACE#<pacing key>   | SENT                             | when the receiver was last sent messages |
| destination | DESTINATION         | <name>                           | no secret: only its Secrets Manager name |

The pacing key groups what one receiver counts (`Destination.pacing_key`): every e-mail
destination is `email`, the one topic's subscriptions; any other destination is its own. All of a
receiver's deliveries share a partition, so the stream hands them to one delivery function at a
time, in order: its send log needs no locking, and a burst arrives in one batch, as one digest.

A delivery's `status`: `pending` (written by the alerts function, which is what the stream
passes on), `retrying` (a try failed; more follow), `delivered` (alone or in a digest, with the
receiver's message id), `failed` (parked after its retries or refused by the receiver:
`tickwatch deliveries failed` and `replay`), `silenced` and `dropped` (quiet hours with `drop`),
`held` (quiet hours with `hold`, sent in one digest at their end). Failed ones also carry `parked`
and `parked_key`, the sparse `Parked` index's keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from tickwatch_core.domain.delivery.destinations import Destination, DestinationKind, QuietHours
from tickwatch_core.domain.delivery.notices import AlertNotice, format_instant
from tickwatch_core.domain.delivery.pacing import RateLimit, SendLog
from tickwatch_core.store.items import AttributeMap, Key, serialize

DELIVERY_PREFIX = "ALERT#"
SEND_LOG_SORT_KEY = "SENT"
DESTINATION_PARTITION = "DESTINATION"
PARKED_INDEX = "Parked"
PARKED_PARTITION = "FAILED"
TTL_ATTRIBUTE = "expires_at"
MAX_ERROR_LENGTH = 300  # a receiver's answer, as much as a person reads


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    SILENCED = "silenced"
    DROPPED = "dropped"
    HELD = "held"

    @property
    def deliverable(self) -> bool:
        """Still to be sent: what the delivery function acts on."""
        return self in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.SILENCED, DeliveryStatus.DROPPED)


def pacing_pk(pacing_key: str) -> str:
    return f"PACE#{pacing_key}"


def delivery_key(pacing_key: str, alert_id: str, destination: str) -> Key:
    return {"pk": {"S": pacing_pk(pacing_key)}, "sk": {"S": f"{DELIVERY_PREFIX}{alert_id}#{destination}"}}


def send_log_key(pacing_key: str) -> Key:
    return {"pk": {"S": pacing_pk(pacing_key)}, "sk": {"S": SEND_LOG_SORT_KEY}}


def destination_key(name: str) -> Key:
    return {"pk": {"S": DESTINATION_PARTITION}, "sk": {"S": name}}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (alert, destination) pair as stored."""

    pacing_key: str
    destination: str
    notice: AlertNotice
    status: DeliveryStatus
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    message_id: str | None = None  # the receiver's: SNS message id, Telegram message id, ...
    digest_of: int | None = None  # how many alerts the message that carried it had, if more than one

    @property
    def key(self) -> Key:
        return delivery_key(self.pacing_key, self.notice.alert_id, self.destination)


def new_delivery_item(pacing_key: str, destination: str, notice: AlertNotice, retention: timedelta) -> AttributeMap:
    """What the alerts function writes for each destination of a recorded alert (conditionally:
    a redelivered batch must never turn a delivered one back into pending)."""
    return serialize(
        {
            **_plain(delivery_key(pacing_key, notice.alert_id, destination)),
            "destination": destination,
            "alert_id": notice.alert_id,
            "symbol": notice.symbol,
            "fired_at": format_instant(notice.fired_at),
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "notice": notice.encode(),
            TTL_ATTRIBUTE: int((notice.fired_at + retention).timestamp()),
        }
    )


def delivery_from_item(values: dict[str, Any]) -> Delivery:
    """A deserialized delivery item (or a stream image, deserialized) -> Delivery."""
    import json

    pacing_key = values["pk"].removeprefix("PACE#")
    delivered_at = values.get("delivered_at")
    return Delivery(
        pacing_key=pacing_key,
        destination=values["destination"],
        notice=AlertNotice.from_json(json.loads(values["notice"])),
        status=DeliveryStatus(values["status"]),
        attempts=int(values.get("attempts", 0)),
        last_error=values.get("last_error"),
        delivered_at=datetime.fromisoformat(delivered_at.replace("Z", "+00:00")) if delivered_at else None,
        message_id=values.get("message_id"),
        digest_of=int(values["digest_of"]) if values.get("digest_of") else None,
    )


def with_outcome(
    values: dict[str, Any],
    status: DeliveryStatus,
    *,
    attempts: int,
    at: datetime,
    error: str | None = None,
    message_id: str | None = None,
    digest_of: int | None = None,
) -> dict[str, Any]:
    """A delivery item's values (as read) with what happened to it, to put back whole. Only the
    delivery function writes a delivery it is sending, one receiver at a time (its partition comes
    from the stream in order), so a put needs no condition; `replay` touches parked ones only."""
    updated = {name: value for name, value in values.items() if name not in ("parked", "parked_key")}
    updated |= {"status": status.value, "attempts": attempts, "updated_at": format_instant(at)}
    if error is not None:
        updated["last_error"] = error[:MAX_ERROR_LENGTH]
    if status is DeliveryStatus.DELIVERED:
        updated["delivered_at"] = format_instant(at)
        if message_id is not None:
            updated["message_id"] = message_id
        if digest_of is not None and digest_of > 1:
            updated["digest_of"] = digest_of
    if status is DeliveryStatus.FAILED:
        updated["parked"] = PARKED_PARTITION
        updated["parked_key"] = f"{format_instant(at)}#{values['destination']}#{values['alert_id']}"
    return updated


def replay_update(delivery_key_value: Key, at: datetime) -> dict[str, Any]:
    """UpdateItem arguments putting a parked delivery back to pending (the stream passes it on to
    the delivery function again), on the condition that it is still parked."""
    return {
        "Key": delivery_key_value,
        "UpdateExpression": "SET #status = :pending, attempts = :zero, updated_at = :at REMOVE parked, parked_key",
        "ConditionExpression": "#status = :failed",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {
            ":pending": {"S": DeliveryStatus.PENDING.value},
            ":failed": {"S": DeliveryStatus.FAILED.value},
            ":zero": {"N": "0"},
            ":at": {"S": format_instant(at)},
        },
    }


# --- destinations -------------------------------------------------------------------------------


def destination_to_item(
    destination: Destination, created_at: datetime, subscription_arn: str | None = None
) -> AttributeMap:
    quiet = destination.quiet_hours
    return serialize(
        {
            **_plain(destination_key(destination.name)),
            "kind": destination.kind.value,
            "target": destination.target,
            "secret_name": destination.secret_name,
            "template": destination.template,
            "rate": destination.rate.text if destination.rate else None,
            "symbols": list(destination.symbols) or None,
            "quiet_hours": f"{quiet.start:%H:%M}-{quiet.end:%H:%M}" if quiet else None,
            "quiet_tz": quiet.zone if quiet else None,
            "quiet_then": quiet.then if quiet else None,
            "subscription_arn": subscription_arn,
            "created_at": format_instant(created_at),
        }
    )


def destination_from_item(values: dict[str, Any]) -> Destination:
    from tickwatch_core.domain.delivery.pacing import parse_rate

    quiet = None
    if values.get("quiet_hours"):
        start, end = values["quiet_hours"].split("-")
        quiet = QuietHours(time.fromisoformat(start), time.fromisoformat(end), values["quiet_tz"], values["quiet_then"])
    rate: RateLimit | None = parse_rate(values["rate"]) if values.get("rate") else None
    return Destination(
        name=values["sk"],
        kind=DestinationKind(values["kind"]),
        target=values["target"],
        secret_name=values.get("secret_name"),
        template=values.get("template"),
        rate=rate,
        symbols=tuple(values.get("symbols") or ()),
        quiet_hours=quiet,
    )


def send_log_item(pacing_key: str, log: SendLog) -> AttributeMap:
    return serialize({**_plain(send_log_key(pacing_key)), "sent": log.encode() or None})


def _plain(key: Key) -> dict[str, str]:
    return {name: value["S"] for name, value in key.items()}


def now_utc() -> datetime:
    return datetime.now(UTC)


def keys_of(deliveries: Iterable[Delivery]) -> list[Key]:
    return [delivery.key for delivery in deliveries]
