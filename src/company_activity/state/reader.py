"""The reads of the run-state store: what the plan, the gate, the checks and ``status`` need from ``ops.*``.

Every read returns plain values (dates, statuses, counts). Named queries: ``sql/ops.sql``,
``sql/monitoring.sql``. :class:`~company_activity.state.store.RunStateStore` adds the writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from ..errors import BuildGateError
from ..run import plan
from ..warehouse import Warehouse
from .read_model import RunStateReader, from_warehouse


class StateReader:
    """Reads of ``ops.*`` (no writes): run state as the plan and the status views see it."""

    def __init__(self, wh: Warehouse):
        self.wh = wh

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

    # -- the status read model ---------------------------------------------------------------------
    def read_model(self) -> RunStateReader:
        """The typed read model over the same connection (what ``status``, ``runs`` and the UI show)."""
        return RunStateReader(from_warehouse(self.wh))

    def latest_run(self) -> dict[str, Any] | None:
        run = self.read_model().latest_run()
        return asdict(run) if run is not None else None

    def status_rows(self, today: date, days: int) -> list[dict[str, Any]]:
        """One dict per day of the last ``days`` days that any step touched, newest first."""
        return [d.as_row() for d in reversed(self.read_model().days(today - timedelta(days=days), today))]
