"""SQS in tests: whether a queue is drained (the catalog's tests and the fault tests)."""

from __future__ import annotations

from typing import Any


def queue_drained(sqs: Any, queue_url: str) -> bool:
    """No message on the queue, neither visible nor in flight (received, not yet deleted)."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return bool(
        attrs["ApproximateNumberOfMessages"]
        == "0"
        == attrs["ApproximateNumberOfMessagesNotVisible"]
    )
