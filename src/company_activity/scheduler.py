"""``company-activity schedule``: the master pipeline as a long-running service.

It runs :meth:`Pipeline.run` (catch-up, then yesterday) once at start, then at every time of a cron
expression in UTC (default ``0 0 * * *``: daily at 00:00 UTC; ``--cron`` or
``COMPANY_ACTIVITY_SCHEDULE_CRON``), and logs when the next run is due.

**Library.** croniter (pallets-eco) computes the fire times; the loop around it is a wait on an event.
Not APScheduler 3.x: its ``CronTrigger.from_crontab`` reads day-of-week numbers with 0 = Monday (its own
documented mismatch with crontab, fixed only in 4.x) and it runs jobs in executor threads, where a stop
signal cannot reach them. croniter follows crontab (0 = Sunday, day-of-month *or* day-of-week), and here
the run happens in the main thread, so a signal arrives exactly where the run is. A sixth field, first,
gives seconds (``*/2 * * * * *``) for tests and try-outs.

**Missed times.** A run that ends after the next time has passed starts the next run at once, once (the
missed times coalesce); every run catches up whatever is incomplete anyway, so nothing is lost. The wait
is taken in naps of at most a minute against the wall clock, so a suspended machine or a clock that was
set runs on time.

**One scheduler per warehouse.** A run already takes the warehouse's run lock (a second *run* waits, then
fails). The scheduler itself holds a second, separate lock for its whole life and fails at once (exit 1,
naming the holder) when another scheduler has it: for DuckDB an exclusive ``flock`` on
``<warehouse file>.scheduler.lock``, for PostgreSQL a session advisory lock (another key than the run
lock's) on a connection of its own. Between runs it does not keep the warehouse open, so ``status``,
``rerun`` or a manual ``run`` can use the DuckDB file (one writing process at a time).

**Stopping.** SIGTERM or Ctrl-C while idle: exit 0 at once. During a run: the run finishes (every step
commits its own transactions, so nothing is left half-written either way), then exit 0. A second signal
during the run stops it at once: the transaction in progress rolls back (raw pages count only with their
manifest, written last), and the exit status is 128 + the signal number; the next run catches up.
The signals are taken by a watcher thread (blocked in the main thread, read with ``sigtimedwait``), as
for a one-off run (:func:`company_activity.interrupts.watch_signals`): a Python signal handler runs in the
main thread between any two bytecodes, and setting the stop event there deadlocked when the main thread
was itself inside that event's ``wait`` holding its lock (seen once: a scheduler that never exited after
SIGTERM).
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
from croniter import CroniterError, croniter

from . import clock as clocks
from .alerts import Alert, Alerter, AlertSink
from .alerts.factory import sinks_from_settings
from .config import ENV_PREFIX, Settings, load_settings
from .errors import ConfigError, PipelineError
from .exits import exit_on_errors
from .interrupts import watch_signals
from .logs import configure_from_settings
from .pipeline import Pipeline, RunReport
from .preflight import check_settings
from .state.ledger import new_run_id
from .stopping import StopSignal
from .warehouse.locks import scheduler_lock

log = logging.getLogger("company_activity.scheduler")

DEFAULT_CRON = "0 0 * * *"
#: the longest single wait: the wall clock is looked at again after it
MAX_NAP = 60.0
#: the stop signals
_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Clock = Callable[[], datetime]
#: ``wait(seconds) -> bool``: sleep up to ``seconds``; True when a stop was requested meanwhile
Wait = Callable[[float], bool]
PipelineFactory = Callable[[Settings], Pipeline]


class StopNow(BaseException):
    """A second stop signal during a run: abort it (the open transaction rolls back)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def utcnow() -> datetime:
    """The scheduler's default clock: now, aware, in UTC."""
    return clocks.utcnow(aware=True)


# -- the cron expression ---------------------------------------------------------------------------------
class Cron:
    """A crontab expression evaluated in UTC: 5 fields, or 6 with seconds first."""

    def __init__(self, expr: str, *, source: str = "--cron"):
        self.expr = " ".join(expr.split())
        fields = self.expr.split(" ")
        self._seconds = len(fields) == 6
        problem = None
        if not self.expr:
            problem = "is empty"
        elif len(fields) not in (5, 6) and not self.expr.startswith("@"):
            problem = (
                f"has {len(fields)} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
            )
        elif any(re.match(r"[HhRr](?:$|[/(])", token) for token in re.split(r"[ ,]", self.expr)):
            problem = "uses hashed or random fields (H, R), which are not supported"
        else:
            try:
                self.next_after(datetime(2026, 1, 1, tzinfo=UTC))
            except (CroniterError, ValueError, KeyError) as exc:
                problem = f"is not a valid cron expression ({exc})"
        if problem:
            raise ConfigError(f"{source} {expr!r} {problem}; e.g. {DEFAULT_CRON!r} = daily at 00:00 UTC")

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` (an aware datetime), in UTC."""
        it = croniter(self.expr, moment.astimezone(UTC), second_at_beginning=self._seconds)
        nxt = it.get_next(datetime)
        assert isinstance(nxt, datetime)
        return nxt.astimezone(UTC)

    def __str__(self) -> str:
        return self.expr


# -- the scheduler ---------------------------------------------------------------------------------------
class Scheduler:
    """Runs the master pipeline at each time of ``cron``, in the calling (main) thread.

    ``clock`` and ``wait`` are injectable for tests (a fake clock whose ``wait`` advances it);
    ``pipeline_factory`` makes the pipeline of one run (default: a new :class:`Pipeline` per run, so the
    warehouse is not held between runs).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cron: Cron,
        clock: Clock = utcnow,
        wait: Wait | None = None,
        pipeline_factory: PipelineFactory | None = None,
        sinks: Sequence[AlertSink] | None = None,
    ):
        self.settings = settings
        self.cron = cron
        self._clock = clock
        self._stop = threading.Event()
        self._wait: Wait = wait or self._stop.wait
        self._sinks: list[AlertSink] = list(sinks) if sinks is not None else sinks_from_settings(settings)
        self._factory: PipelineFactory = pipeline_factory or (lambda s: Pipeline(s, sinks=self._sinks))
        self._running = False
        self._run_stop: StopSignal | None = None  # the stop signal of the run in progress
        self.reports: list[RunReport | None] = []  # one per run, None when it could not run at all

    # -- stopping ---------------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop after the run in progress (or at once when idle)."""
        self._stop.set()

    def _on_signal(self, signum: int) -> None:
        """A stop signal, in the watcher thread (never in a signal handler: see the module doc)."""
        name = signal.Signals(signum).name
        if self._running and self._stop.is_set():
            log.warning("%s again: stopping now; the transaction in progress rolls back", name)
            if self._run_stop is not None:  # the run's own stop signal: recorded as interrupted
                self._run_stop.request(name)
            _thread.interrupt_main(signal.Signals(signum))  # StopNow in the main thread (_stop_now)
            return
        self._stop.set()
        if self._running:
            log.warning(
                "%s: stopping after the run in progress (send it again to stop at once; the transaction "
                "in progress then rolls back and the next run catches up)",
                name,
            )
        else:
            log.info("%s: stopping", name)

    @staticmethod
    def _stop_now(signum: int, _frame: FrameType | None) -> None:
        """The Python handler of SIGTERM/SIGINT while serving: run only by ``interrupt_main`` (the OS
        signals are blocked in the main thread and read by the watcher); it takes no lock."""
        raise StopNow(signum)

    def _signals(self) -> contextlib.AbstractContextManager[None]:
        return watch_signals(self._on_signal, dict.fromkeys(_SIGNALS, self._stop_now))

    # -- running ----------------------------------------------------------------------------------------
    def serve(
        self, *, catch_up: bool = True, max_runs: int | None = None, handle_signals: bool = True
    ) -> int:
        """Run until stopped; returns the exit status (0, or 128 + signal after a forced stop).

        ``catch_up``: run once at start (which catches up every missed day). ``max_runs``: stop after
        that many runs (tests).
        """
        runs = 0
        signals = self._signals() if handle_signals else contextlib.nullcontext()
        with signals:
            try:
                last_start: datetime | None = None
                if catch_up and not self.stopping:
                    log.info("catching up on start")
                    last_start = self._clock()
                    self.run_once()
                    runs += 1
                while not self.stopping and (max_runs is None or runs < max_runs):
                    due = self.cron.next_after(last_start or self._clock())
                    self._log_due(due)
                    if not self._sleep_until(due):
                        break
                    last_start = self._clock()
                    self.run_once()
                    runs += 1
            except StopNow as stop:
                log.warning("stopped during a run: its open transaction was rolled back")
                return 128 + stop.signum
        log.info("scheduler stopped")
        return 0

    def _log_due(self, due: datetime) -> None:
        left = max(0, int((due - self._clock()).total_seconds()))
        hours, rest = divmod(left, 3600)
        log.info(
            "next run due at %s (in %dh%02dm%02ds; cron %r, UTC)",
            due.strftime("%Y-%m-%d %H:%M:%S UTC"),
            hours,
            rest // 60,
            rest % 60,
            str(self.cron),
        )

    def _sleep_until(self, due: datetime) -> bool:
        """Wait until ``due``; False when a stop was requested first."""
        while not self.stopping:
            left = (due - self._clock()).total_seconds()
            if left <= 0:
                return True
            if self._wait(min(left, MAX_NAP)):
                return False
        return False

    def run_once(self) -> RunReport | None:
        """One run of the master pipeline (catch-up, then yesterday). Never raises a pipeline error:
        a run that could not start is logged and alerted, and the scheduler goes on."""
        settings = self.settings
        if settings.today is None:
            # one "today" for the whole run, even when it goes past midnight
            settings = settings.model_copy(update={"today": self._clock().date()})
        self._running = True
        try:
            with self._factory(settings) as pipeline:
                self._run_stop = getattr(pipeline, "stop", None)
                report = pipeline.run()
        except PipelineError as exc:
            self._could_not_run(str(exc))
            return None
        except Exception as exc:
            log.exception("scheduled run failed unexpectedly")
            self._could_not_run(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._running = False
            self._run_stop = None
        self.reports.append(report)
        errors = sum(1 for a in report.alerts if a.severity == "error")
        warnings = sum(1 for a in report.alerts if a.severity == "warning")
        log.info(
            "run %s %s: %d day(s) built%s%s",
            report.run_id,
            "FAILED" if report.failed else "OK",
            len(report.built),
            f", caught up {len(report.caught_up)}" if report.caught_up else "",
            f"; alerts: {errors} error(s), {warnings} warning(s)" if errors or warnings else "",
        )
        return report

    def _could_not_run(self, message: str) -> None:
        self.reports.append(None)
        log.error("scheduled run could not run: %s", message)
        Alerter(self._sinks).send(
            Alert(
                "error",
                "scheduled run failed",
                message,
                new_run_id(),
                step="schedule",
                rerun="company-activity run",
            )
        )


def serve(settings: Settings, *, cron: str | None = None, **kwargs: Any) -> int:
    """``company-activity schedule``: validate, take the scheduler lock, serve until stopped."""
    the_cron = (
        Cron(cron, source="--cron")
        if cron is not None
        else Cron(settings.schedule_cron, source=f"{ENV_PREFIX}SCHEDULE_CRON")
    )
    check_settings(settings, needs_api=True)  # the whole configuration, before anything is touched
    scheduler = Scheduler(settings, cron=the_cron, **kwargs)  # sinks_from_settings validates alerting
    with scheduler_lock(settings.run_state) as locked:  # issue 13: the state store
        log.info(
            "scheduler pid %d serving %s (cron %r, UTC; lock %s)",
            os.getpid(),
            settings.warehouse,
            str(the_cron),
            locked,
        )
        return scheduler.serve()


@click.command()
@click.option(
    "--cron",
    default=None,
    metavar="EXPR",
    help=f"Cron expression in UTC (5 fields, or 6 with seconds first). "
    f"Default: {ENV_PREFIX}SCHEDULE_CRON, else {DEFAULT_CRON!r} (daily at 00:00 UTC).",
)
@click.pass_context
def schedule(ctx: click.Context, cron: str | None) -> None:
    """Run the master pipeline on a schedule, as a long-running service.

    Catches up at start, then runs at each time of the cron expression (UTC), logging when the next
    run is due. One scheduler per warehouse. SIGTERM or Ctrl-C: the run in progress finishes, then
    exit 0 (a second signal stops it at once; its open transaction rolls back).

    \b
    Example:
        company-activity schedule
        company-activity schedule --cron "30 1 * * *"
    """
    with exit_on_errors():
        settings = ctx.obj.settings() if ctx.obj is not None else load_settings()
        configure_from_settings(settings)
        code = serve(settings, cron=cron)
    sys.exit(code)
