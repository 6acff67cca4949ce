"""SIGKILL during a staging load or a build leaves the warehouse as it was before that step; the next run
completes it. Real processes, paused at a known SQL statement inside the step's transaction, on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.warehouse import connect

from . import pg, procs
from .helpers import days, table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
D1, D3, D4 = date(2026, 11, 8), date(2026, 11, 10), date(2026, 11, 11)
FOUR = days(D1, D4)

# (pause point inside the step's transaction, the tables that step writes)
STEPS = [
    ("staging.sql:crm_replace_day", ["stg.crm_daily", "ops.crm_snapshots"]),
    ("staging.sql:usage_replace_day", ["stg.product_usage_daily", "ops.usage_days"]),
    ("populate_company_daily_activity.sql:publish", ["analytics.company_daily_activity", "ops.build_days"]),
]


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=9, companies=60, today=TODAY)) as server:
        yield server


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_sigkill_in_each_step_leaves_it_undone_and_the_next_run_completes_it(
    wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    cli(env, "backfill", "--start", D1.isoformat(), "--end", D3.isoformat())

    for point, tables in STEPS:
        with connect(wh_url) as wh:
            before = procs.snapshot(wh)
        proc = procs.start(env, "run", "--date", D4.isoformat(), tmp=tmp_path, pause_at=point)
        proc.wait_paused()
        proc.kill()
        with connect(wh_url) as wh:
            after = procs.snapshot(wh)
        for name in tables:
            assert after[name] == before[name], f"{name} changed by the run killed at {point}"
        if point.startswith("populate"):
            # the earlier steps of that run were committed: the build had its inputs
            assert any(r[0] == D4 for r in after["stg.product_usage_daily"])
            assert not any(r[0] == D4 for r in after["analytics.company_daily_activity"])

    output = cli(env, "run", "--date", D4.isoformat())
    assert "OK: 1 day(s) built" in output
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)
        statuses = wh.execute("select status, count(*) from ops.runs group by status order by 1")
        # the killed runs are marked failed ("interrupted") by the next run that takes the lock
        assert statuses == [("failed", 3), ("succeeded", 2)]


def test_sigkill_in_a_rebuild_of_changed_usage_is_completed_by_the_next_run(
    tmp_path: Path, sim: SimulatorServer
) -> None:
    wh_url = str(tmp_path / "wh.duckdb")
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    cli(env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat())
    changed_day = D1
    original = sim.usage(changed_day)
    sim.options.overrides[changed_day] = [
        UsageRecord(r.company_id, r.active_users + 5, r.events) for r in original[:5]
    ] + original[5:]
    proc = procs.start(
        env,
        "run",
        "--date",
        changed_day.isoformat(),
        tmp=tmp_path,
        pause_at="populate_company_daily_activity.sql:publish",
    )
    proc.wait_paused()
    proc.kill()
    cli(env, "run", "--date", changed_day.isoformat())
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)
