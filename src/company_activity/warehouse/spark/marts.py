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

from concurrent.futures import ThreadPoolExecutor
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
    returns the partitions written per mart.

    The three marts are written at the same time (one Spark job each, from its own thread: the summary's
    write is one small task that would otherwise leave a core idle), each under its own ``_tmp``
    directory; their partitions are swapped in afterwards, one mart after the other. Every write is waited
    for before anything is swapped in, so a failed or cancelled write changes no mart."""
    engine.frame(ANALYTICS).createOrReplaceTempView(ANALYTICS.view)  # the days just published
    stamp = built_at if built_at.tzinfo is None else built_at.astimezone(UTC).replace(tzinfo=None)
    jobs = [
        (table, name, sorted({period_of(table, d) for d in days}), engine.files.new_tmp("marts"))
        for table, name in _QUERIES
    ]
    try:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="marts") as pool:
            futures = [
                pool.submit(_write, engine, table, _rows(engine, table, name, starts, stamp), starts, tmp)
                for table, name, starts, tmp in jobs
            ]
        for future in futures:  # leaving the pool waited for every write: none is running any more
            future.result()  # raises the first failure
        for table, _, starts, tmp in jobs:
            engine.swap_in_partitions(table, tmp, starts)
            engine.sync_catalog(table)
        return {table.name: len(starts) for table, _, starts, _ in jobs}
    finally:
        for *_, tmp in jobs:
            engine.files.delete(tmp)


def _rows(engine: SparkEngine, table: Table, name: str, starts: list[date], stamp: datetime) -> DataFrame:
    """The mart's rows for the periods beginning on ``starts`` (its query of ``sql/spark_marts.sql``)."""
    (statement,) = sqlfiles.query(SPARK_MARTS, name)
    args = {
        "lo": starts[0].isoformat(),
        "hi": period_end(table, starts[-1]).isoformat(),
        "built_at": stamp.isoformat(sep=" "),
    }
    return engine.spark.sql(statement, args=args)


def _days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=k) for k in range((last - first).days + 1)}


def _write(engine: SparkEngine, table: Table, new: DataFrame, periods: list[date], tmp: str) -> None:
    """Write the partitions of ``periods`` under ``tmp`` (a period left without rows gets none)."""
    from pyspark.sql import functions as F

    part = table.partition
    out = new.select(*[f"`{n}`" for n, _ in table.columns]).where(F.col(part).isin(periods))
    out.repartition(part).write.partitionBy(part).parquet(engine.files.qualified(tmp))
