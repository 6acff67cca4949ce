"""The ``ingest_crm`` step: each day's CRM snapshot from the lake into staging.

A day's failure (missing file, rejected rows, I/O, a database error) is that day's step failure:
recorded, alerted, and the other steps still run. The data engine replaces the day first; the run-state
store records it after (``ops.crm_snapshots``, the ``crm_row_count`` check).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from ..clock import utcnow
from ..errors import CrmFileError, PipelineError, RunStopped
from ..failures import describe
from ..quality import CheckResult
from ..run import plan
from ..run.context import RunContext
from ..run.vocab import STEP_CRM, rerun_hint
from ..sources.crm_records import excerpt
from ..state import StepOutcome
from . import StepResult

log = logging.getLogger("company_activity.pipeline")


class IngestCrm:
    """``run(context, days)``: load each day's CRM snapshot; ``affected`` are the days to rebuild."""

    def run(self, context: RunContext, days: Sequence[date]) -> StepResult:
        result = StepResult()
        for day in days:
            context.stop.check()
            if self.day_isolated(context, day):
                result.done.add(day)
                nxt = context.engine.next_snapshot_after(day)
                result.affected |= plan.crm_affected_days(day, nxt, context.today())
        return result

    def day_isolated(self, context: RunContext, day: date) -> bool:
        """The CRM step of ``day``; any failure inside it is that step's failure for ``day``."""
        started = utcnow()
        try:
            return self.day(context, day)
        except RunStopped:
            raise
        except Exception as exc:
            context.stop.check()  # a statement cancelled by a stop is the stop, not a failure
            message = describe(exc)
            log.debug("CRM step for %s failed", day.isoformat(), exc_info=True)  # the trace, for debugging
            context.state.crm_snapshot(day, "failed", updated_at=utcnow(), last_error=message)
            context.fail(
                StepOutcome(STEP_CRM, day, "failed", message=message), started, rerun=rerun_hint("run", day)
            )
            return False

    def day(self, context: RunContext, day: date) -> bool:
        """Load the CRM snapshot of ``day``; returns whether staging changed."""
        started = context.ledger.step_started(STEP_CRM, day)
        rel = context.settings.crm_path.format(date=day.isoformat())
        now = utcnow()
        quarantine = f"quarantine/crm/date={day.isoformat()}/rejected-{context.run_id}.csv"
        status = "failed"
        try:
            if not context.lake.exists(rel):
                status = "missing"
                raise CrmFileError(f"CRM snapshot for {day.isoformat()} is missing: {context.lake.url(rel)}")
            # streamed: the file is read in chunks and duplicates are resolved by the engine
            loaded = context.engine.replace_crm_day(
                day,
                context.lake,
                rel,
                run_id=context.run_id,
                loaded_at=now,
                quarantine=quarantine,
                max_bad_fraction=context.settings.crm_max_bad_fraction,
            )
            context.state.crm_snapshot(
                day,
                "loaded",
                row_count=loaded.rows,
                rejected_count=loaded.bad,
                duplicate_count=loaded.duplicates,
                extra_columns=",".join(map(column_name, loaded.extra_columns))[:1000] or None,
                source_file=rel,
                loaded_at=now,
                updated_at=now,
            )
        except PipelineError as exc:
            context.state.crm_snapshot(
                day, "missing" if status == "missing" else "failed", updated_at=now, last_error=str(exc)
            )
            context.fail(
                StepOutcome(STEP_CRM, day, "failed", message=str(exc)), started, rerun=rerun_hint("run", day)
            )
            context.state.record_checks(
                context.run_id,
                [CheckResult(day, "crm_row_count", "fail", False, 0, 0, f"CRM snapshot not loaded: {exc}")],
            )
            return False
        context.state.record_checks(
            context.run_id,
            [
                CheckResult(
                    day,
                    "crm_row_count",
                    "pass",
                    False,
                    loaded.rows,
                    0,
                    f"{loaded.rows} good rows, {loaded.bad} bad, {loaded.duplicates} duplicates",
                )
            ],
        )
        notes = []
        if loaded.bad:
            notes.append(f"{loaded.bad} bad row(s) quarantined")
        if loaded.duplicates:
            notes.append(f"{loaded.duplicates} duplicate row(s) quarantined")
        if loaded.extra_columns:
            shown = ", ".join(map(column_name, loaded.extra_columns[:10]))
            more = f" and {len(loaded.extra_columns) - 10} more" if len(loaded.extra_columns) > 10 else ""
            notes.append(f"extra column(s) ignored: {shown}{more}")
        outcome = StepOutcome(
            STEP_CRM,
            day,
            "warning" if notes else "succeeded",
            rows_loaded=loaded.rows,
            rows_rejected=loaded.rejected,
            message="; ".join(notes) or None,
        )
        context.finish(outcome, started, notify_recovery=True)
        return loaded.changed


def column_name(written: str) -> str:
    """An ignored CRM column's name for reports: as written when short and plain, else an excerpt."""
    return written if written.isprintable() and len(written) <= 40 else excerpt(written)
