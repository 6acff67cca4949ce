"""The ``ingest_usage`` step: each day's API usage, raw pages landed in the lake, then staging.

Days are fetched concurrently (``api_concurrency`` at once, all under the client's one rate limit; the
pages of one day follow its cursor one after another) while the calling thread loads staging in day
order as each day's raw run completes. A day is loaded by the data engine first, then recorded complete
in the run-state store. ``replay`` fetches from the lake's latest complete raw run instead of the API.

A record over one of the project's own limits is quarantined (``docs/usage-api-policy.md``): the day is
published without it while the quarantined share stays within ``QUARANTINE_MAX_FRACTION`` (the step is a
"warning", with an alert naming the first records), and fails past it, with the command that replays it.
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
from ..raw.quarantine import DayQuarantine
from ..run import plan
from ..run.context import Fetch, Resources, RunContext
from ..run.vocab import STEP_USAGE, rerun_hint
from ..sources.usage.contract import QUARANTINE_MAX_FRACTION
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
    quarantined: int = 0  # records kept out for the project's own limits
    share: float = 0.0  # their share of the day's records
    quarantine_first: str = ""  # the first of them: "page P, record R (company_id ...): reason; ..."
    quarantine_at: str | None = None  # the lake's URL of the quarantine file


class QuarantineExceeded(UsageDataError):
    """More of a day's records break the project's own limits than may be quarantined: the day fails."""

    def __init__(self, message: str, *, quarantined: int, rerun: str) -> None:
        super().__init__(message)
        self.quarantined = quarantined
        self.rerun = rerun


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
                else "usage records over the project's limits"
                if isinstance(exc, QuarantineExceeded)
                else "step failure"
            )
            over = exc if isinstance(exc, QuarantineExceeded) else None
            outcome = StepOutcome(
                STEP_USAGE,
                day,
                "failed",
                rows_rejected=over.quarantined if over else None,
                message=message,
            )
            context.fail(outcome, started, rerun=over.rerun if over else rerun_hint("run", day), title=title)
            return None
        drift = f"schema drift: unlisted field(s) {'; '.join(load.drift)}" if load.drift else None
        kept = quarantine_note(load)
        outcome = StepOutcome(
            STEP_USAGE,
            day,
            "warning" if drift or kept else "succeeded",
            rows_loaded=load.records,
            rows_rejected=load.quarantined,
            message="; ".join(n for n in (kept, drift) if n) or None,
        )
        if drift:
            context.alerter.send(
                Alert("warning", "schema drift", drift, context.run_id, day=day, step=STEP_USAGE)
            )
        if kept:
            context.alerter.send(quarantine_alert(context.run_id, day, load))
        context.finish(outcome, started, notify_recovery=True)
        return load


def quarantine_note(load: UsageLoad) -> str | None:
    """The step message of a day published without its quarantined records (None: none was)."""
    if not load.quarantined:
        return None
    return f"{load.records:,} records loaded, {load.quarantined:,} quarantined ({load.quarantine_first})"


def quarantine_alert(run_id: str, day: date, load: UsageLoad) -> Alert:
    """The warning that ``day`` was published without its quarantined records: the count, the first."""
    where = f"; all listed in {load.quarantine_at}" if load.quarantine_at else ""
    return Alert(
        "warning",
        "usage records quarantined",
        f"usage for {day.isoformat()}: {load.quarantined:,} record(s) ({load.share:.2%} of the day) break "
        f"the project's own limits and were left out of the published day: {load.quarantine_first}{where}",
        run_id,
        day=day,
        step=STEP_USAGE,
        figures={
            "quarantined": f"{load.quarantined:,}",
            "share": f"{load.share:.2%}",
            "threshold": f"at most {QUARANTINE_MAX_FRACTION:.0%}",
        },
    )


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
    day: nothing of it enters staging, and its raw pages stay for inspection. The records over the
    project's own limits are left out (quarantined) while they stay within ``QUARANTINE_MAX_FRACTION`` of
    the day; more fail the day (:class:`QuarantineExceeded`).
    """
    day, lake = landed.day, context.lake
    staged = landed.staged
    if staged is None:
        staged = stage_from_lake(lake, landed.prefix, landed.manifest, day, tmp_dir=context.settings.tmp_dir)
    kept = f"nothing of the day was loaded; raw pages kept at {lake.url(landed.prefix)}"
    quarantine = staged.quarantine
    listed = lake.url(landed.quarantine_file) if landed.quarantine_file else None
    try:
        if staged.error is not None:
            raise UsageDataError(
                f"usage for {day.isoformat()} breaks the API contract: {staged.error}; {kept}"
            )
        if quarantine.exceeds(staged.records, QUARANTINE_MAX_FRACTION):
            raise _exceeded(day, staged.records, quarantine, kept, listed)
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
            quarantined_count=len(quarantine),
            quarantined=[(r.page, r.record, r.reason, r.excerpt) for r in quarantine.records],
        )
    finally:
        staged.discard()
    notes = [
        f"{name} (first seen {first_seen[name].isoformat()}; here from {staged.drift[name]})"
        for name in drift
    ]
    first = quarantine.first()
    if len(quarantine) > 3:
        first += f"; and {len(quarantine) - 3:,} more"
    return UsageLoad(
        loaded.records,
        landed.page_count,
        loaded.changed,
        notes,
        quarantined=len(quarantine),
        share=quarantine.share(staged.records),
        quarantine_first=first,
        quarantine_at=listed,
    )


def _exceeded(
    day: date, accepted: int, quarantine: DayQuarantine, kept: str, listed: str | None
) -> QuarantineExceeded:
    """The failure of a day with more records over the project's own limits than may be quarantined."""
    total = accepted + len(quarantine)
    replay = rerun_hint("verbatim", verbatim=f"replay --date {day.isoformat()}")
    where = f"; every one listed in {listed}" if listed else ""
    share, most = quarantine.share(accepted), QUARANTINE_MAX_FRACTION
    return QuarantineExceeded(
        f"usage for {day.isoformat()}: {len(quarantine):,} of {total:,} records ({share:.2%}) break the "
        f"project's own limits, more than the {most:.0%} that may be quarantined (first: "
        f"{quarantine.first()}); {kept}{where}; once the limit or the data is fixed, replay the day from "
        f"the lake: {replay} (or fetch it again: {rerun_hint('run', day)})",
        quarantined=len(quarantine),
        rerun=replay,
    )


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
