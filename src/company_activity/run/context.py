"""The context of one run: its id and command, the resources it uses, its ledger, alerter and report.

A :class:`RunContext` is made by the runner for each run and handed to every step
(``step.run(context, days)``). It also carries the few ways a step records an outcome, so that every
step records, logs and alerts alike: :meth:`RunContext.finish`, :meth:`RunContext.fail`,
:meth:`RunContext.mark_lost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from ..alerts import Alert, Alerter
from ..config import Settings
from ..exits import EXIT_CODES
from ..logs import log_context
from ..raw.landing import LandedRun
from ..sources.usage_api import UsageApiClient
from ..state import Ledger, RunStateStore, StepOutcome
from ..steps.checks import recovery_alert
from ..stopping import StopSignal
from ..storage import Lake
from ..warehouse.engine import DataEngine, DayBuild
from .vocab import STEP_USAGE

log = logging.getLogger("company_activity.pipeline")

Progress = Callable[[str, date], None]
#: how a run gets a day's complete raw run (day, run id) -> landed run: from the API, or the lake (replay)
Fetch = Callable[[date, str], LandedRun]


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
    built: list[DayBuild] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (a signal's name, or its deadline)
    notes: list[str] = field(default_factory=list)  # what the plan wants said (e.g. the start date)

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.steps)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 failed (or its deadline passed), 128 + the signal number when SIGINT/SIGTERM stopped it."""
        if self.stopped in EXIT_CODES:
            return EXIT_CODES[self.stopped]
        return 1 if self.failed or self.stopped else 0


@dataclass
class Resources:
    """What runs use, made once by the composition root (:mod:`company_activity.app`)."""

    settings: Settings
    state: RunStateStore
    engine: DataEngine
    lake: Lake
    client: Callable[[], UsageApiClient]  # made on first use: one token, one rate limit per process
    stop: StopSignal
    today: Callable[[], date]


@dataclass
class RunContext:
    """One run: id, command, resources, ledger, alerter, report, progress and how usage is fetched."""

    resources: Resources
    ledger: Ledger
    alerter: Alerter
    report: RunReport
    fetch: Fetch
    progress: Progress | None = None

    @property
    def run_id(self) -> str:
        return self.report.run_id

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    @property
    def state(self) -> RunStateStore:
        return self.resources.state

    @property
    def engine(self) -> DataEngine:
        return self.resources.engine

    @property
    def lake(self) -> Lake:
        return self.resources.lake

    @property
    def stop(self) -> StopSignal:
        return self.resources.stop

    def today(self) -> date:
        return self.resources.today()

    # -- recording outcomes ----------------------------------------------------------------------------
    def finish(self, outcome: StepOutcome, started: datetime, *, notify_recovery: bool = False) -> None:
        """Record ``outcome`` in the ledger and the report, log it; with ``notify_recovery``, a success
        after an earlier failure of the same step and day sends the "recovered" notice."""
        if notify_recovery and outcome.status in ("succeeded", "warning"):
            notice = recovery_alert(
                self.state, run_id=self.run_id, step=outcome.step, day=outcome.day, rerun=None
            )
            if notice is not None:
                self.alerter.send(notice)
        self.ledger.step_finished(outcome, started)
        self.report.steps.append(outcome)
        with log_context(day=outcome.day, step=outcome.step):
            log.info(
                "%s %s: %s%s%s",
                outcome.step,
                outcome.day.isoformat(),
                outcome.status,
                f", {outcome.rows_loaded} rows" if outcome.rows_loaded is not None else "",
                f" ({outcome.message})" if outcome.message else "",
            )

    def fail(
        self, outcome: StepOutcome, started: datetime, *, rerun: str, title: str = "step failure"
    ) -> None:
        """Record a failed ``outcome`` and alert it with the command that redoes it."""
        self.finish(outcome, started)
        self.alerter.send(
            Alert(
                "error",
                title,
                outcome.message or "failed",
                self.run_id,
                day=outcome.day,
                step=outcome.step,
                rerun=rerun,
            )
        )

    def mark_lost(self, day: date, reason: str, *, record_step: bool = True) -> None:
        """The usage of ``day`` can no longer be fetched (it left the API's retention)."""
        self.state.mark_usage(day, "lost", reason)
        self.report.lost.append(day)
        outcome = StepOutcome(STEP_USAGE, day, "failed", message=f"usage lost: {reason}")
        if record_step:
            started = self.ledger.step_started(STEP_USAGE, day)
            self.ledger.step_finished(outcome, started)
        self.report.steps.append(outcome)
        self.alerter.send(
            Alert(
                "error",
                "usage day lost",
                f"usage for {day.isoformat()} can no longer be fetched: {reason}",
                self.run_id,
                day=day,
                step=STEP_USAGE,
            )
        )
