"""The marts on the Spark engine: ``analytics.activity_summary_daily``, ``…company_weekly_activity`` and
``…company_monthly_activity`` as Parquet tables partitioned by period (``activity_date=D``,
``week_start=D``, ``month_start=D``), rebuilt after each build (as :func:`company_activity.marts.refresh`
does on the SQL engines; same columns and types as ``sql/marts_tables.sql``).

The rows come from ``sql/spark_marts.sql`` (the same rows as ``sql/marts.sql``), recomputed from the daily
table for the periods (days, ISO weeks, months) holding a day the build republished: only such a day can
change a period's rows (its ``is_partial`` included). Each period's partition is replaced by the same
swap as a day of the daily table. A build that changes no day rewrites no file (the marts keep the
``built_at`` of the build that wrote them, as on the SQL engines).

A build that publishes days first leaves a mark under ``ROOT/_marts_pending/`` and removes it once the
marts are in place, so a build that failed in between has its periods rebuilt by the next build.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from ... import sql as sqlfiles
from ...marts import month_end, week_start
from .tables import ANALYTICS, MARTS, MONTHLY, SUMMARY, WEEKLY, Table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from .engine import SparkEngine

SPARK_MARTS = "spark_marts.sql"


#: under ROOT: one directory per build that publishes days, named FIRST_LAST (its first and last changed
#: day), made before it publishes and removed once its marts are in place; readers skip "_" names
PENDING = "_marts_pending"

_QUERIES = ((SUMMARY, "summary"), (WEEKLY, "weekly"), (MONTHLY, "monthly"))


def period_of(table: Table, day: date) -> date:
    if table is WEEKLY:
        return week_start(day)
    if table is MONTHLY:
        return day.replace(day=1)
    return day


def period_end(table: Table, first: date) -> date:
    if table is WEEKLY:
        return first + timedelta(days=6)
    if table is MONTHLY:
        return month_end(first)
    return first


def mark_pending(engine: SparkEngine, changed: list[date]) -> str:
    """Note, before the days are published, that the marts of ``changed`` are to be rebuilt."""
    name = f"{PENDING}/{min(changed).isoformat()}_{max(changed).isoformat()}"
    engine.files.mkdirs(name)
    return name


def refresh_pending(engine: SparkEngine, start: date, end: date, *, built_at: datetime) -> dict[str, int]:
    """Rebuild the marts' periods of every pending mark (this build's, and any a failed build left), and of
    ``start … end`` when a mart has no partition yet; then remove the marks. Returns partitions written."""
    marks = engine.files.children(PENDING)
    days: set[date] = set()
    for name in marks:
        first, _, last = name.partition("_")
        try:
            days |= _days(date.fromisoformat(first), date.fromisoformat(last))
        except ValueError:  # not a mark of ours: left alone
            continue
    if engine.files.children(ANALYTICS.path) and not all(engine.files.children(t.path) for t in MARTS):
        days |= _days(start, end)  # tables written before the marts were built on Spark
    written = refresh(engine, days, built_at=built_at) if days else {}
    for name in marks:
        engine.files.delete(f"{PENDING}/{name}")
    if marks and not engine.files.children(PENDING) and not engine.files.files(PENDING):
        engine.files.delete(PENDING)
    return written


def refresh(engine: SparkEngine, days: set[date], *, built_at: datetime) -> dict[str, int]:
    """Rebuild (replace) each mart's periods that ``days`` fall in, from the daily table as published now;
    returns the partitions written per mart."""
    engine.frame(ANALYTICS).createOrReplaceTempView(ANALYTICS.view)  # the days just published
    stamp = built_at if built_at.tzinfo is None else built_at.astimezone(UTC).replace(tzinfo=None)
    written: dict[str, int] = {}
    for table, name in _QUERIES:
        starts = sorted({period_of(table, d) for d in days})
        lo, hi = starts[0], period_end(table, starts[-1])
        (statement,) = sqlfiles.query(SPARK_MARTS, name)
        args = {"lo": lo.isoformat(), "hi": hi.isoformat(), "built_at": stamp.isoformat(sep=" ")}
        _replace(engine, table, engine.spark.sql(statement, args=args), starts)
        engine.sync_catalog(table)
        written[table.name] = len(starts)
    return written


def _days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=k) for k in range((last - first).days + 1)}


def _replace(engine: SparkEngine, table: Table, new: DataFrame, differ: list[date]) -> None:
    """Swap in the new partitions of the periods ``differ`` (deleting those left without rows)."""
    from pyspark.sql import functions as F

    part = table.partition
    tmp = engine.files.new_tmp("marts")
    try:
        out = new.select(*[f"`{n}`" for n, _ in table.columns]).where(F.col(part).isin(differ))
        out.repartition(part).write.partitionBy(part).parquet(engine.files.qualified(tmp))
        engine.swap_in_partitions(table, tmp, differ)
    finally:
        engine.files.delete(tmp)
