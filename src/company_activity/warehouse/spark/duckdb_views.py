"""Reading a ``spark:ROOT`` warehouse with DuckDB (the web UI and ``report``; issue 13).

An in-memory DuckDB session attaches the run-state DuckDB file read-only and exposes every table of it
under its usual name (``ops.runs``, ``analytics.weekly_activity``, ...), except the three Spark tables:
``analytics.company_daily_activity``, ``stg.crm_daily`` and ``stg.product_usage_daily`` are views over
their Parquet files (``read_parquet`` with Hive partitioning). A local ROOT only; a table with no file
yet reads as the state file's (empty) table.

The schema and table names come from the state file's catalog, so they are data: DDL cannot bind them,
and every one goes through :func:`~company_activity.sql.quote_ident` (issue 24), the paths through
:func:`~company_activity.sql.quote_literal`.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from ...sql import qualified, quote_ident, quote_literal
from .tables import TABLES, Table

_DUCK_TYPES = {"string": "varchar", "timestamp": "timestamp"}
#: the name the state file is attached under
STATE_DB = "state_db"


def attach(con: Any, state_path: str, root: str) -> None:
    """Make ``con`` (an in-memory DuckDB connection) read the state file and the Parquet tables."""
    con.execute(f"attach {quote_literal(state_path)} as {quote_ident(STATE_DB)} (read_only)")
    listed = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = ?",
        [STATE_DB],
    ).fetchall()
    parquet = {t.name: t for t in TABLES}
    for schema, name in listed:
        con.execute(f"create schema if not exists {quote_ident(schema)}")
        table = parquet.get(f"{schema}.{name}")
        files = _files(root, table) if table is not None else None
        view = qualified(schema, name)
        if table is not None and files:
            con.execute(f"create view {view} as {_select(table, files)}")
        else:
            source = qualified(STATE_DB, schema, name)
            con.execute(f"create view {view} as select * from {source}")  # noqa: S608 - quoted identifiers


def _files(root: str, table: Table) -> str | None:
    base = os.path.join(os.path.abspath(os.path.expanduser(root.removeprefix("file:"))), table.path)
    pattern = os.path.join(base, f"{table.partition}=*", "*.parquet")
    return pattern if glob.glob(pattern) else None


def _select(table: Table, pattern: str) -> str:
    cols = ", ".join(
        f"cast({quote_ident(n)} as {_DUCK_TYPES.get(t, t)}) as {quote_ident(n)}" for n, t in table.columns
    )
    # identifiers and a file pattern: DDL cannot bind them (both are quoted)
    source = f"read_parquet({quote_literal(pattern)}, hive_partitioning = true)"
    return "select " + cols + " from " + source  # noqa: S608 - DDL cannot bind identifiers
