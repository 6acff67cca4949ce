"""Schema versions: created, migrated forward, and a warehouse newer than the code refused untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.clock import utcnow
from company_activity.errors import WarehouseError
from company_activity.warehouse import SCHEMA_VERSION, connect, migrations
from company_activity.warehouse.migrations import Migration

from . import pg

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

ALL = list(range(1, SCHEMA_VERSION + 1))
NEXT = SCHEMA_VERSION + 1
V_NEXT = Migration(
    NEXT,
    "test: runs remember the host",
    statements=(
        "alter table ops.runs add column host varchar",
        "update ops.runs set host = 'unknown'",
    ),
)


def versions(url: str) -> list[int]:
    with connect(url) as wh:
        return [r[0] for r in wh.execute("select version from ops.schema_version order by version")]


def test_migrations_are_numbered_in_order() -> None:
    assert migrations.latest() == SCHEMA_VERSION == len(migrations.MIGRATIONS)
    with pytest.raises(RuntimeError, match="numbered 1, 2, 3"):
        migrations.check([migrations.MIGRATIONS[0], Migration(3, "gap")])


def test_init_creates_then_leaves_a_current_warehouse_alone(wh_url: str) -> None:
    with connect(wh_url) as wh:
        assert wh.schema_version() is None
        assert wh.init_schema() == ALL
        assert wh.init_schema() == []
        assert wh.schema_version() == SCHEMA_VERSION
    assert versions(wh_url) == ALL


def test_an_older_warehouse_is_migrated_forward(
    wh_url: str, engine: str, new_warehouse_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(wh_url) as wh:
        wh.init_schema()
        wh.execute(
            "insert into ops.runs (run_id, command, started_at, status) "
            "values ('r1', 'run', :t, 'succeeded')",
            {"t": utcnow()},
        )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, V_NEXT])
    with connect(wh_url) as wh:
        assert wh.init_schema() == [NEXT]
        assert wh.execute("select run_id, host from ops.runs") == [("r1", "unknown")]  # data kept
        assert wh.init_schema() == []
    assert versions(wh_url) == [*ALL, NEXT]
    # a new warehouse gets every step in order
    with connect(new_warehouse_url(engine)) as wh:
        assert wh.init_schema() == [*ALL, NEXT]
        assert wh.execute("select count(*) from ops.runs where host is null") == [(0,)]


def test_a_failing_migration_leaves_the_previous_version(
    wh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(wh_url) as wh:
        wh.init_schema()
    broken = Migration(
        NEXT,
        "broken",
        statements=("alter table ops.runs add column host varchar", "select * from ops.no_such_table"),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with connect(wh_url) as wh, pytest.raises(Exception, match="no_such_table"):
        wh.init_schema()
    with connect(wh_url) as wh:
        assert wh.schema_version() == SCHEMA_VERSION
        columns = wh.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'ops' and table_name = 'runs' and column_name = 'host'"
        )
        assert columns == []  # the first statement of the failed migration was rolled back


def test_a_newer_warehouse_is_refused_untouched(wh_url: str, tmp_path: Path) -> None:
    with connect(wh_url) as wh:
        wh.init_schema()
        wh.run("ops.sql", "set_schema_version", {"version": SCHEMA_VERSION + 1, "applied_at": utcnow()})
        before = wh.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('stg', 'analytics', 'ops') order by 1, 2"
        )
    with connect(wh_url) as wh, pytest.raises(WarehouseError) as err:
        wh.init_schema()
    message = str(err.value)
    assert f"has schema version {SCHEMA_VERSION + 1}, newer than this release" in message
    assert f"(version {SCHEMA_VERSION})" in message and "left untouched" in message
    env = {
        "COMPANY_ACTIVITY_WAREHOUSE": wh_url,
        "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake"),
        "COMPANY_ACTIVITY_API_URL": "http://127.0.0.1:9",
        "COMPANY_ACTIVITY_API_KEY": "k3y-value",  # a complete configuration: the warehouse is what refuses
    }
    for args in (["init"], ["run", "--date", "2020-01-01"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert "newer than this release" in result.output
    with connect(wh_url) as wh:
        assert wh.execute("select max(version), count(*) from ops.schema_version") == [
            (SCHEMA_VERSION + 1, SCHEMA_VERSION + 1)
        ]
        assert wh.execute("select count(*) from ops.runs") == [(0,)]
        after = wh.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('stg', 'analytics', 'ops') order by 1, 2"
        )
    assert after == before


def test_init_command_creates_the_warehouse(wh_url: str, tmp_path: Path) -> None:
    env = {"COMPANY_ACTIVITY_WAREHOUSE": wh_url, "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake")}
    result = CliRunner().invoke(main, ["init"], env=env)
    assert result.exit_code == 0, result.output
    assert "is ready" in result.output
    assert versions(wh_url) == ALL


COUNT_COLUMNS = [
    ("analytics", "company_daily_activity", "7d_active_users"),
    ("analytics", "company_daily_activity", "active_users"),
    ("analytics", "company_daily_activity", "events"),
    ("stg", "product_usage_daily", "active_users"),
    ("stg", "product_usage_daily", "events"),
]


def count_column_types(wh_url: str) -> list[tuple[str, str, str, str]]:
    with connect(wh_url) as wh:
        rows = wh.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where (table_name = 'product_usage_daily' and column_name in ('active_users', 'events')) "
            "or (table_name = 'company_daily_activity' "
            "and column_name in ('active_users', 'events', '7d_active_users')) order by 1, 2, 3"
        )
    return [(str(a), str(b), str(c), str(d).lower()) for a, b, c, d in rows]


def test_a_version_1_warehouse_gets_64_bit_counts_and_keeps_its_rows(
    wh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        with connect(wh_url) as wh:
            assert wh.init_schema() == [1]
            wh.execute(
                "insert into stg.product_usage_daily "
                "(activity_date, company_id, active_users, events, raw_run_id, loaded_at) "
                "values (cast('2026-01-05' as date), 'C1', 2147483647, 7, 'r1', :t)",
                {"t": utcnow()},
            )
    assert [t for *_, t in count_column_types(wh_url)] == ["integer"] * 5
    with connect(wh_url) as wh:
        assert wh.init_schema() == list(range(2, SCHEMA_VERSION + 1))
        big = 2**62 + 3
        wh.execute(
            "insert into stg.product_usage_daily "
            "(activity_date, company_id, active_users, events, raw_run_id, loaded_at) "
            "values (cast('2026-01-06' as date), 'C1', :big, :big, 'r2', :t)",
            {"big": big, "t": utcnow()},
        )
        rows = wh.execute("select active_users, events from stg.product_usage_daily order by activity_date")
    assert [tuple(r) for r in rows] == [(2147483647, 7), (big, big)]
    assert count_column_types(wh_url) == [(*c, "bigint") for c in COUNT_COLUMNS]
