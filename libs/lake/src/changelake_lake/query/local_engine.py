"""The local engine: Athena SQL on DuckDB over the lake that the Glue catalog describes.

For each table a query names, the engine reads the definition from Glue; a view's stored SQL
(Athena's Presto view format) is parsed and inlined; a base table becomes an Arrow relation
built from only the partitions the query can need — the registered ones (as Athena sees them),
or for a projected table the objects its projection covers — conformed to the catalog schema.
The query text, with only its table names changed, then runs on DuckDB.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from changelake_lake.athena_view import decode_presto_view
from changelake_lake.catalog import Catalog, NotFoundError
from changelake_lake.columns import Column
from changelake_lake.query import pruning, transpile
from changelake_lake.query.hive_types import hive_millis, json_value, to_arrow
from changelake_lake.query.model import (
    PartitionDef,
    QueryError,
    QueryResult,
    ScanStats,
    TableDef,
    utc_value,
)
from changelake_lake.query.projection import projection_of
from changelake_lake.query.s3_objects import S3Object, S3Objects

log = logging.getLogger(__name__)

PATH_COLUMN = "$path"
_MISSING_FUNCTION = re.compile(r"Function with name (?P<name>\S+) does not exist", re.I)
MAX_VIEW_DEPTH = 16


@dataclass(slots=True)
class _Scan:
    """The objects one table reference reads, with their partition values."""

    objects: list[tuple[S3Object, tuple[str, ...]]] = field(default_factory=list)
    partitions: int = 0
    pruned: int = 0


class LocalEngine:
    """Runs Athena SQL locally: Glue for metadata, S3 (boto3) for bytes, DuckDB to execute."""

    name = "local"

    def __init__(
        self,
        database: str = "changelake",
        *,
        catalog: Catalog | None = None,
        objects: S3Objects | None = None,
        region: str | None = None,
        threads: int = 2,
    ) -> None:
        self.database = database.lower()
        if catalog is None:
            from changelake_lake.adapters.glue_catalog import GlueCatalog

            catalog = GlueCatalog("", self.database, region=region)  # reads only: no bucket
        self.catalog = catalog
        self._tables: dict[tuple[str, str], TableDef] = {}
        self.objects = objects or S3Objects(region=region)
        self.threads = threads
        self.last_sql = ""

    def run(self, sql: str, params: Sequence[str] = ()) -> QueryResult:
        """Run one Athena query (``?`` bound to ``params``, SQL literal texts); return the rows."""
        self._tables.clear()  # the catalog may have changed since the last query
        tree = transpile.parse_query(transpile.bind_parameters(sql, params))
        tree = transpile.name_unnamed_columns(tree)
        tree = self._expand_views(tree, self.database, depth=0)
        needed = transpile.referenced_columns(tree)
        with_path = transpile.uses_column(tree, PATH_COLUMN)
        stats = ScanStats()
        refs = [
            (ref, self._table(*transpile.qualified(ref, self.database)))
            for ref in transpile.table_refs(tree)
        ]
        column_types: dict[str, set[str]] = {}
        for _, table in refs:
            for col in (*table.columns, *table.partition_keys):
                column_types.setdefault(col.name.lower(), set()).add(col.type)
        transpile.reject_unsupported(tree, column_types)
        con = duckdb.connect(config={"threads": self.threads})
        try:
            con.execute("SET TimeZone = 'UTC'")
            for index, (ref, table) in enumerate(refs):
                relation = self._relation(table, ref, needed, with_path, stats)
                registered = f"__cl_{index}_{table.name}"
                con.register(registered, relation)
                ref.replace(
                    exp.Table(
                        this=exp.to_identifier(registered, quoted=True),
                        alias=exp.TableAlias(this=exp.to_identifier(ref.alias_or_name)),
                    )
                )
            duck_sql = transpile.to_duckdb(tree)
            self.last_sql = duck_sql
            log.debug("local query", extra={"duckdb_sql": duck_sql})
            try:
                cursor = con.execute(duck_sql)
                rows = cursor.fetchall()
                description = cursor.description or []
            except duckdb.CatalogException as exc:
                missing = _MISSING_FUNCTION.search(str(exc))
                if missing:
                    # An Athena (Trino) function DuckDB does not have, e.g. format_datetime.
                    raise transpile.not_supported_locally(f"function {missing['name']}()") from exc
                raise QueryError(f"{type(exc).__name__}: {exc}") from exc
            except duckdb.Error as exc:
                raise QueryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            con.close()
        return QueryResult(
            columns=[str(d[0]) for d in description],
            types=[str(d[1]) for d in description],
            rows=[tuple(utc_value(v) for v in r) for r in rows],
            engine=self.name,
            stats=stats,
        )

    def _table(self, database: str, name: str) -> TableDef:
        """A table or view's definition, read once per query (``QueryError`` if missing)."""
        key = (database.lower(), name.lower())
        if key not in self._tables:
            try:
                self._tables[key] = self.catalog.describe(key[1], key[0])
            except NotFoundError as exc:
                # Athena's wording, so users recognise the error across engines.
                raise QueryError(
                    f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{key[0]}.{key[1]}' does not exist"
                ) from exc
        return self._tables[key]

    def _expand_views(self, tree: exp.Query, database: str, depth: int) -> exp.Query:
        if depth > MAX_VIEW_DEPTH:
            raise QueryError("views nest too deeply (a view refers to itself?)")
        for ref in transpile.table_refs(tree):
            db, name = transpile.qualified(ref, database)
            table = self._table(db, name)
            if not table.is_view:
                # Qualify, so a table in a view resolves in the view's database, not the caller's.
                ref.set("db", exp.to_identifier(db))
                continue
            try:
                view = decode_presto_view(table.view_original_text)
            except ValueError as exc:
                raise QueryError(f"{db}.{name}: {exc}") from exc
            body = self._expand_views(transpile.parse_query(view.sql), view.schema, depth + 1)
            ref.replace(
                exp.Subquery(
                    this=body, alias=exp.TableAlias(this=exp.to_identifier(ref.alias_or_name))
                )
            )
        return tree

    def _relation(
        self,
        table: TableDef,
        ref: exp.Table,
        needed: set[str] | None,
        with_path: bool,
        stats: ScanStats,
    ) -> pa.Table:
        keys = [k.name for k in table.partition_keys]
        predicates = pruning.predicates_for(ref, [*keys, pruning.EVENT_TIME]) if keys else []
        scan = self._scan(table, predicates)
        stats.partitions += scan.partitions
        stats.partitions_pruned += scan.pruned
        stats.files += len(scan.objects)
        stats.bytes_read += sum(o.size for o, _ in scan.objects)
        columns = [c for c in table.columns if needed is None or c.name in needed]
        payloads = self.objects.fetch([o for o, _ in scan.objects])
        parts: list[pa.Table] = []
        for (obj, values), data in zip(scan.objects, payloads, strict=True):
            parts.append(
                self._conformed(
                    table=table,
                    obj=obj,
                    data=data,
                    columns=columns,
                    values=values,
                    with_path=with_path,
                )
            )
        schema = _schema(table, columns, with_path)
        if not parts:
            return schema.empty_table()
        return pa.concat_tables(parts).cast(schema)

    def _scan(self, table: TableDef, predicates: list[pruning.Predicate]) -> _Scan:
        keys = [k.name for k in table.partition_keys]
        scan = _Scan()
        if not keys:
            scan.objects = [(o, ()) for o in self.objects.list_objects(table.location)]
            return scan
        if table.projection_enabled:
            projection = projection_of(table)
            seen: set[tuple[str, ...]] = set()
            kept: set[tuple[str, ...]] = set()
            for obj in self.objects.list_objects(projection.list_prefix, folder=False):
                values = projection.match(obj.uri)
                if values is None:
                    continue
                seen.add(values)
                if pruning.partition_matches(keys, values, predicates):
                    kept.add(values)
                    scan.objects.append((obj, values))
            scan.partitions, scan.pruned = len(kept), len(seen) - len(kept)
            return scan
        partitions: list[PartitionDef] = self.catalog.partition_defs(table)
        for part in partitions:
            if not pruning.partition_matches(keys, part.values, predicates):
                scan.pruned += 1
                continue
            scan.partitions += 1
            scan.objects.extend((o, part.values) for o in self.objects.list_objects(part.location))
        return scan

    def _conformed(
        self,
        *,
        table: TableDef,
        obj: S3Object,
        data: bytes,
        columns: list[Column],
        values: tuple[str, ...],
        with_path: bool,
    ) -> pa.Table:
        if table.is_json:
            arrays, rows = _json_arrays(data, columns)
        else:
            arrays, rows = _parquet_arrays(obj, data, columns)
        arrays = [
            hive_millis(a) if c.type.strip().lower() == "timestamp" else a
            for a, c in zip(arrays, columns, strict=True)
        ]
        names = [c.name for c in columns]
        for key, value in zip(table.partition_keys, values, strict=True):
            names.append(key.name)
            arrays.append(pa.array([value] * rows, pa.string()).cast(to_arrow(key.type)))
        if with_path:
            names.append(PATH_COLUMN)
            arrays.append(pa.array([obj.uri] * rows, pa.string()))
        return pa.Table.from_arrays(arrays, names=names)


def _schema(table: TableDef, columns: list[Column], with_path: bool) -> pa.Schema:
    fields = [pa.field(c.name, to_arrow(c.type)) for c in columns]
    fields += [pa.field(k.name, to_arrow(k.type)) for k in table.partition_keys]
    if with_path:
        fields.append(pa.field(PATH_COLUMN, pa.string()))
    return pa.schema(fields)


def _parquet_arrays(
    obj: S3Object, data: bytes, columns: list[Column]
) -> tuple[list[pa.Array], int]:
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        present = {name.lower(): name for name in parquet.schema_arrow.names}
        wanted = [present[c.name] for c in columns if c.name in present]
        read = parquet.read(columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise QueryError(f"HIVE_CANNOT_OPEN_SPLIT: {obj.uri}: {exc}") from exc
    rows = read.num_rows
    arrays: list[pa.Array] = []
    for col in columns:
        target = to_arrow(col.type)
        if col.name not in present:
            # A column added after this file was written reads as NULL (schema evolution).
            arrays.append(pa.nulls(rows, target))
            continue
        source = read.column(present[col.name]).combine_chunks()
        try:
            arrays.append(source if source.type == target else source.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            # Athena fails the query the same way: one type per column for all time.
            raise QueryError(
                f"HIVE_BAD_DATA: column {col.name!r} of {obj.uri} is {source.type}, "
                f"the table declares {col.type}: {exc}"
            ) from exc
    return arrays, rows


def _json_arrays(data: bytes, columns: list[Column]) -> tuple[list[pa.Array], int]:
    records: list[dict[str, Any]] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        # Like the OpenX SerDe with ignore.malformed.json: a bad line reads as all-NULL.
        records.append(
            {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}
        )
    arrays = []
    for col in columns:
        target = to_arrow(col.type)
        arrays.append(pa.array([json_value(r.get(col.name), target) for r in records], type=target))
    return arrays, len(records)
