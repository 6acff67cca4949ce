"""What ``status`` shows: per day, the CRM, usage and build status from ``ops.*``, and the latest run.

A day is never shown as built (ok) when it is not built from its latest inputs: a built day whose inputs
were loaded after its build is ``stale``; a day whose usage is complete but that was never built is
``not built`` (the next run builds both, see ``ops.sql:stale_built_days``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..warehouse import Warehouse

__all__ = ["day_detail", "latest_run", "status_rows"]

#: the master pipeline's steps, in order (the failing step named is the first that failed)
_STEP_ORDER = ("ingest_crm", "ingest_usage", "build")

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
    runs = _latest_runs(wh, start, end)
    for row in out:
        row["checks"] = ", ".join(checks.get(row["day"], [])) or "ok"
        if row["day"] in to_build and row["build_status"] in ("built", None):
            row["build_status"] = "stale" if row["build_status"] == "built" else "not built"
        row.update(runs.get(row["day"], {"last_run_id": None, "last_run_at": None, "duration_s": None}))
        row.setdefault("failed_step", None)
    return out


def _latest_runs(wh: Warehouse, start: date, end: date) -> dict[date, dict[str, Any]]:
    """Per day: the latest run that had a step on it, when its steps of the day began, how long they took
    (None while one is still running), and the first of them that failed."""
    steps: dict[date, list[tuple[Any, ...]]] = {}
    for row in wh.run("status.sql", "day_steps_of_latest_runs", {"start_day": start, "end_day": end}):
        steps.setdefault(row[0], []).append(row)
    out: dict[date, dict[str, Any]] = {}
    for day, rows in steps.items():
        began = min(r[4] for r in rows)
        ends = [r[5] for r in rows]
        failed = sorted(
            (r[2] for r in rows if r[3] in ("failed", "interrupted")),
            key=lambda step: _STEP_ORDER.index(step) if step in _STEP_ORDER else len(_STEP_ORDER),
        )
        out[day] = {
            "last_run_id": rows[0][1],
            "last_run_at": began,
            "duration_s": None if None in ends else round((max(ends) - began).total_seconds(), 3),
            "failed_step": failed[0] if failed else None,
        }
    return out


def day_detail(wh: Warehouse, day: date, *, history: int = 20) -> dict[str, Any]:
    """Everything run state knows of one day: CRM, usage, build, checks, and the steps of every run."""

    def one(name: str, cols: str) -> dict[str, Any] | None:
        rows = wh.run("status.sql", name, {"day": day})
        return dict(zip(cols.split(), rows[0], strict=True)) if rows else None

    crm = one("day_crm", "status rows rejected duplicates extra_columns source_file loaded_at last_error")
    usage = one("day_usage", "status records pages raw_run_id schema_drift completed_at last_error")
    build = one("day_build", "status rows churn_risk missing_crm crm_snapshot_date built_at last_error")
    if build is not None and day in {r[0] for r in wh.run("ops.sql", "stale_built_days")}:
        build["status"] = "stale" if build["status"] == "built" else build["status"]
    check_cols = ["check", "status", "blocking", "observed", "threshold", "details", "run_id"]
    checks = [dict(zip(check_cols, r, strict=True)) for r in wh.run("status.sql", "day_checks", {"day": day})]
    steps = [
        dict(
            zip(
                ["run_id", "command", "step", "status", "started_at", "finished_at", "rows", "message"],
                r,
                strict=True,
            )
        )
        for r in wh.run("status.sql", "day_history", {"day": day, "row_limit": history})
    ]
    return {"day": day, "crm": crm, "usage": usage, "build": build, "checks": checks, "steps": steps}


def latest_day(wh: Warehouse) -> date | None:
    value = wh.scalar("status.sql", "latest_run_day")
    return value if isinstance(value, date) else None
