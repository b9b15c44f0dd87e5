"""A small, fixed lake (Parquet changes, JSON raw records, Glue tables, partitions and views).

Tests of the local engine and the named queries run against it, with expectations computed by
hand from the events below; it needs only S3 and Glue at ``AWS_ENDPOINT_URL`` (moto).

Events of table ``persons`` (key ``pk``), 2024-05-01, UTC:

====  ==========  ======  =====================  =====================================
id    time        kind    item                   note
====  ==========  ======  =====================  =====================================
e01   10:00       INSERT  p1 Ann ann@a 30
e02   10:05       INSERT  p2 Bob bob@b 40
e03   10:30       MODIFY  p1 email → ann@new     stored twice (duplicate delivery)
e04   11:00       INSERT  p3 Cy cy@c 25
e05   11:10       REMOVE  p2                     user delete
e06   11:20       MODIFY  p3 age → 26
e07   12:00       REMOVE  p3                     TTL delete
e08   12:30       MODIFY  p1 name → Anna, email → anna@x, city → Oslo (new column)
e09   12:40:00.5  INSERT  p4 Dee 50              same µs as e10; sequence decides
e10   12:40:00.5  MODIFY  p4 age → 51
e11   13:00       INSERT  p5                     partition 13 NOT registered: invisible
====  ==========  ======  =====================  =====================================
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from changelake.events import changed_attributes
from changelake_lake.athena_view import ViewDefinition, encode_presto_view
from changelake_lake.columns import Column
from changelake_lake.glue_schema import presto_type
from changelake_lake.history_view import history_view_definition
from changelake_lake.views import current_view_sql

BUCKET = "fixture-lake"
DATABASE = "changelake"
DAY = "2024-05-01"

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_IN = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_IN = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

CHANGE_COLUMNS: list[tuple[str, str]] = [
    ("event_id", "string"),
    ("event_name", "string"),
    ("event_time", "timestamp"),
    ("item_key", "string"),
    ("pk", "string"),
    ("new_image", "string"),
    ("old_image", "string"),
    ("changed_attributes", "array<string>"),
    ("is_ttl_delete", "boolean"),
    ("size_bytes", "bigint"),
    ("shard_id", "string"),
    ("sequence_number", "string"),
    ("arrival_time", "timestamp"),
    ("name", "string"),
    ("email", "string"),
    ("age", "bigint"),
    ("city", "string"),
]

# The production view (the catalog service's SQL), over the fixture's columns.
CURRENT_VIEW_SQL = current_view_sql("persons", [name for name, _ in CHANGE_COLUMNS])
CURRENT_VIEW_COLUMNS = tuple((name, presto_type(hive)) for name, hive in CHANGE_COLUMNS)
HISTORY_VIEW = history_view_definition("persons", [Column(n, t) for n, t in CHANGE_COLUMNS])


@dataclass(frozen=True, slots=True)
class Event:
    """One change of the fixture."""

    event_id: str
    kind: str
    at: datetime
    pk: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    seq: str
    ttl: bool = False


def _t(hms: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hms}+00:00")


P1 = {"pk": "p1", "name": "Ann", "email": "ann@a", "age": 30}
P1B = {**P1, "email": "ann@new"}
P1C = {**P1B, "name": "Anna", "email": "anna@x", "city": "Oslo"}
P2 = {"pk": "p2", "name": "Bob", "email": "bob@b", "age": 40}
P3 = {"pk": "p3", "name": "Cy", "email": "cy@c", "age": 25}
P3B = {**P3, "age": 26}
P4 = {"pk": "p4", "name": "Dee", "email": "dee@d", "age": 50}
P4B = {**P4, "age": 51}
P5 = {"pk": "p5", "name": "Eve", "email": "eve@e", "age": 20}

EVENTS: tuple[Event, ...] = (
    Event("e01", "INSERT", _t("10:00:00"), "p1", P1, None, "0001"),
    Event("e02", "INSERT", _t("10:05:00"), "p2", P2, None, "0002"),
    Event("e03", "MODIFY", _t("10:30:00"), "p1", P1B, P1, "0003"),
    Event("e04", "INSERT", _t("11:00:00"), "p3", P3, None, "0004"),
    Event("e05", "REMOVE", _t("11:10:00"), "p2", None, P2, "0005"),
    Event("e06", "MODIFY", _t("11:20:00"), "p3", P3B, P3, "0006"),
    Event("e07", "REMOVE", _t("12:00:00"), "p3", None, P3B, "0007", ttl=True),
    Event("e08", "MODIFY", _t("12:30:00"), "p1", P1C, P1B, "0008"),
    Event("e09", "INSERT", _t("12:40:00.500001"), "p4", P4, None, "0009"),
    Event("e10", "MODIFY", _t("12:40:00.500001"), "p4", P4B, P4, "0010"),
    Event("e11", "INSERT", _t("13:00:00"), "p5", P5, None, "0011"),
)

# Objects of the changes table: (hour, file name, event ids). e03 is in two files (duplicate).
# Hour 12's second file was written before `city` existed; hour 10's files lack it too.
CHANGE_FILES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("10", "shardId-000-0001-0002.parquet", ("e01", "e02")),
    ("10", "shardId-000-0003-0003.parquet", ("e03",)),
    ("10", "shardId-001-0003-0003.parquet", ("e03",)),
    ("11", "shardId-000-0004-0006.parquet", ("e04", "e05", "e06")),
    ("12", "shardId-000-0007-0008.parquet", ("e07", "e08")),
    ("12", "shardId-000-0009-0010.parquet", ("e09", "e10")),
    ("13", "shardId-000-0011-0011.parquet", ("e11",)),
)
REGISTERED_HOURS = ("10", "11", "12")


def _json(image: dict[str, Any] | None) -> str | None:
    return None if image is None else orjson.dumps(image, option=orjson.OPT_SORT_KEYS).decode()


def _parquet(events: list[Event], with_city: bool) -> bytes:
    cols: dict[str, list[Any]] = {name: [] for name, _ in CHANGE_COLUMNS}
    for e in events:
        image = e.new if e.new is not None else (e.old or {})
        cols["event_id"].append(e.event_id)
        cols["event_name"].append(e.kind)
        cols["event_time"].append(e.at)
        cols["item_key"].append(orjson.dumps({"pk": e.pk}).decode())
        cols["pk"].append(e.pk)
        cols["new_image"].append(_json(e.new))
        cols["old_image"].append(_json(e.old))
        cols["changed_attributes"].append(list(changed_attributes(e.old, e.new)))
        cols["is_ttl_delete"].append(e.ttl)
        cols["size_bytes"].append(len(_json(image) or ""))
        cols["shard_id"].append("shardId-000")
        cols["sequence_number"].append(e.seq)
        cols["arrival_time"].append(e.at)
        cols["name"].append(image.get("name"))
        cols["email"].append(image.get("email"))
        cols["age"].append(image.get("age"))
        cols["city"].append(image.get("city"))
    types = {
        "event_time": pa.timestamp("us", tz="UTC"),
        "arrival_time": pa.timestamp("ms", tz="UTC"),
        "changed_attributes": pa.list_(pa.string()),
        "is_ttl_delete": pa.bool_(),
        "size_bytes": pa.int64(),
        "age": pa.int64(),
    }
    arrays = {
        name: pa.array(values, type=types.get(name, pa.string()))
        for name, values in cols.items()
        if with_city or name != "city"
    }
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays), sink)
    return sink.getvalue()


def raw_record(e: Event) -> dict[str, Any]:
    """The Kinesis-for-DynamoDB record of an event, as Firehose stores it in the raw prefix."""
    from changelake.ddb_json import serialize_image

    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(e.at.timestamp() * 1000),
        "Keys": {"pk": {"S": e.pk}},
        "SizeBytes": 100,
    }
    if e.new is not None:
        dynamodb["NewImage"] = serialize_image(e.new)
    if e.old is not None:
        dynamodb["OldImage"] = serialize_image(e.old)
    return {
        "awsRegion": "us-east-1",
        "eventID": e.event_id,
        "eventName": e.kind,
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        if e.ttl
        else None,
        "recordFormat": "application/json",
        "tableName": "persons",
        "dynamodb": dynamodb,
        "eventSource": "aws:dynamodb",
    }


def build(region: str = "us-east-1") -> None:
    """Create the fixture lake in S3 and Glue at ``AWS_ENDPOINT_URL`` (idempotent per reset)."""
    s3: Any = boto3.client("s3", region_name=region)
    glue: Any = boto3.client("glue", region_name=region)
    s3.create_bucket(Bucket=BUCKET)
    by_id = {e.event_id: e for e in EVENTS}
    for hour, name, ids in CHANGE_FILES:
        with_city = hour != "10" and name != "shardId-000-0009-0010.parquet"
        key = f"changes/persons/dt={DAY}/hour={hour}/{name}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=_parquet([by_id[i] for i in ids], with_city))
    # Marker and hidden files that Athena skips.
    s3.put_object(Bucket=BUCKET, Key=f"changes/persons/dt={DAY}/hour=10/_SUCCESS", Body=b"")
    # Raw JSON lines (one object per hour) plus one outside the projected range.
    for hour in ("10", "11", "12", "13"):
        lines = [orjson.dumps(raw_record(e)) for e in EVENTS if e.at.strftime("%H") == hour]
        key = f"raw/persons/dt={DAY}/hour={hour}/changelake-raw-1-{hour}.json"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(lines) + b"\n")
    s3.put_object(
        Bucket=BUCKET,
        Key="raw/persons/dt=2023-12-31/hour=23/old.json",
        Body=orjson.dumps(raw_record(EVENTS[0])) + b"\n",
    )
    s3.put_object(Bucket=BUCKET, Key="raw/persons/notapartition/x.json", Body=b"{}\n")

    glue.create_database(DatabaseInput={"Name": DATABASE})
    part_keys: list[dict[str, str]] = [
        {"Name": "dt", "Type": "string"},
        {"Name": "hour", "Type": "string"},
    ]
    changes_sd: dict[str, Any] = {
        "Columns": [{"Name": n, "Type": t} for n, t in CHANGE_COLUMNS],
        "Location": f"s3://{BUCKET}/changes/persons/",
        "InputFormat": PARQUET_IN,
        "OutputFormat": PARQUET_OUT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
    }
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "persons_changes",
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": changes_sd,
            "PartitionKeys": part_keys,
            "Parameters": {"classification": "parquet"},
        },
    )
    glue.batch_create_partition(
        DatabaseName=DATABASE,
        TableName="persons_changes",
        PartitionInputList=[
            {
                "Values": [DAY, hour],
                "StorageDescriptor": {
                    **changes_sd,
                    "Location": f"s3://{BUCKET}/changes/persons/dt={DAY}/hour={hour}/",
                },
            }
            for hour in REGISTERED_HOURS
        ],
    )
    raw_columns = [
        {"Name": "awsregion", "Type": "string"},
        {"Name": "eventid", "Type": "string"},
        {"Name": "eventname", "Type": "string"},
        {"Name": "useridentity", "Type": "struct<type:string,principalid:string>"},
        {"Name": "tablename", "Type": "string"},
        {
            "Name": "dynamodb",
            "Type": "struct<approximatecreationdatetime:bigint,keys:string,newimage:string,"
            "oldimage:string,sizebytes:bigint>",
        },
    ]
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "persons_raw",
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": {
                "Columns": raw_columns,
                "Location": f"s3://{BUCKET}/raw/persons/",
                "InputFormat": TEXT_IN,
                "OutputFormat": TEXT_OUT,
                "SerdeInfo": {"SerializationLibrary": JSON_SERDE},
            },
            "PartitionKeys": part_keys,
            "Parameters": {
                "classification": "json",
                "projection.enabled": "true",
                "projection.dt.type": "date",
                "projection.dt.format": "yyyy-MM-dd",
                "projection.dt.range": "2024-01-01,NOW",
                "projection.hour.type": "integer",
                "projection.hour.range": "0,23",
                "projection.hour.digits": "2",
                "storage.location.template": f"s3://{BUCKET}/raw/persons/dt=${{dt}}/hour=${{hour}}/",
            },
        },
    )
    create_view(glue, "persons_current", CURRENT_VIEW_SQL, CURRENT_VIEW_COLUMNS)
    create_view(glue, "persons_history", HISTORY_VIEW.sql, HISTORY_VIEW.columns)


def create_view(glue: Any, name: str, sql: str, columns: tuple[tuple[str, str], ...]) -> None:
    """Store an Athena view in Glue (Presto view format), as ``CREATE VIEW`` in Athena does."""
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": name,
            "TableType": "VIRTUAL_VIEW",
            "ViewOriginalText": encode_presto_view(ViewDefinition(sql=sql, columns=columns)),
            "ViewExpandedText": "/* Presto View */",
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in columns],
                "SerdeInfo": {},
            },
            "Parameters": {"presto_view": "true", "comment": "Presto View"},
        },
    )


def moment(hms: str) -> datetime:
    """An aware UTC datetime on the fixture day (engines return Hive timestamps so)."""
    return _t(hms).astimezone(UTC)
