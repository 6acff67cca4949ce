"""``company-activity schedule``: cron times in UTC, catch-up on start, one scheduler per warehouse, and
stopping on SIGTERM / Ctrl-C. In process with a fake clock against the simulator, and as real processes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.alerts import Alert
from company_activity.cli import main
from company_activity.config import Settings
from company_activity.errors import ConfigError
from company_activity.pipeline import RunReport
from company_activity.scheduler import Cron, Scheduler
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.warehouse.locks import SchedulerBusyError, scheduler_lock

from . import pg, procs
from .helpers import days, table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
FIRST = date(2026, 11, 6)
LAST = date(2026, 11, 11)  # yesterday


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=5, companies=40, today=TODAY)) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sim: SimulatorServer) -> dict[str, str]:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, days(FIRST, TODAY))
    return procs.cli_env(str(tmp_path / "wh.duckdb"), lake, sim, start=FIRST, today=TODAY)


def settings_of(env: dict[str, str], **overrides: object) -> Settings:
    values = {k.removeprefix("COMPANY_ACTIVITY_").lower(): v for k, v in env.items()}
    return Settings.model_validate(values | overrides)


@dataclass
class FakeClock:
    """A UTC clock that moves only when the scheduler waits; the simulator's "today" follows it."""

    now: datetime
    sim: SimulatorServer | None = None
    waits: list[float] = field(default_factory=list)
    scheduler: Scheduler | None = None

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.sim is not None:
            self.sim.set_today(self.now.date())
        return self.scheduler is not None and self.scheduler.stopping


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


# -- the cron expression -------------------------------------------------------------------------------
def test_cron_times_are_crontab_in_utc() -> None:
    thursday = utc(2026, 11, 12, 10, 0, 0)
    assert Cron("0 0 * * *").next_after(thursday) == utc(2026, 11, 13)
    assert Cron("0 0 * * *").next_after(utc(2026, 11, 13)) == utc(2026, 11, 14)  # strictly after
    assert Cron("0 0 * * 1").next_after(thursday) == utc(2026, 11, 16)  # 1 = Monday, as in crontab
    assert Cron("0 0 * * 0").next_after(thursday) == utc(2026, 11, 15)  # 0 = Sunday
    assert Cron("30 1 * * mon-fri").next_after(thursday) == utc(2026, 11, 13, 1, 30)
    assert Cron("*/2 * * * * *").next_after(thursday) == utc(2026, 11, 12, 10, 0, 2)  # seconds first
    assert Cron("@daily").next_after(thursday) == utc(2026, 11, 13)
    # the schedule is in UTC whatever zone the time is given in: 00:30 at UTC+1 is 23:30 UTC
    cet = datetime.fromisoformat("2026-11-13T00:30+01:00")
    assert Cron("0 0 * * *").next_after(cet) == utc(2026, 11, 13)


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("", "is empty"),
        ("0 0 * *", "has 4 fields"),
        ("0 25 * * *", "not a valid cron expression"),
        ("H 0 * * *", "hashed or random"),
        ("0 0 30 2 *", "not a valid cron expression"),
        ("0 0 * * * * *", "has 7 fields"),
    ],
)
def test_bad_cron_expressions_name_the_setting(expr: str, why: str) -> None:
    with pytest.raises(ConfigError, match="--cron") as err:
        Cron(expr)
    assert why in str(err.value)


def test_bad_cron_or_config_exits_2(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["schedule", "--cron", "0 0 * *"], env=env)
    assert result.exit_code == 2
    assert "--cron '0 0 * *' has 4 fields" in result.output
    result = CliRunner().invoke(
        main, ["schedule"], env=env | {"COMPANY_ACTIVITY_SCHEDULE_CRON": "61 * * * *"}
    )
    assert result.exit_code == 2
    assert "COMPANY_ACTIVITY_SCHEDULE_CRON '61 * * * *'" in result.output
    result = CliRunner().invoke(main, ["schedule"], env=env | {"COMPANY_ACTIVITY_API_URL": ""})
    assert result.exit_code == 2
    assert "COMPANY_ACTIVITY_API_URL is not set" in result.output
    assert Settings.model_fields["schedule_cron"].default == "0 0 * * *"


# -- runs on a fake clock against the simulator ----------------------------------------------------------
def test_catches_up_on_start_then_runs_at_midnight_utc(
    env: dict[str, str], sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_of(env, today=None)  # the scheduler's clock says what today is
    clock = FakeClock(utc(2026, 11, 12, 10, 0, 0), sim)
    scheduler = Scheduler(settings, cron=Cron("0 0 * * *"), clock=clock, wait=clock.wait, sinks=[Recorder()])
    clock.scheduler = scheduler
    with caplog.at_level(logging.INFO, logger="company_activity"):
        assert scheduler.serve(max_runs=2, handle_signals=False) == 0

    first, second = scheduler.reports
    assert first is not None and second is not None
    assert first.caught_up == days(FIRST, LAST - timedelta(days=1))
    assert first.days == days(FIRST, LAST) and not first.failed
    assert second.days == [TODAY] and not second.failed  # at 2026-11-13 00:00 UTC: yesterday is 11-12
    assert clock.now == utc(2026, 11, 13)
    assert max(clock.waits) <= 60  # naps of at most a minute against the wall clock
    assert "next run due at 2026-11-13 00:00:00 UTC (in 14h00m00s; cron '0 0 * * *', UTC)" in caplog.text
    with connect(settings.warehouse) as wh:
        assert table(wh) == procs.ground_truth(sim, days(FIRST, TODAY), days(FIRST, TODAY))
        assert wh.execute("select status, count(*) from ops.runs group by 1") == [("succeeded", 2)]


def test_a_run_that_cannot_start_is_alerted_and_the_next_one_goes_ahead(env: dict[str, str]) -> None:
    settings = settings_of(env, lock_timeout=0)
    clock = FakeClock(utc(2026, 11, 12, 23, 59, 0))
    sink = Recorder()
    other = DuckDBWarehouse(settings.warehouse)  # another run holds the warehouse's run lock
    held = other.lock(timeout=0)
    held.__enter__()

    def wait(seconds: float) -> bool:
        if other.locked:
            held.__exit__(None, None, None)  # the other run ends meanwhile
        return clock.wait(seconds)

    scheduler = Scheduler(settings, cron=Cron("0 0 * * *"), clock=clock, wait=wait, sinks=[sink])
    try:
        assert scheduler.serve(max_runs=2, handle_signals=False) == 0
    finally:
        other.close()
    failed, ok = scheduler.reports
    assert failed is None
    assert ok is not None and not ok.failed and ok.days == days(FIRST, LAST)
    (alert,) = [a for a in sink.alerts if a.title == "scheduled run failed"]
    assert alert.severity == "error" and "another company-activity run holds the lock" in alert.message
    assert alert.rerun == "company-activity run"


def test_a_run_that_overruns_the_next_time_is_followed_at_once_by_one_run(env: dict[str, str]) -> None:
    clock = FakeClock(utc(2026, 11, 12, 10, 0, 0))
    starts: list[datetime] = []

    class SlowPipeline:
        """Each run takes 2.5 minutes of a per-minute schedule."""

        def __init__(self, _settings: Settings):
            starts.append(clock.now)

        def __enter__(self) -> SlowPipeline:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self) -> RunReport:
            clock.now += timedelta(seconds=150)
            return RunReport("r", "run", [])

    scheduler = Scheduler(
        settings_of(env), cron=Cron("* * * * *"), clock=clock, wait=clock.wait, pipeline_factory=SlowPipeline
    )
    assert scheduler.serve(max_runs=3, handle_signals=False) == 0
    # 10:00:00 (start), then 10:01 had passed: at once (10:02:30), then 10:03 had passed: at once
    assert starts == [utc(2026, 11, 12, 10, 0, 0), utc(2026, 11, 12, 10, 2, 30), utc(2026, 11, 12, 10, 5, 0)]
    assert clock.waits == []


def test_a_stop_signal_while_the_main_thread_holds_the_stop_events_lock_stops_the_scheduler(
    env: dict[str, str],
) -> None:
    """The race seen once in CI: SIGTERM arriving while the idle scheduler was inside its stop event's
    wait, holding the event's lock, ran a Python handler in the main thread that set the same event: it
    waited for itself forever. The signals are read by a watcher thread now; here one is sent to it while
    the main thread holds that lock (as ``Event.wait`` does on its way in and out)."""
    scheduler: Scheduler

    class NoPipeline:
        def __init__(self, _settings: Settings):
            pass

        def __enter__(self) -> NoPipeline:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self) -> RunReport:
            return RunReport("r", "run", [])

    def wait(seconds: float) -> bool:
        assert {signal.SIGTERM, signal.SIGINT} <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
        (watcher,) = [t for t in threading.enumerate() if t.name == "signals"]
        lock = scheduler._stop._cond  # what Event.wait holds on its way in and out
        with lock:
            assert watcher.ident is not None
            signal.pthread_kill(watcher.ident, signal.SIGTERM)
            time.sleep(0.3)  # the signal is read meanwhile; its stop waits for the lock, not for us
        return scheduler._stop.wait(5)

    scheduler = Scheduler(
        settings_of(env), cron=Cron("* * * * * *"), wait=wait, pipeline_factory=NoPipeline, sinks=[]
    )
    started = time.monotonic()
    assert scheduler.serve() == 0
    assert time.monotonic() - started < 5  # not the 5 s wait: the stop was set at once
    assert scheduler.stopping and len(scheduler.reports) == 1  # the catch-up run, then the stop
    assert signal.getsignal(signal.SIGTERM) is not Scheduler._stop_now  # the handlers are given back
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


# -- one scheduler per warehouse -------------------------------------------------------------------------
def test_one_scheduler_per_warehouse(wh_url: str) -> None:
    busy = pytest.raises(SchedulerBusyError, match="another company-activity scheduler already serves")
    with scheduler_lock(wh_url):
        with busy, scheduler_lock(wh_url):
            pass  # pragma: no cover
        # the run lock is another lock: a run may go ahead while a scheduler is idle
        with connect(wh_url) as wh, wh.lock(timeout=0):
            pass
    with scheduler_lock(wh_url):  # released with its holder
        pass


def test_a_second_scheduler_exits_1_naming_the_first(env: dict[str, str]) -> None:
    with scheduler_lock(env["COMPANY_ACTIVITY_WAREHOUSE"]):
        result = CliRunner().invoke(main, ["schedule"], env=env)
    assert result.exit_code == 1
    assert "another company-activity scheduler already serves" in result.output
    assert f"pid {os.getpid()}" in result.output


# -- real processes and real signals ---------------------------------------------------------------------
def wait_for(proc: procs.Proc, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output:
        if proc.popen.poll() is not None:
            raise AssertionError(f"exited {proc.popen.returncode} before {text!r}:\n{proc.output}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {text!r} in {timeout}s:\n{proc.output}")
        time.sleep(0.02)


def test_sigterm_during_a_run_lets_it_finish_then_exits_0(
    env: dict[str, str], sim: SimulatorServer, tmp_path: Path
) -> None:
    # paused inside the transaction that loads a usage day into staging
    proc = procs.start(env, "schedule", tmp=tmp_path, pause_at="staging.sql:usage_replace_day")
    proc.wait_paused()
    proc.popen.send_signal(signal.SIGTERM)
    wait_for(proc, "SIGTERM: stopping after the run in progress")
    proc.resume()
    assert proc.wait(60) == 0, proc.output
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert table(wh) == procs.ground_truth(sim, days(FIRST, LAST), days(FIRST, LAST))
        assert wh.execute("select status from ops.runs") == [("succeeded",)]
        assert wh.execute("select count(*) from ops.run_steps where status = 'running'") == [(0,)]


def test_a_second_signal_aborts_the_run_and_its_transaction_rolls_back(
    env: dict[str, str], sim: SimulatorServer, tmp_path: Path
) -> None:
    # paused inside the transaction that loads the first day's usage into staging (the CRM step of
    # every day has committed by then)
    proc = procs.start(env, "schedule", tmp=tmp_path, pause_at="staging.sql:usage_replace_day")
    proc.wait_paused()
    proc.popen.send_signal(signal.SIGINT)  # Ctrl-C
    wait_for(proc, "SIGINT: stopping after the run in progress")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM, proc.output
    assert "SIGTERM again: stopping now" in proc.output
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        after = procs.snapshot(wh)
    # the day being loaded is not in staging, half or whole: its transaction rolled back
    assert after["stg.product_usage_daily"] == []
    assert [r for r in after["ops.usage_days"] if r[1] == "complete"] == []
    assert after["analytics.company_daily_activity"] == []
    assert [r[0] for r in after["ops.crm_snapshots"]] == days(FIRST, LAST)
    # and the next run catches everything up
    result = CliRunner().invoke(main, ["run"], env=env)
    assert result.exit_code == 0, result.output
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert table(wh) == procs.ground_truth(sim, days(FIRST, LAST), days(FIRST, LAST))


def test_a_seconds_level_schedule_runs_until_sigterm_then_exits_0(
    env: dict[str, str], tmp_path: Path
) -> None:
    proc = procs.start(
        env | {"COMPANY_ACTIVITY_LOG_LEVEL": "INFO"}, "schedule", "--cron", "* * * * * *", tmp=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while proc.output.count(" OK: ") < 3:  # the catch-up, then two runs on the schedule
            assert proc.popen.poll() is None, proc.output
            assert time.monotonic() < deadline, proc.output
            time.sleep(0.05)
        wait_for(proc, "next run due at")
    finally:
        proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.output
    assert "scheduler stopped" in proc.output
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        runs = wh.execute("select status, count(*) from ops.runs group by 1")
    assert runs[0][0] == "succeeded" and runs[0][1] >= 3 and len(runs) == 1
