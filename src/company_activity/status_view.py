"""The ``status`` command's output: a calendar and a per-day table for the terminal, or JSON for machines.

Input: the list of dicts :meth:`company_activity.pipeline.Pipeline.status` returns (one per day, keys
``day, crm_status, crm_rows, crm_rejected, usage_status, usage_records, build_status, build_rows,
churn_risk, last_error, checks``; ``checks`` is ``"ok"`` or ``"name:status, …"``). Missing keys are
treated as unknown. Colours come from ``click.style``; ``click.echo`` drops them when not on a terminal.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click

from .run.vocab import command_head
from .state import verdict
from .state.rows import DayDetail
from .state.verdict import Verdict

Level = Verdict
_RANK = verdict.RANK
_SYMBOL: dict[Level, tuple[str, str]] = {k: (look.glyph, look.ascii) for k, look in verdict.LOOK.items()}
_COLOUR: dict[Level, dict[str, Any]] = {k: dict(look.style) for k, look in verdict.LOOK.items()}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def status_level(status: object) -> Level:
    """The display level of one status word (``None`` → ``"no data"``; unknown words → ``"warning"``)."""
    return verdict.status_level(status)


def checks_level(checks: object) -> Level:
    """``"ok"``/empty → ok; any ``name:fail`` → failed; any ``name:warn`` → warning."""
    text = str(checks or "").strip()
    if not text or text == "ok":
        return "ok" if text == "ok" else "no data"
    return verdict.worst(verdict.status_level(part.rsplit(":", 1)[-1].strip()) for part in text.split(","))


def _facts(row: Mapping[str, Any]) -> verdict.DayFacts:
    checks = str(row.get("checks") or "")
    statuses = () if checks in ("", "ok") else tuple(c.rsplit(":", 1)[-1].strip() for c in checks.split(","))
    return verdict.DayFacts(
        crm_status=row.get("crm_status"),
        crm_rejected=int(row.get("crm_rejected") or 0),
        usage_status=row.get("usage_status"),
        usage_quarantined=int(row.get("usage_quarantined") or 0),
        build_status=row.get("build_status"),
        check_statuses=statuses + (("pass",) if checks == "ok" else ()),
        attempt_failed_step=row.get("failed_step"),
        attempt_failed_status="failed" if row.get("failed_step") else None,
    )


def step_levels(row: Mapping[str, Any]) -> dict[str, Level]:
    """Per column of a status row: crm, usage, build, checks (the read model's, else from the row)."""
    parts = row.get("parts")
    if isinstance(parts, Mapping) and parts:
        return {k: parts[k] for k in ("crm", "usage", "build", "checks") if k in parts}
    return verdict.part_levels(_facts(row))


def day_level(row: Mapping[str, Any]) -> Level:
    """The day's verdict: the read model's (:mod:`company_activity.state.verdict`), else from the row."""
    given = row.get("verdict")
    if given in verdict.RANK:
        return given  # type: ignore[no-any-return]
    return verdict.day_verdict(_facts(row))


_NAMED: tuple[tuple[Level, str], ...] = tuple(
    (level, level)
    for level in ("ok", "warning", "last attempt failed", "pending", "failed", "lost", "no data")
)
# day + its level, then crm(status rows)  usage(status records)  build(status rows churn)  [last run]
_HEAD = (
    f"{'day':<12}  {'crm':<9} {'rows':>7}  {'usage':<10} {'records':>8}  {'build':<8} {'rows':>7} "
    f"{'churn':>5}"
)
_RUN_HEAD = f"  {'last run (UTC)':<14} {'steps':>7}"
_INDENT = " " * 14
#: wrapped note lines shown per day at most; the rest is for `status --day D`
NOTE_LINES = 3


def render_calendar(
    rows: Sequence[Mapping[str, Any]],
    *,
    width: int = 100,
    start: date | None = None,
    end: date | None = None,
    color: bool = True,
    unicode: bool = True,
) -> str:
    """The days as a week calendar (one symbol per day: its worst step), then a table, newest day first.

    Each table line: the day; per step (crm, usage, build) a symbol and its status with row counts; the
    churn-risk count; then the failed/warning checks, rejected CRM rows and the last error, truncated to
    ``width`` (on a terminal narrower than the table they go on a line of their own). ``start``/``end``
    widen the calendar to the whole window asked for (days without a row show as "no data"); by default
    it spans the rows' days. ``color=False`` gives plain text; ``unicode=False`` ASCII symbols only.
    """
    by_day = {_as_date(r.get("day")): r for r in rows if r.get("day") is not None}
    if not by_day and (start is None or end is None):
        return "no runs recorded yet\n"
    first = start or min(by_day)
    last = end or max(by_day)
    if last < first:
        first, last = last, first
    ell = "…" if unicode else "..."

    def sym(level: Level, text: str | None = None) -> str:
        s = _SYMBOL[level][0 if unicode else 1] if text is None else text
        return click.style(s, **_COLOUR[level]) if color else s

    shown = sorted((d for d in by_day if first <= d <= last), reverse=True)
    total = (last - first).days + 1
    counts: dict[Level, int] = dict.fromkeys(_RANK, 0)
    for d in shown:
        counts[day_level(by_day[d])] += 1
    counts["no data"] += total - len(shown)
    summary = ", ".join(f"{counts[level]} {name}" for level, name in _NAMED if counts[level])
    out = [
        f"company-activity status {first.isoformat()} {'…' if unicode else '-'} {last.isoformat()}",
        f"{total} day{'s' if total != 1 else ''}: {summary}",
        "",
    ]

    # -- the calendar: one line per ISO week, Monday first -------------------------------------------------
    out.append(" " * 9 + "".join(f"{w:>5}" for w in _WEEKDAYS))
    monday = first - timedelta(days=first.weekday())
    while monday <= last:
        iso = monday.isocalendar()
        cells = []
        for k in range(7):
            d = monday + timedelta(days=k)
            if not first <= d <= last:
                cells.append("     ")
                continue
            level = day_level(by_day[d]) if d in by_day else "no data"
            cells.append(f"{d.day:>4}" + sym(level))
        out.append(f"{iso.year}-W{iso.week:02d}" + "".join(cells).rstrip())
        monday += timedelta(days=7)
    out.append("  ".join(f"{sym(level)} {name}" for level, name in _NAMED))
    out.append("")

    # -- the table: each day's steps, then what made it fail or warn, wrapped ------------------------------
    with_run = width <= 0 or width >= len(_HEAD) + len(_RUN_HEAD)
    out.append(_HEAD + (_RUN_HEAD if with_run else ""))
    for d in shown:
        r = by_day[d]
        lv = step_levels(r)
        level = day_level(r)
        line = (
            f"{d.isoformat():<10} {sym(level)}  "
            f"{sym(lv['crm'])} {sym(lv['crm'], _cell(r.get('crm_status'), 7, ell))} "
            f"{_n(r.get('crm_rows')):>7}  "
            f"{sym(lv['usage'])} {sym(lv['usage'], _cell(r.get('usage_status'), 8, ell))} "
            f"{_n(r.get('usage_records')):>8}  "
            f"{sym(lv['build'])} {sym(lv['build'], _cell(r.get('build_status'), 6, ell))} "
            f"{_n(r.get('build_rows')):>7} {_n(r.get('churn_risk')):>5}"
        )
        run = _last_run(r)
        if with_run and run:
            line += "  " + run
        out.append(line.rstrip())
        notes = _notes(r)
        if not with_run and run:
            notes = (notes + "; " if notes else "") + "last run " + " ".join(run.split())
        if notes:
            out.extend(_wrapped(notes, d, width, lambda text, lvl=level: sym(lvl, text), ell))
    return "\n".join(out) + "\n"


def _wrapped(notes: str, day: date, width: int, style: Any, ell: str) -> list[str]:
    """``notes`` under the day's line, wrapped to ``width``; past NOTE_LINES lines, a pointer to --day."""
    room = max((width if width > 0 else 100) - len(_INDENT), 20)
    lines = textwrap.wrap(notes, room, break_long_words=True, break_on_hyphens=False)
    if len(lines) > NOTE_LINES:
        more = f"{ell} ({command_head()} status --day {day.isoformat()})"
        lines = lines[:NOTE_LINES]
        lines[-1] = _truncate(lines[-1], max(room - len(more) - 1, 10), ell).rstrip(ell) + " " + more
    return [_INDENT + style(line) for line in lines]


def _last_run(row: Mapping[str, Any]) -> str:
    """``11-28 00:00:03    4.2s``: when the day's latest run began its steps, and the sum of their times
    (the read model's ``steps_s``; steps of several days overlap, so days do not add up to a run's time)."""
    at = row.get("last_run_at")
    if at is None:
        return ""
    when = at.strftime("%m-%d %H:%M:%S") if isinstance(at, datetime) else str(at)[5:19]
    took = row.get("steps_s")
    return f"{when:<14} {_duration(took):>7}"


def _duration(seconds: object) -> str:
    if seconds is None:
        return "running"
    value = float(str(seconds))
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON array (dates ISO, numbers as numbers), each with its ``verdict`` (the same word
    ``/api/calendar`` gives the day), ``verdict_note`` and the failed/warning checks as ``check_problems``."""
    items = []
    for r in rows:
        item = {k: _deep(v) for k, v in r.items()}
        checks = str(r.get("checks") or "")
        item["check_problems"] = [] if checks in ("", "ok") else [c.strip() for c in checks.split(",")]
        item["verdict"] = day_level(r)
        items.append(item)
    return json.dumps(items, indent=2, ensure_ascii=False)


def _notes(row: Mapping[str, Any]) -> str:
    """Why a day is not ok: the read model's note (the same sentence as the UI's tooltip), then the checks,
    rejected rows and the last error that it does not already say; empty for a day that is ok."""
    level = day_level(row)
    if level in ("ok", "no data"):
        return ""
    note = str(row.get("verdict_note") or "")
    parts = [note] if note else []
    failed = row.get("failed_step")
    if not note and failed:
        parts.append(f"failed at {failed}")
    elif not note and row.get("build_status") in ("stale", "not built"):
        parts.append(f"{row.get('build_status')}: the next run builds it")
    checks = str(row.get("checks") or "")
    if checks and checks != "ok" and checks not in note:
        parts.append("checks " + checks)
    rejected = row.get("crm_rejected") or 0
    if rejected and "CRM row" not in note:
        parts.append(f"{rejected} CRM row{'s' if rejected != 1 else ''} rejected")
    error = " ".join(str(row.get("last_error") or "").split())
    if error and error[:60] not in note:
        parts.append(error)
    return "; ".join(parts)


def _cell(status: object, width: int, ell: str) -> str:
    text = "-" if status is None or status == "" else str(status)
    return f"{_truncate(text, width, ell):<{width}}"


def _truncate(text: str, limit: int, ell: str = "…") -> str:
    return text if len(text) <= limit else text[: max(limit - len(ell), 0)] + ell


def _n(value: object) -> str:
    return "-" if value is None else str(value)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _jsonable(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# -- one day: `status --day D` ------------------------------------------------------------------------------
def render_day(detail: Mapping[str, Any]) -> str:
    """Everything run state holds about one day (:func:`company_activity.run_status.day_detail`)."""
    day = detail["day"]
    out = [f"company-activity status --day {day.isoformat()}", ""]
    if detail.get("verdict"):
        out.extend([f"verdict: {detail['verdict']} — {detail.get('verdict_note') or ''}".rstrip(" —"), ""])
    for title, part in (
        ("CRM snapshot", detail["crm"]),
        ("usage", detail["usage"]),
        ("build", detail["build"]),
    ):
        if part is None:
            out.append(f"{title}: nothing recorded")
            continue
        facts = ", ".join(f"{k.replace('_', ' ')} {_fact(v)}" for k, v in part.items() if k != "status" and v)
        out.append(f"{title}: {part['status']}" + (f" ({facts})" if facts else ""))
    checks = detail["checks"]
    out.append("")
    out.append("checks (latest result of each):" if checks else "checks: none recorded")
    for c in checks:
        blocking = " blocking" if c["blocking"] else ""
        out.append(f"  {c['status']:<5} {c['check']}{blocking}: {' '.join(str(c['details'] or '').split())}")
    steps = detail["steps"]
    out.append("")
    out.append("steps, newest first:" if steps else "steps: none recorded")
    for s in steps:
        took = (
            _duration((s["finished_at"] - s["started_at"]).total_seconds())
            if s["finished_at"] is not None
            else "running"
        )
        rows = f" rows={s['rows']}" if s["rows"] is not None else ""
        out.append(
            f"  {_fact(s['started_at'])}  {s['step']:<13} {s['status']:<11} {took:>7}{rows}  "
            f"run {s['run_id']} ({s['command']})"
        )
        if s["message"]:
            out.extend("      " + line for line in textwrap.wrap(" ".join(str(s["message"]).split()), 100))
    quarantined = detail.get("quarantined") or []
    if quarantined:
        out.append("")
        out.append(f"usage records quarantined ({len(quarantined)} shown):")
        for q in quarantined:
            out.append(f"  run {q['raw_run_id']} page {q['page']} record {q['record_index']}: {q['reason']}")
    return "\n".join(out) + "\n"


_CHECK_FIELDS = ("check", "status", "blocking", "observed", "threshold", "details", "run_id")


def detail_dict(detail: DayDetail) -> dict[str, Any]:
    """The read model's :class:`DayDetail` as the plain dict :func:`render_day` and ``--json`` show."""
    st = detail.status
    return {
        "day": st.day,
        "verdict": st.verdict,
        "verdict_note": st.note,
        "crm": detail.crm,
        "usage": detail.usage,
        "build": detail.build,
        "checks": [
            {
                k: getattr(c, k)
                for k in ("check", "status", "blocking", "observed", "threshold", "details", "run_id")
            }
            for c in detail.checks
        ],
        "steps": [
            {
                "run_id": h.run_id,
                "command": h.command,
                "step": h.step,
                "status": h.status,
                "started_at": h.started_at,
                "finished_at": h.finished_at,
                "rows": h.rows_loaded,
                "rows_rejected": h.rows_rejected,
                "message": h.message,
            }
            for h in detail.steps
        ],
        "quarantined": [asdict(q) for q in detail.quarantined],
    }


def day_json(detail: Mapping[str, Any]) -> str:
    """``status --day D --json``: the same facts as :func:`render_day`, as JSON."""
    return json.dumps(_deep(detail), indent=2, ensure_ascii=False)


def _deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep(v) for v in value]
    return _jsonable(value)


def _fact(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())
