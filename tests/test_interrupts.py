"""SIGINT/SIGTERM stop a run promptly and cleanly (issue 9): real processes, real signals, both engines.

Whatever the run was doing (a long day fetch, a CRM load, a build), it exits within a bounded time with
128 + the signal number, the run is recorded as ``interrupted``, no step is left ``running``, the warehouse
lock is free, and the next run converges to the table an uninterrupted run builds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect

from . import pg, procs
from .helpers import days, table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
FOUR = days(date(2026, 11, 8), date(2026, 11, 11))
D1, D4 = FOUR[0], FOUR[-1]
BACKFILL = ("backfill", "--start", D1.isoformat(), "--end", D4.isoformat())


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=9, companies=60, today=TODAY)) as server:
        yield server


def assert_stopped_cleanly(proc: procs.Proc, code: int, wh_url: str) -> None:
    assert proc.wait(30) == code, proc.output  # bounded: the test fails if it takes longer
    assert "Traceback" not in proc.output, proc.output
    assert "INTERRUPTED" in proc.output or "stopped at once" in proc.output, proc.output
    with connect(wh_url) as wh:
        assert wh.execute("select status from ops.runs") == [("interrupted",)]
        # a step stopped mid-way is "interrupted"; none is left "running"
        assert wh.execute("select count(*) from ops.run_steps where status = 'running'") == [(0,)]


def rerun_converges(env: dict[str, str], sim: SimulatorServer, wh_url: str) -> None:
    # the lock is free: a run that will not wait for it at all gets it
    result = CliRunner().invoke(main, list(BACKFILL), env=env | {"COMPANY_ACTIVITY_LOCK_TIMEOUT": "0"})
    assert result.exit_code == 0, result.output
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)
        statuses = wh.execute("select status, count(*) from ops.runs group by 1 order by 1")
        assert statuses == [("interrupted", 1), ("succeeded", 1)]


def test_sigint_during_a_long_day_fetch(wh_url: str, tmp_path: Path, sim: SimulatorServer) -> None:
    sim.options.latency = 0.3  # every page takes 0.3 s: a day of 12 pages takes ~4 s
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY) | {
        "COMPANY_ACTIVITY_API_PAGE_SIZE": "5",
        "COMPANY_ACTIVITY_API_CONCURRENCY": "2",
    }
    proc = procs.start(env, *BACKFILL, tmp=tmp_path)
    deadline = time.monotonic() + 60
    while not list((lake / "raw").rglob("*.json*")):  # the first page of a day landed: mid-fetch
        assert proc.popen.poll() is None, proc.output
        assert time.monotonic() < deadline, proc.output
        time.sleep(0.05)
    proc.popen.send_signal(signal.SIGINT)
    assert_stopped_cleanly(proc, 130, wh_url)
    with connect(wh_url) as wh:  # the day in progress is not complete
        assert wh.execute("select count(*) from ops.usage_days where status = 'complete'")[0][0] < 4
    shown = CliRunner().invoke(main, ["status"], env=env)
    assert "INTERRUPTED" in shown.output, shown.output  # status says the latest run was interrupted
    sim.options.latency = 0.0
    rerun_converges(env, sim, wh_url)


@pytest.mark.parametrize(
    ("point", "signum"),
    [
        ("staging.sql:crm_replace_day", signal.SIGTERM),
        ("populate_company_daily_activity.sql:publish", signal.SIGINT),
    ],
    ids=["sigterm-during-crm-load", "sigint-during-build"],
)
def test_a_signal_during_a_load_or_a_build(
    point: str, signum: int, wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    proc = procs.start(env, *BACKFILL, tmp=tmp_path, pause_at=point)
    proc.wait_paused()
    proc.popen.send_signal(signum)
    time.sleep(0.3)  # the signal is seen while the statement's transaction is open
    proc.resume()
    assert_stopped_cleanly(proc, 128 + signum, wh_url)
    rerun_converges(env, sim, wh_url)


def test_a_second_signal_stops_at_once(wh_url: str, tmp_path: Path, sim: SimulatorServer) -> None:
    second_signal_stops_at_once(wh_url, tmp_path, sim, sigint_ignored=False)


def test_a_second_signal_stops_at_once_when_started_with_sigint_ignored(
    tmp_path: Path, sim: SimulatorServer
) -> None:
    """``nohup company-activity backfill … &`` from a script starts the process with SIGINT ignored; the
    stop-at-once of a second signal must not depend on the inherited disposition."""
    second_signal_stops_at_once(str(tmp_path / "wh.duckdb"), tmp_path, sim, sigint_ignored=True)


def second_signal_stops_at_once(
    wh_url: str, tmp_path: Path, sim: SimulatorServer, *, sigint_ignored: bool
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    # paused inside the transaction that loads a usage day: the pause does not check for a stop
    proc = procs.start(
        env, *BACKFILL, tmp=tmp_path, pause_at="staging.sql:usage_replace_day", sigint_ignored=sigint_ignored
    )
    proc.wait_paused()
    proc.popen.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.popen.send_signal(signal.SIGINT)
    assert_stopped_cleanly(proc, 130, wh_url)
    with connect(wh_url) as wh:  # the open transaction rolled back: no usage day is complete
        assert wh.execute("select count(*) from ops.usage_days where status = 'complete'") == [(0,)]
    rerun_converges(env, sim, wh_url)


def test_the_run_deadline_stops_the_run_like_a_signal(tmp_path: Path, sim: SimulatorServer) -> None:
    sim.options.latency = 0.3
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    wh_url = str(tmp_path / "wh.duckdb")
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY) | {
        "COMPANY_ACTIVITY_API_PAGE_SIZE": "5",
        "COMPANY_ACTIVITY_RUN_DEADLINE": "2",
    }
    proc = procs.start(env, *BACKFILL, tmp=tmp_path)
    assert proc.wait(30) == 1, proc.output
    assert "run deadline exceeded" in proc.output and "INTERRUPTED (deadline)" in proc.output, proc.output
    with connect(wh_url) as wh:
        assert wh.execute("select status from ops.runs") == [("interrupted",)]
        assert wh.execute("select count(*) from ops.run_steps where status = 'running'") == [(0,)]
    sim.options.latency = 0.0
    rerun_converges(env | {"COMPANY_ACTIVITY_RUN_DEADLINE": "3600"}, sim, wh_url)
