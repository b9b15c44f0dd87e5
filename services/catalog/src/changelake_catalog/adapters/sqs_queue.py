"""SQS adapter of :class:`~changelake_catalog.ports.MessageQueue` (injected boto3 client)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from changelake.adapters import aws

from changelake_catalog.exceptions import QueueError
from changelake_catalog.ports import QueueMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

_BATCH = 10  # SQS batch-call limit


class SqsQueue:
    """One SQS queue, by URL."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = client or aws.sqs()

    @classmethod
    def from_name(cls, name: str, client: SQSClient | None = None) -> SqsQueue:
        """Resolve the queue URL from its name."""
        sqs = client or aws.sqs()
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"SQS queue {name!r} not found: {exc}", aws.error_code(exc)) from exc
        return cls(url, sqs)

    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]:
        """Long-poll up to ``max_messages`` messages."""
        try:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"SQS receive failed: {exc}", aws.error_code(exc)) from exc
        return [
            QueueMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in response.get("Messages", [])
        ]

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Delete in batches of 10; an undeleted message is redelivered (work is idempotent)."""
        for start in range(0, len(messages), _BATCH):
            chunk = messages[start : start + _BATCH]
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                        for i, m in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                raise QueueError(f"SQS delete failed: {exc}", aws.error_code(exc)) from exc
            for failed in response.get("Failed", []):
                log.warning("message not deleted; it will be redelivered", extra={"entry": failed})

    def retry_later(self, messages: Sequence[QueueMessage], delay_seconds: int) -> None:
        """Set the visibility timeout of failed messages so they come back after the delay."""
        for start in range(0, len(messages), _BATCH):
            chunk = messages[start : start + _BATCH]
            try:
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(i),
                            "ReceiptHandle": m.receipt_handle,
                            "VisibilityTimeout": delay_seconds,
                        }
                        for i, m in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                # The message still comes back after the queue's own visibility timeout.
                log.warning("could not shorten visibility", extra={"error": str(exc)})
