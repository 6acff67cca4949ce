"""The ``build`` step: ``analytics.company_daily_activity`` for the days the build gate lets through.

The targets (days whose usage this run loaded, or every day of a ``build``/``rerun --from-step build``)
and the affected days (those a changed input made stale, plus the stale days the run-state store names)
are candidates; a day passes the gate when usage is complete for it and its six days before (see
:mod:`company_activity.run.plan`). Contiguous buildable days are built as one segment by the data engine,
which gets the complete days from the run-state store (the build reads no ``ops.*``); each day's outcome is
recorded after the engine returned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from ..alerts import Alert
from ..clock import utcnow
from ..errors import BuildGateError, RunStopped
from ..failures import describe
from ..quality import CheckResult
from ..run import plan
from ..run.context import RunContext
from ..run.vocab import STEP_BUILD, rerun_hint
from ..state import StepOutcome
from ..state.store import BuiltDay
from ..warehouse.engine import DayBuild
from . import StepResult
from .checks import record_volume_checks, volume_checks

log = logging.getLogger("company_activity.pipeline")


class Build:
    """``run(context, days, affected=...)``: build the targets ``days`` and the affected days."""

    def run(
        self,
        context: RunContext,
        days: Sequence[date],
        *,
        affected: set[date] | None = None,
        held: set[date] | None = None,
    ) -> StepResult:
        result = StepResult()
        targets = set(days)
        horizon = plan.build_horizon(context.today())
        stale = (affected or set()) | context.state.stale_built_days()
        stale = {d for d in stale if d <= horizon} - (held or set())
        if not targets and not stale:
            return result
        lo = min(targets | stale)
        complete = context.state.complete_days(lo, horizon)
        first = context.state.first_usage_day()
        window = context.state.complete_days(lo - timedelta(days=plan.WINDOW_DAYS - 1), horizon)
        buildable, blocked = plan.split_gate(plan.build_candidates(targets, stale, complete), window, first)
        self._gate(context, targets, buildable, blocked)
        if not buildable or first is None:
            return result
        loaded_at = utcnow()
        for start, end in plan.segments(buildable):
            context.stop.check()
            result.done |= self.segment(context, start, end, window, first, loaded_at)
        return result

    def skip_unchanged(self, context: RunContext, days: Sequence[date]) -> set[date]:
        """``build`` without ``--full``: the days of ``days`` already built whose inputs were not loaded
        since (not stale) are skipped, each recorded as a ``skipped`` build step. Returns them."""
        if not days:
            return set()
        built = context.state.built_days(min(days), max(days))
        skip = plan.unchanged_days(days, built, context.state.stale_built_days()) if built else {}
        outcomes = [
            StepOutcome(
                STEP_BUILD,
                day,
                "skipped",
                message=f"inputs unchanged since the build of {at:%Y-%m-%d %H:%M:%S} UTC; --full rebuilds it",
            )
            for day, at in skip.items()
        ]
        context.ledger.steps_done(outcomes)
        context.report.steps.extend(outcomes)
        if skip:
            spans = ", ".join(f"{a.isoformat()}..{b.isoformat()}" for a, b in plan.segments(skip))
            log.info("build: skipped %d day(s) whose inputs did not change: %s", len(skip), spans)
        return set(skip)

    def _gate(
        self,
        context: RunContext,
        targets: set[date],
        buildable: list[date],
        blocked: dict[date, BuildGateError],
    ) -> None:
        context.state.record_checks(
            context.run_id,
            [
                CheckResult(d, "usage_complete", "pass", True, 0, 0, "usage complete for D-6 … D")
                for d in buildable
            ]
            + [
                CheckResult(d, "usage_complete", "fail", True, len(e.missing), 0, str(e))
                for d, e in blocked.items()
                if d in targets
            ],
        )
        for day, err in sorted(blocked.items()):
            if day not in targets:
                continue
            started = context.ledger.step_started(STEP_BUILD, day)
            if set(err.missing) <= set(context.report.pending):
                # waiting for a day the API has not closed yet: the next run builds it
                context.finish(StepOutcome(STEP_BUILD, day, "pending", message=str(err)), started)
            else:
                context.state.build_failed(day, str(err))
                outcome = StepOutcome(STEP_BUILD, day, "failed", message=str(err))
                context.fail(outcome, started, rerun=rerun_hint("run", min(err.missing)))

    def segment(
        self,
        context: RunContext,
        start: date,
        end: date,
        complete: set[date],
        first: date,
        loaded_at: datetime,
    ) -> set[date]:
        """Build ``start … end`` as one unit; each day's outcome recorded. Returns the days published."""
        starts = {d: context.ledger.step_started(STEP_BUILD, d) for d in plan.days(start, end)}
        try:
            seg = context.engine.build_segment(
                start,
                end,
                complete_days=complete,
                first_usage_day=first,
                loaded_at=loaded_at,
                missing_crm_warn_fraction=context.settings.missing_crm_warn_fraction,
            )
        except RunStopped:
            raise
        except Exception as exc:  # these days fail alone (their transaction rolled back)
            context.stop.check()
            message = describe(exc)
            for day in plan.days(start, end):
                context.state.build_failed(day, message)
                outcome = StepOutcome(STEP_BUILD, day, "failed", message=message)
                context.fail(outcome, starts[day], rerun=rerun_hint("build", day, end=day))
            return set()
        context.state.record_checks(context.run_id, seg.checks)
        context.state.record_build_changes(context.run_id, seg.built)
        by_day = {b.day: b for b in seg.built}
        done: set[date] = set()
        for day in plan.days(start, end):
            if day in seg.rejected:
                text = "; ".join(f"{c.name}: {c.details}" for c in seg.rejected[day])
                context.state.build_failed(day, text)
                outcome = StepOutcome(STEP_BUILD, day, "failed", message=f"quality check failed: {text}")
                context.fail(outcome, starts[day], rerun=rerun_hint("run", day), title="check failure")
                continue
            b = by_day.get(day, DayBuild(day, 0, 0, 0))
            context.report.built.append(b)
            if context.progress is not None:
                context.progress("built", day)
            notes = self._notes(context, day, b, seg.checks)
            outcome = StepOutcome(
                STEP_BUILD,
                day,
                "warning" if notes else "succeeded",
                rows_loaded=b.row_count,
                message="; ".join(notes) or None,
            )
            context.finish(outcome, starts[day], notify_recovery=True)
            done.add(day)
        return done

    def _notes(self, context: RunContext, day: date, b: DayBuild, checks: list[CheckResult]) -> list[str]:
        snapshot = context.engine.snapshot_in_effect(day)
        notes = []
        if snapshot is None:
            notes.append("no CRM snapshot on or before this day: company attributes are NULL")
        elif snapshot != day:
            notes.append(f"CRM snapshot of {day.isoformat()} missing: used the one of {snapshot.isoformat()}")
        for c in checks:
            if c.day == day and c.status == "warn":
                notes.append(f"{c.name}: {c.details}")
                context.alerter.send(
                    Alert(
                        "warning",
                        f"check warning: {c.name}",
                        c.details,
                        context.run_id,
                        day=day,
                        step=STEP_BUILD,
                        figures={"observed": f"{c.observed:g}", "threshold": f"{c.threshold:g}"},
                    )
                )
        context.state.build_built(
            BuiltDay(day, b.row_count, b.churn_risk_count, b.missing_crm_count, crm_snapshot_date=snapshot)
        )
        return notes


def hold_anomalous(context: RunContext, days: Sequence[date]) -> set[date]:
    """The volume checks of ``days``: each day's CRM rows and usage records against the day before and a
    week before. Anomalies are alerted; a *blocking* one (configurable per source) keeps its day out of
    the build, recorded as a failed build. Returns the days held back."""
    held: set[date] = set()
    for day in days:
        checks = volume_checks(context.state, day, context.settings)
        record_volume_checks(context.state, context.run_id, checks)
        for check in checks:
            if not check.anomalous:
                continue
            context.alerter.send(check.alert(context.run_id, rerun=rerun_hint("run", day)))
            if check.blocking:
                held.add(day)
        if day in held:
            started = context.ledger.step_started(STEP_BUILD, day)
            text = "; ".join(c.message for c in checks if c.anomalous and c.blocking)
            context.state.build_failed(day, text)
            outcome = StepOutcome(STEP_BUILD, day, "failed", message=f"volume check failed: {text}")
            context.fail(outcome, started, rerun=rerun_hint("run", day), title="check failure")
    return held
