"""The pipeline facade: the public commands (run, backfill, replay, rerun, build, run_step, status).

It turns a request into a pure :class:`~.run.plan.RunPlan` (reading the run state the plan needs) and
hands it to the :class:`~.run.runner.Runner`; the resources come from the composition root
(:class:`~.app.App`). Used by the CLI, the Dagster adapter, the scheduler and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .alerts import AlertSink
from .app import App
from .config import Settings
from .errors import ConfigError, WarehouseError
from .interrupts import abort_statement
from .raw.landing import LandedRun, latest_raw_run
from .run import plan
from .run.context import Progress, RunReport
from .run.plan import RunPlan
from .run.runner import Runner
from .run.vocab import STEP_BUILD, STEP_CRM, STEP_USAGE, STEPS, Step
from .sources.usage_api import UsageApiClient
from .state import RunStateStore
from .stopping import StopSignal
from .storage import Lake
from .warehouse import Warehouse, connect

__all__ = ["STEPS", "STEP_BUILD", "STEP_CRM", "STEP_USAGE", "Pipeline", "Planner", "Progress", "RunReport"]


class Planner:
    """Requests -> plans, reading the run state they need (``state`` None: nothing recorded yet).

    Used by the :class:`Pipeline` and, with a read-only state store, by ``--dry-run`` (which touches nothing).
    """

    def __init__(self, settings: Settings, state: RunStateStore | None, today: date):
        self.settings, self.state, self.today = settings, state, today

    def run(self, *, day: date | None = None) -> RunPlan:
        """``run``: one day, or yesterday after catching up every incomplete earlier day."""
        if day is not None:
            plan.closed(day, self.today, "--date")
            return RunPlan(f"run --date {day.isoformat()}", (day,))
        self.settings.require_api_url()
        yesterday = self.today - timedelta(days=1)
        start = self.start_date(default=yesterday)
        return plan.plan_run(
            today=self.today,
            start=start,
            retention_days=self.settings.api_retention_days,
            statuses=self.state.usage_statuses(start - timedelta(days=6), yesterday) if self.state else {},
            first_usage_day=self.state.first_usage_day() if self.state else None,
            start_note=self.start_note(start, yesterday),
        )

    def start_note(self, start: date, yesterday: date) -> str:
        """Where the start date comes from, for the run's output."""
        if self.settings.start_date is not None:
            return f"start date {start.isoformat()} (COMPANY_ACTIVITY_START_DATE)"
        if self.state is not None and self.state.first_run_day() is not None:
            return f"start date {start.isoformat()} (the first nightly run's day)"
        return (
            f"start date {yesterday.isoformat()}: set by this first nightly run "
            "(one-off runs never move it; COMPANY_ACTIVITY_START_DATE sets it)"
        )

    def backfill(self, start: date, end: date) -> RunPlan:
        days = plan.closed_range(start, end, self.today, "--start")
        return RunPlan(f"backfill --start {start.isoformat()} --end {end.isoformat()}", tuple(days))

    def build(self, start: date, end: date, *, full: bool = False) -> RunPlan:
        """``build``: the days of the range; without ``full``, those already built whose inputs did not
        change are skipped (decided again under the lock; the plan names them for ``--dry-run``)."""
        days = plan.closed_range(start, end, self.today, "--start")
        command = f"build --start {start.isoformat()} --end {end.isoformat()}" + (" --full" if full else "")
        notes: tuple[str, ...] = ()
        if not full:
            skip = self.skipped_days(days)
            spans = ", ".join(f"{a.isoformat()}..{b.isoformat()}" for a, b in plan.segments(skip)) or "none"
            notes = (f"skipped, inputs unchanged since their build (--full rebuilds them): {spans}",)
        return RunPlan(
            command, tuple(days), steps=(STEP_BUILD,), only=True, notes=notes, skip_unchanged=not full
        )

    def skipped_days(self, days: Sequence[date]) -> list[date]:
        """The days of ``days`` a ``build`` without ``--full`` would skip now."""
        if self.state is None or not days:
            return []
        built = self.state.built_days(min(days), max(days))
        return sorted(plan.unchanged_days(days, built, self.state.stale_built_days() if built else set()))

    def start_date(self, *, default: date) -> date:
        """The first day ``run`` catches up: the setting, else the first nightly run's day, else ``default``.

        One-off runs (``run --date``, ``backfill``, ``rerun``, ``replay``, ``build``) never move it."""
        if self.settings.start_date is not None:
            return self.settings.start_date
        first = self.state.first_run_day() if self.state else None
        return first if first is not None else default


class Pipeline:
    """The master pipeline over one warehouse, one lake and one product-usage API."""

    def __init__(
        self,
        settings: Settings,
        *,
        warehouse: Warehouse | None = None,
        lake: Lake | None = None,
        client: UsageApiClient | None = None,
        sinks: Sequence[AlertSink] | None = None,
        stop: StopSignal | None = None,
    ):
        self.app = App(settings, warehouse=warehouse, lake=lake, client=client, sinks=sinks, stop=stop)
        self.settings = settings
        self.stop = self.app.stop
        self.wh = self.app.wh
        self.lake = self.app.lake
        self.schema_applied = self.app.schema_applied
        self.state = self.app.state
        self.engine = self.app.engine
        self.runner = Runner(
            self.app.resources,
            self.app.sinks,
            lock=lambda: self.wh.lock(timeout=self.settings.lock_timeout),
            abort=lambda: abort_statement(self.wh),
            start_date=lambda: self.start_date(default=self.today() - timedelta(days=1)),
        )

    @property
    def client(self) -> UsageApiClient:
        """The run's one API client (one token, one rate limiter, one retry budget), made on first use."""
        return self.app.client()

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def today(self) -> date:
        return self.app.today()

    @property
    def planner(self) -> Planner:
        return Planner(self.settings, self.state, self.today())

    # -- commands ---------------------------------------------------------------------------------------
    def run(self, *, day: date | None = None, progress: Progress | None = None) -> RunReport:
        return self.runner.execute(self.planner.run(day=day), progress=progress)

    def backfill(self, start: date, end: date, *, progress: Progress | None = None) -> RunReport:
        """``backfill``: every day of ``start … end``, oldest first."""
        return self.runner.execute(self.planner.backfill(start, end), progress=progress)

    def replay(self, start: date, end: date, *, progress: Progress | None = None) -> RunReport:
        """``replay``: reload staging from the latest complete raw run of each day, then rebuild.

        The API is not called: a day is re-parsed from the pages its manifest lists.
        """
        if end < start:
            raise ConfigError(f"--end {end.isoformat()} is before --date {start.isoformat()}")
        command = f"replay --date {start.isoformat()}" + (f" --end {end.isoformat()}" if end != start else "")
        run_plan = RunPlan(command, tuple(plan.days(start, end)), steps=(STEP_USAGE, STEP_BUILD), replay=True)
        return self.runner.execute(run_plan, progress=progress)

    def rerun(self, day: date, *, from_step: str | None = None) -> RunReport:
        """``rerun``: the master pipeline of ``day`` from a step on, not repeating the steps before it.

        Without ``from_step``: from the first step of ``day`` that did not succeed in its latest run.
        """
        if from_step is None:
            from_step = plan.first_unfinished_step(self.state.latest_step_outcomes(day))
        steps = plan.steps_from(from_step)
        plan.closed(day, self.today(), "--date")
        command = f"rerun --date {day.isoformat()} --from-step {from_step}"
        return self.runner.execute(RunPlan(command, (day,), steps=steps))

    def run_step(self, step: str, days: Sequence[date]) -> RunReport:
        """Exactly one step of the master pipeline for ``days`` (oldest first), as a run of its own.

        The unit of work of an orchestrator's asset (:mod:`company_activity.orchestration`): ``ingest_crm``
        and ``ingest_usage`` load staging and build nothing; ``build`` builds ``days`` from staging, with
        the volume checks; the retention warnings go with ``ingest_usage``. Lock, ledger, transactions and
        alerts as in every run; the quality results are in ``ops.quality_results`` under the run's id.
        """
        if step not in STEPS:
            raise ConfigError(f"step {step!r} is not one of {', '.join(STEPS)}")
        if not days:
            raise ConfigError("run_step: no days given")
        first, last = min(days), max(days)
        plan.closed(last, self.today(), "day")
        command = (
            f"rerun --date {first.isoformat()} --from-step {step}"
            if first == last
            else f"backfill --start {first.isoformat()} --end {last.isoformat()}"
        )
        only: tuple[Step, ...] = (step,)
        return self.runner.execute(RunPlan(command, tuple(sorted(set(days))), steps=only, only=True))

    def build(
        self, start: date, end: date, *, full: bool = False, progress: Progress | None = None
    ) -> RunReport:
        """Build the analytics rows of ``start … end`` from staging, without ingesting anything: the days
        not built yet, failed or stale; with ``full``, every day (days skipped are recorded ``skipped``)."""
        return self.runner.execute(self.planner.build(start, end, full=full), progress=progress)

    def latest_raw_run(self, day: date) -> LandedRun:
        """The newest complete raw run of ``day`` in the lake (one with a manifest)."""
        return latest_raw_run(self.lake, day)

    def start_date(self, *, default: date) -> date:
        """The first day ``run`` catches up (see :meth:`Planner.start_date`)."""
        return self.planner.start_date(default=default)

    # -- status -------------------------------------------------------------------------------------------
    def latest_run(self) -> dict[str, Any] | None:
        """The latest run: run_id, command, status (running/succeeded/failed/interrupted), times, message."""
        return self.state.latest_run()

    def status(self, days: int = 14) -> list[dict[str, Any]]:
        """Per day: CRM, usage and build status, row counts, quality results, last error."""
        return self.state.status_rows(self.today(), days)


def plan_read_only(settings: Settings, make: Callable[[Planner], RunPlan]) -> tuple[RunPlan, list[date]]:
    """A plan made from the run state read read-only (none when nothing ran yet), and the stale built
    days the run would rebuild: for ``--dry-run``. Creates nothing, records nothing, never migrates."""
    today = settings.today or datetime.now(UTC).date()
    try:
        wh: Warehouse | None = connect(settings.run_state, lock_timeout=settings.lock_timeout, read_only=True)
    except WarehouseError:  # nothing has run against it yet
        wh = None
    try:
        state = RunStateStore(wh) if wh is not None and wh.schema_version() is not None else None
        return make(Planner(settings, state, today)), sorted(state.stale_built_days()) if state else []
    finally:
        if wh is not None:
            wh.close()
