"""The run-state store: every ``ops.*`` table except the ledger's, one writer each (see ``state/__init__``).

Reads return plain values (dates, statuses, counts); writes are short transactions of their own, made
after the data engine's work they record. Named queries: ``sql/ops.sql``, ``sql/monitoring.sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..clock import utcnow
from ..errors import BuildGateError
from ..quality import CheckResult
from ..redact import redact
from ..run import plan
from ..warehouse import Warehouse
from . import status as status_view
from .ledger import Ledger

if TYPE_CHECKING:
    from ..alerts import Alert
    from ..warehouse.build import DayBuild

CrmSnapshotStatus = Literal["loaded", "missing", "failed"]


@dataclass(frozen=True)
class BuiltDay:
    """What ``ops.build_days`` records of a published day."""

    day: date
    row_count: int
    churn_risk_count: int
    missing_crm_count: int
    crm_snapshot_date: date | None


class RunStateStore:
    """Reads and writes ``ops.usage_days``, ``ops.crm_snapshots``, ``ops.build_days``,
    ``ops.quality_results`` (the ledger writes ``ops.runs`` / ``ops.run_steps``)."""

    def __init__(self, wh: Warehouse):
        self.wh = wh

    def ledger(self, run_id: str) -> Ledger:
        """The ledger of run ``run_id`` (``ops.runs``, ``ops.run_steps``)."""
        return Ledger(self.wh, run_id)

    # -- reads for the plan --------------------------------------------------------------------------------
    def first_run_day(self) -> date | None:
        first = self.wh.scalar("ops.sql", "first_run_day")
        return first if isinstance(first, date) else None

    def usage_statuses(self, start: date, end: date) -> dict[date, str]:
        if end < start:
            return {}
        rows = self.wh.run("ops.sql", "usage_days_between", {"start_day": start, "end_day": end})
        return {r[0]: str(r[1]) for r in rows}

    def usage_days(self, start: date, end: date) -> list[tuple[Any, ...]]:
        """(day, status, record_count, raw_run_id, last_error) of each recorded usage day of the range."""
        return [
            tuple(r)
            for r in self.wh.run("ops.sql", "usage_days_between", {"start_day": start, "end_day": end})
        ]

    def quality_results_of(self, run_id: str) -> list[tuple[Any, ...]]:
        """(day, check, status, observed, threshold, details) of every check of run ``run_id``."""
        return [tuple(r) for r in self.wh.run("ops.sql", "quality_results_of_run", {"run_id": run_id})]

    def usage_status(self, day: date) -> str | None:
        rows = self.wh.run("ops.sql", "usage_day_status", {"day": day})
        return str(rows[0][0]) if rows else None

    def latest_step_outcomes(self, day: date) -> dict[str, str]:
        rows = self.wh.run("ops.sql", "latest_step_outcomes", {"day": day})
        return {str(step): str(st) for step, st in rows}

    def complete_days(self, start: date, end: date) -> set[date]:
        rows = self.wh.run("ops.sql", "complete_usage_days", {"start_day": start, "end_day": end})
        return {r[0] for r in rows}

    def first_usage_day(self) -> date | None:
        value = self.wh.scalar("ops.sql", "first_usage_day")
        return value if isinstance(value, date) else None

    def built_days(self, start: date, end: date) -> dict[date, datetime]:
        """The days of ``start … end`` whose latest build succeeded, and when it ran."""
        rows = self.wh.run("ops.sql", "built_days_between", {"start_day": start, "end_day": end})
        return {r[0]: r[1] for r in rows}

    def stale_built_days(self) -> set[date]:
        return {r[0] for r in self.wh.run("ops.sql", "stale_built_days")}

    def failed_build_days(self) -> set[date]:
        return {r[0] for r in self.wh.run("ops.sql", "failed_build_days")}

    def check_gate(self, days: Iterable[date]) -> tuple[list[date], dict[date, BuildGateError]]:
        """Split ``days`` into buildable days and the gate errors of the others (:func:`plan.split_gate`)."""
        ds = sorted(set(days))
        if not ds:
            return [], {}
        complete = self.complete_days(ds[0] - timedelta(days=6), ds[-1])
        return plan.split_gate(ds, complete, self.first_usage_day())

    def drift_first_seen(self, day: date, fields: list[str]) -> dict[str, date]:
        """For each extra field, the first day it was recorded as schema drift (``day`` at the latest)."""
        first = dict.fromkeys(fields, day)
        if not fields:
            return first
        for seen, text in self.wh.run("ops.sql", "schema_drift_elsewhere", {"day": day}):
            for name in str(text).split(","):
                if name in first and seen < first[name]:
                    first[name] = seen
        return first

    def volume_counts(self, day: date) -> list[tuple[str, date, int]]:
        """(source, day, count) of ``day``, the day before and a week before (``monitoring.sql``)."""
        rows = self.wh.run(
            "monitoring.sql",
            "volume_counts",
            {"day": day, "previous_day": day - timedelta(days=1), "week_ago": day - timedelta(days=7)},
        )
        return [(str(s), d, int(n)) for s, d, n in rows]

    def previous_step_outcome(self, *, run_id: str, step: str, day: date) -> tuple[str, str | None] | None:
        """(status, message) of ``step`` for ``day`` in the latest earlier run, or None."""
        rows = self.wh.run(
            "monitoring.sql", "previous_step_outcome", {"run_id": run_id, "step": step, "day": day}
        )
        if not rows:
            return None
        return str(rows[0][1]), (str(rows[0][2]) if rows[0][2] else None)

    # -- writes ---------------------------------------------------------------------------------------------
    def crm_snapshot(self, day: date, status: CrmSnapshotStatus, **values: Any) -> None:
        """Upsert ``ops.crm_snapshots`` for ``day`` (missing values are NULL; the error is redacted)."""
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
        with self.wh.transaction():
            self.wh.run("ops.sql", "crm_snapshot_upsert", params)

    def usage_complete(
        self,
        day: date,
        *,
        raw_run_id: str,
        record_count: int,
        page_count: int,
        drift: list[str],
        at: datetime,
    ) -> None:
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "usage_day_upsert",
                {
                    "day": day,
                    "status": "complete",
                    "raw_run_id": raw_run_id,
                    "record_count": record_count,
                    "page_count": page_count,
                    "schema_drift": ",".join(drift) or None,
                    "completed_at": at,
                    "updated_at": at,
                    "last_error": None,
                },
            )

    def mark_usage(self, day: date, status: Literal["pending", "failed", "lost"], error: str | None) -> None:
        """A non-complete status for ``day`` (never downgrades a complete day)."""
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

    def build_built(self, b: BuiltDay) -> None:
        self._build_day(
            b.day, "built", b.row_count, b.churn_risk_count, b.missing_crm_count, b.crm_snapshot_date, None
        )

    def record_build_changes(self, run_id: str, built: Iterable[DayBuild]) -> None:
        """The one writer of ``ops.build_changes``: rows each built day inserted, updated, kept, deleted."""
        rows = list(built)
        if not rows:
            return
        with self.wh.transaction():
            for b in rows:
                self.wh.run(
                    "ops.sql",
                    "build_changes_upsert",
                    {
                        "run_id": run_id,
                        "day": b.day,
                        "inserted": b.inserted,
                        "updated": b.updated,
                        "unchanged": b.unchanged,
                        "deleted": b.deleted,
                    },
                )

    def record_alerts(self, run_id: str, alerts: Sequence[Alert]) -> None:
        """The one writer of ``ops.run_alerts``: the run's alerts (already redacted), in order."""
        if not alerts:
            return
        with self.wh.transaction():
            for seq, a in enumerate(alerts, start=1):
                self.wh.run(
                    "ops.sql",
                    "run_alert_insert",
                    {
                        "run_id": run_id,
                        "seq": seq,
                        "severity": a.severity,
                        "title": a.title,
                        "day": a.day,
                        "step": a.step,
                        "message": a.message,
                        "rerun": a.rerun,
                    },
                )

    def build_failed(self, day: date, error: str) -> None:
        self._build_day(day, "failed", None, None, None, None, redact(error))

    def _build_day(
        self,
        day: date,
        status: str,
        rows: int | None,
        churn: int | None,
        missing: int | None,
        snapshot: date | None,
        error: str | None,
    ) -> None:
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "build_day_upsert",
                {
                    "day": day,
                    "status": status,
                    "row_count": rows,
                    "churn_risk_count": churn,
                    "missing_crm_count": missing,
                    "crm_snapshot_date": snapshot,
                    "built_at": utcnow(),
                    "last_error": error,
                },
            )

    def record_checks(
        self, run_id: str, checks: Iterable[CheckResult], *, checked_at: datetime | None = None
    ) -> None:
        """The one writer of ``ops.quality_results``: every check of a run (build, gate, CRM, volume)."""
        checks = list(checks)
        if not checks:
            return
        now = checked_at or utcnow()
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

    # -- the status read model ---------------------------------------------------------------------
    def latest_run(self) -> dict[str, Any] | None:
        return status_view.latest_run(self.wh)

    def status_rows(self, today: date, days: int) -> list[dict[str, Any]]:
        return status_view.status_rows(self.wh, today, days)
