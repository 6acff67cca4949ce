"""The read model of the run state: :class:`RunStateReader`, beside the writers (``store``, ``ledger``).

``status`` (every form), ``runs`` / ``runs show``, every page and JSON route of the web UI, the offline report
and the Dagster checks read ``ops.*`` through this class and nothing else (``tests/test_import_graph.py``
keeps it so). A day's verdict is computed here once, by :func:`.verdict.day_verdict`, from the facts this
class gathers; the surfaces only render it.

The reader works over any query source: a read-write or read-only :class:`~..warehouse.Warehouse`
(:func:`from_warehouse`) or the web UI's per-request session (:func:`from_session`). Named queries:
``sql/read_model.sql`` (and ``ops.sql:stale_built_days``, which the plan reads too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..run.vocab import STEPS, rerun_hint
from . import verdict as v
from .rows import (
    AlertRow,
    Attempt,
    ChangeRow,
    CheckRow,
    DayDetail,
    DayStatus,
    HistoryStep,
    QuarantinedRecord,
    RunDetail,
    RunRow,
    StepRow,
)

if TYPE_CHECKING:
    from ..warehouse import Warehouse

__all__ = ["RunNotFound", "RunStateReader", "from_session", "from_warehouse"]

SQL = "read_model.sql"
Source = Callable[[str, str, Mapping[str, Any]], list[tuple[Any, ...]]]
_ORDER: dict[str, int] = {str(step): i for i, step in enumerate(STEPS)}
#: the statuses ``runs --status`` accepts (``ops.runs.status``)
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")


class RunNotFound(LookupError):
    """No run with that id (or prefix); the message says what matched."""


class _Rows(Protocol):
    def rows(self, filename: str, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a named query as dicts."""


def from_warehouse(wh: Warehouse) -> Source:
    """A query source over a warehouse connection (the CLI's read-only one, or the pipeline's)."""
    return lambda filename, name, params: [tuple(r) for r in wh.run(filename, name, params)]


def from_session(session: _Rows) -> Source:
    """A query source over the web UI's read-only session (rows as dicts, in select order)."""
    return lambda filename, name, params: [tuple(r.values()) for r in session.rows(filename, name, params)]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _one_line(text: object, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RunStateReader:
    """Typed reads of ``ops.*`` for every surface that shows run state. Never writes."""

    def __init__(self, source: Source):
        self._q = source

    def _rows(
        self, name: str, params: Mapping[str, Any] | None = None, *, file: str = SQL
    ) -> list[tuple[Any, ...]]:
        return self._q(file, name, params or {})

    # -- days ---------------------------------------------------------------------------------------------
    def days(self, start: date, end: date) -> list[DayStatus]:
        """Every day of ``start … end`` that a run touched, oldest first, each with its verdict."""
        params = {"start_day": start, "end_day": end}
        checks: dict[date, list[CheckRow]] = {}
        for r in self._rows("day_checks_in_range", params):
            checks.setdefault(r[0], []).append(_check(r))
        attempts: dict[date, list[Attempt]] = {}
        for r in self._rows("step_attempts", params):
            attempts.setdefault(r[0], []).append(Attempt(r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
        to_build = self.days_to_build()
        return [
            _day_status(r, checks.get(r[0], []), attempts.get(r[0], []), r[0] in to_build)
            for r in self._rows("day_parts", params)
        ]

    def calendar(self, start: date, end: date) -> list[DayStatus]:
        """Every day of ``start … end``, oldest first; a day no run touched is ``no data``."""
        found = {d.day: d for d in self.days(start, end)}
        out = []
        day = start
        while day <= end:
            out.append(found.get(day) or DayStatus(day, v.NO_DATA, v.LOOK[v.NO_DATA].meaning))
            day += timedelta(days=1)
        return out

    def days_to_build(self) -> set[date]:
        """Days the next run (re)builds: stale or failed builds, complete days never built."""
        return {r[0] for r in self._rows("stale_built_days", file="ops.sql")}

    def day(self, day: date, *, history: int = 20, quarantined: int = 50) -> DayDetail:
        """Everything run state knows of one day: its verdict, CRM, usage, build, checks, step history."""
        status = next(iter(self.days(day, day)), None) or DayStatus(day, v.NO_DATA, v.LOOK[v.NO_DATA].meaning)

        def one(name: str, cols: str) -> dict[str, Any] | None:
            rows = self._rows(name, {"day": day})
            return dict(zip(cols.split(), rows[0], strict=True)) if rows else None

        crm = one("day_crm", "status rows rejected duplicates extra_columns source_file loaded_at last_error")
        usage = one(
            "day_usage",
            "status records quarantined pages raw_run_id schema_drift completed_at last_error",
        )
        build = one("day_build", "status rows churn_risk missing_crm crm_snapshot_date built_at last_error")
        if build is not None and status.build_status is not None:
            build["status"] = status.build_status  # stale / not built as the verdict sees it
        steps = [HistoryStep(*r) for r in self._rows("day_history", {"day": day, "row_limit": history})]
        records = (
            [
                QuarantinedRecord(str(r[0]), int(r[1]), int(r[2]), str(r[3]), r[4])
                for r in self._rows("usage_quarantine_of_day", {"day": day, "row_limit": quarantined})
            ]
            if usage is not None and usage.get("quarantined")
            else []
        )
        return DayDetail(status, crm, usage, build, list(status.checks), steps, records)

    def data_range(self) -> tuple[date | None, date | None]:
        """The first and the last built day."""
        rows = self._rows("data_range")
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def latest_step_day(self) -> date | None:
        rows = self._rows("latest_step_day")
        value = rows[0][0] if rows else None
        return value if isinstance(value, date) else None

    # -- runs ---------------------------------------------------------------------------------------------
    def latest_run(self) -> RunRow | None:
        rows = self._rows("latest_run")
        return _run_row(rows[0]) if rows else None

    def count_runs(self) -> int:
        rows = self._rows("runs_count")
        return int(rows[0][0] or 0) if rows else 0

    def recent_runs(self, *, limit: int = 20, status: str | None = None) -> list[RunRow]:
        """The newest ``limit`` runs, optionally only those that ended with ``status``."""
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        return [_run_row(r) for r in self._rows("runs_recent", {"status": status, "row_limit": limit})]

    def run(self, run_id: str) -> RunDetail:
        """One run: its steps, checks, changes, alerts, the commands that redo what failed, and the
        verdict now of each day it worked on. ``run_id`` may be a unique prefix of the id."""
        found = self._rows("run_one", {"run_id": run_id})
        if not found:
            like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            matches = [str(r[0]) for r in self._rows("run_ids_like", {"pattern": like})]
            if len(matches) == 1:
                return self.run(matches[0])
            hint = f"; it matches {', '.join(matches)}" if matches else "; `company-activity runs` lists them"
            raise RunNotFound(f"no run {run_id!r}{hint}")
        head = found[0]
        rid = str(head[0])
        steps = [
            StepRow(s[0], s[1], s[2], s[3], s[4], _seconds(s[3], s[4]), _int(s[5]), _int(s[6]), s[7])
            for s in self._rows("run_steps_of", {"run_id": rid})
        ]
        steps.sort(key=lambda s: (s.day, _ORDER.get(s.step, 9), s.started_at))
        checks = [
            CheckRow(c[0], str(c[1]), str(c[2]), bool(c[3]), _float(c[4]), _float(c[5]), c[6], rid)
            for c in self._rows("run_checks_of", {"run_id": rid})
        ]
        days = sorted({s.day for s in steps})
        run = RunRow(
            run_id=rid,
            command=str(head[1]),
            status=str(head[2]),
            started_at=head[3],
            finished_at=head[4],
            duration_s=_seconds(head[3], head[4]),
            first_day=days[0] if days else None,
            last_day=days[-1] if days else None,
            failed_steps=sum(1 for s in steps if s.status == "failed"),
            message=head[5],
            days=len(days),
            days_built=len(
                {s.day for s in steps if s.step == "build" and s.status in ("succeeded", "warning")}
            ),
        )
        changes = [
            ChangeRow(c[0], int(c[1]), int(c[2]), int(c[3]), int(c[4]))
            for c in self._rows("run_changes_of", {"run_id": rid})
        ]
        alerts = [AlertRow(*a[1:]) for a in self._rows("run_alerts_of", {"run_id": rid})]
        verdicts = [d for d in self.days(days[0], days[-1]) if d.day in set(days)] if days else []
        return RunDetail(run, steps, checks, rerun_commands(run, steps), changes, alerts, verdicts)


def rerun_commands(run: RunRow, steps: Sequence[StepRow]) -> list[str]:
    """What to type to finish what ``run`` left undone: per day, from its first failed step on."""
    first_failed: dict[date, str] = {}
    for s in steps:
        if s.status != "failed":
            continue
        known = first_failed.get(s.day)
        if known is None or _ORDER.get(s.step, 9) < _ORDER.get(known, 9):
            first_failed[s.day] = s.step
    commands = [
        rerun_hint("rerun", day, from_step=step) if step in _ORDER else rerun_hint("run", day)
        for day, step in sorted(first_failed.items())
    ]
    if not commands and run.status in ("failed", "interrupted"):
        commands.append(rerun_hint("verbatim", verbatim=run.command))
    return commands


def _run_row(r: tuple[Any, ...]) -> RunRow:
    return RunRow(
        run_id=str(r[0]),
        command=str(r[1]),
        status=str(r[2]),
        started_at=r[3],
        finished_at=r[4],
        duration_s=_seconds(r[3], r[4]),
        message=r[5],
        failed_steps=int(r[6] or 0) if len(r) > 6 else 0,
        first_day=r[7] if len(r) > 7 else None,
        last_day=r[8] if len(r) > 8 else None,
        days=int(r[9] or 0) if len(r) > 9 else 0,
        days_built=int(r[10] or 0) if len(r) > 10 else 0,
    )


def _check(r: tuple[Any, ...]) -> CheckRow:
    return CheckRow(r[0], str(r[1]), str(r[2]), bool(r[3]), _float(r[4]), _float(r[5]), r[6], r[7])


def _day_status(
    r: tuple[Any, ...], checks: list[CheckRow], attempts: list[Attempt], to_build: bool
) -> DayStatus:
    (day, crm_status, crm_rows, crm_rejected, usage_status, usage_records, quarantined, build_status) = r[:8]
    build_rows, churn, _built_at, last_error = r[8:12]
    if to_build and build_status in ("built", None):
        build_status = "stale" if build_status == "built" else "not built"
    by_step = {a.step: a for a in attempts}
    failed = sorted(
        (a for a in attempts if a.status in ("failed", "interrupted")), key=lambda a: _ORDER.get(a.step, 9)
    )
    running = any(a.status == "running" for a in attempts)
    facts = v.DayFacts(
        crm_status=crm_status,
        crm_rejected=int(crm_rejected or 0),
        usage_status=usage_status,
        usage_quarantined=int(quarantined or 0),
        build_status=build_status,
        check_statuses=tuple(c.status for c in checks),
        attempt_failed_step=failed[0].step if failed else None,
        attempt_failed_status=failed[0].status if failed else None,
        running=running,
    )
    verdict = v.day_verdict(facts)
    latest = max(attempts, key=lambda a: a.started_at, default=None)
    mine = [a for a in attempts if latest is not None and a.run_id == latest.run_id]
    seconds = [a.seconds for a in mine]
    build = by_step.get("build")
    return DayStatus(
        day=day,
        verdict=verdict,
        note=_note(verdict, facts, checks, failed, build, last_error),
        crm_status=crm_status,
        crm_rows=_int(crm_rows),
        crm_rejected=_int(crm_rejected),
        usage_status=usage_status,
        usage_records=_int(usage_records),
        usage_quarantined=_int(quarantined),
        build_status=build_status,
        build_rows=_int(build_rows),
        churn_risk=_int(churn),
        last_error=last_error,
        parts=v.part_levels(facts),
        checks=tuple(checks),
        failed_step=failed[0].step if failed else None,
        last_run_id=latest.run_id if latest else None,
        last_run_at=min((a.started_at for a in mine), default=None),
        steps_s=None
        if not seconds or None in seconds
        else round(sum(s for s in seconds if s is not None), 3),
        data_run_id=build.done_run_id if build is not None else None,
    )


def _note(
    verdict: v.Verdict,
    f: v.DayFacts,
    checks: Iterable[CheckRow],
    failed: list[Attempt],
    build: Attempt | None,
    last_error: str | None,
) -> str:
    """One sentence: why the day has its verdict (the strip's tooltip, the status table's note)."""
    bad = [f"{c.check}:{c.status}" for c in checks if c.status != "pass"]
    first = failed[0] if failed else None
    why = (
        f"{'interrupted' if first.status == 'interrupted' else 'failed'} at {first.step}"
        + f" in run {first.run_id}"
        + (f": {_one_line(first.message)}" if first.message else "")
        if first is not None
        else ""
    )
    if verdict == v.ATTEMPT_FAILED:
        source = (
            f"data from run {build.done_run_id}"
            if build and build.done_run_id
            else "data from an earlier run"
        )
        return f"{source}; the last attempt {why}"
    if verdict == v.FAILED:
        if why:
            return why
        if bad:
            return "failed: checks " + ", ".join(bad)
        return "failed: " + _one_line(
            last_error or f"CRM {f.crm_status}, usage {f.usage_status}, build {f.build_status}"
        )
    if verdict == v.LOST:
        return "lost: the API no longer serves the day (outside its retention)"
    if verdict == v.PENDING:
        if f.running:
            return "running now"
        if f.usage_status == "pending":
            return "pending: the API's day is not final yet; the next run fetches it again"
        if f.build_status in ("stale", "not built"):
            return f"{f.build_status}: the next run builds it"
        if why:
            return f"pending: {why}; the next run resumes it"
        return "pending: the next run takes it on"
    parts = []
    if bad:
        parts.append("checks " + ", ".join(bad))
    if f.crm_rejected:
        parts.append(f"{f.crm_rejected} CRM row{'s' if f.crm_rejected != 1 else ''} rejected")
    if f.usage_quarantined:
        parts.append(
            f"{f.usage_quarantined} usage record{'s' if f.usage_quarantined != 1 else ''} quarantined"
        )
    built_by = f"built by run {build.done_run_id}" if build and build.done_run_id else "built"
    if verdict == v.WARNING:
        return "warning: " + ("; ".join(parts) or _one_line(last_error or "see the day's checks"))
    if verdict == v.OK:
        return f"ok: {built_by}, every check passed" if checks else f"ok: {built_by}"
    return v.LOOK[verdict].meaning
