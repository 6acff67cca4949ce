"""The run-state store: every ``ops.*`` table except the ledger's, one writer each (see ``state/__init__``).

Reads return plain values (dates, statuses, counts); writes are short transactions of their own, made
after the data engine's work they record. Named queries: ``sql/ops.sql``, ``sql/monitoring.sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..clock import utcnow
from ..quality import CheckResult
from ..redact import redact
from .ledger import Ledger
from .reader import StateReader

if TYPE_CHECKING:
    from ..alerts import Alert
    from ..warehouse.build import DayBuild

CrmSnapshotStatus = Literal["loaded", "missing", "failed"]
#: one quarantined usage record: (page, record_index, reason, excerpt), see ``ops.usage_quarantine``
QuarantineRow = tuple[int, int, str, str]
_QUARANTINE_COLUMNS = ("activity_date", "raw_run_id", "page", "record_index", "reason", "excerpt")


@dataclass(frozen=True)
class BuiltDay:
    """What ``ops.build_days`` records of a published day."""

    day: date
    row_count: int
    churn_risk_count: int
    missing_crm_count: int
    crm_snapshot_date: date | None


class RunStateStore(StateReader):
    """Writes ``ops.usage_days``, ``ops.usage_quarantine``, ``ops.crm_snapshots``, ``ops.build_days``,
    ``ops.build_changes``, ``ops.alerts`` and ``ops.quality_results`` (the ledger writes ``ops.runs`` /
    ``ops.run_steps``); reads come from :class:`StateReader`."""

    def ledger(self, run_id: str) -> Ledger:
        """The ledger of run ``run_id`` (``ops.runs``, ``ops.run_steps``)."""
        return Ledger(self.wh, run_id)

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
        quarantined_count: int = 0,
        quarantined: Sequence[QuarantineRow] = (),
    ) -> None:
        """The day is published (``ops.usage_days`` complete) from raw run ``raw_run_id``; in the same
        transaction its quarantined records replace the day's in ``ops.usage_quarantine`` and their count
        goes to ``ops.usage_days.quarantined_count`` (``quarantined`` holds the first records in detail,
        ``quarantined_count`` counts them all)."""
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
            self.wh.run(
                "ops.sql", "usage_day_quarantined", {"day": day, "quarantined_count": quarantined_count}
            )
            self.wh.run("ops.sql", "usage_quarantine_clear", {"day": day})
            if quarantined:
                self.wh.bulk_insert(
                    "ops.usage_quarantine",
                    _QUARANTINE_COLUMNS,
                    (
                        (day, raw_run_id, page, index, redact(reason), excerpt)
                        for page, index, reason, excerpt in quarantined
                    ),
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
