"""Issue 13: the Spark engine's tables in a real persistent catalog (a Hive metastore on embedded Derby).

The pipeline runs through the CLI on a Spark session whose catalog is Hive (the settings a cluster gives
through ``COMPANY_ACTIVITY_SPARK_CONF``); the session is then stopped, and a new plain Spark session on the
same metastore (no company-activity code: a BI tool, a notebook) reads the tables by their spec names.
What it reads must be what any Parquet reader reads from the folders under ROOT: every table registered,
every published day a partition. (A day rebuilt later keeps its partition's location, so a catalog session
reads its new files as any reader does; the swap itself is tested in tests/test_spark_engine.py.)

Both sessions live in the test process's JVM (the one the other Spark tests warmed up; a fresh JVM per
session would cost ~50 s here): the second session's catalog is a new Hive client that knows only what the
metastore's Derby database holds. tests/test_spark_engine.py checks the registration statements on the
in-memory catalog of the shared session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

pytest.importorskip("pyspark", reason="the Spark engine needs the [spark] extra")

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake
from company_activity.warehouse.spark.session import parse_conf, start_session
from company_activity.warehouse.spark.tables import TABLES

from .helpers import days

TODAY = date(2026, 11, 12)
DAYS = days(date(2026, 11, 10), date(2026, 11, 11))
DAILY = (
    "select cast(activity_date as string), company_id, active_users, events, {q}7d_active_users{q}, "
    "is_churn_risk from {source} order by 1, 2"
)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        SimulatorOptions(seed=13, companies=30, today=TODAY, epoch=date(2026, 10, 20))
    ) as server:
        yield server


@pytest.fixture
def hive_conf(tmp_path: Path) -> Iterator[Path]:
    """A ``spark-defaults.conf``-style file for a Hive metastore on Derby in tmp_path (its JDBC URL holds
    semicolons, as metastore URLs often do); no Spark session may be active around the test."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    assert SparkSession.getActiveSession() is None
    SparkContext._ensure_initialized()  # the JVM (started by an earlier module, or now)
    jvm: Any = SparkContext._jvm
    jvm.java.lang.System.setProperty("derby.system.home", str(tmp_path))  # derby.log goes there
    conf = tmp_path / "spark-hive.conf"
    conf.write_text(
        "# a Hive metastore, as a cluster's spark-defaults.conf would give it\n"
        "spark.sql.catalogImplementation hive\n"
        f"spark.sql.warehouse.dir={tmp_path / 'hive-warehouse'}\n"
        f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={tmp_path / 'metastore'};"
        "create=true\n"
        "spark.sql.shuffle.partitions=2\n",
        encoding="utf-8",
    )
    yield conf
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def read_back(conf: Path) -> dict[str, Any]:
    """A new session on the metastore (the previous one stopped): what it finds under the spec's names."""
    spark = start_session("local[2]", parse_conf(str(conf)))
    try:
        assert spark.conf.get("spark.sql.catalogImplementation") == "hive"
        tables = sorted(
            f"{db}.{t.tableName}"
            for db in ("stg", "analytics")
            for t in spark.sql(f"show tables in {db}").collect()
        )
        daily = [
            tuple(r)
            for r in spark.sql(DAILY.format(q="`", source="analytics.company_daily_activity")).collect()
        ]
        weeks = [r[0] for r in spark.sql("show partitions analytics.company_weekly_activity").collect()]
        usage = spark.sql("select count(*) from stg.product_usage_daily").collect()[0][0]
        return {"tables": tables, "daily": daily, "weeks": weeks, "usage": usage}
    finally:
        spark.stop()


def parquet_rows(root: Path) -> list[tuple[Any, ...]]:
    """The daily table as any Parquet reader reads its folders (DuckDB here)."""
    source = "read_parquet(?, hive_partitioning = true)"
    files = str(root / "analytics" / "company_daily_activity" / "*" / "*.parquet")
    return [
        tuple(r) for r in duckdb.connect().execute(DAILY.format(q='"', source=source), [files]).fetchall()
    ]


def test_the_tables_are_registered_in_a_hive_metastore_a_new_session_reads(
    sim: SimulatorServer, hive_conf: Path, tmp_path: Path
) -> None:
    root, lake = tmp_path / "tables", tmp_path / "lake"
    sim.data.write_crm_snapshots(open_lake(str(lake)), DAYS)
    env = {
        "COMPANY_ACTIVITY_WAREHOUSE": f"spark:{root}",
        "COMPANY_ACTIVITY_STATE": str(tmp_path / "state.duckdb"),
        "COMPANY_ACTIVITY_SPARK_MASTER": "local[2]",
        "COMPANY_ACTIVITY_SPARK_CONF": str(hive_conf),
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": DAYS[0].isoformat(),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
    }
    # the CLI's engine runs on the process's session: the Hive one (the App reuses an active session)
    start_session("local[2]", parse_conf(str(hive_conf)))
    result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"OK: {len(DAYS)} day(s) built" in result.output
    from pyspark.sql import SparkSession

    SparkSession.getActiveSession().stop()  # type: ignore[union-attr]

    got = read_back(hive_conf)
    assert got["tables"] == sorted(t.name for t in TABLES)
    expected = parquet_rows(root)
    assert got["daily"] == expected
    assert sorted({r[0] for r in expected}) == [d.isoformat() for d in DAYS]
    assert len(expected) > 0.8 * 30 * len(DAYS)  # ~30 companies a day
    assert got["weeks"] == ["week_start=2026-11-09"]
    assert got["usage"] == sum(len(sim.usage(d)) for d in DAYS)
