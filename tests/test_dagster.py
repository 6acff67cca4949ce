"""The Dagster adapter, in process: partitions materialized against the simulator give the rows the CLI
gives; the build's quality checks are blocking asset checks; a failed run sends the project's alerts; and
nothing outside ``company_activity.orchestration.dagster`` imports Dagster.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg  # the [dev] extra installs it (the adapter's own extra is [dagster])
import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.orchestration import dagster as adapter
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect

from . import procs
from .alert_servers import Receiver, Server
from .helpers import days, table

TODAY = date(2026, 11, 12)
START = date(2026, 11, 1)
D3, D4, D5 = date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 5)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=5, companies=40, today=TODAY)) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sim: SimulatorServer) -> dict[str, str]:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, days(START, D5))
    return procs.cli_env(str(tmp_path / "dagster.duckdb"), lake, sim, start=START, today=TODAY)


def resource(env: dict[str, str], **fields: int) -> adapter.CompanyActivityResource:
    return adapter.CompanyActivityResource(
        overrides={k.removeprefix("COMPANY_ACTIVITY_").lower(): v for k, v in env.items()}, **fields
    )


@pytest.fixture
def assets() -> list[dg.AssetsDefinition]:
    return adapter.build_assets(adapter.daily_partitions(START))


def materialize(
    assets: list[dg.AssetsDefinition],
    env: dict[str, str],
    day: date,
    instance: dg.DagsterInstance | None = None,
    **fields: int,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        partition_key=day.isoformat(),
        resources={adapter.RESOURCE_KEY: resource(env, **fields)},
        instance=instance,
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_partitions_build_the_rows_the_cli_builds(
    assets: list[dg.AssetsDefinition], env: dict[str, str], tmp_path: Path
) -> None:
    for day in (D4, D5):
        result = materialize(assets, env, day)
        assert result.success
        assert checks(result) == dict.fromkeys(
            [adapter.CRM_CHECK, *adapter.BLOCKING_CHECKS, *adapter.WARNING_CHECKS], True
        )
    built = result.asset_materializations_for_node("company_daily_activity")[0].metadata
    assert built["rows"].value == 40

    cli_env = env | {"COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "cli.duckdb")}
    cli = CliRunner().invoke(
        main, ["backfill", "--start", D4.isoformat(), "--end", D5.isoformat()], env=cli_env
    )
    assert cli.exit_code == 0, cli.output
    with (
        connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh,
        connect(cli_env["COMPANY_ACTIVITY_WAREHOUSE"]) as ref,
    ):
        assert table(wh) == table(ref)
        assert {d for d, _ in table(wh)} == {D4, D5}
        # each asset is one pipeline run of its step, in the ledger like any other
        runs = wh.execute("select command, status from ops.runs order by started_at")
        assert runs == [
            (f"rerun --date {day} --from-step {step}", "succeeded")
            for day in (D4, D5)
            for step in ("ingest_crm", "ingest_usage", "build")
        ]


def test_a_failed_blocking_check_fails_the_build_and_the_sensor_alerts(
    assets: list[dg.AssetsDefinition],
    env: dict[str, str],
    receiver: Receiver,
    smtp_server: Server,
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(assets, env, D3, instance).success
    result = materialize(assets, env, D5, instance)  # D4 never ingested: D5's 7-day window has a hole
    assert not result.success
    evaluations = checks(result)
    assert evaluations == {adapter.CRM_CHECK: True, "usage_complete": False}
    (gate,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "usage_complete"]
    assert gate.severity == dg.AssetCheckSeverity.ERROR and gate.blocking
    assert "2026-11-04" in (gate.description or "")
    assert [e.asset_key.path for e in result.get_asset_materialization_events()] == [
        ["crm_daily"],
        ["product_usage_daily"],
    ]
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert {d for d, _ in table(wh)} == {D3}  # nothing of D5 was published

    # the sensor goes through the settings -> sinks wiring to a real webhook receiver and a real SMTP server
    box, port = smtp_server()
    alerting = env | {
        "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": receiver.url,
        "COMPANY_ACTIVITY_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "COMPANY_ACTIVITY_ALERT_EMAIL_FROM": "pipeline@example.com",
        "COMPANY_ACTIVITY_ALERT_EMAIL_TO": "data-team@example.com",
        "COMPANY_ACTIVITY_ALERT_MAX_ATTEMPTS": "2",
        "COMPANY_ACTIVITY_ALERT_TIMEOUT": "5",
    }
    context = dg.build_run_status_sensor_context(
        sensor_name=adapter.SENSOR_NAME,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={adapter.RESOURCE_KEY: resource(alerting)},
    ).for_run_failure()
    adapter.run_failure_alerts(context)
    message = (
        "Dagster run of __ephemeral_asset_job__ failed: company_daily_activity: build 2026-11-05: "
        "cannot build 2026-11-05: usage is not complete for 2026-11-04"
    )
    (request,) = receiver.requests
    card = str(request["json"])
    heading = request["json"]["attachments"][0]["content"]["body"][0]["text"]
    assert "orchestrator run failure" in heading
    for text in (message, "company-activity rerun --date 2026-11-05", result.dagster_run.run_id):
        assert text in card, text
    assert "company_daily_activity" in card and "2026-11-05" in card
    (envelope,) = box.envelopes
    assert envelope.rcpt_tos == ["data-team@example.com"]
    mail = box.message(0)
    assert "orchestrator run failure" in mail["Subject"] and "2026-11-05" in mail["Subject"]
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    body = plain.get_content()
    assert message in " ".join(body.split()) and "company-activity rerun --date 2026-11-05" in body


def test_a_missing_crm_snapshot_fails_its_check_but_not_the_build(
    assets: list[dg.AssetsDefinition], env: dict[str, str]
) -> None:
    assert materialize(assets, env, D4).success
    (Path(env["COMPANY_ACTIVITY_LAKE"]) / f"crm/crm_daily_{D5}.csv").unlink()
    result = materialize(assets, env, D5)
    assert result.success  # as on the command line: the build uses the snapshot in effect
    assert checks(result)[adapter.CRM_CHECK] is False
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert wh.execute(
            "select status, crm_snapshot_date from ops.build_days where activity_date = :d", {"d": D5}
        ) == [("built", D4)]
        assert wh.execute("select status from ops.crm_snapshots where snapshot_date = :d", {"d": D5}) == [
            ("missing",)
        ]


def test_a_usage_day_not_final_yet_is_retried_then_fails(
    assets: list[dg.AssetsDefinition], env: dict[str, str], sim: SimulatorServer
) -> None:
    sim.options.not_final_days = frozenset({D4})  # the API answers 409 date_not_final
    result = materialize(assets, env, D4, pending_retries=1, pending_retry_seconds=0)
    assert not result.success
    retried = [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert retried == failed == ["product_usage_daily"]
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert wh.execute("select status from ops.usage_days") == [("pending",)]


def test_definitions_load_with_the_schedule_at_midnight_utc() -> None:
    defs = adapter.build_definitions(START)
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(adapter.JOB_NAME)
    assert job.partitions_def == adapter.daily_partitions(START)
    schedule = defs.resolve_schedule_def(adapter.SCHEDULE_NAME)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 0 * * *", "UTC")
    assert defs.resolve_sensor_def(adapter.SENSOR_NAME) is not None
    assert adapter.defs.resolve_job_def(adapter.JOB_NAME) is not None  # what `dagster dev -m …` loads
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "crm_daily",
        "product_usage_daily",
        "company_daily_activity",
    }
    activity = graph.get(dg.AssetKey("company_daily_activity"))
    assert {c.name for c in activity.check_keys} == {*adapter.BLOCKING_CHECKS, *adapter.WARNING_CHECKS}


def test_the_rest_of_the_package_never_imports_dagster() -> None:
    code = (
        "import sys\n"
        "import company_activity.cli, company_activity.pipeline, company_activity.scheduler\n"
        "import company_activity.orchestration\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
