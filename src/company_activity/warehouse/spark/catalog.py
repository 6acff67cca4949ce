"""The tables in the Spark session's persistent catalog, under the spec's names (issue 13).

When the session has a persistent catalog (a Hive metastore: ``spark.sql.catalogImplementation=hive``;
or a configured default catalog other than ``spark_catalog``, e.g. Unity Catalog) every table the engine
writes is registered there too: ``stg.crm_daily``, ``stg.product_usage_daily``,
``analytics.company_daily_activity`` and the marts, as external Parquet tables over their folders under
ROOT, partitioned as on disk. After each change to a table its partitions are synchronised with the
folders (``MSCK REPAIR TABLE … SYNC PARTITIONS``: swapped-in partitions added, deleted ones dropped), so
``select * from analytics.company_daily_activity`` in any session of that catalog sees the published days.

The Parquet files stay the source of truth: the registration is repeated (``if not exists``) by every
engine that writes, and a catalog that lost a table gets it back on the next write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...sql import qualified, quote_ident
from .tables import Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def is_persistent(spark: SparkSession) -> bool:
    """Whether the session's catalog outlives it (Hive metastore, or a configured non-default catalog)."""
    implementation = spark.conf.get("spark.sql.catalogImplementation", "in-memory")
    default = spark.conf.get("spark.sql.defaultCatalog", "spark_catalog")
    return implementation == "hive" or default not in (None, "", "spark_catalog")


def statements(table: Table, location: str, *, create: bool) -> list[str]:
    """The DDL that registers ``table`` over ``location`` (``create``) and syncs its partitions.

    Identifiers are the engine's own constants, quoted all the same (:func:`~company_activity.sql.quote_ident`
    with Spark's backtick); the location (ROOT's URI, from the configuration) is a quoted string literal:
    DDL cannot bind it."""
    schema, name = table.name.split(".")
    ident = qualified(schema, name, mark="`")
    out = []
    if create:
        literal = location.replace("\\", "\\\\").replace("'", "\\'")
        out += [
            f"create database if not exists {quote_ident(schema, '`')}",
            f"create table if not exists {ident} ({table.ddl()}) using parquet "
            f"partitioned by ({quote_ident(table.partition, '`')}) location '{literal}'",
        ]
    out.append(f"msck repair table {ident} sync partitions")
    return out


class Catalog:
    """Registers the engine's tables in the session's catalog and keeps their partitions in sync."""

    def __init__(self, spark: SparkSession, location: dict[str, str]) -> None:
        self._spark = spark
        self._location = location  # table name -> its folder's URI
        self._created: set[str] = set()

    def sync(self, table: Table) -> None:
        """Register ``table`` (once per engine) and sync its partitions with its folder."""
        create = table.name not in self._created
        for statement in statements(table, self._location[table.name], create=create):
            self._spark.sql(statement)
        self._created.add(table.name)
