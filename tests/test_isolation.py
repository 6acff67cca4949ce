"""Step isolation and no holes (issue 9): whatever goes wrong in one step of one day fails that step of
that day alone; the other steps and days of the run go on; days staged by any earlier run get built.

Real parts: the simulator, the CLI, DuckDB and PostgreSQL, a local lake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from company_activity.cli import main
from company_activity.config import load_settings
from company_activity.pipeline import STEP_USAGE, Pipeline
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
D1, D2, D3, D4 = days(date(2026, 11, 8), date(2026, 11, 11))
FOUR = [D1, D2, D3, D4]


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=9, companies=60, today=TODAY)) as server:
        yield server


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def steps(wh_url: str, step: str) -> dict[date, tuple[str, str | None]]:
    """The latest status and message of ``step`` per day."""
    with connect(wh_url) as wh:
        rows = wh.execute(
            "select step_day, status, message from ops.run_steps where step = :step order by started_at",
            {"step": step},
        )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_a_crm_step_that_breaks_with_an_os_error_fails_alone(
    wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, [D1, D3, D4])
    (lake / "crm" / f"crm_daily_{D2.isoformat()}.csv").mkdir(parents=True)  # the CRM "file" is a folder
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)

    result = cli(env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat())

    assert result.exit_code == 1, result.output
    crm = steps(wh_url, "ingest_crm")
    assert crm[D2][0] == "failed"
    assert f"crm_daily_{D2.isoformat()}.csv" in (crm[D2][1] or "")
    assert "Traceback" not in result.output
    assert {d: crm[d][0] for d in (D1, D3, D4)} == dict.fromkeys((D1, D3, D4), "succeeded")
    # the usage step and the build still ran, the build on the snapshot in effect, and said so
    assert set(steps(wh_url, "ingest_usage").values()) == {("succeeded", None)}
    build = steps(wh_url, "build")
    assert build[D2] == ("warning", f"CRM snapshot of {D2.isoformat()} missing: used the one of {D1}")
    with connect(wh_url) as wh:
        assert wh.execute("select status from ops.crm_snapshots where snapshot_date = :d", {"d": D2}) == [
            ("failed",)
        ]
        assert table(wh) == procs.ground_truth(sim, [D1, D3, D4], FOUR)


def test_a_usage_day_that_cannot_be_landed_fails_alone_and_later_days_go_on(
    wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    blocker = lake / "raw" / "product_usage" / f"date={D2.isoformat()}"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # the day's raw folder cannot be made: an OS error for D2 only
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)

    result = cli(env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat())

    assert result.exit_code == 1, result.output
    usage = steps(wh_url, STEP_USAGE)
    assert usage[D2][0] == "failed" and f"date={D2.isoformat()}" in (usage[D2][1] or ""), usage[D2]
    assert {d: usage[d][0] for d in (D1, D3, D4)} == dict.fromkeys((D1, D3, D4), "succeeded")
    with connect(wh_url) as wh:
        statuses = dict(wh.execute("select activity_date, status from ops.usage_days"))
        assert statuses == {D1: "complete", D2: "failed", D3: "complete", D4: "complete"}
        # D1 is built; D2 … D4 wait for D2 (their 7-day window), named by the gate
        assert {r[0] for r in table(wh)} == {D1}
    assert steps(wh_url, "build")[D3][0] == "failed"

    blocker.unlink()
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)


def test_a_value_postgresql_cannot_store_fails_that_day_alone(
    pg_databases: pg.PgDatabases, tmp_path: Path
) -> None:
    url = pg_databases.fresh()
    options = SimulatorOptions(seed=9, companies=60, today=TODAY)
    with SimulatorServer(options) as sim:
        records = list(sim.usage(D2))
        options.overrides[D2] = [*records, UsageRecord("nul\x00company", 3, 4)]
        lake = tmp_path / "lake"
        procs.write_crm(sim, lake, FOUR)
        env = procs.cli_env(url, lake, sim, start=D1, today=TODAY)
        result = cli(env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat())
    # issue 24: the one record is quarantined (docs/usage-api-policy.md), the rest of its day published
    assert result.exit_code == 0, result.output
    usage = steps(url, STEP_USAGE)
    assert usage[D2][0] == "warning", usage
    assert "\x00" not in (usage[D2][1] or "")
    assert {d: usage[d][0] for d in (D1, D3, D4)} == dict.fromkeys((D1, D3, D4), "succeeded")
    with connect(url) as wh:  # the connection of the run was usable after that day: all recorded
        assert wh.execute("select status from ops.runs") == [("succeeded",)]
        assert wh.execute(
            "select quarantined_count from ops.usage_days where activity_date = :d", {"d": D2}
        ) == [(1,)]
        assert wh.execute("select count(*) from ops.run_steps where status = 'running'") == [(0,)]


def test_days_staged_by_an_earlier_run_are_built_by_the_next_and_status_never_says_ok_before(
    wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    settings = load_settings(
        warehouse=wh_url,
        lake=str(lake),
        api_url=sim.url,
        api_client_id="demo-client",
        api_client_secret="demo-secret",
        start_date=D1,
        today=TODAY,
    )
    with Pipeline(settings) as pipeline:  # staged, not built (as a backfill stopped after three days)
        pipeline.run_step("ingest_crm", [D1, D2, D3])
        pipeline.run_step(STEP_USAGE, [D1, D2, D3])
        status = {r["day"]: r["build_status"] for r in pipeline.status(14)}
    assert {status[d] for d in (D1, D2, D3)} == {"not built"}

    shown = cli(env, "status", "--json")
    assert shown.exit_code == 0
    assert {r["build_status"] for r in json.loads(shown.output) if r["day"] < D4.isoformat()} == {"not built"}

    result = cli(env, "run", "--date", D4.isoformat())
    assert result.exit_code == 0, result.output
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)
    with Pipeline(settings) as pipeline:
        assert {r["day"]: r["build_status"] for r in pipeline.status(14)} == dict.fromkeys(FOUR, "built")


def test_a_build_that_failed_is_tried_again_by_the_next_plain_run(
    wh_url: str, tmp_path: Path, sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that broke (a crash of the engine, a full disk) leaves its days failed, not built; the next
    plain ``run`` builds them again without being asked, though none of their inputs changed."""
    from company_activity.warehouse import engine as engines

    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, FOUR)
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    real = engines.build_segment

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engines, "build_segment", broken)
    result = cli(env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat())
    assert result.exit_code == 1, result.output
    assert {d: s[0] for d, s in steps(wh_url, "build").items()} == dict.fromkeys(FOUR, "failed")
    with connect(wh_url) as wh:
        assert table(wh) == {}

    monkeypatch.setattr(engines, "build_segment", real)
    dry = cli(env, "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"rebuilds of stale or failed days: {D1}..{D4}" in dry.output, dry.output
    result = cli(env, "run")
    assert result.exit_code == 0, result.output
    assert {d: s[0] for d, s in steps(wh_url, "build").items() if d in FOUR} == dict.fromkeys(
        FOUR, "succeeded"
    )
    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, FOUR, FOUR)
        assert {
            r[0] for r in wh.execute("select activity_date from ops.build_days where status = 'failed'")
        } == set()
