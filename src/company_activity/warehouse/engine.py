"""The data engine: the one interface to ``stg.*`` and ``analytics.*`` (staging loads and the build).

The runner and the steps talk to the data engine through :class:`DataEngine` only, and to ``ops.*``
through the run-state store (:mod:`company_activity.state`). The operations are coarse and typed, so an
engine that is not a SQL database with transactions (the Spark engine of issue 13: Parquet partitions by
day) can implement them:

- every write replaces ONE day (or one range of days) as a whole, so doing it twice is doing it once;
- no operation reads ``ops.*``: what it needs from run state (was the day complete before, which usage
  days are complete) is passed in;
- the caller records the outcome in the run-state store AFTER the engine returned (data first, then
  state): a crash in between leaves the state "not done", and the next run redoes it.

:class:`SqlEngine` implements it for DuckDB and PostgreSQL with the named SQL of ``staging.sql``,
``populate_company_daily_activity.sql``, ``quality.sql`` and ``marts.sql``; there the state store and the
engine share one database (and one connection), but no transaction spans the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from ..errors import UsageDataError
from ..quality import CheckResult
from ..raw.landing import StagedDay
from ..storage import Lake
from . import Warehouse
from .build import DayBuild, build_segment
from .crm_load import CrmLoadSummary, load_crm_snapshot

__all__ = ["CrmLoadSummary", "DataEngine", "DayBuild", "SqlEngine", "UsageLoadResult"]

_USAGE_COLUMNS = ["company_id", "active_users", "events"]


@dataclass(frozen=True)
class UsageLoadResult:
    """One usage day replaced in staging: its record count, and whether its rows changed."""

    records: int
    changed: bool


@dataclass(frozen=True)
class SegmentBuild:
    """A built range: the days published, the days a blocking check kept out (with their failed
    checks), and every check evaluated."""

    built: list[DayBuild]
    rejected: dict[date, list[CheckResult]]
    checks: list[CheckResult]


class DataEngine(Protocol):
    """What the steps need from a data engine (see the module's doc for the contract)."""

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
        """Read the CRM snapshot ``rel`` from the lake (streamed), write its quarantine file, and replace
        the staging of ``day`` (raises CrmFileError when the file is rejected: staging unchanged)."""
        ...

    def replace_usage_day(
        self, day: date, staged: StagedDay, *, raw_run_id: str, loaded_at: datetime, was_complete: bool
    ) -> UsageLoadResult:
        """Replace the usage staging of ``day`` with the staged records (raises UsageDataError when two
        different records name one company: staging unchanged)."""
        ...

    def next_snapshot_after(self, day: date) -> date | None: ...

    def snapshot_in_effect(self, day: date) -> date | None: ...

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
        """Build (checks, publish, marts) every day of ``start … end``; all passed the gate. The days a
        blocking check fails keep their published rows."""
        ...

    def abort(self) -> None:
        """Cancel the statement in progress (a stop); its work is rolled back."""
        ...


class SqlEngine:
    """The data engine of a DuckDB or PostgreSQL warehouse (the named SQL files)."""

    def __init__(self, wh: Warehouse):
        self.wh = wh

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
        return load_crm_snapshot(
            self.wh,
            lake,
            rel,
            day=day,
            run_id=run_id,
            now=loaded_at,
            quarantine=quarantine,
            max_bad_fraction=max_bad_fraction,
        )

    def replace_usage_day(
        self, day: date, staged: StagedDay, *, raw_run_id: str, loaded_at: datetime, was_complete: bool
    ) -> UsageLoadResult:
        wh = self.wh
        with wh.transaction():
            wh.run("staging.sql", "usage_load_create")
            if staged.records and staged.path is not None:
                staged.close()
                if wh.dialect == "duckdb":
                    wh.run("duckdb_spool.sql", "usage_load_from_spool", {"path": staged.path})
                else:
                    wh.bulk_insert("usage_load", _USAGE_COLUMNS, staged.rows())
            conflicts = wh.run("staging.sql", "usage_load_conflicts")
            if conflicts:
                ids = ", ".join(str(r[0]) for r in conflicts)
                raise UsageDataError(
                    f"usage for {day.isoformat()} has different records for one company ({ids})"
                )
            # a day loaded for the first time is a change whatever it holds: no need to compare
            changed = not was_complete or bool(wh.scalar("staging.sql", "usage_load_changed", {"day": day}))
            wh.run(
                "staging.sql",
                "usage_replace_day",
                {"day": day, "raw_run_id": raw_run_id, "loaded_at": loaded_at},
            )
            wh.run("staging.sql", "usage_load_drop")
            count = int(wh.scalar("staging.sql", "usage_day_count", {"day": day}) or 0)
        return UsageLoadResult(count, changed)

    def next_snapshot_after(self, day: date) -> date | None:
        nxt = self.wh.scalar("staging.sql", "next_snapshot_after", {"day": day})
        return nxt if isinstance(nxt, date) else None

    def snapshot_in_effect(self, day: date) -> date | None:
        snapshot = self.wh.scalar("staging.sql", "snapshot_in_effect", {"day": day})
        return snapshot if isinstance(snapshot, date) else None

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
        checks: list[CheckResult] = []
        built, rejected = build_segment(
            self.wh,
            start,
            end,
            complete_days=complete_days,
            first_usage_day=first_usage_day,
            loaded_at=loaded_at,
            missing_crm_warn_fraction=missing_crm_warn_fraction,
            on_checks=checks.extend,
        )
        return SegmentBuild(built, rejected, checks)

    def abort(self) -> None:
        from ..interrupts import abort_statement

        abort_statement(self.wh)
