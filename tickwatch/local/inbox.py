"""The local inbox: what an e-mail subscriber of the alert topic would receive.

An SQS queue is subscribed to the topic with the filter policy template.yaml gives the e-mail
subscription (AlertSymbols), so it receives exactly the alerts the e-mail address would. Each alert
is printed as it arrives and saved as an `.eml` file with the subject and body SNS e-mail uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from tickwatch.template import Template

EMAIL_SUBSCRIPTION = "AlertEmailSubscription"
SNS_EMAIL_FOOTER = (
    "\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below "
    "to unsubscribe:\nhttps://sns.{region}.amazonaws.com/unsubscribe.html?SubscriptionArn={subscription}&Endpoint={endpoint}\n\n"
    "Please do not reply directly to this email. If you have any questions or comments regarding this email, "
    "please contact us at https://aws.amazon.com/support\n"
)


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    subject: str
    body: str
    attributes: dict[str, str]
    message_id: str
    timestamp: str
    path: Path


class Inbox:
    def __init__(
        self,
        session: Any,
        queue_url: str,
        subscription_arn: str,
        outbox: Path,
        display_name: str,
        recipient: str,
        region: str,
        on_alert: Callable[[ReceivedAlert], None] | None,
    ) -> None:
        self.session = session
        self.queue_url = queue_url
        self.subscription_arn = subscription_arn
        self.outbox = outbox
        self.display_name = display_name
        self.recipient = recipient
        self.region = region
        self.on_alert = on_alert
        self.received: list[ReceivedAlert] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def subscribe(
        cls, template: Template, session: Any, outbox: Path, on_alert: Callable[[ReceivedAlert], None] | None = None
    ) -> Inbox:
        """Subscribe a queue to the topic the way the template subscribes the e-mail address."""
        properties = template.properties(EMAIL_SUBSCRIPTION)
        sqs, sns = session.client("sqs"), session.client("sns")
        queue_url = sqs.create_queue(QueueName=f"{template.stack_name}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {}
        if "FilterPolicy" in properties:
            attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
            attributes["FilterPolicyScope"] = properties.get("FilterPolicyScope", "MessageAttributes")
        subscription = sns.subscribe(
            TopicArn=properties["TopicArn"],
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        topic = template.properties("AlertTopic")
        outbox.mkdir(parents=True, exist_ok=True)
        return cls(
            session,
            queue_url,
            subscription,
            outbox,
            display_name=topic.get("DisplayName", "AWS Notifications"),
            recipient=properties.get("Endpoint") or "you@example.com",
            region=template.region,
            on_alert=on_alert,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.drain()

    def drain(self) -> None:
        """Fetch everything waiting now."""
        while self._receive(wait=0):
            pass

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._receive(wait=1)

    def _receive(self, wait: int) -> int:
        sqs = self.session.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        )
        for message in messages:
            alert = self._save(json.loads(message["Body"]))
            with self._lock:
                self.received.append(alert)
            if self.on_alert:
                self.on_alert(alert)
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _save(self, notification: dict[str, Any]) -> ReceivedAlert:
        attributes = {name: value["Value"] for name, value in notification.get("MessageAttributes", {}).items()}
        sent = datetime.fromisoformat(notification["Timestamp"].replace("Z", "+00:00"))
        email = EmailMessage()
        email["From"] = f'"{self.display_name}" <no-reply@sns.amazonaws.com>'
        email["To"] = self.recipient
        email["Subject"] = notification.get("Subject", "")
        email["Date"] = format_datetime(sent)
        email["Message-ID"] = f"<{notification['MessageId']}@sns.amazonaws.com>"
        footer = SNS_EMAIL_FOOTER.format(
            region=self.region, subscription=self.subscription_arn, endpoint=self.recipient
        )
        email.set_content(notification["Message"] + footer, cte="8bit")
        name = f"{sent:%Y%m%dT%H%M%S}-{_symbols(attributes)}-{notification['MessageId'][:8]}.eml"
        path = self.outbox / name
        path.write_bytes(bytes(email))
        return ReceivedAlert(
            notification.get("Subject", ""),
            notification["Message"],
            attributes,
            notification["MessageId"],
            notification["Timestamp"],
            path,
        )


def _symbols(attributes: dict[str, Any]) -> str:
    """The message's symbol for a file name: a String (the alerts function's) or a String.Array
    (the delivery function's, which a digest of several symbols needs), joined with +."""
    value = attributes.get("symbol")
    if not value:
        return "alert"
    if value.startswith("["):
        try:
            return "+".join(json.loads(value)) or "alert"
        except ValueError:
            return "alert"
    return value
