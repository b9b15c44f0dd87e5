"""Fixtures of the maintenance tests: an empty lake, and one written by the product's writers."""

from __future__ import annotations

import boto3
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.layout import DATABASE
from maintenance_lake import BUCKET, LakeFixture, processor, workload


@pytest.fixture
def lake(aws_endpoint: str) -> LakeFixture:
    """An empty bucket and Glue database."""
    del aws_endpoint
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    catalog = GlueCatalog(BUCKET, DATABASE)
    catalog.ensure_database()
    return LakeFixture(S3ObjectStore(BUCKET), catalog)


@pytest.fixture
def written(lake: LakeFixture) -> LakeFixture:
    """The workload written by the consumer's processor and registered by the catalog."""
    proc = processor(lake.store)
    proc.process(workload(120))
    proc.flush_all()
    lake.register()
    return lake
