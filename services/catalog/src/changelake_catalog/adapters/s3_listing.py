"""S3 listing with object sizes (``ListObjectsV2`` returns them; saves a HEAD per footer read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from changelake.adapters import aws

from changelake_catalog.exceptions import QueueError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Listing:
    """Keys and sizes under a prefix of one bucket (paginated, lexicographic)."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._s3 = client or aws.s3()

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``."""
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"])
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(
                f"S3 listing of {prefix!r} failed: {exc}", aws.error_code(exc)
            ) from exc
