"""The pipeline's :class:`~..engine.DataEngine` over the Spark engine (``spark:ROOT``).

- CRM: the snapshot is streamed into the temporary table ``crm_load`` of the run-state store's database
  (DuckDB or PostgreSQL) and its duplicates resolved there in SQL, with the quarantine file written as on
  the SQL engines (:func:`~..crm_load.load_crm_snapshot`); the winners are then handed to Spark, which
  replaces the day's partition. Nothing of the snapshot is kept in the state database.
- Usage: the staged spool's records are checked for conflicting records (in Python, one dict per day),
  compared with the day's partition, and written as the day's partition.
- A reloaded day whose rows are the same is not rewritten (CRM or usage): unlike the SQL engines, its
  ``loaded_at`` / ``run_id`` / ``raw_run_id`` stay those of the load that wrote it, and no file changes.
- Build: :meth:`SparkEngine.build_segment` (the same model as ``populate_company_daily_activity.sql``).
  The candidate-row checks are quality.sql's ``candidate_checks`` translated to Spark SQL and run on the
  candidate rows in Spark (a day failing a blocking check keeps its published rows). The daily summary and
  the weekly/monthly marts are then rebuilt for the periods the segment overlaps (:mod:`.marts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from ...errors import UsageDataError
from ...quality import CheckResult, check_results
from ...raw.landing import StagedDay
from ...storage import Lake
from .. import Warehouse
from ..crm_load import CrmLoadSummary, load_crm_snapshot
from ..engine import SegmentBuild, UsageLoadResult
from . import model
from .engine import SparkEngine
from .tables import CRM, USAGE

log = logging.getLogger("company_activity.warehouse.spark")


class SparkDataEngine:
    """The data engine of ``spark:ROOT``: the data in Spark's Parquet tables, scratch work in ``scratch``
    (the run-state store's database)."""

    def __init__(self, spark: SparkEngine, scratch: Warehouse):
        self.spark = spark
        self.scratch = scratch

    def replace_crm_day(
        self,
        day: date,
        lake: Lake,
        rel: str,
        *,
        run_id: str,
        loaded_at: datetime,
        quarantine: str,
        max_bad_fraction: float,
    ) -> CrmLoadSummary:
        def replace() -> bool:
            rows = self.scratch.run("staging.sql", "crm_load_winners")
            before = {tuple(r[1:6]) for r in self.spark.read_day(day, CRM.name)}
            after = {tuple(r[:5]) for r in rows}
            if before == after and before:  # the same rows: the partition (and its lineage) stays as is
                return False
            self.spark.replace_crm_day(day, rows, source_file=rel, loaded_at=loaded_at, run_id=run_id)
            return True

        return load_crm_snapshot(
            self.scratch,
            lake,
            rel,
            day=day,
            run_id=run_id,
            now=loaded_at,
            quarantine=quarantine,
            max_bad_fraction=max_bad_fraction,
            replace=replace,
        )

    def replace_usage_day(
        self, day: date, staged: StagedDay, *, raw_run_id: str, loaded_at: datetime, was_complete: bool
    ) -> UsageLoadResult:
        values: dict[str, tuple[int, int]] = {}
        conflicts: set[str] = set()
        if staged.records and staged.path is not None:
            staged.close()
            for company_id, active_users, events in staged.rows():
                seen = values.setdefault(company_id, (active_users, events))
                if seen != (active_users, events):
                    conflicts.add(company_id)
        if conflicts:
            ids = ", ".join(sorted(conflicts)[:10])
            raise UsageDataError(f"usage for {day.isoformat()} has different records for one company ({ids})")
        rows: list[tuple[Any, ...]] = [(k, v[0], v[1]) for k, v in sorted(values.items())]
        changed = True
        if was_complete:
            before = {tuple(r[1:4]) for r in self.spark.read_day(day, USAGE.name)}
            changed = before != set(rows)
            if not changed:  # the same rows: the partition (and its lineage) stays as is
                return UsageLoadResult(len(rows), False)
        count = self.spark.replace_usage_day(day, rows, raw_run_id=raw_run_id, loaded_at=loaded_at)
        return UsageLoadResult(count, changed)

    def next_snapshot_after(self, day: date) -> date | None:
        return self.spark.next_snapshot_after(day)

    def snapshot_in_effect(self, day: date) -> date | None:
        earlier = [d for d in self.spark.crm_snapshot_days() if d <= day]
        return earlier[-1] if earlier else None

    def build_segment(
        self,
        start: date,
        end: date,
        *,
        complete_days: Iterable[date],
        first_usage_day: date,
        loaded_at: datetime,
        missing_crm_warn_fraction: float,
    ) -> SegmentBuild:
        log.info("Spark engine: building %s … %s (and the marts' periods they overlap)", start, end)
        results: list[CheckResult] = []

        def checks(counts: list[tuple[Any, ...]]) -> set[date]:
            results.extend(check_results(counts, missing_crm_warn_fraction=missing_crm_warn_fraction))
            return {r.day for r in results if r.blocking and r.failed}

        built = self.spark.build_segment(
            start,
            end,
            complete_days=set(complete_days),
            first_usage_day=first_usage_day,
            loaded_at=loaded_at,
            checks=checks,
        )
        rejected: dict[date, list[CheckResult]] = {}
        for r in results:
            if r.blocking and r.failed:
                rejected.setdefault(r.day, []).append(r)
        return SegmentBuild(built, rejected, results)

    def query(self, statement: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """A read-only query written as on the SQL engines (``analytics.company_daily_activity``, ``:name``
        parameters), translated to Spark SQL like the model and run over the tables' current partitions."""
        self.spark.register_views()
        spark_sql = model.translate(statement)
        args = {k: v for k, v in params.items() if f":{k}" in statement}
        return [tuple(r) for r in self.spark.spark.sql(spark_sql, args=args).collect()]

    def abort(self) -> None:
        """Cancel the Spark jobs in progress (a stop); a day's partition is swapped in whole or not at all."""
        try:
            self.spark.spark.sparkContext.cancelAllJobs()
        except Exception:
            log.debug("Spark engine: nothing to cancel", exc_info=True)

    def close(self) -> None:
        self.spark.close()
