"""SQS adapter: a queue's dead-letter queue, found through its redrive policy (AWS or local).

The dead-letter queue is the one the work queue's ``RedrivePolicy`` names (the CDK stack lets
CloudFormation name it; the emulator calls it ``<queue>-dlq``), so nothing assumes a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from changelake.adapters import aws


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message received from the dead-letter queue."""

    message_id: str
    receipt_handle: str
    body: str
    sent_timestamp_ms: int
    attributes: dict[str, Any]


class DeadLetters:
    """The work queue and its dead-letter queue."""

    def __init__(self, sqs: Any, queue_url: str, dlq_url: str) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    @classmethod
    def of(cls, queue: str, sqs: Any | None = None) -> DeadLetters | None:
        """The dead letters of queue ``queue`` (a name); ``None`` if it has no redrive policy."""
        sqs = sqs or aws.sqs()
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        arn = str(orjson.loads(policy)["deadLetterTargetArn"])
        account, name = arn.split(":")[4], arn.split(":")[5]
        dlq_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return cls(sqs, str(url), str(dlq_url))

    def depth(self) -> int:
        """Messages in the dead-letter queue, visible or in flight."""
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def receive(self, visibility_s: int = 60) -> Iterator[DeadLetter]:
        """Receive dead letters until the queue answers empty (each stays hidden meanwhile)."""
        while True:
            resp = self._sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=visibility_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = resp.get("Messages", [])
            if not messages:
                return
            for m in messages:
                attrs = m.get("Attributes", {})
                yield DeadLetter(
                    m["MessageId"],
                    m["ReceiptHandle"],
                    m["Body"],
                    int(attrs.get("SentTimestamp", 0)),
                    m.get("MessageAttributes", {}),
                )

    def move_back(self, letter: DeadLetter) -> None:
        """Send the message to the work queue, then delete it from the dead-letter queue."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": letter.body}
        if letter.attributes:
            kwargs["MessageAttributes"] = letter.attributes
        self._sqs.send_message(**kwargs)
        self._sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt_handle)

    def release(self, letter: DeadLetter) -> None:
        """Make a received message visible again at once (a dry run leaves it where it was)."""
        self._sqs.change_message_visibility(
            QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
        )
