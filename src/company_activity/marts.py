"""The weekly and monthly marts (``analytics.company_weekly_activity`` and ``…_monthly_activity``).

They, their building blocks (``analytics.company_activity_parts``: each ISO week's days within one calendar
month, per company) and ``analytics.activity_summary_daily`` (per day, country and industry: what the web
UI's overview charts) are derived from ``analytics.company_daily_activity``. :func:`refresh` rebuilds, in
the build's transaction, every part, week and month that overlaps the days whose rows a build changed
(:func:`stale_days`; see ``sql/marts.sql`` for what each column means).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from .warehouse import Warehouse

MARTS = "marts.sql"


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def part_start(day: date) -> date:
    """The first day of ``day``'s part: the later of its week's Monday and its month's first day."""
    return max(week_start(day), day.replace(day=1))


def part_end(day: date) -> date:
    return min(week_start(day) + timedelta(days=6), month_end(day))


def bounds(start: date, end: date) -> dict[str, date]:
    """The parts, weeks and months that the days ``start … end`` touch, as first and last days."""
    return {
        "part_lo": part_start(start),
        "part_hi": part_end(end),
        "week_lo": week_start(start),
        "week_hi": week_start(end) + timedelta(days=6),
        "month_lo": start.replace(day=1),
        "month_hi": month_end(end),
    }


def stale_days(
    wh: Warehouse, start: date, end: date, *, changed: Iterable[date], with_rows: Iterable[date]
) -> list[date]:
    """The days of ``start … end`` whose periods must be refreshed after a build: those whose published
    rows it changed (``changed``: a row inserted, updated or deleted), and those with rows (``with_rows``)
    the marts have no figures for yet (a warehouse migrated from before the marts, or marts emptied by
    hand: ``build --full`` fills them). A build that changes nothing rewrites no mart row, so each row's
    ``built_at`` is that of the build that last changed its period (as on the Spark engine)."""
    summarised = {r[0] for r in wh.run(MARTS, "summarised_days", {"start_day": start, "end_day": end})}
    return sorted(set(changed) | (set(with_rows) - summarised))


def refresh(wh: Warehouse, start: date, end: date, *, built_at: datetime) -> None:
    """Rebuild the summary days, parts, weeks and months overlapping ``start … end``."""
    params = {"start_day": start, "end_day": end, "built_at": built_at, **bounds(start, end)}
    with wh.transaction():
        wh.run(MARTS, "refresh_summary", params)  # first: the built days of each period come from it
        wh.run(MARTS, "refresh_parts", params)
        wh.run(MARTS, "refresh_weekly", params)
        wh.run(MARTS, "refresh_monthly", params)
