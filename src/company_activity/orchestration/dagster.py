"""Dagster adapter: the master pipeline as daily partitioned assets (extra ``[dagster]``).

    dagster dev -m company_activity.orchestration.dagster

- Assets over a UTC :class:`~dagster.DailyPartitionsDefinition` (partition ``2026-11-05`` = that UTC day),
  each one step of the master pipeline, run by the pipeline itself (ledger, lock, transactions, alerts):
  ``crm_daily`` (step ``ingest_crm``), ``product_usage_daily`` (``ingest_usage``) and
  ``company_daily_activity`` (``build``, with the volume checks; its rows for D read the usage and CRM of
  ``D-6 … D``, which the partition mapping says).
- Asset checks on ``company_daily_activity``: the build's own quality gates, as recorded in
  ``ops.quality_results`` by that build — ``usage_complete``, ``grain_unique``, ``keys_not_null``,
  ``counts_not_negative`` (blocking: a failure kept the day's rows out of the table, and fails the step)
  and ``missing_from_crm`` (a warning). ``crm_daily`` has ``crm_snapshot_loaded``, not blocking: as on the
  command line, a missing or rejected CRM snapshot does not stop the build, which uses the snapshot in
  effect (and the pipeline alerts).
- A job over the three assets (in one process: one warehouse connection at a time), a schedule built
  from it at 00:00 UTC (the partition of the day that just ended), and a run-failure sensor that sends
  the project's own alerts (log, Teams, e-mail: :func:`~company_activity.alerts.factory.sinks_from_settings`).
- A usage day the API has not closed yet (``409``, *pending*) is retried by Dagster
  (``pending_retries`` × ``pending_retry_seconds``); a lost day, a failed load or a failed build fails the
  step with the pipeline's message. A backfill of many partitions is one run (the pipeline batches days).
- Settings come from the environment like the CLI's (``COMPANY_ACTIVITY_*``, optionally ``config_file``),
  through :class:`CompanyActivityResource`. The partitions start at ``COMPANY_ACTIVITY_START_DATE``
  (default: the first day the API still serves).

Dagster has no catch-up of its own as ``company-activity run`` has, nor the CLI's automatic rebuilds after
late data: re-materialize the partitions concerned (a usage change of D touches ``D … D+6``).
"""

import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from ..alerts import Alert, Alerter
from ..alerts.factory import sinks_from_settings
from ..config import Settings, load_settings
from ..errors import PipelineError
from ..pipeline import STEP_BUILD, STEP_CRM, STEP_USAGE, Pipeline, RunReport
from ..run.vocab import rerun_hint
from ..state import StepOutcome
from ..state.rows import CheckRow, DayStatus

RESOURCE_KEY = "company_activity"
GROUP = "company_activity"
#: every asset of the adapter is in this concurrency pool: one step at a time per warehouse, when the
#: Dagster instance limits it (``concurrency: pools: default_limit: 1`` in dagster.yaml)
POOL = "company_activity_warehouse"
JOB_NAME = "company_activity_daily"
SCHEDULE_NAME = "company_activity_daily_at_midnight_utc"
SENSOR_NAME = "company_activity_run_failure_alerts"

#: the quality checks of the build (``ops.quality_results.check_name``)
BLOCKING_CHECKS = ("usage_complete", "grain_unique", "keys_not_null", "counts_not_negative")
WARNING_CHECKS = ("missing_from_crm",)
CRM_CHECK = "crm_snapshot_loaded"

#: the rows of day D read the usage and the CRM snapshots of D-6 … D
WINDOW = dg.TimeWindowPartitionMapping(start_offset=-6)


class CompanyActivityResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The pipeline's settings: the environment (``COMPANY_ACTIVITY_*``) as for the CLI, optionally a
    TOML file, and ``overrides`` (lower-case setting names, as in the TOML file) that win over both."""

    config_file: str | None = None
    overrides: dict[str, str] = Field(default_factory=dict)
    pending_retries: int = 6
    pending_retry_seconds: int = 1800

    def settings(self) -> Settings:
        return load_settings(self.config_file, **self.overrides)


def _days(context: dg.AssetExecutionContext) -> list[date]:
    return sorted(date.fromisoformat(key) for key in context.partition_keys)


def _outcomes(report: RunReport, step: str) -> list[StepOutcome]:
    unexpected = [s for s in report.steps if s.step == "run" and s.status == "failed"]
    if unexpected:
        raise dg.Failure(description=f"pipeline run {report.run_id} failed: {unexpected[0].message}")
    return [s for s in report.steps if s.step == step]


def _fail_on(outcomes: Sequence[StepOutcome], report: RunReport) -> None:
    failed = [s for s in outcomes if s.status == "failed"]
    if failed:
        raise dg.Failure(
            description="; ".join(f"{s.step} {s.day.isoformat()}: {s.message}" for s in failed),
            metadata={"pipeline_run_id": report.run_id},
        )


def _per_day(outcomes: Sequence[StepOutcome]) -> dict[str, Any]:
    return {
        s.day.isoformat(): {"status": s.status, "rows": s.rows_loaded, "message": s.message} for s in outcomes
    }


def _start(resource: CompanyActivityResource) -> Pipeline:
    try:
        return Pipeline(resource.settings())
    except PipelineError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _run(pipeline: Pipeline, step: str, days: Sequence[date]) -> RunReport:
    try:
        return pipeline.run_step(step, days)
    except PipelineError as exc:  # e.g. the warehouse is busy: nothing ran
        raise dg.Failure(description=str(exc)) from exc


# -- the assets ------------------------------------------------------------------------------------------
def build_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The three assets over ``partitions``."""
    with warnings.catch_warnings():
        # a backfill as one run (BackfillPolicy.single_run) is "beta" in Dagster 1.13; it is what lets the
        # pipeline batch the days of a backfill and keeps one run at a time on the warehouse
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return _assets(partitions)


def _assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    single_run = dg.BackfillPolicy.single_run()

    @dg.asset(
        name="crm_daily",
        description="stg.crm_daily: the CRM snapshot of the day from the lake (bad rows quarantined).",
        check_specs=[
            dg.AssetCheckSpec(
                CRM_CHECK,
                asset="crm_daily",
                description="The day's CRM snapshot was found and accepted (not blocking: the build "
                "then uses the snapshot in effect, as on the command line).",
            )
        ],
        partitions_def=partitions,
        group_name=GROUP,
        pool=POOL,
        backfill_policy=single_run,
        kinds={"python"},
    )
    def crm_daily(
        context: dg.AssetExecutionContext, company_activity: CompanyActivityResource
    ) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult[Any]]:
        days = _days(context)
        pipeline = _start(company_activity)
        try:
            report = _run(pipeline, STEP_CRM, days)
        finally:
            pipeline.close()
        outcomes = _outcomes(report, STEP_CRM)
        failed = [s for s in outcomes if s.status == "failed"]
        yield dg.AssetCheckResult(
            check_name=CRM_CHECK,
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(f"{s.day.isoformat()}: {s.message}" for s in failed) or None,
            metadata={"failed_days": [s.day.isoformat() for s in failed]},
        )
        yield dg.MaterializeResult(
            metadata={
                "pipeline_run_id": report.run_id,
                "rows": sum(s.rows_loaded or 0 for s in outcomes),
                "rejected": sum(s.rows_rejected or 0 for s in outcomes),
                "days": dg.MetadataValue.json(_per_day(outcomes)),
            }
        )

    @dg.asset(
        name="product_usage_daily",
        description="stg.product_usage_daily: the API's usage of the day, landed raw in the lake first.",
        partitions_def=partitions,
        group_name=GROUP,
        pool=POOL,
        backfill_policy=single_run,
        kinds={"python"},
    )
    def product_usage_daily(
        context: dg.AssetExecutionContext, company_activity: CompanyActivityResource
    ) -> dg.MaterializeResult[Any]:
        days = _days(context)
        pipeline = _start(company_activity)
        try:
            report = _run(pipeline, STEP_USAGE, days)
            usage = pipeline.state.usage_days(days[0], days[-1])
        finally:
            pipeline.close()
        outcomes = _outcomes(report, STEP_USAGE)
        _fail_on(outcomes, report)
        if report.pending:
            pending = ", ".join(d.isoformat() for d in report.pending)
            context.log.warning(f"usage not final yet (API 409) for {pending}: retrying later")
            raise dg.RetryRequested(
                max_retries=company_activity.pending_retries,
                seconds_to_wait=company_activity.pending_retry_seconds,
            )
        return dg.MaterializeResult(
            metadata={
                "pipeline_run_id": report.run_id,
                "records": sum(s.rows_loaded or 0 for s in outcomes),
                "raw_runs": dg.MetadataValue.json({r[0].isoformat(): r[3] for r in usage}),
                "days": dg.MetadataValue.json(_per_day(outcomes)),
            }
        )

    window_deps = [
        dg.AssetDep(crm_daily, partition_mapping=WINDOW),
        dg.AssetDep(product_usage_daily, partition_mapping=WINDOW),
    ]
    checks = [
        dg.AssetCheckSpec(name, asset="company_daily_activity", blocking=True) for name in BLOCKING_CHECKS
    ] + [dg.AssetCheckSpec(name, asset="company_daily_activity") for name in WARNING_CHECKS]

    @dg.asset(
        name="company_daily_activity",
        description="analytics.company_daily_activity: one row per company and day, published only when "
        "the blocking quality checks pass.",
        deps=window_deps,
        check_specs=checks,
        partitions_def=partitions,
        group_name=GROUP,
        pool=POOL,
        backfill_policy=single_run,
        kinds={"python"},
    )
    def company_daily_activity(
        context: dg.AssetExecutionContext, company_activity: CompanyActivityResource
    ) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult[Any]]:
        days = _days(context)
        pipeline = _start(company_activity)
        try:
            report = _run(pipeline, STEP_BUILD, days)
            detail = pipeline.state.read_model().run(report.run_id)  # the read model: one verdict per day
        finally:
            pipeline.close()
        outcomes = _outcomes(report, STEP_BUILD)
        built = all(s.status != "failed" for s in outcomes)
        yield from _check_results(detail.checks, built=built, verdicts=detail.days)
        _fail_on(outcomes, report)
        yield dg.MaterializeResult(
            metadata={
                "pipeline_run_id": report.run_id,
                "rows": sum(b.row_count for b in report.built),
                "churn_risk": sum(b.churn_risk_count for b in report.built),
                "missing_from_crm": sum(b.missing_crm_count for b in report.built),
                "days": dg.MetadataValue.json(_per_day(outcomes)),
            }
        )

    return [crm_daily, product_usage_daily, company_daily_activity]


def _check_results(
    rows: Sequence[CheckRow], *, built: bool, verdicts: Sequence[DayStatus] = ()
) -> Iterator[dg.AssetCheckResult]:
    """One result per check of the build, over the days of the run (a check fails if it failed on any);
    each carries the days' verdicts, in the words ``status`` and the UI use."""
    by_name: dict[str, list[CheckRow]] = {}
    for row in rows:
        by_name.setdefault(row.check, []).append(row)
    days = {d.day.isoformat(): d.verdict for d in verdicts}
    for name in BLOCKING_CHECKS + WARNING_CHECKS:
        blocking = name in BLOCKING_CHECKS
        found = by_name.get(name, [])
        if not found:
            if built:  # every day built without rows to check (nothing in the CRM, no usage)
                yield dg.AssetCheckResult(check_name=name, passed=True, description="no rows to check")
            continue  # not reached: the build failed before it (the step fails below)
        bad = [r for r in found if r.status != "pass"]
        worst = bad[0] if bad else found[-1]
        yield dg.AssetCheckResult(
            check_name=name,
            passed=not bad,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{r.day.isoformat()}: {r.details}" for r in bad) or str(worst.details),
            metadata={
                "observed": worst.observed if worst.observed is not None else 0.0,
                "threshold": worst.threshold if worst.threshold is not None else 0.0,
                "failed_days": [r.day.isoformat() for r in bad],
                "verdicts": dg.MetadataValue.json(days),
            },
        )


# -- alerts on failed runs -------------------------------------------------------------------------------
@dg.run_failure_sensor(name=SENSOR_NAME, default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(
    context: dg.RunFailureSensorContext, company_activity: CompanyActivityResource
) -> None:
    """Send the project's alerts (log, Teams, e-mail) for a failed Dagster run."""
    run = context.dagster_run
    tags = run.tags
    first = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_end")
    steps: list[str] = []
    errors: list[str] = []
    for event in context.get_step_failure_events():
        steps.append(str(event.step_key))
        data: Any = event.event_specific_data
        user: Any = getattr(data, "user_failure_data", None)  # a dg.Failure raised by an asset
        error: Any = getattr(data, "error", None)
        text = (getattr(user, "description", None) or getattr(error, "message", None) or "failed").strip()
        errors.append(f"{event.step_key}: {text.splitlines()[0] if text else 'failed'}")
    message = "; ".join(errors) or (context.failure_event.message or "the run failed")
    day = date.fromisoformat(first) if first else None
    rerun = None
    if first and last and first != last:
        rerun = rerun_hint("backfill", date.fromisoformat(first), end=date.fromisoformat(last))
    elif first:
        rerun = rerun_hint("rerun", date.fromisoformat(first))
    settings = company_activity.settings()
    Alerter(sinks_from_settings(settings)).send(
        Alert(
            "error",
            "orchestrator run failure",
            f"Dagster run of {run.job_name} failed: {message}",
            run.run_id,
            day=day,
            step=", ".join(steps) or None,
            rerun=rerun,
            figures={"partitions": f"{first} … {last}"} if first and last and first != last else {},
        )
    )


# -- definitions -----------------------------------------------------------------------------------------
def daily_partitions(start_date: date | str | None = None) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start_date`` (default: COMPANY_ACTIVITY_START_DATE, else the first day the API
    still serves) to yesterday."""
    if start_date is None:
        settings = load_settings()
        today = settings.today or datetime.now(UTC).date()
        start_date = settings.start_date or today - timedelta(days=settings.api_retention_days)
    start = start_date.isoformat() if isinstance(start_date, date) else start_date
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")


def build_definitions(
    start_date: date | str | None = None, *, resource: CompanyActivityResource | None = None
) -> dg.Definitions:
    """Assets, job, 00:00 UTC schedule, failure sensor and the settings resource."""
    partitions = daily_partitions(start_date)
    assets = build_assets(partitions)
    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(*assets),
        executor_def=dg.in_process_executor,
        description="The master pipeline for one UTC day: CRM, usage, then the build and its checks.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name=SCHEDULE_NAME,
        hour_of_day=0,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        schedules=[schedule],
        sensors=[run_failure_alerts],
        resources={RESOURCE_KEY: resource or CompanyActivityResource()},
    )


defs = build_definitions()
