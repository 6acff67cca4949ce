"""Reading a ``spark:ROOT`` warehouse with DuckDB (the web UI and ``report``; issue 13).

An in-memory DuckDB session attaches the run-state DuckDB file read-only and exposes every table of it
under its usual name (``ops.runs``, ``analytics.weekly_activity``, ...), except the three Spark tables:
``analytics.company_daily_activity``, ``stg.crm_daily`` and ``stg.product_usage_daily`` are views over
their Parquet files (``read_parquet`` with Hive partitioning). A local ROOT only; a table with no file
yet reads as the state file's (empty) table.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from .tables import TABLES, Table

_DUCK_TYPES = {"string": "varchar", "timestamp": "timestamp"}


def attach(con: Any, state_path: str, root: str) -> None:
    """Make ``con`` (an in-memory DuckDB connection) read the state file and the Parquet tables."""
    con.execute(f"attach '{_quote(state_path)}' as state_db (read_only)")
    listed = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = 'state_db'"
    ).fetchall()
    parquet = {t.name: t for t in TABLES}
    for schema, name in listed:
        con.execute(f'create schema if not exists "{schema}"')
        table = parquet.get(f"{schema}.{name}")
        files = _files(root, table) if table is not None else None
        if table is not None and files:
            con.execute(f'create view "{schema}"."{name}" as {_select(table, files)}')
        else:
            source = f'state_db."{schema}"."{name}"'  # names from the state file's catalog
            con.execute(f'create view "{schema}"."{name}" as select * from {source}')  # noqa: S608 - identifiers only


def _files(root: str, table: Table) -> str | None:
    base = os.path.join(os.path.abspath(os.path.expanduser(root.removeprefix("file:"))), table.path)
    pattern = os.path.join(base, f"{table.partition}=*", "*.parquet")
    return pattern if glob.glob(pattern) else None


def _select(table: Table, pattern: str) -> str:
    cols = ", ".join(f'cast("{n}" as {_DUCK_TYPES.get(t, t)}) as "{n}"' for n, t in table.columns)
    # identifiers and a file pattern: DDL cannot bind them (the pattern is quoted)
    source = f"read_parquet('{_quote(pattern)}', hive_partitioning = true)"
    return "select " + cols + " from " + source  # noqa: S608 - DDL cannot bind identifiers


def _quote(value: str) -> str:
    return value.replace("'", "''")
