"""The ``runs`` command's read model and output: the run history and one run's detail.

Reads ``ops.runs``, ``ops.run_steps`` and ``ops.quality_results`` through the named queries of
``sql/runs.sql`` over a read-only warehouse connection (nothing is created or migrated). Output is a
:mod:`rich` table for people, or JSON (``--json``) for machines; both carry the same facts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import ConfigError
from .run.vocab import rerun_hint
from .warehouse import Warehouse

__all__ = [
    "RunDetail",
    "RunRow",
    "StepRow",
    "load_run",
    "recent_runs",
    "render_run",
    "render_runs",
    "to_json",
]

#: the statuses ``runs --status`` accepts (``ops.runs.status``)
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
#: the order of the master pipeline's steps
_STEP_ORDER = {"ingest_crm": 0, "ingest_usage": 1, "build": 2}
_CHECK_STATUS = {"pass": "succeeded", "warn": "warning", "fail": "failed"}
_STYLE = {
    "succeeded": "green",
    "warning": "yellow",
    "pending": "cyan",
    "running": "cyan",
    "skipped": "dim",
    "failed": "bold red",
    "interrupted": "bold magenta",
}


@dataclass(frozen=True)
class RunRow:
    run_id: str
    command: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    first_day: date | None
    last_day: date | None
    failed_steps: int
    message: str | None


@dataclass(frozen=True)
class StepRow:
    step: str
    day: date
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows_loaded: int | None
    rows_rejected: int | None
    message: str | None


@dataclass(frozen=True)
class CheckRow:
    day: date
    check: str
    status: str
    blocking: bool
    observed: float | None
    threshold: float | None
    details: str | None


@dataclass(frozen=True)
class ChangeRow:
    """What a run's build did to one day's rows of the analytics table."""

    day: date
    inserted: int
    updated: int
    unchanged: int
    deleted: int


@dataclass(frozen=True)
class AlertRow:
    severity: str
    title: str
    day: date | None
    step: str | None
    message: str
    rerun: str | None


@dataclass(frozen=True)
class RunDetail:
    run: RunRow
    steps: list[StepRow] = field(default_factory=list)
    checks: list[CheckRow] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


# -- reading ------------------------------------------------------------------------------------------
def recent_runs(wh: Warehouse, *, limit: int = 20, status: str | None = None) -> list[RunRow]:
    """The newest ``limit`` runs, optionally only those with ``status``."""
    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"--status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    rows = wh.run("runs.sql", "runs_recent", {"status": status, "row_limit": limit})
    return [
        RunRow(
            run_id=r[0],
            command=r[1],
            started_at=r[2],
            finished_at=r[3],
            status=r[4],
            message=r[5],
            failed_steps=int(r[6] or 0),
            first_day=r[7],
            last_day=r[8],
            duration_s=_seconds(r[2], r[3]),
        )
        for r in rows
    ]


def count_runs(wh: Warehouse) -> int:
    return int(wh.scalar("runs.sql", "runs_count") or 0)


def load_run(wh: Warehouse, run_id: str) -> RunDetail:
    """One run with its steps, checks and the commands that re-run what failed.

    ``run_id`` may be a unique prefix of the id. An unknown id is a ConfigError (exit 2) naming it.
    """
    found = wh.run("runs.sql", "run_one", {"run_id": run_id})
    if not found:
        like = run_id.replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        matches = [r[0] for r in wh.run("runs.sql", "run_ids_like", {"pattern": like})]
        if len(matches) == 1:
            return load_run(wh, matches[0])
        hint = f"; it matches {', '.join(matches)}" if matches else "; `company-activity runs` lists them"
        raise ConfigError(f"no run {run_id!r}{hint}")
    r = found[0]
    steps = [
        StepRow(
            step=s[0],
            day=s[1],
            status=s[2],
            started_at=s[3],
            finished_at=s[4],
            duration_s=_seconds(s[3], s[4]),
            rows_loaded=s[5],
            rows_rejected=s[6],
            message=s[7],
        )
        for s in wh.run("runs.sql", "run_steps_of", {"run_id": r[0]})
    ]
    steps.sort(key=lambda s: (s.day, _STEP_ORDER.get(s.step, 9), s.started_at))
    checks = [
        CheckRow(
            day=c[0],
            check=c[1],
            status=c[2],
            blocking=bool(c[3]),
            observed=None if c[4] is None else float(c[4]),
            threshold=None if c[5] is None else float(c[5]),
            details=c[6],
        )
        for c in wh.run("runs.sql", "run_checks_of", {"run_id": r[0]})
    ]
    run = RunRow(
        run_id=r[0],
        command=r[1],
        started_at=r[2],
        finished_at=r[3],
        status=r[4],
        message=r[5],
        failed_steps=sum(1 for s in steps if s.status == "failed"),
        first_day=min((s.day for s in steps), default=None),
        last_day=max((s.day for s in steps), default=None),
        duration_s=_seconds(r[2], r[3]),
    )
    changes = [
        ChangeRow(c[0], int(c[1]), int(c[2]), int(c[3]), int(c[4]))
        for c in wh.run("runs.sql", "run_changes_of", {"run_id": r[0]})
    ]
    alerts = [AlertRow(*a[1:]) for a in wh.run("runs.sql", "run_alerts_of", {"run_id": r[0]})]
    return RunDetail(
        run=run,
        steps=steps,
        checks=checks,
        rerun=rerun_commands(run, steps),
        changes=changes,
        alerts=alerts,
    )


def rerun_commands(run: RunRow, steps: Sequence[StepRow]) -> list[str]:
    """What to type to finish what ``run`` left undone: per day, from its first failed step on."""
    first_failed: dict[date, str] = {}
    for s in steps:
        if s.status != "failed":
            continue
        known = first_failed.get(s.day)
        if known is None or _STEP_ORDER.get(s.step, 9) < _STEP_ORDER.get(known, 9):
            first_failed[s.day] = s.step
    commands = [
        rerun_hint("rerun", day, from_step=step) if step in _STEP_ORDER else rerun_hint("run", day)
        for day, step in sorted(first_failed.items())
    ]
    if not commands and run.status in ("failed", "interrupted"):
        commands.append(rerun_hint("verbatim", verbatim=run.command))
    return commands


# -- output -------------------------------------------------------------------------------------------
def _fmt_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _days(first: date | None, last: date | None) -> str:
    if first is None or last is None:
        return ""
    return first.isoformat() if first == last else f"{first.isoformat()} … {last.isoformat()}"


def _status(value: str) -> Text:
    return Text(value, style=_STYLE.get(value, ""))


def render_runs(console: Console, runs: Sequence[RunRow]) -> None:
    table = Table(title=None, show_edge=False, pad_edge=False, expand=False)
    table.add_column("run id", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("command (days)", overflow="fold", ratio=1)
    for r in runs:
        status = _status(r.status)
        if r.failed_steps:
            status.append(f" ({r.failed_steps} step(s))", style="red")
        days = _days(r.first_day, r.last_day)
        table.add_row(
            r.run_id,
            _fmt_duration(r.duration_s),
            status,
            Text(r.command + (f" ({days})" if days and days not in r.command else "")),
        )
    console.print(table)


def render_run(console: Console, detail: RunDetail) -> None:
    run = detail.run
    console.print(Text.assemble(("run ", "bold"), (run.run_id, "bold"), "  ", _status(run.status)))
    console.print(Text(f"command:  company-activity {run.command}"))
    console.print(
        Text(
            f"started:  {_fmt_time(run.started_at)} UTC   finished: {_fmt_time(run.finished_at) or '—'}"
            f"   took: {_fmt_duration(run.duration_s)}"
        )
    )
    if run.message:
        console.print(Text(f"summary:  {run.message}"))
    if detail.steps:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("day", min_width=10, overflow="fold")
        table.add_column("step", min_width=5, overflow="fold")
        table.add_column("status", min_width=6, overflow="fold")
        table.add_column("took", justify="right", overflow="fold")
        table.add_column("rows", justify="right", overflow="fold")
        table.add_column("rejected", justify="right", overflow="fold")
        table.add_column("message", overflow="fold")
        for s in detail.steps:
            table.add_row(
                s.day.isoformat(),
                s.step,
                _status(s.status),
                _fmt_duration(s.duration_s),
                "" if s.rows_loaded is None else str(s.rows_loaded),
                "" if s.rows_rejected is None else str(s.rows_rejected),
                Text(s.message or ""),
            )
        console.print()
        console.print(table)
    else:
        console.print("no steps recorded")
    if detail.changes:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("built day", min_width=10, overflow="fold")
        for name in ("inserted", "updated", "unchanged", "deleted"):
            table.add_column(name, justify="right", overflow="fold")
        for ch in detail.changes:
            table.add_row(
                ch.day.isoformat(), str(ch.inserted), str(ch.updated), str(ch.unchanged), str(ch.deleted)
            )
        console.print()
        console.print(table)
    if detail.alerts:
        console.print()
        console.print(f"alerts: {len(detail.alerts)}")
        for a in detail.alerts:
            where = " ".join(x for x in (a.day.isoformat() if a.day else "", a.step or "") if x)
            line = (
                f"  {a.severity.upper():<7} {a.title}" + (f" ({where})" if where else "") + f": {a.message}"
            )
            console.print(Text(line))
    passed = [c for c in detail.checks if c.status == "pass"]
    shown = [c for c in detail.checks if c.status != "pass"]
    if detail.checks:
        console.print()
        console.print(
            f"checks: {len(passed)} passed, {len(shown)} warned or failed"
            + (" (`--json` lists every check)" if passed else "")
        )
    if shown:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("day", min_width=10, overflow="fold")
        table.add_column("check", overflow="fold")
        table.add_column("result", overflow="fold")
        table.add_column("details", overflow="fold")
        for c in shown:
            label = c.status + (" (blocking)" if c.blocking and c.status == "fail" else "")
            result = Text(label, style=_STYLE.get(_CHECK_STATUS.get(c.status, ""), ""))
            table.add_row(c.day.isoformat(), c.check, result, Text(c.details or ""))
        console.print(table)
    if detail.rerun:
        console.print()
        console.print("to re-run what failed:")
        for command in detail.rerun:
            console.print(Text(f"  {command}"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def to_json(value: RunDetail | Sequence[RunRow]) -> str:
    data = asdict(value) if isinstance(value, RunDetail) else [asdict(r) for r in value]
    return json.dumps(data, default=_jsonable, indent=2, ensure_ascii=False)
