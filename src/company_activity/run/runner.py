"""The runner: executes a :class:`~.plan.RunPlan` — lock -> ledger -> CRM -> usage -> checks -> build ->
notices.

For each day, oldest first: (1) the CRM snapshot, (2) the API usage, then (3) the build of every day that
(1) and (2) made buildable or changed. A CRM failure does not stop (2); (3) builds D only when its usage is
complete. Every failure is alerted and fails the run. A stop (signal or deadline) leaves the day in
progress not complete: the next run converges. The runner holds no SQL: it talks to the run-state store,
the data engine (through the steps) and the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import date

from ..alerts import Alert, Alerter, AlertSink
from ..errors import RunDeadlineExceeded, RunStopped
from ..failures import describe
from ..logs import log_context
from ..state import StepOutcome, new_run_id
from ..steps.build import Build, hold_anomalous
from ..steps.ingest_crm import IngestCrm
from ..steps.ingest_usage import IngestUsage, fetch_from_api, fetch_from_lake, retention_warnings
from ..stopping import StopSignal
from .context import Progress, Resources, RunContext, RunReport
from .plan import RunPlan
from .vocab import STEP_BUILD, STEP_CRM, STEP_USAGE, rerun_hint

log = logging.getLogger("company_activity.pipeline")

Lock = Callable[[], AbstractContextManager[None]]


class Runner:
    """Runs plans over one set of resources, under the data engine's lock."""

    def __init__(
        self,
        resources: Resources,
        sinks: Sequence[AlertSink],
        *,
        lock: Lock,
        abort: Callable[[], None],
        start_date: Callable[[], date],
    ):
        self.resources = resources
        self.sinks = list(sinks)
        self.lock = lock
        self.abort = abort
        self.start_date = start_date  # the first day a `run` catches up (for the retention warnings)
        self.crm, self.usage, self.build = IngestCrm(), IngestUsage(), Build()

    @property
    def stop(self) -> StopSignal:
        return self.resources.stop

    def execute(self, run_plan: RunPlan, *, progress: Progress | None = None) -> RunReport:
        run_id = new_run_id()
        report = RunReport(
            run_id,
            run_plan.command,
            sorted(run_plan.days),
            caught_up=list(run_plan.catch_up),
            notes=list(run_plan.notes),
        )
        ledger = self.resources.state.ledger(run_id)
        fetch = fetch_from_lake(self.resources) if run_plan.replay else fetch_from_api(self.resources)
        alerter = Alerter(self.sinks, digest=True)  # the first error at once, the rest in one summary
        context = RunContext(self.resources, ledger, alerter, report, fetch, progress)
        with self.lock():
            ledger.start_run(run_plan.command)
            log.info("run %s: %s (%d day(s))", run_id, run_plan.command, len(report.days))
            # a stop cancels the SQL statement in progress (its transaction rolls back)
            unregister = self.stop.on_stop(self.abort)
            try:
                with log_context(run_id=run_id):
                    self._body(context, run_plan)
            finally:
                unregister()
        return report

    def _body(self, context: RunContext, run_plan: RunPlan) -> None:
        report, ledger, alerter, stop = context.report, context.ledger, context.alerter, self.stop
        try:
            for day in run_plan.lost:
                context.mark_lost(day, "the day left the API's retention before it was captured")
            targets: set[date] = set()
            affected: set[date] = set()
            if STEP_CRM in run_plan.steps:
                affected |= self.crm.run(context, report.days).affected
            stop.check()
            if STEP_USAGE in run_plan.steps:
                usage = self.usage.run(context, report.days)
                targets, affected = usage.done - set(run_plan.gate_only), affected | usage.affected
            else:
                # from the build step on: every day is a target; the build gate names what is missing
                targets = set(report.days)
            stop.check()
            if STEP_BUILD in run_plan.steps or not run_plan.only:
                to_check = report.days
                if run_plan.skip_unchanged:  # `build` without --full: days whose inputs did not change
                    targets -= self.build.skip_unchanged(context, sorted(targets))
                    to_check = [d for d in report.days if d in targets]
                # the days whose last build failed are tried again (stale_built_days names them); a day
                # a blocking volume check held back is checked again first, so a hold stays a hold
                retry = context.state.failed_build_days() - set(report.days)
                held = hold_anomalous(context, sorted(set(to_check) | retry))
                self.build.run(context, sorted(targets - held), affected=affected - held, held=held)
            if STEP_USAGE in run_plan.steps or not run_plan.only:
                retention_warnings(context, self.start_date())
            if stop.requested:  # asked to stop while the last unit of work committed
                stop.check()
        except RunStopped as exc:
            self._stopped(context, exc)
        except Exception as exc:
            if stop.requested or stop.expired():  # a statement cancelled by the stop
                self._stopped(context, _as_stopped(stop))
                return
            log.exception("run %s failed unexpectedly", report.run_id)
            day = report.days[-1] if report.days else context.today()
            report.steps.append(StepOutcome("run", day, "failed", message=describe(exc)))
            alerter.send(
                Alert(
                    "error",
                    "pipeline failure",
                    describe(exc),
                    report.run_id,
                    rerun=rerun_hint("verbatim", verbatim=report.command),
                )
            )
        except BaseException as exc:  # stopped by force (a second Ctrl-C or SIGTERM): recorded, re-raised
            report.stopped = stop.reason or type(exc).__name__
            try:
                ledger.interrupt_steps(f"interrupted ({type(exc).__name__})")
            except Exception:  # the connection may be unusable mid-statement: the next run cleans up
                log.warning("could not record the interrupted steps", exc_info=True)
            raise
        finally:
            alerter.flush(report.run_id, self._verdicts(report.run_id))
            report.alerts = alerter.sent
            try:
                self.resources.state.record_alerts(report.run_id, alerter.sent)
            except Exception:  # the record of alerts must not hide the run's outcome
                log.warning("could not record the run's alerts", exc_info=True)
            status = "interrupted" if report.stopped else "failed" if report.failed else "succeeded"
            ledger.finish_run(status, summary(report))

    def _verdicts(self, run_id: str) -> list[tuple[date, str, str]]:
        """The run's days as the read model judges them now (for the alert digest); none if unreadable."""
        try:
            return [(d.day, d.verdict, d.note) for d in self.resources.state.read_model().run(run_id).days]
        except Exception:  # the digest must not hide the run's outcome
            log.warning("could not read the run's day verdicts for its summary", exc_info=True)
            return []

    def _stopped(self, context: RunContext, exc: RunStopped) -> None:
        """A stop (signal or deadline): the day in progress stays not-complete; the next run converges."""
        report = context.report
        report.stopped = self.stop.reason or ("deadline" if isinstance(exc, RunDeadlineExceeded) else "stop")
        log.warning("run %s stopped: %s; the next run picks up where it left off", report.run_id, exc)
        context.ledger.interrupt_steps(str(exc))
        if isinstance(exc, RunDeadlineExceeded):
            context.alerter.send(
                Alert(
                    "error",
                    "run deadline exceeded",
                    f"{exc}: the run stopped; days not finished are left for the next run",
                    report.run_id,
                    rerun=rerun_hint("verbatim", verbatim=report.command),
                )
            )


def _as_stopped(stop: StopSignal) -> RunStopped:
    try:
        stop.check()
    except RunStopped as exc:
        return exc
    return RunStopped("run stopped")


def summary(report: RunReport) -> str:
    """The one-line message of ``ops.runs``."""
    failed = [f"{s.step} {s.day.isoformat()}" for s in report.steps if s.status == "failed"]
    # one name per count (as `runs` and the UI show them): the days the command asked for, the days built
    # (those asked plus caught-up and stale days rebuilt)
    parts = [f"days asked {len(report.days)}", f"built {len(report.built)}"]
    if report.caught_up:
        parts.append(f"caught up {len(report.caught_up)}")
    if report.pending:
        parts.append("pending " + ", ".join(d.isoformat() for d in report.pending))
    if report.lost:
        parts.append("lost " + ", ".join(d.isoformat() for d in report.lost))
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if report.stopped:
        parts.append(f"interrupted ({report.stopped}): the next run picks up the rest")
    return "; ".join(parts)
