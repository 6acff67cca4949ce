"""Identifiers read from a catalog, formatted into DuckDB SQL (issue 24): one quoting helper, no injection.

``duckdb_views.attach`` (the web UI's and ``report``'s view of a ``spark:ROOT`` warehouse) creates one
view per table of the run-state file, under the names read from that file's catalog. The test writes the
state file and the Parquet folders with DuckDB itself (no Spark, no JVM), with hostile schema and table
names and hostile paths, and checks that exactly those views are created and nothing else runs.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from company_activity.sql import qualified, quote_ident, quote_literal
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.warehouse.spark.catalog import statements
from company_activity.warehouse.spark.duckdb_views import attach
from company_activity.warehouse.spark.tables import CRM

INJECTION = '"; drop table x; --'
HOSTILE_SCHEMA = 'a"; drop table x; --'
HOSTILE_TABLES = [INJECTION, HOSTILE_SCHEMA, 'we"ird; name', "with space", "a.b", "'single'", "x"]


def test_quote_ident_doubles_the_quote_mark_and_refuses_nul() -> None:
    assert quote_ident("plain") == '"plain"'
    assert quote_ident(INJECTION) == '"""; drop table x; --"'
    assert quote_ident("a`b", "`") == "`a``b`"
    assert quote_ident('a"b', "`") == '`a"b`'
    assert qualified("s", 'we"ird', "t.u") == '"s"."we""ird"."t.u"'
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        quote_ident("a\x00b")
    with pytest.raises(ValueError):
        quote_ident("a", "'")


def test_the_spark_catalog_ddl_quotes_its_identifiers() -> None:
    [create_db, create_table, repair] = statements(CRM, "file:/tmp/r", create=True)
    assert create_db == "create database if not exists `stg`"
    assert create_table.startswith("create table if not exists `stg`.`crm_daily` (")
    assert "partitioned by (`snapshot_date`)" in create_table
    assert repair == "msck repair table `stg`.`crm_daily` sync partitions"


def literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_state(path: Path) -> None:
    """A run-state file with the usual tables, one hostile schema, and hostile table names."""
    with DuckDBWarehouse(str(path)) as wh:
        wh.init_schema()
    con = duckdb.connect(str(path))
    try:
        con.execute(f"create schema {quote_ident(HOSTILE_SCHEMA)}")
        for i, name in enumerate(HOSTILE_TABLES):
            for schema in (HOSTILE_SCHEMA, "ops"):
                con.execute(f"create table {qualified(schema, name)} (n integer, label varchar)")
                insert = f"insert into {qualified(schema, name)} values (?, ?)"  # noqa: S608 - quoted
                con.execute(insert, [i, f"{schema}/{name}"])
    finally:
        con.close()


def write_crm_parquet(root: Path) -> None:
    folder = root / CRM.path
    folder.mkdir(parents=True)
    con = duckdb.connect()
    try:
        con.execute(
            "create table crm as select date '2026-01-02' as snapshot_date, 'C1' as company_id, "
            "'Acme' as company_name, 'DE' as country, 'saas' as industry_tag, "
            "timestamp '2026-01-01 10:00:00' as last_contact_at, 'crm/x.csv' as source_file, "
            "2 as source_line, timestamp '2026-01-03 04:05:06' as loaded_at, 'r1' as run_id"
        )
        con.execute(f"copy crm to {literal(folder)} (format parquet, partition_by (snapshot_date))")
    finally:
        con.close()


def views(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    rows = con.execute(
        "select schema_name, view_name from duckdb_views() where not internal and database_name = 'memory'"
    ).fetchall()
    return {(str(s), str(v)) for s, v in rows}


def test_hostile_names_in_the_state_file_become_views_of_exactly_those_names(tmp_path: Path) -> None:
    base = tmp_path / 'it\'s a "dir"; drop table x; --'
    base.mkdir()
    state = base / "state.duckdb"
    root = base / "tables"
    write_state(state)
    write_crm_parquet(root)
    with duckdb.connect(str(state), read_only=True) as check:
        expected = {
            (str(s), str(t))
            for s, t in check.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
    assert (HOSTILE_SCHEMA, INJECTION) in expected and len(expected) > 20 and ("stg", "crm_daily") in expected

    con = duckdb.connect()
    con.execute("create table x (kept integer)")  # what the injection would drop
    con.execute("insert into x values (42)")
    attach(con, str(state), str(root))

    assert con.execute("select kept from main.x").fetchall() == [(42,)]  # nothing else ran
    assert views(con) == expected  # one view per table, under exactly its name, and no other
    for i, name in enumerate(HOSTILE_TABLES):
        for schema in (HOSTILE_SCHEMA, "ops"):
            got = con.execute(f"select n, label from {qualified(schema, name)}").fetchall()  # noqa: S608
            assert got == [(i, f"{schema}/{name}")]
    # a Spark table with Parquet files reads them, not the state file's empty table
    crm = con.execute("select snapshot_date, company_id, last_contact_at, source_line from stg.crm_daily")
    assert crm.fetchall() == [(date(2026, 1, 2), "C1", datetime(2026, 1, 1, 10), 2)]
    con.close()
