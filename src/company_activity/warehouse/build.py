"""The SQL engines' build of ``analytics.company_daily_activity`` (``populate_company_daily_activity.sql``).

The caller (the build step) has applied the build gate (:mod:`company_activity.run.plan`) and passes the
complete usage days it read from the run-state store: the build reads no ``ops.*`` table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .. import marts
from ..quality import CheckResult, check_candidate
from . import Warehouse

POPULATE = "populate_company_daily_activity.sql"

# ranges of at most this many days use the `candidate_short` formulation (faster for a nightly day);
# longer ones the window formulation (faster for backfills). Both give the same rows.
SHORT_RANGE_DAYS = 2

# a long range is built this many days at a time (one transaction for all of it)
CHUNK_DAYS = 31


@dataclass(frozen=True)
class DayBuild:
    """A built day: its rows, churn-risk and not-in-CRM counts, and what publishing changed."""

    day: date
    row_count: int
    churn_risk_count: int
    missing_crm_count: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


def build_segment(
    wh: Warehouse,
    start: date,
    end: date,
    *,
    complete_days: Iterable[date],
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
    ``complete_days``: the complete usage days (at least those of ``start - 6 … end``).
    Returns the days published and, per day kept out by a failed blocking check, its failed checks.
    """
    days = set(complete_days)
    summary: list[tuple[Any, ...]] = []
    changes: dict[date, tuple[int, int, int, int]] = {}
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
            window = chunk_start - timedelta(days=6)
            wh.bulk_insert(
                "build_days", ["activity_date"], [(d,) for d in sorted(days) if window <= d <= chunk_end]
            )
            wh.run(POPULATE, "analyze_days")
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
            days_built = wh.run(POPULATE, "day_summary", params)
            summary.extend(days_built)
            changed = []
            for day, *counts in wh.run(POPULATE, "change_counts", params):
                changes[day] = (int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0), int(counts[3]))
                if changes[day][0] or changes[day][1] or changes[day][3]:
                    changed.append(day)
            wh.run(POPULATE, "publish", params)
            wh.run(POPULATE, "cleanup", params)
            # issue 12: the weekly/monthly marts, for the periods of the days whose rows changed
            with_rows = [r[0] for r in days_built if int(r[1])]
            stale = marts.stale_days(wh, chunk_start, chunk_end, changed=changed, with_rows=with_rows)
            if stale:
                marts.refresh(wh, stale[0], stale[-1], built_at=loaded_at)
            chunk_start = chunk_end + timedelta(days=1)
    built = [
        DayBuild(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0), *changes.get(r[0], (0, 0, 0, 0)))
        for r in summary
    ]
    return built, rejected
