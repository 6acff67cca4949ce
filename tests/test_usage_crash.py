"""SIGKILL in the middle of fetching usage: a real ``python -m company_activity run`` process, killed.

Afterwards no unfinished raw run has a manifest, nothing of an unfinished day is in staging, and the next
run completes every day exactly (the simulator's ground truth). A kill inside a staging load's transaction
is ``test_crash.py``'s subject; here the process dies while pages are landing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.raw import landing as ingest
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse.duckdb import DuckDBWarehouse

from . import procs
from .helpers import days, table

TODAY = date(2026, 11, 12)
DAY = date(2026, 11, 10)
START = date(2026, 11, 7)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    # 10 records a page, 40 ms each: a day takes ~0.5 s to fetch, long enough to be killed in the middle
    with SimulatorServer(SimulatorOptions(seed=21, companies=120, today=TODAY, latency=0.04)) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sim: SimulatorServer) -> dict[str, str]:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, days(START, TODAY))
    return procs.cli_env(str(tmp_path / "wh.duckdb"), lake, sim, start=START, today=TODAY) | {
        "COMPANY_ACTIVITY_API_PAGE_SIZE": "10"
    }


def raw_runs(env: dict[str, str], day: date) -> list[Path]:
    folder = Path(env["COMPANY_ACTIVITY_LAKE"]) / "raw" / "product_usage" / f"date={day.isoformat()}"
    return sorted(folder.glob("run=*"))


def pages_landed(env: dict[str, str]) -> int:
    return len(list(Path(env["COMPANY_ACTIVITY_LAKE"]).glob("raw/product_usage/date=*/run=*/page-*.json")))


def kill_when(proc: procs.Proc, condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.popen.poll() is not None:
            raise AssertionError(f"exited {proc.popen.returncode} before the kill:\n{proc.output}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"condition not reached in {timeout}s:\n{proc.output}")
        time.sleep(0.005)
    proc.kill()


def staged(env: dict[str, str], day: date) -> dict[str, tuple[int, int]]:
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        rows = wh.execute(
            "select company_id, active_users, events from stg.product_usage_daily where activity_date = :d",
            {"d": day},
        )
    return {r[0]: (r[1], r[2]) for r in rows}


def truth(sim: SimulatorServer, day: date) -> dict[str, tuple[int, int]]:
    return {r.company_id: (r.active_users, r.events) for r in sim.usage(day)}


def assert_raw_runs_are_whole_or_unfinished(env: dict[str, str], day: date) -> list[Path]:
    """A run with a manifest has every page it lists, byte for byte; returns the runs without one."""
    unfinished = []
    for run in raw_runs(env, day):
        manifest = run / "_manifest.json"
        if not manifest.exists():
            unfinished.append(run)
            continue
        m = json.loads(manifest.read_text())
        for page in m["pages"]:
            assert hashlib.sha256((run / page["file"]).read_bytes()).hexdigest() == page["sha256"]
        assert {p.name for p in run.glob("page-*.json")} == {p["file"] for p in m["pages"]}
    return unfinished


def test_sigkill_while_pages_land_leaves_no_manifest_and_no_staging_and_the_next_run_completes_the_day(
    env: dict[str, str], sim: SimulatorServer, tmp_path: Path
) -> None:
    proc = procs.start(env, "run", "--date", DAY.isoformat(), tmp=tmp_path)
    kill_when(proc, lambda: pages_landed(env) >= 3)

    (killed,) = raw_runs(env, DAY)
    assert len(list(killed.glob("page-*.json"))) >= 3
    assert not (killed / "_manifest.json").exists()
    assert staged(env, DAY) == {}
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert wh.execute("select status from ops.usage_days where activity_date = :d", {"d": DAY}) == []
        assert wh.execute("select status from ops.runs") == [("running",)]  # as it died

    result = CliRunner().invoke(main, ["run", "--date", DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert staged(env, DAY) == truth(sim, DAY)
    unfinished = assert_raw_runs_are_whole_or_unfinished(env, DAY)
    assert unfinished == [killed]  # the killed run stays as it was, never read
    assert len(raw_runs(env, DAY)) == 2

    # replay reads the complete raw run, not the unfinished one
    result = CliRunner().invoke(main, ["replay", "--date", DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert staged(env, DAY) == truth(sim, DAY)


def test_sigkill_during_a_concurrent_catch_up_loses_nothing(
    env: dict[str, str], sim: SimulatorServer, tmp_path: Path
) -> None:
    five = days(START, TODAY - timedelta(days=1))  # 11-07 … 11-11, fetched 4 at a time
    lake = Path(env["COMPANY_ACTIVITY_LAKE"])
    proc = procs.start(env, "run", tmp=tmp_path)
    # killed once a day's raw run is complete (its load may have begun), while other days are landing
    kill_when(proc, lambda: any(lake.glob("raw/product_usage/date=*/run=*/_manifest.json")))

    for day in five:
        unfinished = assert_raw_runs_are_whole_or_unfinished(env, day)
        loaded = staged(env, day)
        # a day is in staging whole, or not at all
        assert loaded in ({}, truth(sim, day)), day
        if loaded:
            assert not unfinished
    result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for day in five:
        assert staged(env, day) == truth(sim, day)
        assert_raw_runs_are_whole_or_unfinished(env, day)
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert table(wh) == procs.ground_truth(sim, days(START, TODAY), five)


def test_spools_left_by_killed_processes_are_swept_after_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{ingest.SPOOL_PREFIX}2026-11-10-abc.csv"
    fresh = tmp_path / f"{ingest.SPOOL_PREFIX}2026-11-11-def.csv"
    other = tmp_path / "someone-else.csv"
    for path in (stale, fresh, other):
        path.write_text('"C1",1,1\n')
    old = time.time() - ingest.STALE_SPOOL_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert ingest.sweep_stale_spools() == 1
    assert not stale.exists() and fresh.exists() and other.exists()
