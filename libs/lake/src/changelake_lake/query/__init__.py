"""Athena SQL everywhere: a local DuckDB engine over the Glue catalog, Athena, named queries.

The local engine reads tables, partitions and views from the Glue Data Catalog at the configured
endpoint, fetches only the partitions a query needs through boto3, and runs the query on DuckDB
after transpiling Athena's dialect with sqlglot. The Athena engine runs the same SQL text on AWS.
"""

from changelake_lake.query.model import QueryError, QueryResult

__all__ = ["QueryError", "QueryResult"]
