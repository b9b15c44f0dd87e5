"""Does ``<table>_current`` equal the DynamoDB table? Scan the table and compare item by item.

The view's ``new_image`` is the item rendered by :func:`changelake.ddb_json.image_to_json`
(numbers exact, sets sorted); each scanned item is rendered the same way, so equality is exact
text equality per ``item_key``, and a deleted item must be absent from both sides.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from changelake import ddb_json
from changelake.adapters import aws
from changelake.events import item_key
from changelake.privacy import PrivacyPolicy

from changelake_lake.layout import current_view_name
from changelake_lake.query.model import QueryResult


class SqlEngine(Protocol):
    """What the check needs of an engine: the local one or Athena (same SQL text)."""

    def run(self, sql: str, params: Sequence[str] = ()) -> QueryResult:
        """Run one query and return every row."""
        ...


@dataclass(frozen=True, slots=True)
class CurrentCheck:
    """Outcome of comparing the view with a Scan of the table."""

    table_items: int
    view_items: int
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """True when both hold exactly the same items with the same images."""
        return not (self.missing or self.extra or self.different)


def scan_images(
    table: str,
    client: Any | None = None,
    privacy: PrivacyPolicy | None = None,
    *,
    segment: tuple[int, int] | None = None,
) -> dict[str, str]:
    """Every item of a DynamoDB table as ``item_key → image JSON`` (consistent, paginated).

    With ``privacy``, each item first goes through the same policy the lake's writers apply.
    ``segment`` = ``(index, total)`` scans only that parallel-Scan segment (a hash range of the
    partition key: a sample of about ``1/total`` of the items).
    """
    ddb = client or aws.dynamodb()
    keys = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    images: dict[str, str] = {}
    scan: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if segment is not None:
        scan |= {"Segment": segment[0], "TotalSegments": segment[1]}
    for page in ddb.get_paginator("scan").paginate(**scan):
        for raw in page.get("Items", []):
            wire = {k: boto_to_ddb_json(v) for k, v in raw.items()}
            if privacy is not None:
                wire = privacy.redact_image(table, wire)
            image = ddb_json.deserialize_image(wire)
            rendered = ddb_json.image_to_json(image)
            assert rendered is not None
            images[item_key({k: image[k] for k in keys})] = rendered
    return images


def boto_to_ddb_json(value: Any) -> Any:
    """boto3 returns binary (B, BS) as bytes; the codec reads DynamoDB JSON, where it is base64."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((tag, inner),) = value.items()
    if tag == "B" and isinstance(inner, bytes | bytearray):
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in inner]}
    if tag == "M":
        return {"M": {k: boto_to_ddb_json(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [boto_to_ddb_json(v) for v in inner]}
    return value


def view_images(engine: SqlEngine, table: str) -> dict[str, str]:
    """Every row of ``<table>_current`` as ``item_key → new_image`` (raises on duplicates)."""
    result = engine.run(f"SELECT item_key, new_image FROM {current_view_name(table)}")
    images: dict[str, str] = {}
    for key, image in result.rows:
        if key in images:
            raise AssertionError(f"{current_view_name(table)} has item {key} twice")
        images[str(key)] = str(image)
    return images


def compare(
    engine: SqlEngine,
    table: str,
    client: Any | None = None,
    privacy: PrivacyPolicy | None = None,
) -> CurrentCheck:
    """Compare the view (local engine or Athena) with a Scan of the table (policy applied)."""
    lake = view_images(engine, table)
    source = scan_images(table, client, privacy)
    return CurrentCheck(
        table_items=len(source),
        view_items=len(lake),
        missing=sorted(source.keys() - lake.keys()),
        extra=sorted(lake.keys() - source.keys()),
        different=sorted(k for k in source.keys() & lake.keys() if source[k] != lake[k]),
    )
