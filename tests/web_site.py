"""A small built warehouse for the web UI tests: the simulator's synthetic data through the real pipeline.

``built_site(folder)`` runs 20 days of a 80-company world into a DuckDB file and a local lake, then gives
one churn-risk company a hostile name (``<script>alert(1)</script>``) in staging and in the analytics
table, so escaping is tested on a company the churn list shows. Build it once per test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from company_activity.config import Settings, load_settings
from company_activity.pipeline import Pipeline
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake
from company_activity.warehouse.duckdb import DuckDBWarehouse

TODAY = date(2026, 11, 21)
FIRST = date(2026, 11, 1)
LAST = TODAY - timedelta(days=1)
HOSTILE = "<script>alert(1)</script>"
SECRET = "demo-secret"


@dataclass(frozen=True)
class Site:
    settings: Settings
    hostile_id: str
    run_id: str
    built_days: list[date]
    churn_ids: list[str]


def built_site(folder: Path) -> Site:
    lake_root = folder / "lake"
    days = [FIRST + timedelta(days=k) for k in range((LAST - FIRST).days + 1)]
    options = SimulatorOptions(seed=5, companies=80, today=TODAY, epoch=FIRST - timedelta(days=14))
    with SimulatorServer(options) as sim:
        sim.data.write_crm_snapshots(open_lake(str(lake_root)), days)
        settings = load_settings(
            warehouse=str(folder / "warehouse.duckdb"),
            lake=str(lake_root),
            api_url=sim.url,
            api_client_id="demo-client",
            api_client_secret=SECRET,
            start_date=FIRST,
            today=TODAY,
            api_rate_limit=1000.0,
        )
        with Pipeline(settings) as pipeline:
            report = pipeline.run()
    assert not report.failed
    with DuckDBWarehouse(settings.warehouse) as wh:
        churn = [
            r[0]
            for r in wh.execute(
                "select company_id from analytics.company_daily_activity "
                "where activity_date = :d and is_churn_risk order by company_id",
                {"d": LAST},
            )
        ]
        assert len(churn) >= 3
        hostile = churn[1]
        with wh.transaction():
            for table in ("stg.crm_daily", "analytics.company_daily_activity"):
                wh.execute(
                    f"update {table} set company_name = :n where company_id = :c",  # noqa: S608
                    {"n": HOSTILE, "c": hostile},
                )
        built = [r[0] for r in wh.execute("select activity_date from ops.build_days order by 1")]
    return Site(settings, hostile, report.run_id, built, churn)
