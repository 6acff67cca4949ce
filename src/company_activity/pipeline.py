"""The master pipeline: the one place that wires the parts together.

For each day D, oldest first: (1) ingest the CRM snapshot of D, (2) ingest the API usage of D, then
(3) build the analytics rows of every day that (1) and (2) made buildable or changed. A CRM failure does
not stop (2); (3) runs for D only when (2) succeeded. Every failure is alerted and fails the run.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from . import ingest, run_status, transform
from .alerts import Alert, Alerter, AlertSink
from .alerts.factory import sinks_from_settings
from .config import Settings
from .crm_load import load_crm_snapshot
from .errors import (
    ApiUnavailable,
    ConfigError,
    CredentialsRejected,
    CrmFileError,
    DateNotAvailable,
    DateNotFinal,
    PipelineError,
    RunDeadlineExceeded,
    RunStopped,
    UsageDataError,
)
from .failures import describe, storage_errors
from .interrupts import abort_statement
from .logs import log_context
from .monitoring import record_volume_checks, recovery_alert, volume_checks
from .quality import CheckResult
from .redact import redact, register_secret, secrets_from_settings
from .runs import Ledger, StepOutcome, new_run_id, utcnow
from .sources.crm import CrmParseResult
from .sources.crm_records import excerpt
from .sources.usage_api import RetryPolicy, UsageApiClient
from .stopping import StopSignal
from .storage import Lake, open_lake_for
from .tls import api_http_client, warn_insecure
from .warehouse import Warehouse, connect

log = logging.getLogger("company_activity.pipeline")

STEP_CRM = "ingest_crm"
STEP_USAGE = "ingest_usage"
STEP_BUILD = "build"

STEPS = (STEP_CRM, STEP_USAGE, STEP_BUILD)

Progress = Callable[[str, date], None]
Fetch = Callable[[date, str], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class _Plan:
    """Which steps a run does, and how it gets a day's raw usage (the API, or the lake for replay)."""

    steps: tuple[str, ...]
    fetch: Fetch
    progress: Progress | None
    lost_before: tuple[date, ...]
    only: bool = False  # exactly these steps: an ingest step does not build, no step runs another's checks


@dataclass
class RunReport:
    """What a run did: its steps, alerts, and the days it caught up, lost or left pending."""

    run_id: str
    command: str
    days: list[date]
    steps: list[StepOutcome] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    caught_up: list[date] = field(default_factory=list)
    lost: list[date] = field(default_factory=list)
    pending: list[date] = field(default_factory=list)
    built: list[transform.DayBuild] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (a signal's name, or its deadline)

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.steps)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 failed (or its deadline passed), 128 + the signal number when SIGINT/SIGTERM stopped it."""
        if self.stopped in _SIGNAL_EXIT:
            return _SIGNAL_EXIT[self.stopped]
        return 1 if self.failed or self.stopped else 0


_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class _UsageLoad:
    records: int
    pages: int
    changed: bool
    drift: list[str]


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
        self.settings = settings
        for secret in secrets_from_settings(settings):
            register_secret(secret)
        #: the run's one stop signal (SIGINT/SIGTERM via the CLI, and the run deadline)
        self.stop = stop or StopSignal(deadline_seconds=settings.run_deadline)
        with storage_errors("warehouse"):
            self.wh = warehouse or connect(
                settings.warehouse,
                lock_timeout=settings.lock_timeout,
                duckdb_memory_limit=settings.duckdb_memory_limit,
            )
            self.schema_applied: list[int] = self.wh.init_schema()
        warn_insecure(settings)  # a warning on every run when plain text is allowed
        with storage_errors("lake"):
            self.lake = lake or open_lake_for(settings)  # identity / SAS / key / connection string
        self._client = client
        self._http: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._sinks: list[AlertSink] = list(sinks) if sinks is not None else sinks_from_settings(settings)

    # -- wiring -----------------------------------------------------------------------------------------
    @property
    def client(self) -> UsageApiClient:
        """The run's one API client (one token, one rate limiter, one retry budget), made on first use."""
        with self._client_lock:
            return self._make_client()

    def _make_client(self) -> UsageApiClient:
        if self._client is None:
            s = self.settings
            self._http = api_http_client(s)  # verified TLS (+ API_CA_FILE), proxies, whole-request deadline
            self._client = UsageApiClient(
                s.require_api_url(),
                stop=self.stop,
                client_id=s.api_client_id,
                client_secret=s.api_client_secret.get_secret_value() if s.api_client_secret else None,
                api_key=s.api_key.get_secret_value() if s.api_key else None,
                http=self._http,
                page_size=s.api_page_size,
                timeout=s.api_timeout,
                rate_limit=s.api_rate_limit,
                rate_floor=s.api_rate_floor,  # issue 9: AIMD floor
                max_pages_per_day=s.api_max_pages_per_day,  # issue 9: page cap
                retry=RetryPolicy(
                    max_attempts=s.api_max_attempts,
                    backoff_initial=s.api_backoff_initial,
                    backoff_max=s.api_backoff_max,
                    retry_after_floor=s.api_retry_after_floor,
                    budget_seconds=s.api_retry_budget,
                ),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._http is not None:
            self._http.close()
        self.wh.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def today(self) -> date:
        return self.settings.today or datetime.now(UTC).date()

    # -- commands ---------------------------------------------------------------------------------------
    def run(self, *, day: date | None = None, progress: Progress | None = None) -> RunReport:
        """``run``: one day, or yesterday after catching up every incomplete earlier day."""
        if day is not None:
            self._closed(day, "--date")
            return self._run_days([day], command=f"run --date {day.isoformat()}", progress=progress)
        self.settings.require_api_url()
        yesterday = self.today() - timedelta(days=1)
        start = self._start_date(default=yesterday)
        oldest_served = self.today() - timedelta(days=self.settings.api_retention_days)
        statuses = self._usage_statuses(start, yesterday)
        lost_now = [
            d
            for d in _days(start, min(yesterday, oldest_served - timedelta(days=1)))
            if statuses.get(d) not in ("complete", "lost")
        ]
        todo = [
            d
            for d in _days(max(start, oldest_served), yesterday)
            if statuses.get(d) not in ("complete", "lost") or d == yesterday
        ]
        return self._run_days(
            todo, command="run", progress=progress, lost_before=lost_now, catch_up=todo[:-1]
        )

    def backfill(self, start: date, end: date, *, progress: Progress | None = None) -> RunReport:
        """``backfill``: every day of ``start … end``, oldest first."""
        return self._run_days(
            self._closed_range(start, end, "--start"),
            command=f"backfill --start {start.isoformat()} --end {end.isoformat()}",
            progress=progress,
        )

    def replay(self, start: date, end: date, *, progress: Progress | None = None) -> RunReport:
        """``replay``: reload staging from the latest complete raw run of each day, then rebuild.

        The API is not called: a day is re-parsed from the pages its manifest lists.
        """
        if end < start:
            raise ConfigError(f"--end {end.isoformat()} is before --date {start.isoformat()}")
        command = f"replay --date {start.isoformat()}" + (f" --end {end.isoformat()}" if end != start else "")
        return self._run_days(
            list(_days(start, end)),
            command=command,
            progress=progress,
            steps=(STEP_USAGE, STEP_BUILD),
            fetch=lambda day, _run_id: self.latest_raw_run(day),
        )

    def rerun(self, day: date, *, from_step: str | None = None) -> RunReport:
        """``rerun``: the master pipeline of ``day`` from a step on, not repeating the steps before it.

        Without ``from_step``: from the first step of ``day`` that did not succeed in its latest run.
        """
        if from_step is None:
            from_step = self._first_unfinished_step(day)
        if from_step not in STEPS:
            raise ConfigError(f"--from-step {from_step!r} is not one of {', '.join(STEPS)}")
        self._closed(day, "--date")
        steps = STEPS[STEPS.index(from_step) :]
        return self._run_days(
            [day],
            command=f"rerun --date {day.isoformat()} --from-step {from_step}",
            progress=None,
            steps=steps,
        )

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
        self._closed(last, "day")
        command = (
            f"rerun --date {first.isoformat()} --from-step {step}"
            if first == last
            else f"backfill --start {first.isoformat()} --end {last.isoformat()}"
        )
        return self._run_days(sorted(set(days)), command=command, progress=None, steps=(step,), only=True)

    def _first_unfinished_step(self, day: date) -> str:
        rows = self.wh.run("ops.sql", "latest_step_outcomes", {"day": day})
        status = {step: st for step, st in rows}
        for step in STEPS:
            if status.get(step) not in ("succeeded", "warning"):
                return step
        return STEP_BUILD

    def build(self, start: date, end: date, *, progress: Progress | None = None) -> RunReport:
        """Rebuild the analytics rows of ``start … end`` from staging, without ingesting anything."""
        return self._run_days(
            self._closed_range(start, end, "--start"),
            command=f"build --start {start.isoformat()} --end {end.isoformat()}",
            progress=progress,
            steps=(STEP_BUILD,),
            only=True,
        )

    def _closed_range(self, start: date, end: date, start_option: str) -> list[date]:
        """The days of ``start … end``; refuses an empty range or one that reaches today."""
        if end < start:
            raise ConfigError(f"--end {end.isoformat()} is before {start_option} {start.isoformat()}")
        self._closed(end, "--end")
        return list(_days(start, end))

    def _closed(self, day: date, what: str) -> None:
        """Refuse a day that is not over yet (today or later, UTC)."""
        if day >= self.today():
            raise ConfigError(
                f"{what} {day.isoformat()} is not a closed day yet (today is {self.today().isoformat()})"
            )

    # -- the master pipeline over a list of days ---------------------------------------------------------
    def _run_days(
        self,
        days: list[date],
        *,
        command: str,
        progress: Progress | None,
        lost_before: Sequence[date] = (),
        catch_up: Sequence[date] = (),
        steps: Sequence[str] = STEPS,
        fetch: Fetch | None = None,
        only: bool = False,
    ) -> RunReport:
        run_id = new_run_id()
        report = RunReport(run_id, command, sorted(days), caught_up=list(catch_up))
        ledger = Ledger(self.wh, run_id)
        alerter = Alerter(self._sinks, digest=True)  # the first error at once, the rest in one summary
        plan = _Plan(tuple(steps), fetch or self._land_raw, progress, tuple(lost_before), only)
        with self.wh.lock(timeout=self.settings.lock_timeout):
            ledger.start_run(command)
            log.info("run %s: %s (%d day(s))", run_id, command, len(days))
            # a stop cancels the SQL statement in progress (its transaction rolls back)
            unregister = self.stop.on_stop(lambda: abort_statement(self.wh))
            try:
                with log_context(run_id=run_id):
                    self._run_days_body(report, ledger, alerter, command, plan)
            finally:
                unregister()
        return report

    def _run_days_body(
        self, report: RunReport, ledger: Ledger, alerter: Alerter, command: str, plan: _Plan
    ) -> None:
        run_id = report.run_id
        try:
            for day in plan.lost_before:
                self._mark_lost(
                    day, ledger, alerter, report, "the day left the API's retention before it was captured"
                )
            targets: set[date] = set()
            affected: set[date] = set()
            if STEP_CRM in plan.steps:
                for day in report.days:
                    self.stop.check()
                    if self._ingest_crm_isolated(day, ledger, alerter, report):
                        affected |= self._crm_affected_days(day)
            self.stop.check()
            if STEP_USAGE in plan.steps:
                for day, usage in self._ingest_usage_days(report, ledger, alerter, fetch=plan.fetch):
                    if usage is not None:
                        targets.add(day)
                        if usage.changed:
                            affected |= set(_days(day, day + timedelta(days=6)))
                    if plan.progress is not None:
                        plan.progress("ingested", day)
            else:
                # from the build step on: every day is a target; the build gate names what is missing
                targets = set(report.days)
            self.stop.check()
            if STEP_BUILD in plan.steps or not plan.only:
                held = self._volume_checks(report, ledger, alerter)
                self._build(
                    report,
                    ledger,
                    alerter,
                    targets=targets - held,
                    affected=affected - held,
                    progress=plan.progress,
                )
            if STEP_USAGE in plan.steps or not plan.only:
                self._retention_warnings(alerter, report)
            if self.stop.requested:  # asked to stop while the last unit of work committed
                self.stop.check()
        except RunStopped as exc:
            self._stopped(report, ledger, alerter, exc, command)
        except Exception as exc:
            if self.stop.requested or self.stop.expired():  # a statement cancelled by the stop
                self._stopped(report, ledger, alerter, _as_stopped(self.stop), command)
                return
            log.exception("run %s failed unexpectedly", run_id)
            report.steps.append(
                StepOutcome(
                    "run", report.days[-1] if report.days else self.today(), "failed", message=describe(exc)
                )
            )
            alerter.send(
                Alert("error", "pipeline failure", describe(exc), run_id, rerun=f"company-activity {command}")
            )
        except (
            BaseException
        ) as exc:  # stopped by force (a second Ctrl-C or SIGTERM): recorded, then re-raised
            report.stopped = self.stop.reason or type(exc).__name__
            try:
                ledger.interrupt_steps(f"interrupted ({type(exc).__name__})")
            except Exception:  # the connection may be unusable mid-statement: the next run cleans up
                log.warning("could not record the interrupted steps", exc_info=True)
            raise
        finally:
            alerter.flush(report.run_id)
            report.alerts = alerter.sent
            status = "interrupted" if report.stopped else "failed" if report.failed else "succeeded"
            ledger.finish_run(status, _summary(report))

    def _stopped(
        self, report: RunReport, ledger: Ledger, alerter: Alerter, exc: RunStopped, command: str
    ) -> None:
        """A stop (signal or deadline): the day in progress stays not-complete; the next run converges."""
        report.stopped = self.stop.reason or ("deadline" if isinstance(exc, RunDeadlineExceeded) else "stop")
        log.warning("run %s stopped: %s; the next run picks up where it left off", report.run_id, exc)
        ledger.interrupt_steps(str(exc))
        if isinstance(exc, RunDeadlineExceeded):
            alerter.send(
                Alert(
                    "error",
                    "run deadline exceeded",
                    f"{exc}: the run stopped; days not finished are left for the next run",
                    report.run_id,
                    rerun=f"company-activity {command}",
                )
            )

    def _ingest_crm_isolated(self, day: date, ledger: Ledger, alerter: Alerter, report: RunReport) -> bool:
        """The CRM step of ``day``; any failure inside it (I/O, staging load, a database data error, ...)
        is that step's failure for ``day``: recorded, alerted, and the usage step and build still run."""
        started = utcnow()
        try:
            return self._ingest_crm(day, ledger, alerter, report)
        except RunStopped:
            raise
        except Exception as exc:
            self.stop.check()  # a statement cancelled by a stop is the stop, not a failure
            message = describe(exc)
            log.debug("CRM step for %s failed", day.isoformat(), exc_info=True)  # the trace, for debugging
            with self.wh.transaction():
                self.wh.run(
                    "ops.sql",
                    "crm_snapshot_upsert",
                    _crm_status(day, "failed", updated_at=utcnow(), last_error=message),
                )
            self._fail(
                report,
                ledger,
                alerter,
                StepOutcome(STEP_CRM, day, "failed", message=message),
                started,
                rerun=f"company-activity run --date {day.isoformat()}",
            )
            return False

    # -- (1) CRM ------------------------------------------------------------------------------------------
    def _ingest_crm(self, day: date, ledger: Ledger, alerter: Alerter, report: RunReport) -> bool:
        """Load the CRM snapshot of ``day``; returns whether staging changed."""
        started = ledger.step_started(STEP_CRM, day)
        rel = self.settings.crm_path.format(date=day.isoformat())
        now = utcnow()
        quarantine = f"quarantine/crm/date={day.isoformat()}/rejected-{report.run_id}.csv"
        status = "failed"
        try:
            if not self.lake.exists(rel):
                status = "missing"
                raise CrmFileError(f"CRM snapshot for {day.isoformat()} is missing: {self.lake.url(rel)}")
            # streamed: the file is read in chunks and duplicates are resolved in SQL (crm_load.py)
            with self.wh.transaction():
                loaded = load_crm_snapshot(
                    self.wh,
                    self.lake,
                    rel,
                    day=day,
                    run_id=report.run_id,
                    now=now,
                    quarantine=quarantine,
                    max_bad_fraction=self.settings.crm_max_bad_fraction,
                )
                self.wh.run(
                    "ops.sql",
                    "crm_snapshot_upsert",
                    _crm_status(
                        day,
                        "loaded",
                        row_count=loaded.rows,
                        rejected_count=loaded.bad,
                        duplicate_count=loaded.duplicates,
                        extra_columns=",".join(map(_column_name, loaded.extra_columns))[:1000] or None,
                        source_file=rel,
                        loaded_at=now,
                        updated_at=now,
                    ),
                )
            changed = loaded.changed
        except PipelineError as exc:
            with self.wh.transaction():
                self.wh.run(
                    "ops.sql",
                    "crm_snapshot_upsert",
                    _crm_status(day, status, updated_at=now, last_error=str(exc)),
                )
            self._fail(
                report,
                ledger,
                alerter,
                StepOutcome(STEP_CRM, day, "failed", message=str(exc)),
                started,
                rerun=f"company-activity run --date {day.isoformat()}",
            )
            self._record_checks(
                report.run_id,
                [CheckResult(day, "crm_row_count", "fail", False, 0, 0, f"CRM snapshot not loaded: {exc}")],
            )
            return False
        self._record_checks(
            report.run_id,
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
            shown = ", ".join(map(_column_name, loaded.extra_columns[:10]))
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
        self._finish(report, ledger, outcome, started, alerter)
        return changed

    def _load_crm(self, day: date, parsed: CrmParseResult, rel: str, run_id: str, now: datetime) -> bool:
        """Load an in-memory parse result (for tools); ``run`` streams instead (``crm_load``)."""
        with self.wh.transaction():
            self.wh.run("staging.sql", "crm_load_create")
            self.wh.bulk_insert(
                "crm_load",
                ["company_id", "company_name", "country", "industry_tag", "last_contact_at", "source_line"],
                (
                    (
                        r.company_id,
                        r.company_name,
                        r.country,
                        r.industry_tag,
                        r.last_contact_at.isoformat(sep=" ") if r.last_contact_at else None,
                        r.line,
                    )
                    for r in parsed.rows
                ),
            )
            diff = int(self.wh.scalar("staging.sql", "crm_load_changed", {"day": day}) or 0)
            previously = self.wh.execute(
                "select count(*) from stg.crm_daily where snapshot_date = cast(:day as date)", {"day": day}
            )[0][0]
            self.wh.run(
                "staging.sql",
                "crm_replace_day",
                {"day": day, "source_file": rel, "loaded_at": now, "run_id": run_id},
            )
            self.wh.run("staging.sql", "crm_load_drop")
            self.wh.run(
                "ops.sql",
                "crm_snapshot_upsert",
                _crm_status(
                    day,
                    "loaded",
                    row_count=len(parsed.rows),
                    rejected_count=parsed.bad_count,
                    duplicate_count=parsed.duplicate_count,
                    extra_columns=",".join(parsed.extra_columns) or None,
                    source_file=rel,
                    loaded_at=now,
                    updated_at=now,
                ),
            )
        return diff > 0 or previously == 0

    def _crm_affected_days(self, day: date) -> set[date]:
        """Days whose rows depend on the snapshot of ``day``: up to the next snapshot, plus 6 for churn."""
        nxt = self.wh.scalar("staging.sql", "next_snapshot_after", {"day": day})
        last = (nxt - timedelta(days=1)) if isinstance(nxt, date) else self.today()
        return set(_days(day, last + timedelta(days=6)))

    # -- (2) usage ----------------------------------------------------------------------------------------
    def _ingest_usage_days(
        self,
        report: RunReport,
        ledger: Ledger,
        alerter: Alerter,
        *,
        fetch: Callable[[date, str], tuple[str, dict[str, Any]]],
    ) -> Iterator[tuple[date, _UsageLoad | None]]:
        """Usage of every day of the run, oldest first.

        Days are fetched concurrently (``api_concurrency`` at once, all under the client's one rate limit;
        the pages of one day follow its cursor one after another) while this thread loads staging in day
        order as each day's raw run completes. A fetched day that is never loaded (the caller stopped
        early) has its spool deleted.
        """
        days = report.days
        if not days:
            return
        starts = {day: ledger.step_started(STEP_USAGE, day) for day in days}
        ingest.sweep_stale_spools(self.settings.tmp_dir)
        workers = max(1, min(self.settings.api_concurrency, len(days)))
        futures: dict[date, Future[tuple[str, dict[str, Any]]]] = {}
        consumed: set[date] = set()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        try:
            for day in days:
                futures[day] = pool.submit(
                    contextvars.copy_context().run, _fetch_in_context, fetch, day, report.run_id
                )
            try:
                for day in days:
                    consumed.add(day)
                    yield day, self._finish_usage(day, futures[day], starts[day], ledger, alerter, report)
            finally:
                for future in futures.values():
                    future.cancel()
        finally:
            # after a stop, do not wait for a fetch in flight (it ends at its next page or abort hook)
            pool.shutdown(wait=not self.stop.requested and not self.stop.expired(), cancel_futures=True)
            for day, future in futures.items():
                if day in consumed or not future.done() or future.cancelled() or future.exception():
                    continue
                staged = ingest.staged_of(future.result()[1])
                if staged is not None:
                    staged.discard()

    def _finish_usage(
        self,
        day: date,
        fetched: Future[tuple[str, dict[str, Any]]],
        started: datetime,
        ledger: Ledger,
        alerter: Alerter,
        report: RunReport,
    ) -> _UsageLoad | None:
        rerun = f"company-activity run --date {day.isoformat()}"
        try:
            while not fetched.done():  # a stop is honoured while the day is still being fetched
                self.stop.check()
                concurrent.futures.wait([fetched], timeout=0.2)
            prefix, manifest = fetched.result()
            self.stop.check()
            load = self._load_usage(day, prefix, manifest)
        except RunStopped:
            raise
        except DateNotFinal as exc:
            self._mark_usage(day, "pending", str(exc))
            report.pending.append(day)
            self._finish(report, ledger, StepOutcome(STEP_USAGE, day, "pending", message=str(exc)), started)
            return None
        except DateNotAvailable as exc:
            ledger.step_finished(StepOutcome(STEP_USAGE, day, "failed", message=str(exc)), started)
            self._mark_lost(day, ledger, alerter, report, str(exc), record_step=False)
            return None
        except Exception as exc:  # this day alone fails; its transaction rolled back, the others go on
            self.stop.check()  # a statement cancelled by a stop is the stop, not a failure
            message = describe(exc)
            if not isinstance(exc, PipelineError):
                log.debug("usage for %s failed", day.isoformat(), exc_info=True)  # the trace, for debugging
            self._mark_usage(day, "failed", message)
            title = (
                "API unavailable"
                if isinstance(exc, ApiUnavailable)
                else "credentials rejected"
                if isinstance(exc, CredentialsRejected)
                else "step failure"
            )
            self._fail(
                report,
                ledger,
                alerter,
                StepOutcome(STEP_USAGE, day, "failed", message=message),
                started,
                rerun=rerun,
                title=title,
            )
            return None
        note = f"schema drift: unlisted field(s) {'; '.join(load.drift)}" if load.drift else None
        outcome = StepOutcome(
            STEP_USAGE, day, "warning" if note else "succeeded", rows_loaded=load.records, message=note
        )
        if note:
            alerter.send(Alert("warning", "schema drift", note, report.run_id, day=day, step=STEP_USAGE))
        self._finish(report, ledger, outcome, started, alerter)
        return load

    def latest_raw_run(self, day: date) -> tuple[str, dict[str, Any]]:
        """The newest complete raw run of ``day`` in the lake (one with a manifest)."""
        folder = f"raw/product_usage/date={day.isoformat()}"
        for name in reversed(self.lake.list_dirs(folder)):
            prefix = f"{folder}/{name}"
            if self.lake.exists(f"{prefix}/_manifest.json"):
                manifest = orjson.loads(self.lake.read_bytes(f"{prefix}/_manifest.json"))
                return prefix, manifest
        raise UsageDataError(
            f"no complete raw run for {day.isoformat()} under {self.lake.url(folder)}: nothing to replay"
        )

    def _land_raw(self, day: date, run_id: str) -> tuple[str, dict[str, Any]]:
        """Fetch every page of ``day`` into the lake, then write the manifest (last).

        Pages are written, checksummed and validated by a writer thread while the next one is fetched
        (:class:`~company_activity.ingest.RawLanding`); their records are spooled locally for the load.
        A failure (or a kill) before the end leaves the pages written so far without a manifest.
        """
        prefix = f"raw/product_usage/date={day.isoformat()}/run={run_id}"
        started = datetime.now(UTC)
        landing = ingest.RawLanding(self.lake, prefix, day, tmp_dir=self.settings.tmp_dir)
        try:
            for page in self.client.fetch_day(day):
                self.stop.check()
                landing.add(page)
            pages, staged = landing.finish()
        except BaseException:
            landing.abort()
            raise
        manifest = ingest.Manifest(
            {
                "date": day.isoformat(),
                "run_id": run_id,
                "pages": pages,
                "page_count": len(pages),
                "record_count": sum(int(p["records"]) for p in pages),
                "request": {
                    "endpoint": "/v1/usage/daily",
                    "date": day.isoformat(),
                    "limit": self.settings.api_page_size,
                },
                "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(),
            }
        )
        try:
            self.lake.write_bytes(
                f"{prefix}/_manifest.json", orjson.dumps(dict(manifest), option=orjson.OPT_INDENT_2)
            )
        except BaseException:
            staged.discard()
            raise
        manifest.staged = staged
        return prefix, manifest

    def _load_usage(self, day: date, prefix: str, manifest: dict[str, Any]) -> _UsageLoad:
        """Load staging for ``day`` from a complete raw run, in one transaction.

        The records come from the spool the landing made, or else are staged from the lake (checksums
        verified). A record that breaks the contract or two different records for one company fail the
        day: nothing of it enters staging, and its raw pages stay for inspection.
        """
        staged = ingest.staged_of(manifest)
        if staged is None:
            staged = ingest.stage_from_lake(self.lake, prefix, manifest, day, tmp_dir=self.settings.tmp_dir)
        try:
            if staged.error is not None:
                raise UsageDataError(
                    f"usage for {day.isoformat()} breaks the API contract: {staged.error}; "
                    f"nothing of the day was loaded; raw pages kept at {self.lake.url(prefix)}"
                )
            drift = sorted(staged.drift)
            now = utcnow()
            with self.wh.transaction():
                previous = self.wh.execute(
                    "select status from ops.usage_days where activity_date = cast(:day as date)",
                    {"day": day},
                )
                self.wh.run("staging.sql", "usage_load_create")
                ingest.load_staged(self.wh, staged)
                conflicts = self.wh.run("staging.sql", "usage_load_conflicts")
                if conflicts:
                    ids = ", ".join(str(r[0]) for r in conflicts)
                    raise UsageDataError(
                        f"usage for {day.isoformat()} has different records for one company ({ids}); "
                        f"nothing of the day was loaded; raw pages kept at {self.lake.url(prefix)}"
                    )
                was_complete = bool(previous) and previous[0][0] == "complete"
                # a day loaded for the first time is a change whatever it holds: no need to compare
                changed = not was_complete or bool(
                    self.wh.scalar("staging.sql", "usage_load_changed", {"day": day})
                )
                raw_run_id = str(manifest["run_id"])
                self.wh.run(
                    "staging.sql",
                    "usage_replace_day",
                    {"day": day, "raw_run_id": raw_run_id, "loaded_at": now},
                )
                self.wh.run("staging.sql", "usage_load_drop")
                count = self.wh.execute(
                    "select count(*) from stg.product_usage_daily where activity_date = cast(:day as date)",
                    {"day": day},
                )[0][0]
                first_seen = ingest.drift_first_seen(self.wh, day, drift)
                self.wh.run(
                    "ops.sql",
                    "usage_day_upsert",
                    {
                        "day": day,
                        "status": "complete",
                        "raw_run_id": raw_run_id,
                        "record_count": count,
                        "page_count": manifest["page_count"],
                        "schema_drift": ",".join(drift) or None,
                        "completed_at": now,
                        "updated_at": now,
                        "last_error": None,
                    },
                )
        finally:
            staged.discard()
        notes = [
            f"{name} (first seen {first_seen[name].isoformat()}; here from {staged.drift[name]})"
            for name in drift
        ]
        return _UsageLoad(int(count), int(manifest["page_count"]), changed, notes)

    def _mark_usage(self, day: date, status: str, error: str | None) -> None:
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "usage_day_mark",
                {
                    "day": day,
                    "status": status,
                    "updated_at": utcnow(),
                    "last_error": redact(error) if error else error,
                },
            )

    def _mark_lost(
        self,
        day: date,
        ledger: Ledger,
        alerter: Alerter,
        report: RunReport,
        reason: str,
        *,
        record_step: bool = True,
    ) -> None:
        self._mark_usage(day, "lost", reason)
        report.lost.append(day)
        outcome = StepOutcome(STEP_USAGE, day, "failed", message=f"usage lost: {reason}")
        if record_step:
            started = ledger.step_started(STEP_USAGE, day)
            ledger.step_finished(outcome, started)
        report.steps.append(outcome)
        alerter.send(
            Alert(
                "error",
                "usage day lost",
                f"usage for {day.isoformat()} can no longer be fetched: {reason}",
                report.run_id,
                day=day,
                step=STEP_USAGE,
            )
        )

    # -- (3) build ----------------------------------------------------------------------------------------
    def _build(
        self,
        report: RunReport,
        ledger: Ledger,
        alerter: Alerter,
        *,
        targets: set[date],
        affected: set[date],
        progress: Progress | None = None,
    ) -> None:
        horizon = self.today() - timedelta(days=1)
        affected |= {r[0] for r in self.wh.run("ops.sql", "stale_built_days")}
        affected = {d for d in affected if d <= horizon}
        if not targets and not affected:
            return
        lo = min(targets | affected)
        complete = transform.complete_days(self.wh, lo, horizon)
        candidates = targets | (affected & complete)
        buildable, blocked = transform.check_gate(self.wh, candidates)
        self._record_checks(
            report.run_id,
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
            if day in targets and set(err.missing) <= set(report.pending):
                # waiting for a day the API has not closed yet: the next run builds it
                started = ledger.step_started(STEP_BUILD, day)
                self._finish(
                    report, ledger, StepOutcome(STEP_BUILD, day, "pending", message=str(err)), started
                )
            elif day in targets:
                started = ledger.step_started(STEP_BUILD, day)
                self._record_build_failure(day, str(err))
                self._fail(
                    report,
                    ledger,
                    alerter,
                    StepOutcome(STEP_BUILD, day, "failed", message=str(err)),
                    started,
                    rerun=f"company-activity run --date {min(err.missing).isoformat()}",
                )
        first = transform.first_usage_day(self.wh)
        if not buildable or first is None:
            return
        loaded_at = utcnow()
        for start, end in transform.segments(buildable):
            self.stop.check()
            starts = {d: ledger.step_started(STEP_BUILD, d) for d in _days(start, end)}
            checks: list[CheckResult] = []
            try:
                built, rejected = transform.build_segment(
                    self.wh,
                    start,
                    end,
                    first_usage_day=first,
                    loaded_at=loaded_at,
                    missing_crm_warn_fraction=self.settings.missing_crm_warn_fraction,
                    on_checks=checks.extend,
                )
            except RunStopped:
                raise
            except Exception as exc:  # these days fail alone (their transaction rolled back)
                self.stop.check()
                self._segment_failed(report, ledger, alerter, start, end, starts, describe(exc))
                continue
            self._record_checks(report.run_id, checks)
            by_day = {b.day: b for b in built}
            for day in _days(start, end):
                if day in rejected:
                    text = "; ".join(f"{c.name}: {c.details}" for c in rejected[day])
                    self._record_build_failure(day, text)
                    self._fail(
                        report,
                        ledger,
                        alerter,
                        StepOutcome(STEP_BUILD, day, "failed", message=f"quality check failed: {text}"),
                        starts[day],
                        rerun=f"company-activity run --date {day.isoformat()}",
                        title="check failure",
                    )
                    continue
                b = by_day.get(day, transform.DayBuild(day, 0, 0, 0))
                report.built.append(b)
                if progress is not None:
                    progress("built", day)
                notes = self._build_notes(day, b, checks, alerter, report.run_id)
                outcome = StepOutcome(
                    STEP_BUILD,
                    day,
                    "warning" if notes else "succeeded",
                    rows_loaded=b.row_count,
                    message="; ".join(notes) or None,
                )
                self._finish(report, ledger, outcome, starts[day], alerter)

    def _segment_failed(
        self,
        report: RunReport,
        ledger: Ledger,
        alerter: Alerter,
        start: date,
        end: date,
        starts: dict[date, datetime],
        message: str,
    ) -> None:
        for day in _days(start, end):
            self._record_build_failure(day, message)
            self._fail(
                report,
                ledger,
                alerter,
                StepOutcome(STEP_BUILD, day, "failed", message=message),
                starts[day],
                rerun=f"company-activity build --start {day.isoformat()} --end {day.isoformat()}",
            )

    def _build_notes(
        self, day: date, b: transform.DayBuild, checks: list[CheckResult], alerter: Alerter, run_id: str
    ) -> list[str]:
        snapshot = self.wh.scalar("staging.sql", "snapshot_in_effect", {"day": day})
        notes = []
        if snapshot is None:
            notes.append("no CRM snapshot on or before this day: company attributes are NULL")
        elif snapshot != day:
            notes.append(f"CRM snapshot of {day.isoformat()} missing: used the one of {snapshot.isoformat()}")
        for c in checks:
            if c.day == day and c.status == "warn":
                notes.append(f"{c.name}: {c.details}")
                alerter.send(
                    Alert(
                        "warning",
                        f"check warning: {c.name}",
                        c.details,
                        run_id,
                        day=day,
                        step=STEP_BUILD,
                        figures={"observed": f"{c.observed:g}", "threshold": f"{c.threshold:g}"},
                    )
                )
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "build_day_upsert",
                {
                    "day": day,
                    "status": "built",
                    "row_count": b.row_count,
                    "churn_risk_count": b.churn_risk_count,
                    "missing_crm_count": b.missing_crm_count,
                    "crm_snapshot_date": snapshot,
                    "built_at": utcnow(),
                    "last_error": None,
                },
            )
        return notes

    def _record_build_failure(self, day: date, error: str) -> None:
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "build_day_upsert",
                {
                    "day": day,
                    "status": "failed",
                    "row_count": None,
                    "churn_risk_count": None,
                    "missing_crm_count": None,
                    "crm_snapshot_date": None,
                    "built_at": utcnow(),
                    "last_error": redact(error),
                },
            )

    def _record_checks(self, run_id: str, checks: list[CheckResult]) -> None:
        if not checks:
            return
        now = utcnow()
        with self.wh.transaction():
            for c in checks:
                self.wh.run(
                    "ops.sql",
                    "quality_result_upsert",
                    {
                        "run_id": run_id,
                        "day": c.day,
                        "check_name": c.name,
                        "status": c.status,
                        "blocking": c.blocking,
                        "observed": c.observed,
                        "threshold": c.threshold,
                        "details": redact(c.details),
                        "checked_at": now,
                    },
                )

    # -- monitoring ---------------------------------------------------------------------------------------
    def _volume_checks(self, report: RunReport, ledger: Ledger, alerter: Alerter) -> set[date]:
        """Compare each day's CRM rows and usage records with the day before and a week before.

        Anomalies are alerted; a *blocking* one (configurable per source) keeps its day out of the build.
        Returns the days held back.
        """
        held: set[date] = set()
        for day in report.days:
            checks = volume_checks(self.wh, day, self.settings)
            record_volume_checks(self.wh, report.run_id, checks)
            for check in checks:
                if not check.anomalous:
                    continue
                rerun = f"company-activity run --date {day.isoformat()}"
                alerter.send(check.alert(report.run_id, rerun=rerun))
                if check.blocking:
                    held.add(day)
            if day in held:
                started = ledger.step_started(STEP_BUILD, day)
                text = "; ".join(c.message for c in checks if c.anomalous and c.blocking)
                self._record_build_failure(day, text)
                self._fail(
                    report,
                    ledger,
                    alerter,
                    StepOutcome(STEP_BUILD, day, "failed", message=f"volume check failed: {text}"),
                    started,
                    rerun=f"company-activity run --date {day.isoformat()}",
                    title="check failure",
                )
        return held

    def _retention_warnings(self, alerter: Alerter, report: RunReport) -> None:
        today = self.today()
        retention = self.settings.api_retention_days
        oldest_served = today - timedelta(days=retention)
        start = self._start_date(default=today - timedelta(days=1))
        window_end = oldest_served + timedelta(days=self.settings.retention_warning_days)
        statuses = self._usage_statuses(max(start, oldest_served), min(window_end, today - timedelta(days=1)))
        for day in _days(max(start, oldest_served), min(window_end, today - timedelta(days=1))):
            if statuses.get(day) != "complete":
                left = (day - oldest_served).days
                alerter.send(
                    Alert(
                        "warning",
                        "usage day near the end of retention",
                        f"usage for {day.isoformat()} is not complete and leaves the API's {retention}-day "
                        f"retention in {left} day(s)",
                        report.run_id,
                        day=day,
                        step=STEP_USAGE,
                        rerun=f"company-activity run --date {day.isoformat()}",
                    )
                )

    # -- helpers ------------------------------------------------------------------------------------------
    def _start_date(self, *, default: date) -> date:
        if self.settings.start_date is not None:
            return self.settings.start_date
        first = self.wh.scalar("ops.sql", "first_run_day")
        return first if isinstance(first, date) else default

    def _usage_statuses(self, start: date, end: date) -> dict[date, str]:
        if end < start:
            return {}
        rows = self.wh.run("ops.sql", "usage_days_between", {"start_day": start, "end_day": end})
        return {r[0]: str(r[1]) for r in rows}

    def _finish(
        self,
        report: RunReport,
        ledger: Ledger,
        outcome: StepOutcome,
        started: datetime,
        alerter: Alerter | None = None,
    ) -> None:
        if alerter is not None and outcome.status in ("succeeded", "warning"):
            notice = recovery_alert(
                self.wh,
                run_id=report.run_id,
                step=outcome.step,
                day=outcome.day,
                rerun=None,
            )
            if notice is not None:
                alerter.send(notice)
        ledger.step_finished(outcome, started)
        report.steps.append(outcome)
        with log_context(day=outcome.day, step=outcome.step):
            self._log_outcome(outcome)

    def _log_outcome(self, outcome: StepOutcome) -> None:
        log.info(
            "%s %s: %s%s%s",
            outcome.step,
            outcome.day.isoformat(),
            outcome.status,
            f", {outcome.rows_loaded} rows" if outcome.rows_loaded is not None else "",
            f" ({outcome.message})" if outcome.message else "",
        )

    def _fail(
        self,
        report: RunReport,
        ledger: Ledger,
        alerter: Alerter,
        outcome: StepOutcome,
        started: datetime,
        *,
        rerun: str,
        title: str = "step failure",
    ) -> None:
        self._finish(report, ledger, outcome, started)
        alerter.send(
            Alert(
                "error",
                title,
                outcome.message or "failed",
                report.run_id,
                day=outcome.day,
                step=outcome.step,
                rerun=rerun,
            )
        )

    # -- status -------------------------------------------------------------------------------------------
    def latest_run(self) -> dict[str, Any] | None:
        """The latest run: run_id, command, status (running/succeeded/failed/interrupted), times, message."""
        return run_status.latest_run(self.wh)

    def status(self, days: int = 14) -> list[dict[str, Any]]:
        """Per day: CRM, usage and build status, row counts, quality results, last error."""
        return run_status.status_rows(self.wh, self.today(), days)


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def _column_name(written: str) -> str:
    """An ignored CRM column's name for reports: as written when short and plain, else an excerpt."""
    return written if written.isprintable() and len(written) <= 40 else excerpt(written)


def _crm_status(day: date, status: str, **values: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "day": day,
        "status": status,
        "row_count": None,
        "rejected_count": None,
        "duplicate_count": None,
        "extra_columns": None,
        "source_file": None,
        "loaded_at": None,
        "updated_at": utcnow(),
        "last_error": None,
    }
    params.update(values)
    if params["last_error"]:
        params["last_error"] = redact(str(params["last_error"]))
    return params


def _as_stopped(stop: StopSignal) -> RunStopped:
    try:
        stop.check()
    except RunStopped as exc:
        return exc
    return RunStopped("run stopped")


def _summary(report: RunReport) -> str:
    failed = [f"{s.step} {s.day.isoformat()}" for s in report.steps if s.status == "failed"]
    parts = [f"{len(report.days)} day(s)", f"{len(report.built)} built"]
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


def _fetch_in_context(
    fetch: Callable[[date, str], tuple[str, dict[str, Any]]], day: date, run_id: str
) -> tuple[str, dict[str, Any]]:
    with log_context(day=day, step=STEP_USAGE):
        return fetch(day, run_id)
