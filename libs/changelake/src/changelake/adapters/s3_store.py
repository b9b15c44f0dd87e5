"""S3 adapter of :class:`~changelake.ports.ObjectStore` (bytes through boto3, one client policy).

pyarrow's own S3 filesystem ignores ``AWS_ENDPOINT_URL``; writing bytes through boto3 keeps
one client policy that works against AWS and the emulator alike (docs/aws-behaviour.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from changelake.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def write_client() -> S3Client:
    """An S3 client that does not retry by itself: the caller's write budget counts every try.

    The default policy (``aws.client_config``) retries 8 times in adaptive mode, ~45-60 s per
    call; under a caller's own retry loop that multiplied the budget (issue 18, finding 7).
    """
    return aws.client(  # type: ignore[no-any-return]
        "s3", retries={"mode": "standard", "total_max_attempts": 1}
    )


class S3ObjectStore:
    """Objects in one bucket; ``put`` returns once S3 acknowledged the write."""

    def __init__(
        self, bucket: str, client: S3Client | None = None, *, put_client: S3Client | None = None
    ) -> None:
        self.bucket = bucket
        self._s3 = client or aws.s3()
        self._put_s3 = put_client or self._s3

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """PUT the object (raises on failure; retried by ``put_client``'s policy first)."""
        self._put_s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """GET the object or an inclusive byte range of it."""
        try:
            if byte_range is None:
                resp = self._s3.get_object(Bucket=self.bucket, Key=key)
            else:
                start, end = byte_range
                resp = self._s3.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
                )
        except self._s3.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        return resp["Body"].read()

    def size(self, key: str) -> int:
        """HEAD the object for its size."""
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except self._s3.exceptions.ClientError as exc:
            if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(key) from exc
            raise

    def list(self, prefix: str) -> Iterator[str]:
        """List keys under a prefix (paginated)."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def delete(self, key: str) -> None:
        """DELETE the object (S3 answers 204 whether it existed or not)."""
        self._s3.delete_object(Bucket=self.bucket, Key=key)
