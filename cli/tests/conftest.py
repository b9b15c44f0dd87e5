"""Fixtures of the CLI tests: an empty lake for snapshot and erase, the product-written lake
for the query tests."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_catalog.snapshot import Lake
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.s3_objects import S3Objects

LAKE_BUCKET = "maintenance-lake"


@pytest.fixture
def lake(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """An empty lake bucket and Glue database at the moto endpoint (CLI settings point there)."""
    del aws_endpoint
    monkeypatch.setenv("CHANGELAKE_LAKE_BUCKET", LAKE_BUCKET)
    boto3.client("s3").create_bucket(Bucket=LAKE_BUCKET)
    catalog = GlueCatalog(LAKE_BUCKET, "changelake", attempts=2, backoff_seconds=0)
    catalog.ensure_database()
    return Lake(catalog, S3Objects(), S3ObjectStore(LAKE_BUCKET))


@pytest.fixture(scope="session")
def product_lake_endpoint() -> Iterator[str]:
    """The query tests' lake, written once per session by the product's own code
    (tests/changelake_product_lake.py) into a moto server of its own."""
    import changelake_product_lake

    with changelake_product_lake.served() as endpoint:
        yield endpoint


@pytest.fixture
def product_lake(product_lake_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every boto3 client of the test at the product-written lake (read only)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", product_lake_endpoint)
    return product_lake_endpoint


@pytest.fixture
def engine(product_lake: str) -> LocalEngine:
    """A local engine over the product-written lake."""
    del product_lake
    return LocalEngine()
