"""Issue 13: the real pipeline on ``COMPANY_ACTIVITY_WAREHOUSE=spark:ROOT`` (the CLI, the simulator on a
loopback port, a local lake), run state in a DuckDB file apart; checked against the DuckDB engine.

One Spark session (``local[2]``) serves the module: the CLI's App reuses the process's active session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("pyspark")

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.warehouse.spark.engine import SparkEngine
from company_activity.warehouse.spark.tables import MARTS as SPARK_MARTS
from company_activity.web.db import Reader

from .helpers import days

TODAY = date(2026, 11, 12)
FIRST = date(2026, 11, 2)
LAST = date(2026, 11, 11)
TEN_DAYS = days(FIRST, LAST)
CHECKS = ("counts_not_negative", "grain_unique", "keys_not_null", "missing_from_crm")
DUCK_TABLE = (
    "select activity_date, company_id, company_name, country, industry_tag, last_contact_at, active_users, "
    'events, "7d_active_users", is_churn_risk from analytics.company_daily_activity '
    "order by activity_date, company_id"
)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from company_activity.warehouse.spark.session import start_session

    session = start_session(
        "local[2]", {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"}
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        SimulatorOptions(seed=13, companies=60, today=TODAY, epoch=date(2026, 10, 20))
    ) as server:
        yield server


#: the marts' columns in table order, built_at (last) aside
MARTS = {t.name: [n for n, _ in t.columns if n != "built_at"] for t in SPARK_MARTS}


def environment(tmp_path: Path, sim: SimulatorServer, warehouse: str) -> dict[str, str]:
    lake = tmp_path / "lake"
    if not lake.exists():
        sim.data.write_crm_snapshots(open_lake(str(lake)), TEN_DAYS)
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": warehouse,
        "COMPANY_ACTIVITY_STATE": str(tmp_path / "state.duckdb"),
        "COMPANY_ACTIVITY_SPARK_MASTER": "local[2]",
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": FIRST.isoformat(),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
    }


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in root.rglob("*")
        if p.is_file() and "_tmp" not in p.parts
    }


def test_spark_run_equals_duckdb_and_a_rerun_changes_no_file(
    spark: Any, sim: SimulatorServer, tmp_path: Path
) -> None:
    root = tmp_path / "tables"
    env = environment(tmp_path, sim, f"spark:{root}")
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    assert "caught up: " + ", ".join(d.isoformat() for d in TEN_DAYS[:-1]) in result.output

    duck_env = environment(tmp_path, sim, str(tmp_path / "wh.duckdb"))
    duck_env["COMPANY_ACTIVITY_LAKE"] = str(tmp_path / "lake")
    result = cli(duck_env, "run")
    assert result.exit_code == 0, result.output
    with DuckDBWarehouse(str(tmp_path / "wh.duckdb")) as wh:
        expected = wh.execute(DUCK_TABLE)
    engine = SparkEngine(str(root), session=spark)
    got = [r[:-1] for r in engine.rows()]  # record_loaded_at aside
    assert len(got) == len(expected) > 0
    assert {r[0] for r in got} == set(TEN_DAYS)
    assert got == [tuple(r) for r in expected]
    assert engine.count("stg_product_usage_daily") == sum(len(sim.usage(d)) for d in TEN_DAYS)
    # the daily summary and the weekly/monthly marts: DuckDB's, row for row (built_at aside)
    with DuckDBWarehouse(str(tmp_path / "wh.duckdb")) as wh:
        for name, cols in MARTS.items():
            schema, table = name.split(".")
            duck_cols = wh.execute(
                "select column_name from information_schema.columns where table_schema = :s "
                "and table_name = :t order by ordinal_position",
                {"s": schema, "t": table},
            )
            assert [c for (c,) in duck_cols] == [*cols, "built_at"], name  # the same columns, in order
            want = sorted((tuple(r) for r in wh.execute(f"select {', '.join(cols)} from {name}")), key=repr)  # noqa: S608
            have = sorted((r[:-1] for r in engine.rows(name)), key=repr)
            assert len(have) == len(want) > 0, name
            assert have == want, name
    weeks = {r[0] for r in engine.rows("analytics.company_weekly_activity")}
    assert weeks == {date(2026, 11, 2), date(2026, 11, 9)}

    # run state lives in the state store: status and runs read it
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_STATE"]) as state:
        statuses = state.execute("select status, count(*) from ops.usage_days group by status")
        assert statuses == [("complete", 10)]
        assert state.execute("select count(*) from stg.crm_daily") == [(0,)]  # scratch only
        # what publishing changed, per built day: every row new on the first build
        inserted = state.execute(
            "select sum(rows_inserted), sum(rows_updated + rows_deleted) from ops.build_changes"
        )
        assert inserted == [(len(got), 0)]
        # the candidate checks ran on Spark: four per built day
        checks = dict(state.execute("select check_name, count(*) from ops.quality_results group by 1"))
        assert {name: checks.get(name) for name in CHECKS} == dict.fromkeys(CHECKS, 10)
    status = cli(env, "status")
    assert status.exit_code == 0, status.output
    assert LAST.isoformat() in status.output
    runs = cli(env, "runs")
    assert runs.exit_code == 0, runs.output
    assert "succeeded" in runs.output or "success" in runs.output

    # the UI and report read the Parquet tables with DuckDB (and run state from the state file)
    reader = Reader(env["COMPANY_ACTIVITY_STATE"], spark_root=str(root))
    with reader.session() as session:
        assert session._execute("select count(*) as n from analytics.company_daily_activity", {}) == [
            {"n": len(got)}
        ]
        for name in MARTS:  # the overview pages read the marts' Parquet files too
            n = len(engine.rows(name))
            assert session._execute(f"select count(*) as n from {name}", {}) == [{"n": n}]  # noqa: S608
    report = cli(env, "report", "--out", str(tmp_path / "report.html"))
    assert report.exit_code == 0, report.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    built = ('data-verdict="ok"', 'data-verdict="warning"', 'data-verdict="last attempt failed"')
    assert sum(html.count(v) for v in built) == len(TEN_DAYS)  # the strip: one built day each

    before = files(root)
    again = cli(env, "run")
    assert again.exit_code == 0, again.output
    assert files(root) == before  # nothing changed: no partition was rewritten
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_STATE"]) as state:
        last = state.execute(
            "select rows_inserted, rows_updated, rows_unchanged, rows_deleted from ops.build_changes "
            "where run_id = (select max(run_id) from ops.runs)"
        )
    assert last == [(0, 0, engine.count(day=LAST), 0)]


def test_a_failure_mid_build_leaves_the_day_unbuilt_and_the_next_run_converges(
    spark: Any, sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from company_activity.errors import WarehouseError
    from company_activity.warehouse.spark.tables import ANALYTICS

    root = tmp_path / "tables"
    env = environment(tmp_path, sim, f"spark:{root}")
    broken = TEN_DAYS[6]
    swap = SparkEngine._swap

    def failing_swap(self: SparkEngine, table: Any, day: date, new: str, target: str) -> None:
        if table is ANALYTICS and day == broken:
            raise WarehouseError(f"Spark engine: injected failure publishing {day}")
        swap(self, table, day, new, target)

    monkeypatch.setattr(SparkEngine, "_swap", failing_swap)
    failed = cli(env, "run")
    assert failed.exit_code != 0, failed.output
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_STATE"]) as state:
        built = {
            d for (d,) in state.execute("select activity_date from ops.build_days where status = 'built'")
        }
    assert broken not in built
    engine = SparkEngine(str(root), session=spark)
    assert engine.count(day=broken) == 0  # nothing half-written is visible

    monkeypatch.setattr(SparkEngine, "_swap", swap)
    again = cli(env, "run")  # a plain run, no --start/--end: it picks the failed days up by itself
    assert again.exit_code == 0, again.output
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_STATE"]) as state:
        built = {
            d for (d,) in state.execute("select activity_date from ops.build_days where status = 'built'")
        }
    assert built == set(TEN_DAYS)

    duck_env = environment(tmp_path, sim, str(tmp_path / "wh.duckdb"))
    duck_env["COMPANY_ACTIVITY_STATE"] = str(tmp_path / "unused.duckdb")
    assert cli(duck_env, "run").exit_code == 0
    with DuckDBWarehouse(str(tmp_path / "wh.duckdb")) as wh:
        expected = [tuple(r) for r in wh.execute(DUCK_TABLE)]
        assert [r[:-1] for r in engine.rows()] == expected
        for name, cols in MARTS.items():  # the marts the failed run never reached are built too
            want = sorted((tuple(r) for r in wh.execute(f"select {', '.join(cols)} from {name}")), key=repr)  # noqa: S608
            assert sorted((r[:-1] for r in engine.rows(name)), key=repr) == want, name


def test_the_demo_on_spark_prints_the_spark_table_and_writes_its_warehouse(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import tomllib

    from company_activity.config import Settings
    from company_activity.demo import DEMO_MARK, run_demo

    monkeypatch.setattr("company_activity.run.vocab._config_file", None)  # the demo sets it: restored after
    root = tmp_path / "tables"
    folder = tmp_path / "demo"
    lines: list[str] = []
    base = Settings(warehouse=f"spark:{root}", today=TODAY)
    code = run_demo(base, folder=str(folder), days=4, companies=30, seed=5, echo=lines.append)
    out = "\n".join(lines)
    assert code == 0, out

    rows = SparkEngine(str(root), session=spark).rows()
    # the demo's table: day, CRM rows, records, then the analytics rows' counts (issue 23)
    printed = re.findall(r"^(\d{4}-\d\d-\d\d) +\d+ +\d+ +(\d+) +(\d+) +\d+ +(\d+) +(\d+)$", out, re.MULTILINE)
    expected = []
    for day in days(date(2026, 11, 8), LAST):
        of_day = [r for r in rows if r[0] == day]
        active = sum(1 for r in of_day if r[6] > 0)
        churn = sum(1 for r in of_day if r[9])
        missing = sum(1 for r in of_day if r[2] is None)
        expected.append((day.isoformat(), *(str(n) for n in (len(of_day), active, churn, missing))))
    assert printed == expected
    assert all(int(n) > 0 for _, n, *_ in printed)
    churn_line = re.search(r"churn-risk companies on 2026-11-11 \(no usage for 7 days\): (\d+)", out)
    assert churn_line is not None and int(churn_line.group(1)) == int(expected[-1][3])
    assert f"warehouse: spark:{root}" in out

    # the written settings carry the Spark warehouse and the demo's state file: `status` reads them
    config = folder / "company-activity.toml"
    values = tomllib.loads(config.read_text(encoding="utf-8"))
    assert values["warehouse"] == f"spark:{root}"
    assert values["state"] == str(folder / "state.duckdb")
    assert (root / DEMO_MARK).is_file()
    status = cli({}, "--config", str(config), "status")
    assert status.exit_code == 0, status.output
    assert LAST.isoformat() in status.output
