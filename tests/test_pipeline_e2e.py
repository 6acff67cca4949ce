"""End to end: the simulator on a loopback port, the real CLI, a real DuckDB file and a local lake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.storage import open_lake
from company_activity.warehouse.duckdb import DuckDBWarehouse

from . import helpers
from .helpers import clean, days, loaded_at, table

TODAY = date(2026, 11, 12)
FIRST = date(2026, 11, 2)
LAST = date(2026, 11, 11)  # yesterday
TEN_DAYS = days(FIRST, LAST)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        SimulatorOptions(seed=11, companies=120, today=TODAY, epoch=date(2026, 10, 20))
    ) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sim: SimulatorServer) -> dict[str, str]:
    lake = tmp_path / "lake"
    sim.data.write_crm_snapshots(open_lake(str(lake)), TEN_DAYS)
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": FIRST.isoformat(),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
    }


def cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def open_wh(env: dict[str, str]) -> DuckDBWarehouse:
    return DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"])


def ground_truth(sim: SimulatorServer, complete: list[date]) -> dict[tuple[date, str], tuple[object, ...]]:
    return helpers.ground_truth(sim, TEN_DAYS, complete)


def test_ten_days_through_the_cli_equal_ground_truth(env: dict[str, str], sim: SimulatorServer) -> None:
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    assert "caught up: " + ", ".join(d.isoformat() for d in TEN_DAYS[:-1]) in result.output
    with open_wh(env) as wh:
        t = table(wh)
        assert t == ground_truth(sim, TEN_DAYS)
        assert {d for d, _ in t} == set(TEN_DAYS)
        churn = sum(1 for row in t.values() if row[7])
        assert churn > 0  # the simulator's silent companies show up as churn risk
        staged = wh.execute("select count(*) from stg.product_usage_daily")[0][0]
        assert staged == sum(len(sim.usage(d)) for d in TEN_DAYS)
        statuses = wh.execute("select status, count(*) from ops.usage_days group by status")
        assert statuses == [("complete", 10)]
        run_rows = wh.execute("select status from ops.runs")
        assert run_rows == [("succeeded",)]
    # raw pages landed with a manifest, immutable per run
    lake = Path(env["COMPANY_ACTIVITY_LAKE"])
    manifests = sorted(lake.glob("raw/product_usage/date=*/run=*/_manifest.json"))
    assert len(manifests) == 10
    m = json.loads(manifests[0].read_text())
    assert m["date"] == FIRST.isoformat()
    assert m["record_count"] == len(sim.usage(FIRST))
    assert m["pages"][0]["file"] == "page-00001.json"


def test_rerun_of_a_day_leaves_the_table_identical(env: dict[str, str]) -> None:
    assert cli(env, "run").exit_code == 0
    with open_wh(env) as wh:
        before = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
    result = cli(env, "run", "--date", "2026-11-06")
    assert result.exit_code == 0, result.output
    assert cli(env, "run").exit_code == 0
    with open_wh(env) as wh:
        after = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
    assert before == after


def test_changed_usage_rebuilds_d_to_d_plus_6_only(env: dict[str, str], sim: SimulatorServer) -> None:
    assert cli(env, "run").exit_code == 0
    with open_wh(env) as wh:
        stamps_before = loaded_at(wh)
    d = date(2026, 11, 3)
    original = sim.usage(d)
    changed = [UsageRecord(r.company_id, r.active_users + 1, r.events) for r in original[:3]] + original[3:]
    sim.options.overrides[d] = changed
    result = cli(env, "run", "--date", d.isoformat())
    assert result.exit_code == 0, result.output
    with open_wh(env) as wh:
        stamps_after = loaded_at(wh)
        assert table(wh) == ground_truth(sim, TEN_DAYS)
    touched = {key for key in stamps_after if stamps_after[key] != stamps_before.get(key)}
    assert touched, "the changed usage must rewrite rows"
    assert {day for day, _ in touched} <= set(days(d, d + timedelta(days=6)))
    assert {cid for _, cid in touched} == {r.company_id for r in original[:3]}


def test_pending_day_is_caught_up_by_the_next_run(env: dict[str, str], sim: SimulatorServer) -> None:
    stuck = date(2026, 11, 9)
    sim.options.not_final_days = frozenset({stuck})
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    assert "pending (API not final yet): 2026-11-09" in result.output
    with open_wh(env) as wh:
        built = {
            r[0] for r in wh.execute("select distinct activity_date from analytics.company_daily_activity")
        }
        assert built == set(days(FIRST, date(2026, 11, 8)))  # 11-10 and 11-11 wait for 11-09
        assert wh.execute("select status from ops.usage_days where activity_date = :d", {"d": stuck}) == [
            ("pending",)
        ]
    sim.options.not_final_days = frozenset()
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    assert "caught up: 2026-11-09" in result.output
    with open_wh(env) as wh:
        assert table(wh) == ground_truth(sim, TEN_DAYS)


def test_missing_crm_snapshot_fails_the_run_but_usage_loads(
    env: dict[str, str], sim: SimulatorServer
) -> None:
    assert cli(env, "run", "--date", "2026-11-05").exit_code == 0
    missing = Path(env["COMPANY_ACTIVITY_LAKE"]) / "crm" / "crm_daily_2026-11-06.csv"
    missing.unlink()
    result = cli(env, "run", "--date", "2026-11-06")
    assert result.exit_code == 1
    assert "CRM snapshot for 2026-11-06 is missing" in result.output
    assert "CRM snapshot of 2026-11-06 missing: used the one of 2026-11-05" in result.output
    with open_wh(env) as wh:
        assert wh.execute("select count(*) from stg.product_usage_daily where activity_date = '2026-11-06'")[
            0
        ][0] == len(sim.usage(date(2026, 11, 6)))
        names = dict(
            wh.execute(
                "select company_id, company_name from analytics.company_daily_activity "
                "where activity_date = '2026-11-06'"
            )
        )
        crm5 = {r.company_id: clean(r.name) for r in sim.data.crm_snapshot(date(2026, 11, 5))}
        assert {cid: names[cid] for cid in crm5} == crm5
        assert wh.execute("select status from ops.runs order by started_at desc limit 1") == [("failed",)]


def test_day_outside_retention_is_lost(env: dict[str, str]) -> None:
    old = TODAY - timedelta(days=31)
    result = cli(env, "run", "--date", old.isoformat())
    assert result.exit_code == 1
    assert "LOST" in result.output and old.isoformat() in result.output
    with open_wh(env) as wh:
        assert wh.execute("select status from ops.usage_days") == [("lost",)]


def test_bad_configuration_exits_2_naming_the_setting(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["run"], env=env | {"COMPANY_ACTIVITY_API_PAGE_SIZE": "5000"})
    assert result.exit_code == 2
    assert "COMPANY_ACTIVITY_API_PAGE_SIZE" in result.output
    no_url = {k: v for k, v in env.items() if k != "COMPANY_ACTIVITY_API_URL"}
    result = CliRunner().invoke(main, ["run"], env=no_url | {"COMPANY_ACTIVITY_API_URL": ""})
    assert result.exit_code == 2
    assert "COMPANY_ACTIVITY_API_URL" in result.output
    result = CliRunner().invoke(main, ["run", "--date", "2026-13-01"], env=env)
    assert result.exit_code == 2
    assert "--date" in result.output


def test_status_and_backfill(env: dict[str, str]) -> None:
    result = cli(env, "backfill", "--start", "2026-11-02", "--end", "2026-11-05")
    assert result.exit_code == 0, result.output
    result = cli(env, "status", "--json", "--days", "12")
    rows = json.loads(result.output)
    by_day = {r["day"]: r for r in rows}
    assert set(by_day) == {d.isoformat() for d in days(FIRST, date(2026, 11, 5))}
    assert all(r["usage_status"] == "complete" and r["build_status"] == "built" for r in rows)
    assert all(r["crm_status"] == "loaded" for r in rows)


def test_module_entry_point_runs_in_a_real_process(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "company_activity", "run", "--date", "2026-11-04"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the first usage day is the earliest complete day: 11-04 alone passes the build gate
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: 1 day(s) built" in proc.stdout
    assert "demo-secret" not in proc.stdout + proc.stderr


def test_replay_reloads_staging_from_raw_without_the_api(env: dict[str, str], sim: SimulatorServer) -> None:
    assert cli(env, "run").exit_code == 0
    with open_wh(env) as wh:
        before = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
        wh.execute(
            "update stg.product_usage_daily set active_users = active_users + 100 "
            "where activity_date between '2026-11-04' and '2026-11-05'"
        )
    requests = sim.stats.requests
    result = cli(env, "replay", "--date", "2026-11-04", "--end", "2026-11-05")
    assert result.exit_code == 0, result.output
    assert sim.stats.requests == requests  # no API call
    with open_wh(env) as wh:
        for d in (date(2026, 11, 4), date(2026, 11, 5)):
            staged = dict(
                (r[0], r[1])
                for r in wh.execute(
                    "select company_id, active_users from stg.product_usage_daily where activity_date = :d",
                    {"d": d},
                )
            )
            assert staged == {r.company_id: r.active_users for r in sim.usage(d)}
        assert before == wh.execute("select * from analytics.company_daily_activity order by 1, 2")


def test_replay_without_raw_run_fails_naming_the_day(env: dict[str, str]) -> None:
    result = cli(env, "replay", "--date", "2026-11-04")
    assert result.exit_code == 1
    assert "no complete raw run for 2026-11-04" in result.output


def test_rerun_from_a_failed_step_does_not_repeat_the_steps_before_it(
    env: dict[str, str], sim: SimulatorServer
) -> None:
    assert cli(env, "run").exit_code == 0
    day = date(2026, 11, 11)
    # the usage step of 11-11 fails (a record with a negative count)
    sim.options.bad_record_days = frozenset({day})
    result = cli(env, "run", "--date", day.isoformat())
    assert result.exit_code == 1
    assert "ingest_usage  failed" in result.output
    sim.options.bad_record_days = frozenset()
    requests = sim.stats.requests
    result = cli(env, "rerun", "--date", day.isoformat())  # picks ingest_usage by itself
    assert result.exit_code == 0, result.output
    assert "--from-step ingest_usage" in result.output
    assert "ingest_crm" not in result.output
    assert "ingest_usage  succeeded" in result.output and "build         succeeded" in result.output
    assert sim.stats.requests > requests
    # from the build step: no API call at all
    requests = sim.stats.requests
    result = cli(env, "rerun", "--date", day.isoformat(), "--from-step", "build")
    assert result.exit_code == 0, result.output
    assert sim.stats.requests == requests
    assert [line.split()[1] for line in result.output.splitlines() if line.startswith("  2026")] == ["build"]
    with open_wh(env) as wh:
        assert table(wh) == ground_truth(sim, TEN_DAYS)


def test_build_command_rebuilds_from_staging_and_names_missing_days(
    env: dict[str, str], sim: SimulatorServer
) -> None:
    assert cli(env, "backfill", "--start", "2026-11-02", "--end", "2026-11-06").exit_code == 0
    with open_wh(env) as wh:
        before = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
    requests = sim.stats.requests
    result = cli(env, "build", "--start", "2026-11-02", "--end", "2026-11-06")
    assert result.exit_code == 0, result.output
    assert sim.stats.requests == requests  # staging only
    with open_wh(env) as wh:
        assert wh.execute("select * from analytics.company_daily_activity order by 1, 2") == before
    result = cli(env, "build", "--start", "2026-11-06", "--end", "2026-11-08")
    assert result.exit_code == 1
    assert "cannot build 2026-11-08: usage is not complete for 2026-11-07, 2026-11-08" in result.output
    result = cli(env, "build", "--start", "2026-11-06", "--end", TODAY.isoformat())
    assert result.exit_code == 2
    assert "is not a closed day yet" in result.output
