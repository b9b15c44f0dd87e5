"""Fixtures of the lake-maintenance tests (snapshot, erase): an empty lake at the moto endpoint."""

from __future__ import annotations

import boto3
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_catalog.adapters.glue_registry import GlueRegistry
from changelake_catalog.snapshot import Lake
from changelake_lake.query.glue_catalog import GlueCatalog
from changelake_lake.query.s3_objects import S3Objects

LAKE_BUCKET = "maintenance-lake"


@pytest.fixture
def lake(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """An empty lake bucket and Glue database at the moto endpoint (CLI settings point there)."""
    del aws_endpoint
    monkeypatch.setenv("CHANGELAKE_LAKE_BUCKET", LAKE_BUCKET)
    boto3.client("s3").create_bucket(Bucket=LAKE_BUCKET)
    registry = GlueRegistry(LAKE_BUCKET, "changelake", attempts=2, backoff_seconds=0)
    registry.ensure_database()
    return Lake(registry, GlueCatalog(), S3Objects(), S3ObjectStore(LAKE_BUCKET))
