"""The Parquet tables of the Spark engine (the spec's three, and the marts): where, their columns and types.

Types follow the DuckDB/PostgreSQL tables at schema version 2 (``sql/migrate_wide_counts.sql``): the usage
counts are 64-bit. Timestamps are naive UTC values (Parquet ``TIMESTAMP(MICROS, isAdjustedToUTC=false)``,
Spark ``TIMESTAMP_NTZ``), which DuckDB, pandas and Spark read back as the same naive ``datetime`` the
DuckDB engine returns. The partition column is not stored in the files: it is the directory name
(``snapshot_date=YYYY-MM-DD`` / ``activity_date=YYYY-MM-DD``, Hive style).

Nothing here imports pyspark or pyarrow at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (column, type) in table order; the partition column comes first, as in the SQL tables
_TS = "timestamp"


@dataclass(frozen=True)
class Table:
    name: str  # schema.table, as in the SQL engines
    view: str  # the session's temporary view
    path: str  # under ROOT
    partition: str
    columns: tuple[tuple[str, str], ...]  # (name, string/int/bigint/double/boolean/timestamp/date)

    @property
    def data_columns(self) -> list[tuple[str, str]]:
        return [c for c in self.columns if c[0] != self.partition]

    def ddl(self, *, data_only: bool = False) -> str:
        """The Spark DDL schema string (``a STRING, b BIGINT, ...``), names quoted with backticks."""
        spark_type = {"timestamp": "TIMESTAMP_NTZ"}
        cols = self.data_columns if data_only else self.columns
        return ", ".join(f"`{n}` {spark_type.get(t, t.upper())}" for n, t in cols)


CRM = Table(
    "stg.crm_daily",
    "stg_crm_daily",
    "stg/crm_daily",
    "snapshot_date",
    (
        ("snapshot_date", "date"),
        ("company_id", "string"),
        ("company_name", "string"),
        ("country", "string"),
        ("industry_tag", "string"),
        ("last_contact_at", _TS),
        ("source_file", "string"),
        ("source_line", "int"),
        ("loaded_at", _TS),
        ("run_id", "string"),
    ),
)

USAGE = Table(
    "stg.product_usage_daily",
    "stg_product_usage_daily",
    "stg/product_usage_daily",
    "activity_date",
    (
        ("activity_date", "date"),
        ("company_id", "string"),
        ("active_users", "bigint"),
        ("events", "bigint"),
        ("raw_run_id", "string"),
        ("loaded_at", _TS),
    ),
)

ANALYTICS = Table(
    "analytics.company_daily_activity",
    "analytics_company_daily_activity",
    "analytics/company_daily_activity",
    "activity_date",
    (
        ("activity_date", "date"),
        ("company_id", "string"),
        ("company_name", "string"),
        ("country", "string"),
        ("industry_tag", "string"),
        ("last_contact_at", _TS),
        ("active_users", "bigint"),
        ("events", "bigint"),
        ("7d_active_users", "bigint"),
        ("is_churn_risk", "boolean"),
        ("record_loaded_at", _TS),
    ),
)

# the marts (sql/marts_tables.sql; built by .marts from the daily table after each build)
_MART_FIGURES = (
    ("days_in_period", "int"),
    ("days_covered", "int"),
    ("active_days", "int"),
    ("avg_active_users", "double"),
    ("peak_active_users", "bigint"),
    ("events", "bigint"),
    ("is_churn_risk", "boolean"),
    ("is_partial", "boolean"),
    ("built_at", _TS),
)
_ATTRIBUTES = (("company_id", "string"), ("company_name", "string"), ("country", "string"))

WEEKLY = Table(
    "analytics.company_weekly_activity",
    "analytics_company_weekly_activity",
    "analytics/company_weekly_activity",
    "week_start",
    (
        ("week_start", "date"),
        ("week_end", "date"),
        ("iso_year", "int"),
        ("iso_week", "int"),
        *_ATTRIBUTES,
        ("industry_tag", "string"),
        *_MART_FIGURES,
    ),
)

MONTHLY = Table(
    "analytics.company_monthly_activity",
    "analytics_company_monthly_activity",
    "analytics/company_monthly_activity",
    "month_start",
    (
        ("month_start", "date"),
        ("month_end", "date"),
        *_ATTRIBUTES,
        ("industry_tag", "string"),
        *_MART_FIGURES,
    ),
)

SUMMARY = Table(
    "analytics.activity_summary_daily",
    "analytics_activity_summary_daily",
    "analytics/activity_summary_daily",
    "activity_date",
    (
        ("activity_date", "date"),
        ("country", "string"),
        ("industry_tag", "string"),
        ("companies", "bigint"),
        ("active_companies", "bigint"),
        ("active_users", "bigint"),
        ("events", "bigint"),
        ("churn_risk", "bigint"),
        ("built_at", _TS),
    ),
)

MARTS = (SUMMARY, WEEKLY, MONTHLY)

TABLES = (CRM, USAGE, ANALYTICS, *MARTS)

#: the value columns compared when a row is republished (equal -> it keeps its record_loaded_at)
VALUE_COLUMNS = [
    n for n, _ in ANALYTICS.columns if n not in ("activity_date", "company_id", "record_loaded_at")
]


def arrow_schema(table: Table) -> Any:
    """The pyarrow schema of a partition file of ``table`` (its data columns)."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "double": pa.float64(),
    }
    return pa.schema([pa.field(n, types[t]) for n, t in table.data_columns])
