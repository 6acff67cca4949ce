"""HTML rendering shared by the served pages and the one-file report (Jinja2, autoescaped).

Also what every page says the same way: the field labels (:data:`LABELS`, the ``label`` filter), a day's
verdict as shown (word, glyph, colour from :data:`~company_activity.state.verdict.LOOK`) and the health
strip (:func:`strip`: one cell per day, weeks as columns, weekdays as rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup

from ..state.verdict import LOOK, ORDER, Verdict, status_level


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` package (never a CDN)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def static_path(name: str) -> Path:
    return Path(str(resources.files(__package__).joinpath("static", name)))


def _segment(value: Any) -> str:
    return quote(str(value), safe="")


def _query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"
    return str(value)


def sparkline(values: list[int | None], width: int = 90, height: int = 18) -> str:
    """A tiny inline SVG of a series (None: a gap); numbers only, so nothing to escape."""
    known = [v for v in values if v is not None]
    top = max(known) if known and max(known) > 0 else 1
    step = width / max(1, len(values) - 1)
    points: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            points.append([])
            continue
        points[-1].append(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{" ".join(p)}"/>'
        for p in points
        if p
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{lines}</svg>'
    )


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("company_activity.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seg"] = _segment
    env.filters["num"] = _number
    env.filters["label"] = label
    env.filters["verdict"] = verdict_of
    env.globals["query"] = _query
    env.globals["sparkline"] = sparkline
    env.globals["strip"] = strip
    env.globals["verdict_css"] = verdict_css
    env.globals["verdicts"] = [(v, LOOK[v], slug(v)) for v in ORDER]
    env.globals["slug"] = slug
    env.globals["look"] = LOOK
    env.globals["summary"] = summary
    env.globals["note"] = note_of
    env.globals["weekday"] = lambda day: WEEKDAYS[date.fromisoformat(day).weekday()]
    return env


def render(template: str, **context: Any) -> str:
    """A page; ``context['inline']`` True embeds plotly.js, the app's script and style (the report).

    ``context['today']``: the day the strip marks as today (default: today in UTC)."""
    context.setdefault("inline", False)
    context.setdefault("base", "")
    context.setdefault("today", utc_today())
    if context["inline"]:
        plotly = Path(context.pop("plotly_js", None) or plotly_js_path())  # the report: a partial bundle
        context["inline_assets"] = {
            "plotly": plotly.read_text(encoding="utf-8").replace("</script", "<\\/script"),
            "js": static_path("app.js").read_text(encoding="utf-8"),
            "css": static_path("app.css").read_text(encoding="utf-8"),
        }
    return environment().get_template(template).render(**context)


# -- field labels --------------------------------------------------------------------------------------------
#: what a page calls each field (a column of ``ops.*``, the analytics table or an API key): words, not names
LABELS: dict[str, str] = {
    # a day's parts (the day page, the /days index)
    "status": "Status",
    "crm": "CRM snapshot",
    "usage": "Usage",
    "build": "Build",
    "verdict": "Verdict",
    "verdict_note": "Why",
    "rows": "Rows built",
    "records": "Records loaded",
    "active_companies": "Active companies",
    "churn_risk": "Churn-risk companies",
    "error": "Last error",
    "published": "In the table",
    "last_run_id": "Last run",
    "data_run_id": "Data from run",
    "glyph": "Glyph",
    # ops.crm_snapshots
    "row_count": "Rows",
    "rejected_count": "Rows rejected",
    "rejected": "Rows rejected",
    "duplicate_count": "Duplicate rows",
    "duplicates": "Duplicate rows",
    "extra_columns": "Extra columns",
    "source_file": "Source file",
    "loaded_at": "Loaded at (UTC)",
    "updated_at": "Updated at (UTC)",
    "last_error": "Last error",
    # ops.usage_days
    "raw_run_id": "Raw landing (run)",
    "record_count": "Records loaded",
    "page_count": "API pages",
    "pages": "API pages",
    "quarantined": "Records quarantined",
    "schema_drift": "Schema drift",
    "completed_at": "Completed at (UTC)",
    # ops.build_days
    "churn_risk_count": "Churn-risk companies",
    "missing_crm_count": "Companies not in the CRM",
    "missing_crm": "Companies not in the CRM",
    "crm_snapshot_date": "CRM snapshot used",
    "built_at": "Built at (UTC)",
    # steps and checks
    "run_id": "Run",
    "step": "Step",
    "started_at": "Started (UTC)",
    "finished_at": "Finished (UTC)",
    "rows_loaded": "Rows loaded",
    "rows_rejected": "Rows rejected",
    "message": "Message",
    "check_name": "Check",
    "check": "Check",
    "day": "Day",
    "command": "Command",
    "blocking": "Blocking",
    "observed": "Observed",
    "threshold": "Threshold",
    "details": "Details",
    "checked_at": "Checked at (UTC)",
    # the analytics table and its marts
    "company_id": "Company id",
    "company_name": "Name",
    "country": "Country",
    "industry_tag": "Industry",
    "last_contact_at": "Last contact (UTC)",
    "active_users": "Active users",
    "events": "Events",
    "7d_active_users": "Active users (7-day sum)",
    "active_users_7d": "Active users (7-day sum)",
    "is_churn_risk": "Churn risk",
    "days_since_usage": "Days since usage",
}


#: where a name means something else in one part of a day (the day page's cards: crm, usage, build)
LABELS_IN: dict[str, dict[str, str]] = {
    "crm": {"rows": "Rows loaded", "row_count": "Rows loaded"},
    "usage": {"pages": "API pages"},
    "build": {"rows": "Rows built", "row_count": "Rows built"},
}


def label(name: Any, section: str | None = None) -> str:
    """The words for field ``name`` (in ``section``, when it means something else there); an unknown name
    in words all the same (``rows_x`` -> ``Rows x``)."""
    text = str(name)
    if section and text in LABELS_IN.get(section, {}):
        return LABELS_IN[section][text]
    if text in LABELS:
        return LABELS[text]
    words = text.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


# -- a day's verdict as shown --------------------------------------------------------------------------------
#: the calendar's former ``health`` words (and the overview's day ``status``), until every source says verdict
_HEALTH: dict[str, Verdict] = {
    "built": "ok",
    "partial": "pending",  # loaded, not built yet: the next run builds it
    "pending": "pending",
    "failed": "failed",
    "missing": "no data",
}


def verdict_of(day: dict[str, Any]) -> Verdict:
    """The verdict of a calendar (or overview) entry: its ``verdict``, else what its ``health`` word says."""
    given = day.get("verdict")
    if given in LOOK:
        return given  # type: ignore[no-any-return]
    old = day.get("health", day.get("status"))
    if old in LOOK:
        return old  # type: ignore[no-any-return]
    if old in _HEALTH:
        return _HEALTH[old]
    return status_level(old)


def note_of(day: dict[str, Any]) -> str:
    """Why the day has its verdict (``verdict_note``; the former ``error`` until then); may be empty."""
    return str(day.get("verdict_note") or day.get("error") or "")


#: the columns of the /days index, those that the calendar's entries have, in this order
DAY_PARTS = ("crm", "usage", "build")
DAY_COUNTS = ("records", "active_companies", "rows", "churn_risk")


def day_columns(days: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The parts (status words) and the counts that the entries of ``days`` carry."""
    have = {k for d in days for k in d}
    return [k for k in DAY_PARTS if k in have], [k for k in DAY_COUNTS if k in have]


def slug(verdict: str) -> str:
    """The CSS class of a verdict: ``last attempt failed`` -> ``v-last-attempt-failed``."""
    return "v-" + verdict.replace(" ", "-")


def _luminance(css: str) -> float:
    channels = [int(css[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colour(css: str) -> str:
    """White or near-black, whichever contrasts more with the background ``css`` (#rrggbb)."""
    lum = _luminance(css)
    dark = _luminance("#1d1d1f")
    return "#ffffff" if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / (dark + 0.05)) else "#1d1d1f"


@cache
def verdict_css() -> Markup:
    """One CSS rule per verdict (background and text colour) from ``LOOK``: the strip, the legend, /days."""
    rules = [f".{slug(v)}{{background:{LOOK[v].css};color:{text_colour(LOOK[v].css)}}}" for v in ORDER]
    return Markup("\n".join(rules))


def utc_today() -> date:
    return datetime.now(UTC).date()


def summary(days: list[dict[str, Any]]) -> str:
    """``14 days: 12 ok, 1 warning, 1 no data`` (worst first, the verdicts that occur)."""
    counts = {v: 0 for v in ORDER}
    for d in days:
        counts[verdict_of(d)] += 1
    parts = [f"{n} {v}" for v, n in counts.items() if n]
    return f"{len(days)} day{'' if len(days) == 1 else 's'}" + (": " + ", ".join(parts) if parts else "")


# -- the health strip ----------------------------------------------------------------------------------------
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Cell:
    """One day of the strip; ``verdict`` is None for the days of a week outside the range shown."""

    day: str
    verdict: Verdict | None
    title: str
    today: bool
    number: int
    glyph: str = ""
    css_class: str = ""


@dataclass(frozen=True)
class Month:
    label: str
    year: int | None  # shown on the first label and on each January
    span: int  # week columns


@dataclass(frozen=True)
class Strip:
    rows: list[tuple[str, list[Cell]]]  # (weekday label, one cell per week column)
    months: list[Month]
    today: str
    today_shown: bool
    summary: str


def day_title(day: str, verdict: str, note: str = "") -> str:
    """``2026-11-28 (Sat): last attempt failed — data from run …``: the tooltip of a day, everywhere."""
    weekday = WEEKDAYS[date.fromisoformat(day).weekday()]
    return f"{day} ({weekday}): {verdict}" + (f" — {note}" if note else "")


def strip(days: list[dict[str, Any]], today: date | None = None) -> Strip:
    """The strip of ``days`` (calendar entries, oldest first): Monday-to-Sunday columns, a label per month
    (over the weeks whose last day shown is in it; the year on the first label and on each January)."""
    today = today or utc_today()
    if not days:
        return Strip([(w, []) for w in WEEKDAYS], [], today.isoformat(), False, summary(days))
    by_day = {d["day"]: d for d in days}
    first, last = date.fromisoformat(days[0]["day"]), date.fromisoformat(days[-1]["day"])
    monday = first - timedelta(days=first.weekday())
    weeks = (last - monday).days // 7 + 1
    columns: list[list[Cell]] = []
    for w in range(weeks):
        column = []
        for k in range(7):
            day = monday + timedelta(days=7 * w + k)
            iso, is_today = day.isoformat(), day == today
            entry = by_day.get(iso)
            mark = " (today, UTC)" if is_today else ""
            if entry is None:
                title = f"{iso} ({WEEKDAYS[k]}){mark}: outside the range shown"
                column.append(Cell(iso, None, title, is_today, day.day, "", "outside"))
                continue
            verdict = verdict_of(entry)
            title = day_title(iso, verdict, note_of(entry))
            if is_today:
                title = title.replace(f"({WEEKDAYS[k]})", f"({WEEKDAYS[k]}, today UTC)", 1)
            column.append(Cell(iso, verdict, title, is_today, day.day, LOOK[verdict].glyph, slug(verdict)))
        columns.append(column)
    months: list[Month] = []
    for column in columns:
        # a week's month is that of its last day shown: a label starts over the week holding the 1st
        shown = [c for c in column if c.verdict is not None]  # every column has a day of the range
        start = date.fromisoformat(shown[-1].day)
        name = MONTHS[start.month - 1]
        if months and months[-1].label == name:
            months[-1] = Month(name, months[-1].year, months[-1].span + 1)
        else:
            months.append(Month(name, start.year if not months or start.month == 1 else None, 1))
    rows = [(WEEKDAYS[k], [column[k] for column in columns]) for k in range(7)]
    in_grid = monday <= today < monday + timedelta(days=7 * weeks)
    return Strip(rows, months, today.isoformat(), in_grid, summary(days))
