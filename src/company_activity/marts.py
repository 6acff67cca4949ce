"""The weekly and monthly marts (``analytics.company_weekly_activity`` and ``…_monthly_activity``).

They, and ``analytics.activity_summary_daily`` (per day, country and industry: what the web UI's
overview charts), are derived from ``analytics.company_daily_activity``: :func:`refresh` rebuilds every
ISO week and
calendar month that overlaps the days a build published, in the build's transaction (see
``sql/marts.sql`` for what each column means).
"""

from __future__ import annotations

from datetime import date, datetime

from .warehouse import Warehouse

MARTS = "marts.sql"


def refresh(wh: Warehouse, start: date, end: date, *, built_at: datetime) -> None:
    """Rebuild the weekly and monthly rows of every period overlapping ``start … end``."""
    params = {"start_day": start, "end_day": end, "built_at": built_at}
    with wh.transaction():
        wh.run(MARTS, "refresh_weekly", params)
        wh.run(MARTS, "refresh_monthly", params)
        wh.run(MARTS, "refresh_summary", params)
