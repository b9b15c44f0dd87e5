"""S3 reads for the local engine: list a partition's objects and fetch their bytes through boto3.

pyarrow's S3 filesystem ignores ``AWS_ENDPOINT_URL`` (docs/aws-behaviour.md), so every byte comes
through boto3 with the project's client policy. Objects are cached by (bucket, key, ETag): a
repeated query re-lists (and so sees new files) but does not re-download unchanged ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from changelake.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FETCH_THREADS = 8


@dataclass(frozen=True, slots=True)
class S3Object:
    """A listed object: where it is, its size, ETag and last-modified time (UTC)."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime

    @property
    def uri(self) -> str:
        """``s3://bucket/key``: the value of Athena's ``"$path"`` column."""
        return f"s3://{self.bucket}/{self.key}"


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix); ``s3a://`` and ``s3n://`` accepted."""
    for scheme in ("s3://", "s3a://", "s3n://"):
        if uri.startswith(scheme):
            bucket, _, prefix = uri[len(scheme) :].partition("/")
            return bucket, prefix
    raise ValueError(f"not an S3 location: {uri!r}")


class S3Objects:
    """Lists and fetches objects (with an in-memory cache) for the local engine."""

    def __init__(self, client: S3Client | None = None, region: str | None = None) -> None:
        self._s3 = client or aws.s3(region)
        self._cache: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def list_objects(self, uri: str, *, folder: bool = True) -> Iterator[S3Object]:
        """Data objects under an S3 location (all pages; hidden and marker files skipped).

        ``folder`` treats the location as a folder (``…/x`` lists ``…/x/``); ``False`` lists a
        raw key prefix (a projection template's fixed part, such as ``…/dt=``).
        """
        bucket, prefix = split_uri(uri)
        if folder and prefix and not prefix.endswith("/"):
            prefix += "/"
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                name = key.rsplit("/", 1)[-1]
                # Athena skips names starting with '_' or '.', and folder markers.
                if not name or name.startswith(("_", ".")) or key.endswith("$folder$"):
                    continue
                yield S3Object(
                    bucket, key, int(obj["Size"]), str(obj.get("ETag", "")), obj["LastModified"]
                )

    def fetch(self, objects: Sequence[S3Object]) -> list[bytes]:
        """The bytes of each object, in order (parallel GETs; cached by ETag)."""
        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            return list(pool.map(self._get, objects))

    def _get(self, obj: S3Object) -> bytes:
        key = (obj.bucket, obj.key, obj.etag)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        data: bytes = self._s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
        with self._lock:
            self._cache[key] = data
        return data
