"""Issue 24 on the Spark engine: a quarantined usage record never reaches the Spark staging partition.

The Spark engine streams the landing's spool (``StagedDay.rows()``) into its partition, unlike DuckDB's
own read of the spool file; the quarantined record is not in the spool, so the partition holds the
accepted records alone, and run state (a DuckDB file apart) records the quarantine as on the SQL engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("pyspark")

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.warehouse.spark.engine import SparkEngine

from .helpers import days

TODAY = date(2026, 11, 12)
DAY = date(2026, 11, 10)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from company_activity.warehouse.spark.session import start_session

    session = start_session(
        "local[2]", {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"}
    )
    yield session
    session.stop()


def test_the_spark_partition_gets_only_the_accepted_records(spark: Any, tmp_path: Path) -> None:
    options = SimulatorOptions(
        seed=13, companies=60, today=TODAY, epoch=date(2026, 10, 20), oversized_id_days=frozenset({DAY})
    )
    with SimulatorServer(options) as sim:
        (victim,) = sim.oversized_ids(DAY)
        expected = {
            r.company_id: (r.active_users, r.events) for r in sim.usage(DAY) if r.company_id != victim
        }
        lake = tmp_path / "lake"
        sim.data.write_crm_snapshots(open_lake(str(lake)), days(DAY - timedelta(days=3), DAY))
        root, state = tmp_path / "tables", tmp_path / "state.duckdb"
        env = {
            "COMPANY_ACTIVITY_WAREHOUSE": f"spark:{root}",
            "COMPANY_ACTIVITY_STATE": str(state),
            "COMPANY_ACTIVITY_SPARK_MASTER": "local[2]",
            "COMPANY_ACTIVITY_LAKE": str(lake),
            "COMPANY_ACTIVITY_API_URL": sim.url,
            "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
            "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
            "COMPANY_ACTIVITY_START_DATE": DAY.isoformat(),
            "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
            "COMPANY_ACTIVITY_API_PAGE_SIZE": "10",
        }
        result = CliRunner().invoke(main, ["run", "--date", DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    engine = SparkEngine(str(root), session=spark)
    staged = {r[1]: (r[2], r[3]) for r in engine.read_day(DAY, "stg_product_usage_daily")}
    assert staged == expected and len(expected) > 20
    published = {r[1] for r in engine.read_day(DAY)}
    assert set(expected) <= published and not any(len(cid) > 256 for cid in published)
    with DuckDBWarehouse(str(state)) as wh:
        assert wh.execute(
            "select quarantined_count from ops.usage_days where activity_date = :d", {"d": DAY}
        ) == [(1,)]
        ((reason,),) = wh.execute(
            "select reason from ops.usage_quarantine where activity_date = :d", {"d": DAY}
        )
        steps = wh.execute(
            "select status, rows_rejected from ops.run_steps where step = 'ingest_usage' and step_day = :d",
            {"d": DAY},
        )
    assert reason.startswith("field 'company_id' is 300 characters long")
    assert [tuple(s) for s in steps] == [("warning", 1)]
