"""The typed rows of the run-state read model (:mod:`.read_model`): days with their verdict, runs, steps,
checks, changes and alerts. Every surface (``status``, ``runs``, the web UI, the report, the Dagster checks)
shows these, so a day has one verdict and a count one name everywhere:

- ``usage_records``: the API's records of a day (one per company the API reported, active or not);
- ``build_rows``: the rows of ``analytics.company_daily_activity`` for the day (one per company known to
  the CRM or the API up to that day);
- ``active companies`` (the UI's overview, the demo): companies with ``active_users > 0`` that day;
- ``days`` of a run: the days it worked on; ``days_built``: those whose build it completed;
- ``steps_s`` of a day: the sum of the times of the day's steps in its latest run. Steps of several days
  overlap (usage days are fetched concurrently, a build segment builds its days at once), so the days of a
  run add up to more than the run's own time, which ``runs`` shows as ``took``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from .verdict import Verdict


@dataclass(frozen=True)
class CheckRow:
    day: date
    check: str
    status: str  # pass | warn | fail
    blocking: bool
    observed: float | None
    threshold: float | None
    details: str | None
    run_id: str | None = None


@dataclass(frozen=True)
class Attempt:
    """The latest attempt at one step of one day."""

    step: str
    run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    message: str | None
    #: the run of the latest attempt at this step and day that succeeded (None: never)
    done_run_id: str | None

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class DayStatus:
    """One day as every surface shows it: its verdict, why, and the facts behind it."""

    day: date
    verdict: Verdict
    note: str
    crm_status: str | None = None
    crm_rows: int | None = None
    crm_rejected: int | None = None
    usage_status: str | None = None
    usage_records: int | None = None
    usage_quarantined: int | None = None
    build_status: str | None = None  # built | stale | not built | failed | None
    build_rows: int | None = None
    churn_risk: int | None = None
    last_error: str | None = None
    parts: dict[str, Verdict] = field(default_factory=dict)  # crm, usage, build, checks
    checks: tuple[CheckRow, ...] = ()
    #: the first step (pipeline order) whose latest attempt failed or was interrupted
    failed_step: str | None = None
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    steps_s: float | None = None
    #: the run whose build the table's rows of the day come from
    data_run_id: str | None = None

    @property
    def check_problems(self) -> list[str]:
        return [f"{c.check}:{c.status}" for c in self.checks if c.status != "pass"]

    def as_row(self) -> dict[str, Any]:
        """A flat dict (``status --json``'s item, the status table's row)."""
        out = asdict(self)
        out["check_results"] = out.pop("checks")
        out["checks"] = ", ".join(self.check_problems) or ("ok" if self.checks else "")
        out["check_problems"] = self.check_problems
        out["verdict_note"] = out.pop("note")
        return out


@dataclass(frozen=True)
class HistoryStep:
    run_id: str
    command: str
    step: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    rows_loaded: int | None
    rows_rejected: int | None
    message: str | None


@dataclass(frozen=True)
class QuarantinedRecord:
    raw_run_id: str
    page: int
    record_index: int
    reason: str
    excerpt: str | None


@dataclass(frozen=True)
class DayDetail:
    """Everything run state knows of one day (``status --day``, the UI's day page)."""

    status: DayStatus
    crm: dict[str, Any] | None
    usage: dict[str, Any] | None
    build: dict[str, Any] | None
    checks: list[CheckRow]
    steps: list[HistoryStep]
    quarantined: list[QuarantinedRecord] = field(default_factory=list)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    command: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    first_day: date | None
    last_day: date | None
    failed_steps: int
    message: str | None
    days: int = 0  # the days the run worked on
    days_built: int = 0  # the days whose build it completed


@dataclass(frozen=True)
class StepRow:
    step: str
    day: date
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows_loaded: int | None
    rows_rejected: int | None
    message: str | None


@dataclass(frozen=True)
class ChangeRow:
    """What a run's build did to one day's rows of the analytics table."""

    day: date
    inserted: int
    updated: int
    unchanged: int
    deleted: int


@dataclass(frozen=True)
class AlertRow:
    severity: str
    title: str
    day: date | None
    step: str | None
    message: str
    rerun: str | None


@dataclass(frozen=True)
class RunDetail:
    run: RunRow
    steps: list[StepRow] = field(default_factory=list)
    checks: list[CheckRow] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    #: the verdict, now, of each day the run worked on
    days: list[DayStatus] = field(default_factory=list)
