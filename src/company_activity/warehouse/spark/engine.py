"""The Spark data engine: Parquet tables under ROOT, one day partition replaced at a time.

Public operations (coarse and typed, for the pipeline's runner; run state lives elsewhere):

- ``SparkEngine(root, *, master="local[*]", conf=None, session=None, files_per_day=1, register=None)``:
  opens (or reuses: ``session``) a Spark session; ``root`` a local folder or a Hadoop URL; ``register``:
  register the tables in the session's persistent catalog (None: when it has one, :mod:`.catalog`).
- ``replace_crm_day(day, rows, *, source_file, loaded_at, run_id) -> int``: one CRM snapshot's partition.
- ``replace_usage_day(day, rows, *, raw_run_id, loaded_at) -> int``: one usage day's partition.
- ``crm_snapshot_days() -> list[date]``, ``next_snapshot_after(day) -> date | None``.
- ``build_segment(start, end, *, complete_days, first_usage_day, loaded_at) -> list[DayBuild]``.
- ``read_day(day, table=...) -> list[tuple]``, ``rows(table=...)``, ``count(table=..., day=None)``.
- ``clean_tmp()`` (leftovers of killed writes; call holding the run lock), ``close()`` (stops the session
  only if the engine started it).

Tables and types: :mod:`.tables`. The model: :mod:`.model` (translated from the SQL file). The swap:
:mod:`.files`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ... import sql as sqlfiles
from ...errors import WarehouseError
from ..build import DayBuild
from . import marts, model
from .catalog import Catalog, is_persistent
from .files import Files
from .session import start_session
from .tables import ANALYTICS, CRM, TABLES, USAGE, Table, arrow_schema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("company_activity.warehouse.spark")

#: rows per pyarrow batch when a staging day is streamed to its Parquet file
BATCH_ROWS = 100_000

Row = tuple[Any, ...]


class SparkEngine:
    """The data of the pipeline (stg.*, analytics.*) as Hive-partitioned Parquet tables under ``root``."""

    def __init__(
        self,
        root: str,
        *,
        master: str = "local[*]",
        conf: Mapping[str, str] | None = None,
        session: SparkSession | None = None,
        files_per_day: int = 1,
        register: bool | None = None,
        build_marts: bool = True,
    ) -> None:
        self._own_session = session is None
        #: refresh the weekly/monthly marts and the daily summary after each build (tests of the daily
        #: table alone turn it off: the marts are many small Spark jobs)
        self.build_marts = build_marts
        self.spark: SparkSession = session if session is not None else start_session(master, conf or {})
        if "://" not in root and not root.startswith("file:"):
            from pathlib import Path

            root = Path(root).expanduser().resolve().as_uri()
        self.root = root.rstrip("/")
        self.files = Files(self.spark, self.root)
        #: Parquet files each published day is written as (a day of 10M companies: ~3 files of ~128 MB)
        self.files_per_day = max(1, files_per_day)
        #: called with each day just before its partition is swapped in (tests inject crashes here)
        self.before_swap: Callable[[Table, date], None] | None = None
        #: the session's persistent catalog, where the tables are registered too (``register``: None = when
        #: the session has one; see :mod:`.catalog`)
        self.catalog: Catalog | None = None
        if register if register is not None else is_persistent(self.spark):
            self.catalog = Catalog(self.spark, {t.name: self.files.qualified(t.path) for t in TABLES})

    # -- staging ------------------------------------------------------------------------------------------

    def replace_crm_day(
        self,
        day: date,
        rows: Iterable[Sequence[Any]],
        *,
        source_file: str,
        loaded_at: datetime,
        run_id: str,
    ) -> int:
        """Replace the CRM snapshot of ``day``: rows ``(company_id, company_name, country, industry_tag,
        last_contact_at[, source_line])`` (source_line defaults to the row's CSV line: 2, 3, ...)."""

        def full() -> Iterable[Row]:
            for line, r in enumerate(rows, start=2):
                src_line = r[5] if len(r) > 5 else line
                yield (r[0], r[1], r[2], r[3], _naive(r[4]), source_file, src_line, _naive(loaded_at), run_id)

        with _spark_errors(f"loading the CRM snapshot of {day} ({source_file[:60]})"):
            return self._replace_day(CRM, day, full())

    def replace_usage_day(
        self,
        day: date,
        rows: Iterable[Sequence[Any]],
        *,
        raw_run_id: str,
        loaded_at: datetime,
    ) -> int:
        """Replace the usage of ``day``: rows ``(company_id, active_users, events)``."""
        at = _naive(loaded_at)
        with _spark_errors(f"loading the usage of {day}"):
            return self._replace_day(USAGE, day, ((r[0], r[1], r[2], raw_run_id, at) for r in rows))

    def crm_snapshot_days(self) -> list[date]:
        return sorted(_partition_day(name) for name in self.files.children(CRM.path) if "=" in name)

    def next_snapshot_after(self, day: date) -> date | None:
        """The first loaded CRM snapshot after ``day`` (a late snapshot rebuilds the days up to it)."""
        later = [d for d in self.crm_snapshot_days() if d > day]
        return later[0] if later else None

    def _replace_day(self, table: Table, day: date, rows: Iterable[Row]) -> int:
        tmp = self.files.new_tmp("load")
        target = f"{table.path}/{table.partition}={day.isoformat()}"
        uri = self.files.qualified(tmp)
        try:
            if uri.startswith("file:"):
                count = _write_arrow(table, urlparse(uri).path, rows)
            else:  # a cluster file system: Spark writes it (the rows pass through the driver)
                data = list(rows)
                count = len(data)
                self.spark.createDataFrame(data, table.ddl(data_only=True)).coalesce(1).write.parquet(uri)
            self._swap(table, day, tmp, target)
        finally:
            self.files.delete(tmp)
        self.sync_catalog(table)
        return count

    def sync_catalog(self, table: Table) -> None:
        """After a change to ``table``'s partitions: its registration in a persistent catalog, if any."""
        if self.catalog is not None:
            self.catalog.sync(table)

    def swap_in_partitions(self, table: Table, tmp: str, keys: list[date]) -> None:
        """Swap each of ``keys``' partitions written under ``tmp`` (Hive-style, ``partition=key``) into
        ``table``, one at a time; a key with no partition under ``tmp`` had every row go away, so the table's
        partition is deleted."""
        for key in keys:
            name = f"{table.partition}={key.isoformat()}"
            target = f"{table.path}/{name}"
            if self.files.exists(tmp, name):
                self._swap(table, key, f"{tmp}/{name}", target)
            else:
                if self.before_swap is not None:
                    self.before_swap(table, key)
                self.files.delete(target)

    def _swap(self, table: Table, day: date, new: str, target: str) -> None:
        if self.before_swap is not None:
            self.before_swap(table, day)
        self.files.swap_in(new, target)

    # -- reading ----------------------------------------------------------------------------------------

    def frame(self, table: Table) -> DataFrame:
        """The whole table as a DataFrame (read afresh: it sees every partition swapped in so far)."""
        if not self.files.children(table.path):
            return self.spark.createDataFrame([], table.ddl())
        return self.spark.read.schema(table.ddl()).parquet(self.files.qualified(table.path))

    def register_views(self) -> None:
        """(Re)register the tables as the session's temporary views stg_crm_daily, ... (fresh listings)."""
        for table in TABLES:
            self.frame(table).createOrReplaceTempView(table.view)

    def rows(self, table: str = ANALYTICS.name) -> list[Row]:
        t = _table(table)
        cols = [n for n, _ in t.columns]
        df = self.frame(t).select(*[f"`{c}`" for c in cols]).orderBy(cols[0], cols[1])
        return [tuple(r) for r in df.collect()]

    def read_day(self, day: date, table: str = ANALYTICS.name) -> list[Row]:
        """The rows of one day of ``table`` (all columns, ordered by company_id)."""
        t = _table(table)
        cols = [f"`{n}`" for n, _ in t.columns]
        df = self.frame(t).where(f"{t.partition} = date'{day.isoformat()}'").select(*cols)
        return [tuple(r) for r in df.orderBy("company_id").collect()]

    def count(self, table: str = ANALYTICS.name, day: date | None = None) -> int:
        t = _table(table)
        df = self.frame(t)
        if day is not None:
            df = df.where(f"{t.partition} = date'{day.isoformat()}'")
        return int(df.count())

    # -- the build ----------------------------------------------------------------------------------------

    def build_segment(
        self,
        start: date,
        end: date,
        *,
        complete_days: set[date],
        first_usage_day: date,
        loaded_at: datetime,
        checks: Callable[[list[Row]], set[date]] | None = None,
    ) -> list[DayBuild]:
        """Build every day of ``start … end`` (the caller checked the build gate) and publish the days
        whose rows changed, one partition each; returns the days built (only once their partitions are in
        place), as :func:`company_activity.warehouse.build.build_segment` does.

        ``checks`` gets the rows of quality.sql's ``candidate_checks`` and returns the days to keep out
        (their published rows stay as they are)."""
        with _spark_errors(f"building {start} … {end}"):
            return self._build(start, end, complete_days, first_usage_day, loaded_at, checks)

    def _build(
        self,
        start: date,
        end: date,
        complete_days: set[date],
        first_usage_day: date,
        loaded_at: datetime,
        checks: Callable[[list[Row]], set[date]] | None,
    ) -> list[DayBuild]:
        from pyspark import StorageLevel

        spark = self.spark
        self.register_views()
        window = sorted(d for d in complete_days if start - timedelta(days=6) <= d <= end)
        spark.createDataFrame([(d,) for d in window], "activity_date DATE").createOrReplaceTempView(
            "build_days"
        )
        params = {
            "start_day": start.isoformat(),
            "end_day": end.isoformat(),
            "first_usage_day": first_usage_day.isoformat(),
            "loaded_at": _utc_naive(loaded_at).isoformat(sep=" "),
        }
        candidate = spark.sql(model.query("candidate"), args=_used(model.query("candidate"), params))
        candidate = candidate.persist(StorageLevel.MEMORY_AND_DISK)
        merged: DataFrame | None = None
        try:
            candidate.createOrReplaceTempView("build_candidate")
            if checks is not None:
                rejected = checks([tuple(r) for r in spark.sql(model.quality_query()).collect()])
                if rejected:  # kept out: no candidate rows, and its published rows are not compared
                    out = [(d,) for d in window if d not in rejected]
                    spark.createDataFrame(out, "activity_date DATE").createOrReplaceTempView("build_days")
                    kept = candidate.where(~candidate["activity_date"].isin(sorted(rejected)))
                    kept.createOrReplaceTempView("build_candidate")
            summary = spark.sql(model.query("day_summary")).collect()
            merge_sql = sqlfiles.query("spark_publish.sql", "merge")[0]
            merged = spark.sql(merge_sql, args=_used(merge_sql, params)).persist(StorageLevel.MEMORY_AND_DISK)
            counts = _change_counts(merged)
            changed = sorted(day for day, (ins, upd, _, dele) in counts.items() if ins or upd or dele)
            if changed:
                if self.build_marts:
                    marts.mark_pending(self, changed)  # removed once the marts of these days are in place
                self._publish(merged, changed)
            if self.build_marts:
                marts.refresh_pending(self, start, end, built_at=loaded_at)
        finally:
            candidate.unpersist()
            if merged is not None:
                merged.unpersist()
            for view in ("build_candidate", "build_days"):
                spark.catalog.dropTempView(view)
        return [
            DayBuild(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0), *counts.get(r[0], (0, 0, 0, 0)))
            for r in summary
        ]

    def _publish(self, merged: DataFrame, changed: list[date]) -> None:
        from pyspark.sql import functions as F

        cols = [f"`{n}`" for n, _ in ANALYTICS.columns if n != "record_loaded_at"]
        out = (
            merged.where(F.col("present") & F.col("day").isin(changed))
            .withColumn(
                "record_loaded_at",
                F.when(F.col("changed"), F.col("new_loaded_at")).otherwise(F.col("old_loaded_at")),
            )
            .select(*cols, "record_loaded_at")
        )
        tmp = self.files.new_tmp("build")
        try:
            if self.files_per_day > 1:  # a day's rows spread over files_per_day tasks (and files)
                bucket = F.pmod(F.hash("company_id"), F.lit(self.files_per_day))
                out = out.repartition(len(changed) * self.files_per_day, "activity_date", bucket)
            else:
                out = out.repartition("activity_date")
            out.write.partitionBy("activity_date").parquet(self.files.qualified(tmp))
            self.swap_in_partitions(ANALYTICS, tmp, changed)
        finally:
            self.files.delete(tmp)
        self.sync_catalog(ANALYTICS)

    def clean_tmp(self) -> None:
        """Remove what killed writes left under ``ROOT/_tmp`` (readers ignore it; call it holding the run
        lock, when no other writer runs)."""
        self.files.clean_tmp()

    def close(self) -> None:
        if self._own_session:
            self.spark.stop()


def _change_counts(merged: DataFrame) -> dict[date, tuple[int, int, int, int]]:
    """Per day, what publishing does: rows inserted, updated, unchanged, deleted (as ``change_counts``)."""
    from pyspark.sql import functions as F

    present, changed, old = F.col("present"), F.col("changed"), F.col("old_loaded_at")

    def n(cond: Any) -> Any:
        return F.sum(F.when(cond, 1).otherwise(0))

    rows = (
        merged.groupBy("day")
        .agg(
            n(present & old.isNull()),
            n(present & old.isNotNull() & changed),
            n(present & ~changed),
            n(~present),
        )
        .collect()
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


@contextmanager
def _spark_errors(what: str) -> Iterator[None]:
    """A failure inside Spark (or its JVM) becomes a WarehouseError naming the operation and day."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseError(f"Spark engine: {what} failed: {first[:200]}") from exc
    except OSError as exc:
        raise WarehouseError(f"Spark engine: {what} failed: {exc}") from exc


def _table(name: str) -> Table:
    for t in TABLES:
        if name in (t.name, t.view):
            return t
    raise WarehouseError(f"the Spark engine has no table {name[:40]!r}")


def _partition_day(name: str) -> date:
    return date.fromisoformat(name.split("=", 1)[1])


def _utc_naive(value: datetime) -> datetime:
    out = _naive(value)
    assert out is not None
    return out


def _naive(value: datetime | None) -> datetime | None:
    """A UTC timestamp as the naive value the tables hold (aware values are converted to UTC first)."""
    if value is None or value.tzinfo is None:
        return value
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)


def _used(query: str, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters a query uses (Spark rejects unused named arguments in some versions)."""
    from ...warehouse import param_names

    names = set(param_names(query))
    return {k: v for k, v in params.items() if k in names}


def _write_arrow(table: Table, directory: str, rows: Iterable[Row]) -> int:
    """Stream ``rows`` into ``directory``/part-00000.parquet in batches; returns the row count."""
    import os

    import pyarrow.parquet as pq

    schema = arrow_schema(table)
    os.makedirs(directory, exist_ok=True)
    count = 0
    with pq.ParquetWriter(os.path.join(directory, "part-00000.parquet"), schema) as writer:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                writer.write_batch(_batch(schema, batch))
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_batch(_batch(schema, batch))
            count += len(batch)
    return count


def _batch(schema: Any, rows: list[Row]) -> Any:
    import pyarrow as pa

    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.record_batch(
        [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)], schema
    )
