"""``company-activity demo``: the whole pipeline on embedded defaults, with nothing to set up."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .config import Settings
from .logs import configure
from .pipeline import Pipeline
from .simulator import SimulatorOptions, SimulatorServer
from .storage import open_lake


def run_demo(
    base: Settings,
    *,
    folder: str,
    days: int,
    companies: int,
    seed: int,
    echo: Callable[[str], None],
) -> int:
    configure(level="WARNING" if base.log_level == "INFO" else base.log_level, fmt=base.log_format)
    folder = os.path.abspath(folder)
    warehouse = os.path.join(folder, "warehouse.duckdb")
    lake_root = os.path.join(folder, "lake")
    # the demo starts from scratch every time: its folder holds nothing but what it made last time
    for stale in (warehouse, warehouse + ".wal", warehouse + ".lock"):
        if os.path.exists(stale):
            os.remove(stale)
    shutil.rmtree(lake_root, ignore_errors=True)
    today = base.today or datetime.now(UTC).date()
    first = today - timedelta(days=days)
    # the synthetic world starts two weeks before the demo's first day, so late joiners show up
    options = SimulatorOptions(seed=seed, companies=companies, epoch=first - timedelta(days=14), today=today)
    with SimulatorServer(options) as sim:
        last = today - timedelta(days=1)
        lake = open_lake(lake_root)
        written = sim.data.write_crm_snapshots(
            lake, [first + timedelta(days=k) for k in range(days)], template=base.crm_path
        )
        echo(f"API simulator on {sim.url} ({companies} companies, seed {seed})")
        echo(f"wrote {len(written)} CRM snapshots to {lake.url('crm/')}")
        settings = base.model_copy(
            update={
                "warehouse": warehouse,
                "lake": lake_root,
                "api_url": sim.url,
                "api_client_id": options.client_id,
                "api_client_secret": _secret(options.client_secret),
                "api_key": None,
                "start_date": first,
                "today": today,
                "api_rate_limit": 1000.0,
            }
        )
        echo(f"running {first.isoformat()} … {last.isoformat()} into {warehouse}")
        with Pipeline(settings) as pipeline:
            report = pipeline.run()
            wh = pipeline.wh
            echo("")
            echo("day          rows  active  churn-risk  not-in-CRM")
            for day, rows, active, churn, missing in wh.execute(
                "select activity_date, count(*), sum(case when active_users > 0 then 1 else 0 end), "
                "sum(case when is_churn_risk then 1 else 0 end), "
                "sum(case when company_name is null then 1 else 0 end) "
                "from analytics.company_daily_activity group by activity_date order by activity_date"
            ):
                echo(f"{day.isoformat()}  {rows:>5}  {active:>6}  {churn:>10}  {missing:>10}")
            churn_rows = wh.execute(
                "select company_id, company_name, last_contact_at from analytics.company_daily_activity "
                "where activity_date = :day and is_churn_risk order by company_id",
                {"day": last},
            )
            echo("")
            echo(f"churn-risk companies on {last.isoformat()} (no usage for 7 days): {len(churn_rows)}")
            for company_id, name, contact in churn_rows[:20]:
                echo(f"  {company_id}  {name or '(not in CRM)'}  last contact {contact or '-'}")
            if len(churn_rows) > 20:
                echo(f"  … and {len(churn_rows) - 20} more")
        echo("")
        echo(f"{'FAILED' if report.failed else 'OK'}: run {report.run_id}, {len(report.built)} day(s) built")
        echo(f"warehouse: {warehouse}")
        echo(f"lake:      {lake_root}  (raw API pages under raw/product_usage/, CRM under crm/)")
        echo("open it:")
        python = _shown(sys.executable)
        echo(
            f"  {python} -c \"import duckdb; duckdb.connect('{warehouse}', read_only=True)"
            ".sql('from analytics.company_daily_activity order by activity_date desc limit 10').show()\""
        )
        echo(f"  COMPANY_ACTIVITY_WAREHOUSE={warehouse} {python} -m company_activity status")
        echo("see it in a browser: start the web UI, then open http://127.0.0.1:8080/")
        echo(
            f"  COMPANY_ACTIVITY_WAREHOUSE={warehouse} COMPANY_ACTIVITY_LAKE={lake_root} "
            f"{python} -m company_activity serve"
        )
    logging.getLogger("company_activity").handlers.clear()
    return report.exit_code


def _secret(value: str | None) -> object:
    from pydantic import SecretStr

    return SecretStr(value) if value else None


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it lies below it (``.venv/bin/python``)."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path
