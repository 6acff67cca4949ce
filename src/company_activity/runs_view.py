"""The ``runs`` command's output: the run history and one run's detail.

The facts come from the run-state read model (:class:`~.state.read_model.RunStateReader`: ``recent_runs``,
``run``) over a read-only warehouse connection. Output is a :mod:`rich` table for people, or JSON
(``--json``) for machines; both carry the same facts, and a day's verdict in the words of ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .state.rows import AlertRow, ChangeRow, CheckRow, RunDetail, RunRow, StepRow
from .state.verdict import LOOK, Verdict

__all__ = [
    "AlertRow",
    "ChangeRow",
    "CheckRow",
    "RunDetail",
    "RunRow",
    "StepRow",
    "render_run",
    "render_runs",
    "to_json",
]

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

#: a verdict's rich style, from its terminal look (colour, bold, dim)
_VERDICT_STYLE: dict[Verdict, str] = {
    k: " ".join(
        [str(dict(look.style).get("fg", ""))] + [n for n in ("bold", "dim") if dict(look.style).get(n)]
    ).strip()
    for k, look in LOOK.items()
}


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
    table.add_column("days", justify="right", no_wrap=True)
    table.add_column("built", justify="right", no_wrap=True)
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
            str(r.days),
            str(r.days_built),
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
    console.print(Text(f"days:     worked on {run.days}, built {run.days_built}"))
    if detail.days:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("day", min_width=10, overflow="fold")
        table.add_column("verdict now", overflow="fold")
        table.add_column("why", overflow="fold")
        for d in detail.days:
            look = LOOK[d.verdict]
            table.add_row(
                d.day.isoformat(),
                Text(f"{look.glyph} {d.verdict}", style=_VERDICT_STYLE[d.verdict]),
                Text(d.note),
            )
        console.print()
        console.print(table)
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
