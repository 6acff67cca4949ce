"""The ``ingest_usage`` step: each day's API usage, raw pages landed in the lake, then staging.

Days are fetched concurrently (``api_concurrency`` at once, all under the client's one rate limit; the
pages of one day follow its cursor one after another) while the calling thread loads staging in day
order as each day's raw run completes. A day is loaded by the data engine first, then recorded complete
in the run-state store. ``replay`` fetches from the lake's latest complete raw run instead of the API.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..alerts import Alert
from ..clock import utcnow
from ..errors import (
    ApiUnavailable,
    CredentialsRejected,
    DateNotAvailable,
    DateNotFinal,
    PipelineError,
    RunStopped,
    UsageDataError,
)
from ..failures import describe
from ..logs import log_context
from ..raw.landing import LandedRun, land_day, latest_raw_run, stage_from_lake, sweep_stale_spools
from ..run import plan
from ..run.context import Fetch, Resources, RunContext
from ..run.vocab import STEP_USAGE, rerun_hint
from ..state import StepOutcome
from . import StepResult

log = logging.getLogger("company_activity.pipeline")


@dataclass
class UsageLoad:
    """One day loaded: its records and pages, whether its rows changed, its schema-drift notes."""

    records: int
    pages: int
    changed: bool
    drift: list[str]


class IngestUsage:
    """``run(context, days)``: fetch and load each day; ``done`` are the days loaded."""

    def run(self, context: RunContext, days: Sequence[date]) -> StepResult:
        result = StepResult()
        for day, usage in self.days(context, days):
            if usage is not None:
                result.done.add(day)
                if usage.changed:
                    result.affected |= plan.usage_affected_days(day)
            if context.progress is not None:
                context.progress("ingested", day)
        return result

    def days(self, context: RunContext, days: Sequence[date]) -> Iterator[tuple[date, UsageLoad | None]]:
        """Usage of every day, oldest first (see the module's doc). A fetched day that is never loaded
        (the caller stopped early) has its spool deleted."""
        if not days:
            return
        starts = {day: context.ledger.step_started(STEP_USAGE, day) for day in days}
        sweep_stale_spools(context.settings.tmp_dir)
        workers = max(1, min(context.settings.api_concurrency, len(days)))
        futures: dict[date, Future[LandedRun]] = {}
        consumed: set[date] = set()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        stop = context.stop
        try:
            for day in days:
                futures[day] = pool.submit(
                    contextvars.copy_context().run, _fetch_in_context, context.fetch, day, context.run_id
                )
            try:
                for day in days:
                    consumed.add(day)
                    yield day, self.finish_day(context, day, futures[day], starts[day])
            finally:
                for future in futures.values():
                    future.cancel()
        finally:
            # after a stop, do not wait for a fetch in flight (it ends at its next page or abort hook)
            pool.shutdown(wait=not stop.requested and not stop.expired(), cancel_futures=True)
            for day, future in futures.items():
                if day in consumed or not future.done() or future.cancelled() or future.exception():
                    continue
                future.result().discard()

    def finish_day(
        self, context: RunContext, day: date, fetched: Future[LandedRun], started: datetime
    ) -> UsageLoad | None:
        try:
            while not fetched.done():  # a stop is honoured while the day is still being fetched
                context.stop.check()
                concurrent.futures.wait([fetched], timeout=0.2)
            landed = fetched.result()
            context.stop.check()
            load = load_day(context, landed)
        except RunStopped:
            raise
        except DateNotFinal as exc:
            context.state.mark_usage(day, "pending", str(exc))
            context.report.pending.append(day)
            context.finish(StepOutcome(STEP_USAGE, day, "pending", message=str(exc)), started)
            return None
        except DateNotAvailable as exc:
            context.ledger.step_finished(StepOutcome(STEP_USAGE, day, "failed", message=str(exc)), started)
            context.mark_lost(day, str(exc), record_step=False)
            return None
        except Exception as exc:  # this day alone fails; its transaction rolled back, the others go on
            context.stop.check()  # a statement cancelled by a stop is the stop, not a failure
            message = describe(exc)
            if not isinstance(exc, PipelineError):
                log.debug("usage for %s failed", day.isoformat(), exc_info=True)  # the trace, for debugging
            context.state.mark_usage(day, "failed", message)
            title = (
                "API unavailable"
                if isinstance(exc, ApiUnavailable)
                else "credentials rejected"
                if isinstance(exc, CredentialsRejected)
                else "step failure"
            )
            outcome = StepOutcome(STEP_USAGE, day, "failed", message=message)
            context.fail(outcome, started, rerun=rerun_hint("run", day), title=title)
            return None
        note = f"schema drift: unlisted field(s) {'; '.join(load.drift)}" if load.drift else None
        outcome = StepOutcome(
            STEP_USAGE, day, "warning" if note else "succeeded", rows_loaded=load.records, message=note
        )
        if note:
            context.alerter.send(
                Alert("warning", "schema drift", note, context.run_id, day=day, step=STEP_USAGE)
            )
        context.finish(outcome, started, notify_recovery=True)
        return load


def fetch_from_api(resources: Resources) -> Fetch:
    """Land a day's pages from the API (the fetch of ``run``, ``backfill`` and ``rerun``)."""

    def fetch(day: date, run_id: str) -> LandedRun:
        return land_day(
            resources.lake,
            resources.client().fetch_day(day),
            day,
            run_id,
            page_size=resources.settings.api_page_size,
            tmp_dir=resources.settings.tmp_dir,
            check=resources.stop.check,
        )

    return fetch


def fetch_from_lake(resources: Resources) -> Fetch:
    """The latest complete raw run of a day in the lake (the fetch of ``replay``)."""
    return lambda day, _run_id: latest_raw_run(resources.lake, day)


def load_day(context: RunContext, landed: LandedRun) -> UsageLoad:
    """Load staging for a day from a complete raw run, then record the day complete.

    The records come from the spool the landing made, or else are staged from the lake (checksums
    verified). A record that breaks the contract or two different records for one company fail the
    day: nothing of it enters staging, and its raw pages stay for inspection.
    """
    day, lake = landed.day, context.lake
    staged = landed.staged
    if staged is None:
        staged = stage_from_lake(lake, landed.prefix, landed.manifest, day, tmp_dir=context.settings.tmp_dir)
    kept = f"nothing of the day was loaded; raw pages kept at {lake.url(landed.prefix)}"
    try:
        if staged.error is not None:
            raise UsageDataError(
                f"usage for {day.isoformat()} breaks the API contract: {staged.error}; {kept}"
            )
        drift = sorted(staged.drift)
        now = utcnow()
        was_complete = context.state.usage_status(day) == "complete"
        try:
            loaded = context.engine.replace_usage_day(
                day, staged, raw_run_id=landed.raw_run_id, loaded_at=now, was_complete=was_complete
            )
        except UsageDataError as exc:
            raise UsageDataError(f"{exc}; {kept}") from exc
        first_seen = context.state.drift_first_seen(day, drift)
        context.state.usage_complete(
            day,
            raw_run_id=landed.raw_run_id,
            record_count=loaded.records,
            page_count=landed.page_count,
            drift=drift,
            at=now,
        )
    finally:
        staged.discard()
    notes = [
        f"{name} (first seen {first_seen[name].isoformat()}; here from {staged.drift[name]})"
        for name in drift
    ]
    return UsageLoad(loaded.records, landed.page_count, loaded.changed, notes)


def retention_warnings(context: RunContext, start: date) -> None:
    """Warn of each day not complete that leaves the API's retention within ``retention_warning_days``."""
    today = context.today()
    retention = context.settings.api_retention_days
    first, last = plan.retention_window(today, start, retention, context.settings.retention_warning_days)
    oldest_served = today - timedelta(days=retention)
    statuses = context.state.usage_statuses(first, last)
    for day in plan.days(first, last):
        if statuses.get(day) != "complete":
            left = (day - oldest_served).days
            context.alerter.send(
                Alert(
                    "warning",
                    "usage day near the end of retention",
                    f"usage for {day.isoformat()} is not complete and leaves the API's {retention}-day "
                    f"retention in {left} day(s)",
                    context.run_id,
                    day=day,
                    step=STEP_USAGE,
                    rerun=rerun_hint("run", day),
                )
            )


def _fetch_in_context(fetch: Fetch, day: date, run_id: str) -> LandedRun:
    with log_context(day=day, step=STEP_USAGE):
        return fetch(day, run_id)
