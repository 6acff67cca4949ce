"""The PostgreSQL warehouse: parameters, transactions, COPY, time zone, the advisory lock, the build tests."""

from __future__ import annotations

import os
import time
from datetime import date, datetime

import psycopg
import pytest

from company_activity.clock import utcnow
from company_activity.errors import WarehouseBusyError, WarehouseError
from company_activity.warehouse import SCHEMA_VERSION, Warehouse, connect
from company_activity.warehouse.postgres import LOCK_KEY, PostgresWarehouse, redact, to_pyformat

from . import pg
from . import test_build as tb

pg_server = pg.pg_server
pg_databases = pg.pg_databases
pg_url = pg.pg_url
pg_wh = pg.pg_wh


# -- no server needed --------------------------------------------------------------------------------------
def test_parameters_become_pyformat_outside_literals_and_comments() -> None:
    sql = "select ':x', :y, '%', 5 % 2, \":z\", a::int -- it's :w 100%\nfrom t where b = :b"
    assert to_pyformat(sql) == (
        "select ':x', %(y)s, '%%', 5 %% 2, \":z\", a::int -- it's :w 100%%\nfrom t where b = %(b)s"
    )


def test_password_is_redacted() -> None:
    assert redact("postgresql://u:s3cret@db.example.com:5432/wh?sslmode=require") == (
        "postgresql://u:***@db.example.com:5432/wh?sslmode=require"
    )
    assert redact("postgresql://postgres@127.0.0.1/wh") == "postgresql://postgres@127.0.0.1/wh"
    assert redact("postgresql://u@h/wh?sslmode=require&password=s3cret") == (
        "postgresql://u@h/wh?sslmode=require&password=***"
    )


def test_unreachable_server_is_a_warehouse_error_without_the_password() -> None:
    with pytest.raises(WarehouseError) as err:
        PostgresWarehouse("postgresql://u:s3cret@127.0.0.1:1/wh?connect_timeout=2")
    assert "cannot connect to the PostgreSQL warehouse postgresql://u:***@127.0.0.1:1/wh" in str(err.value)
    assert "s3cret" not in str(err.value)


# -- against the server --------------------------------------------------------------------------------------
def test_connect_dispatches_both_url_schemes(pg_url: str) -> None:
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        with connect(url) as wh:
            assert isinstance(wh, PostgresWarehouse)
            assert wh.execute("select :a + 1, '100%'", {"a": 41}) == [(42, "100%")]


def test_schema_is_created_once(pg_wh: Warehouse) -> None:
    assert pg_wh.schema_version() == SCHEMA_VERSION
    assert pg_wh.init_schema() == []
    assert pg_wh.execute("select count(*) from ops.schema_version") == [(SCHEMA_VERSION,)]


def test_transactions_commit_roll_back_and_statements_alone_commit(pg_wh: Warehouse, pg_url: str) -> None:
    other = psycopg.connect(pg_url, autocommit=True)
    count = "select count(*) from ops.runs"
    insert = "insert into ops.runs (run_id, command, started_at, status) values (:r, 'test', :t, 'running')"
    pg_wh.execute(insert, {"r": "alone", "t": utcnow()})
    assert other.execute(count).fetchone() == (1,)  # committed on its own
    with pytest.raises(RuntimeError), pg_wh.transaction():
        pg_wh.execute(insert, {"r": "rolled-back", "t": utcnow()})
        assert other.execute(count).fetchone() == (1,)  # not visible before commit
        raise RuntimeError("boom")
    with pg_wh.transaction():
        pg_wh.execute(insert, {"r": "committed", "t": utcnow()})
        with pg_wh.transaction():  # nested joins the outer one
            pg_wh.execute(insert, {"r": "nested", "t": utcnow()})
    ids = {r[0] for r in other.execute("select run_id from ops.runs").fetchall()}
    assert ids == {"alone", "committed", "nested"}
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg_wh.execute(insert, {"r": "alone", "t": utcnow()})
    assert pg_wh.execute(count) == [(3,)]  # the failed statement left the connection usable
    other.close()


def test_temporary_tables_and_copy_inside_a_transaction(pg_wh: Warehouse) -> None:
    tricky = [
        "plain",
        "comma, quote \" and 'single'",
        "tab\there",
        "new\nline",
        "back\\slash",
        "ünïcødé ✓",
        "",
    ]
    rows = [
        (f"C{i}", v, None if i % 2 else "DE", None, f"2026-10-0{1 + i % 9} 12:30:00", i + 2)
        for i, v in enumerate(tricky)
    ]
    with pg_wh.transaction():
        pg_wh.run("staging.sql", "crm_load_create")
        n = pg_wh.bulk_insert(
            "crm_load",
            ["company_id", "company_name", "country", "industry_tag", "last_contact_at", "source_line"],
            iter(rows),
        )
        back = pg_wh.execute("select * from crm_load order by source_line")
        pg_wh.run("staging.sql", "crm_load_drop")
    assert n == len(rows)
    assert [r[1] for r in back] == tricky
    assert back[0][4] == datetime(2026, 10, 1, 12, 30)
    assert [r[2] for r in back] == [None if i % 2 else "DE" for i in range(len(rows))]
    assert pg_wh.bulk_insert("stg.crm_daily", ["company_id"], iter([])) == 0


def test_a_failure_during_copy_rolls_the_load_back(pg_wh: Warehouse) -> None:
    def rows():  # type: ignore[no-untyped-def]
        yield ("A", 1, 1)
        raise ValueError("bad page")

    tb.seed_usage(pg_wh, date(2026, 11, 1), {"Z": (1, 1)})
    with pytest.raises(ValueError), pg_wh.transaction():
        pg_wh.execute("delete from stg.product_usage_daily")
        pg_wh.run("staging.sql", "usage_load_create")
        pg_wh.bulk_insert("usage_load", ["company_id", "active_users", "events"], rows())
    assert pg_wh.execute("select company_id from stg.product_usage_daily") == [("Z",)]


def test_jit_is_off_for_the_session_unless_the_url_names_it(pg_wh: Warehouse, pg_url: str) -> None:
    assert pg_wh.execute("show jit") == [("off",)]
    sep = "&" if "?" in pg_url else "?"
    with connect(f"{pg_url}{sep}options=-c%20jit%3Don") as wh:
        assert wh.execute("show jit") == [("on",)]
    with connect(f"{pg_url}{sep}application_name=jitter") as wh:  # "jit" elsewhere in the URL: still off
        assert wh.execute("show jit") == [("off",)]


def test_timestamps_are_naive_utc(pg_wh: Warehouse) -> None:
    assert pg_wh.execute("show time zone") == [("UTC",)]
    now = pg_wh.execute("select cast(now() as timestamp)")[0][0]
    assert now.tzinfo is None
    assert abs((now - utcnow()).total_seconds()) < 60


def test_advisory_lock_waits_a_bounded_time_then_names_the_holder(pg_wh: Warehouse, pg_url: str) -> None:
    second = connect(pg_url)
    with pg_wh.lock(timeout=1), pg_wh.lock(timeout=1):  # re-entrant
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as err, second.lock(timeout=0.6):
            pass
        assert 0.5 < time.monotonic() - started < 5
        held = pg_wh.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and granted "
            "and ((classid::bigint << 32) | objid::bigint) = :k "
            "and database = (select oid from pg_database where datname = current_database())",
            {"k": LOCK_KEY},
        )
        assert held == [(1,)]
    message = str(err.value)
    assert "another company-activity run holds the lock on postgresql://" in message
    assert "waited 0.6s" in message
    assert f"held by company-activity pid {os.getpid()} on " in message
    with second.lock(timeout=1):  # released when the block ended
        assert second.locked
    second.close()


# -- the build tests of test_build.py, on PostgreSQL ---------------------------------------------------------
@pytest.mark.parametrize(
    "check",
    [
        tb.test_worked_example_row_for_row,
        tb.test_worked_example_matches_model,
        tb.test_build_gate_names_missing_days,
        tb.test_no_churn_before_first_usage_day_plus_six,
        tb.test_missing_snapshot_carries_forward,
        tb.test_rebuild_keeps_record_loaded_at_when_nothing_changes,
        tb.test_changed_usage_rewrites_only_changed_rows,
    ],
    ids=lambda f: f.__name__.removeprefix("test_"),
)
def test_build_on_postgres(pg_wh: Warehouse, check: object) -> None:
    check(pg_wh)  # type: ignore[operator]
