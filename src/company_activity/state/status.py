"""What ``status`` shows: per day, the CRM, usage and build status from ``ops.*``, and the latest run.

A day is never shown as built (ok) when it is not built from its latest inputs: a built day whose inputs
were loaded after its build is ``stale``; a day whose usage is complete but that was never built is
``not built`` (the next run builds both, see ``ops.sql:stale_built_days``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..warehouse import Warehouse

__all__ = ["latest_run", "status_rows"]

_COLUMNS = [
    "day",
    "crm_status",
    "crm_rows",
    "crm_rejected",
    "usage_status",
    "usage_records",
    "build_status",
    "build_rows",
    "churn_risk",
    "last_error",
]


def latest_run(wh: Warehouse) -> dict[str, Any] | None:
    """The latest run: run_id, command, status (running/succeeded/failed/interrupted), times, message."""
    rows = wh.run("ops.sql", "latest_run")
    cols = ["run_id", "command", "status", "started_at", "finished_at", "message"]
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def status_rows(wh: Warehouse, today: date, days: int) -> list[dict[str, Any]]:
    """One dict per day of the last ``days`` days that any step touched, newest first."""
    end = today
    start = end - timedelta(days=days)
    out = [
        dict(zip(_COLUMNS, row, strict=True))
        for row in wh.run("ops.sql", "status_days", {"start_day": start, "end_day": end})
    ]
    checks: dict[date, list[str]] = {}
    for day, name, status, *_ in wh.run("ops.sql", "quality_for_days", {"start_day": start, "end_day": end}):
        if status != "pass":
            checks.setdefault(day, []).append(f"{name}:{status}")
    to_build = {r[0] for r in wh.run("ops.sql", "stale_built_days")}
    for row in out:
        row["checks"] = ", ".join(checks.get(row["day"], [])) or "ok"
        if row["day"] in to_build and row["build_status"] in ("built", None):
            row["build_status"] = "stale" if row["build_status"] == "built" else "not built"
    return out
