"""The build of ``analytics.company_daily_activity`` (``sql/populate_company_daily_activity.sql``).

The build gate: day D is built only when usage is complete for D and for every day of ``D-6 … D-1`` on or
after the first usage day (the earliest complete day).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from . import marts
from .errors import BuildGateError
from .quality import CheckResult, check_candidate
from .warehouse import Warehouse

POPULATE = "populate_company_daily_activity.sql"

# ranges of at most this many days use the `candidate_short` formulation (faster for a nightly day);
# longer ones the window formulation (faster for backfills). Both give the same rows.
SHORT_RANGE_DAYS = 2

# a long range is built this many days at a time (one transaction for all of it)
CHUNK_DAYS = 31


@dataclass(frozen=True)
class DayBuild:
    day: date
    row_count: int
    churn_risk_count: int
    missing_crm_count: int


def complete_days(wh: Warehouse, start: date, end: date) -> set[date]:
    rows = wh.run("ops.sql", "complete_usage_days", {"start_day": start, "end_day": end})
    return {r[0] for r in rows}


def first_usage_day(wh: Warehouse) -> date | None:
    value = wh.scalar("ops.sql", "first_usage_day")
    return value if isinstance(value, date) else None


def gate_missing(day: date, complete: set[date], first: date | None) -> list[date]:
    """The days whose incomplete usage keeps ``day`` from being built (empty: it can be built)."""
    if first is None:
        return [day]
    needed = [day - timedelta(days=k) for k in range(6, -1, -1)]
    return [d for d in needed if (d >= first or d == day) and d not in complete]


def check_gate(wh: Warehouse, days: Iterable[date]) -> tuple[list[date], dict[date, BuildGateError]]:
    """Split ``days`` into buildable days and the gate errors of the others."""
    days = sorted(set(days))
    if not days:
        return [], {}
    complete = complete_days(wh, days[0] - timedelta(days=6), days[-1])
    first = first_usage_day(wh)
    ok: list[date] = []
    blocked: dict[date, BuildGateError] = {}
    for day in days:
        missing = gate_missing(day, complete, first)
        if missing:
            blocked[day] = BuildGateError(day, missing)
        else:
            ok.append(day)
    return ok, blocked


def segments(days: Iterable[date]) -> list[tuple[date, date]]:
    """Contiguous runs of days: [1,2,3,5] -> [(1,3), (5,5)]."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def build_segment(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    first_usage_day: date,
    loaded_at: datetime,
    missing_crm_warn_fraction: float = 0.05,
    on_checks: Callable[[list[CheckResult]], None] | None = None,
    short_range_days: int = SHORT_RANGE_DAYS,
    chunk_days: int = CHUNK_DAYS,
) -> tuple[list[DayBuild], dict[date, list[CheckResult]]]:
    """Build every day of ``start … end`` (all must pass the gate) in one transaction.

    A long range is built in chunks of ``chunk_days`` (each reading its six days before): the same rows,
    but each chunk's window sort and comparison with the published rows fit in memory.
    Returns the days published and, per day kept out by a failed blocking check, its failed checks.
    """
    summary: list[tuple[Any, ...]] = []
    rejected: dict[date, list[CheckResult]] = {}
    with wh.transaction():
        chunk_start = start
        while chunk_start <= end:
            chunk_end = min(end, chunk_start + timedelta(days=chunk_days - 1))
            params = {
                "start_day": chunk_start,
                "end_day": chunk_end,
                "first_usage_day": first_usage_day,
                "loaded_at": loaded_at,
            }
            wh.run(POPULATE, "inputs", params)
            short = (chunk_end - chunk_start).days + 1 <= short_range_days
            wh.run(POPULATE, "candidate_short" if short else "candidate", params)
            results = check_candidate(wh, missing_crm_warn_fraction=missing_crm_warn_fraction)
            if on_checks is not None:
                on_checks(results)
            failed = [r for r in results if r.blocking and r.failed]
            for r in failed:
                rejected.setdefault(r.day, []).append(r)
            for day in sorted({r.day for r in failed}):
                wh.run("quality.sql", "drop_candidate_day", {"day": day})
            summary.extend(wh.run(POPULATE, "day_summary", params))
            wh.run(POPULATE, "publish", params)
            wh.run(POPULATE, "cleanup", params)
            marts.refresh(wh, chunk_start, chunk_end, built_at=loaded_at)  # issue 12: weekly/monthly marts
            chunk_start = chunk_end + timedelta(days=1)
    built = [DayBuild(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in summary]
    return built, rejected
