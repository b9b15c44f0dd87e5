"""Glue ``TableInput``/``PartitionInput`` documents for the lake's tables. Pure (no SDK calls).

* ``<table>_changes``: Parquet under ``changes/<table>/``, partition keys ``dt``, ``hour``
  (strings), registered partitions (no projection: every engine sees the same partitions).
* ``<table>_raw``: Firehose's JSON lines under ``raw/<table>/``, partition projection on
  ``dt`` (date ``yyyy-MM-dd``) and ``hour`` (integer 0-23, two digits) with a
  ``storage.location.template``, so Athena can query it without any partition registration.
* ``<table>_current``: an Athena view (``VIRTUAL_VIEW``, Presto view text).
* ``<table>_errors`` (``errors/consumer/<table>/``, dt/hour projection) and
  ``firehose_error_records`` (``errors/firehose/<type>/<day>/``): quarantined records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from changelake_lake.athena_view import EXPANDED_TEXT, encode_presto_view
from changelake_lake.columns import Column
from changelake_lake.layout import (
    ERRORS,
    FIREHOSE_ERRORS_TABLE,
    PARTITION_KEYS,
    Partition,
    changes_partition_prefix,
    changes_prefix,
    changes_table_name,
    current_view_name,
    errors_prefix,
    errors_table_name,
    raw_prefix,
    raw_table_name,
)
from changelake_lake.snapshot_view import (
    SNAPSHOT_KEY,
    SNAPSHOT_PARAMETER,
    SnapshotState,
    snapshot_prefix,
    snapshot_table_name,
    snapshots_prefix,
)
from changelake_lake.views import RANK_COLUMN, current_view_definition

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
RAW_PROJECTION_START = "2020-01-01"
SOURCE_PARAMETER = "changelake.source_table"
# Column naming (ADR 0018): each attribute column's DynamoDB path is in its parameters.
PATH_PARAMETER = "changelake.attribute_path"
NAMING_PARAMETER = "changelake.column_naming"
NAMING_RULE = "one column per attribute path; see docs/adr/0018 (column comment = path)"

# Glue returns these with a table; TableInput must not carry them.
_READ_ONLY = {
    "DatabaseName",
    "CreateTime",
    "UpdateTime",
    "CreatedBy",
    "IsRegisteredWithLakeFormation",
    "CatalogId",
    "VersionId",
    "FederatedTable",
    "IsMultiDialectView",
    "Status",
    "LastAccessTime",
    "LastAnalyzedTime",
    "IsMaterializedView",
}

# The Kinesis-for-DynamoDB record as the OpenX JSON SerDe reads it (names case-folded);
# nested DynamoDB-JSON objects are declared string and read back as JSON text.
RAW_COLUMNS: tuple[Column, ...] = (
    Column("awsregion", "string"),
    Column("eventid", "string"),
    Column("eventname", "string"),
    Column("useridentity", "struct<type:string,principalid:string>"),
    Column("recordformat", "string"),
    Column("tablename", "string"),
    Column("eventsource", "string"),
    Column(
        "dynamodb",
        "struct<approximatecreationdatetime:bigint,approximatecreationdatetimeprecision:string,"
        "keys:string,newimage:string,oldimage:string,sizebytes:bigint>",
    ),
)

CONSUMER_ERROR_SOURCE = "consumer"
# A consumer error line (changelake_consumer.service._error_line), table implied by the path.
ERROR_COLUMNS: tuple[Column, ...] = (
    Column("reason", "string"),
    Column("data_base64", "string"),
    Column("shard_id", "string"),
    Column("sequence_number", "string"),
    Column("arrival_time", "string"),
    Column("error_time", "string"),
)
# Firehose's error record (names case-folded as the OpenX SerDe reads them).
FIREHOSE_ERROR_COLUMNS: tuple[Column, ...] = (
    Column("attemptsmade", "bigint"),
    Column("arrivaltimestamp", "bigint"),
    Column("errorcode", "string"),
    Column("errormessage", "string"),
    Column("attemptendingtimestamp", "bigint"),
    Column("rawdata", "string"),
    Column("lambdaarn", "string"),
)


def glue_columns(columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Glue ``Columns`` entries; an attribute column names its DynamoDB path (ADR 0018)."""
    out: list[dict[str, Any]] = []
    for c in columns:
        entry: dict[str, Any] = {"Name": c.name, "Type": c.type}
        if c.attribute_path is not None:
            entry["Comment"] = f"DynamoDB attribute {c.attribute_path}"[:255]
            entry["Parameters"] = {PATH_PARAMETER: c.attribute_path}
        out.append(entry)
    return out


def columns_from_glue(entries: Sequence[Mapping[str, Any]]) -> tuple[Column, ...]:
    """Columns back from a Glue ``StorageDescriptor``."""
    return tuple(
        Column(
            str(e["Name"]),
            str(e["Type"]),
            (e.get("Parameters") or {}).get(PATH_PARAMETER),
        )
        for e in entries
    )


def _partition_keys() -> list[dict[str, str]]:
    return [{"Name": k, "Type": "string"} for k in PARTITION_KEYS]


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def _parquet_descriptor(location: str, columns: Sequence[Column]) -> dict[str, Any]:
    return {
        "Columns": glue_columns(columns),
        "Location": location,
        "InputFormat": PARQUET_INPUT,
        "OutputFormat": PARQUET_OUTPUT,
        "Compressed": False,
        "SerdeInfo": {
            "SerializationLibrary": PARQUET_SERDE,
            "Parameters": {"serialization.format": "1"},
        },
        "StoredAsSubDirectories": False,
    }


def changes_table_input(table: str, bucket: str, columns: Sequence[Column]) -> dict[str, Any]:
    """``TableInput`` of ``<table>_changes``."""
    return {
        "Name": changes_table_name(table),
        "Description": f"Every change of DynamoDB table {table} (changelake)",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "typeOfData": "file",
            SOURCE_PARAMETER: table,
            NAMING_PARAMETER: NAMING_RULE,
        },
        "PartitionKeys": _partition_keys(),
        "StorageDescriptor": _parquet_descriptor(s3_url(bucket, changes_prefix(table)), columns),
    }


def with_columns(table_input: Mapping[str, Any], columns: Sequence[Column]) -> dict[str, Any]:
    """A copy of a ``TableInput`` with its storage descriptor's columns replaced."""
    new = dict(table_input)
    new["StorageDescriptor"] = {
        **table_input["StorageDescriptor"],
        "Columns": glue_columns(columns),
    }
    return new


def table_input_from(table: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TableInput`` that recreates a table returned by ``GetTable`` (read-only fields out)."""
    return {k: v for k, v in table.items() if k not in _READ_ONLY}


def partition_input(
    table: str, bucket: str, partition: Partition, columns: Sequence[Column]
) -> dict[str, Any]:
    """``PartitionInput`` of one (dt, hour) partition, with exactly the table's columns."""
    location = s3_url(bucket, changes_partition_prefix(table, partition))
    return {
        "Values": partition.values,
        "StorageDescriptor": _parquet_descriptor(location, columns),
        "Parameters": {"classification": "parquet"},
    }


def raw_table_input(table: str, bucket: str) -> dict[str, Any]:
    """``TableInput`` of ``<table>_raw`` with partition projection on dt/hour."""
    return _json_lines_table(
        raw_table_name(table),
        f"Original Kinesis records of DynamoDB table {table} (Firehose, JSON lines)",
        s3_url(bucket, raw_prefix(table)),
        RAW_COLUMNS,
        table,
    )


def errors_table_input(table: str, bucket: str) -> dict[str, Any]:
    """``TableInput`` of ``<table>_errors``: the consumer's quarantined records (ADR 0031)."""
    return _json_lines_table(
        errors_table_name(table),
        f"Records of DynamoDB table {table} the consumer quarantined (reason, original bytes)",
        s3_url(bucket, errors_prefix(CONSUMER_ERROR_SOURCE, table)),
        ERROR_COLUMNS,
        table,
    )


def firehose_errors_table_input(bucket: str) -> dict[str, Any]:
    """``TableInput`` of ``firehose_error_records``: Firehose's error output, every table.

    Firehose names the folders by error type and arrival day (not Hive style), so the
    projection's template spells them: ``errors/firehose/${error_type}/${day}/``.
    """
    location = s3_url(bucket, f"{ERRORS}/firehose/")
    table = _json_lines_table(
        FIREHOSE_ERRORS_TABLE,
        "Records Firehose could not deliver (ProcessingFailed, partitioning failed), raw bytes",
        location,
        FIREHOSE_ERROR_COLUMNS,
        None,
    )
    table["PartitionKeys"] = [
        {"Name": "error_type", "Type": "string"},
        {"Name": "day", "Type": "string"},
    ]
    table["Parameters"] = {
        "classification": "json",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "projection.error_type.type": "enum",
        "projection.error_type.values": "processing-failed,partitioning-failed",
        "projection.day.type": "date",
        "projection.day.format": "yyyy-MM-dd",
        "projection.day.range": f"{RAW_PROJECTION_START},NOW",
        "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS",
        "storage.location.template": location + "${error_type}/${day}/",
    }
    return table


def _json_lines_table(
    name: str, description: str, location: str, columns: Sequence[Column], source: str | None
) -> dict[str, Any]:
    """A JSON-lines table under ``location`` with partition projection on dt/hour."""
    parameters = {
        "classification": "json",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{RAW_PROJECTION_START},NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": location + "dt=${dt}/hour=${hour}/",
    }
    if source is not None:
        parameters[SOURCE_PARAMETER] = source
    return {
        "Name": name,
        "Description": description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": _partition_keys(),
        "StorageDescriptor": {
            "Columns": glue_columns(columns),
            "Location": location,
            "InputFormat": TEXT_INPUT,
            "OutputFormat": TEXT_OUTPUT,
            "Compressed": False,
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                "Parameters": {"ignore.malformed.json": "true", "case.insensitive": "true"},
            },
            "StoredAsSubDirectories": False,
        },
    }


def view_table_input(
    table: str,
    columns: Sequence[Column],
    database: str,
    snapshot: SnapshotState | None = None,
) -> dict[str, Any]:
    """``TableInput`` of the ``<table>_current`` view in Athena's (Presto) view format.

    With a ``snapshot`` the view reads it (ADR 0035) and keeps its state in the parameter
    ``changelake.snapshot``, so every later rewrite renders the same source.
    """
    view = current_view_definition(table, columns, database, snapshot)
    parameters = {"presto_view": "true", "comment": "Presto View", SOURCE_PARAMETER: table}
    if snapshot is not None:
        parameters[SNAPSHOT_PARAMETER] = snapshot.to_json()
    # No "Description": Trino's Glue client copies it over the "comment" parameter, and a
    # table whose comment is not "Presto View" is not a view to Trino (nor to Athena); the
    # human description travels in the view definition's own comment.
    return {
        "Name": current_view_name(table),
        "TableType": "VIRTUAL_VIEW",
        "Parameters": parameters,
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": glue_columns([c for c in columns if c.name != RANK_COLUMN]),
            "Location": "",
            "SerdeInfo": {},
        },
        "ViewOriginalText": encode_presto_view(view),
        "ViewExpandedText": EXPANDED_TEXT,
    }


def snapshot_table_input(table: str, bucket: str, columns: Sequence[Column]) -> dict[str, Any]:
    """``TableInput`` of ``<table>_snapshot``: the change table's format and columns, one
    partition ``snapshot_at`` per snapshot (ADR 0035)."""
    return {
        **changes_table_input(table, bucket, columns),
        "Name": snapshot_table_name(table),
        "Description": f"Last change of each item of DynamoDB table {table} (changelake)",
        "PartitionKeys": [{"Name": SNAPSHOT_KEY, "Type": "string"}],
        "StorageDescriptor": _parquet_descriptor(s3_url(bucket, snapshots_prefix(table)), columns),
    }


def snapshot_partition_input(
    table: str, bucket: str, state: SnapshotState, columns: Sequence[Column]
) -> dict[str, Any]:
    """``PartitionInput`` of one snapshot, its watermark in the parameters."""
    return {
        "Values": [state.at],
        "StorageDescriptor": _parquet_descriptor(
            s3_url(bucket, snapshot_prefix(table, state.at)), columns
        ),
        "Parameters": {
            "classification": "parquet",
            "changelake.snapshot.cut": "/".join(state.cut.values),
            "changelake.snapshot.watermark": state.cut.start().isoformat(),
            "changelake.snapshot.max_event_time": state.max_event_time,
            "changelake.snapshot.max_sequence_number": state.max_sequence_number,
            "changelake.snapshot.rows": str(state.rows),
        },
    }
