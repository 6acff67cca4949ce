"""Plotly figures (plain dicts, drawn by plotly.js in the page) for the pages and the report.

Every axis says its unit; a day that is not built is a gap in the line (None), never a zero, and is
shaded in its verdict's colour (the health strip's) so pending, failed and lost days are visible as such.

The title sits in a row of its own below the modebar's (the modebar shows on hover, top right): the two
never overlap, whatever the title's length; the legend has the row below the title.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from ..state.verdict import LOOK
from .render import verdict_of

Figure = dict[str, Any]

#: the verdicts of days that are not built (a gap in the charts), shaded in their strip colour
_SHADED = ("failed", "lost", "pending", "no data")
_SHADE_ALPHA = {"no data": 0.35}
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_STATUS_COLOURS = {
    "succeeded": "#2e7d32",
    "warning": "#ef6c00",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "pending": "#757575",
    "running": "#1565c0",
}


#: pixels from the top of a chart: the modebar's row (0 … 30), then the title's, then the legend's
MODEBAR_ROW = 32
TOP_MARGIN = 92


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {
            "text": title,
            "font": {"size": 15},
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": MODEBAR_ROW},
        },
        "xaxis": {"title": {"text": "day (UTC)"}, "type": "date"},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "hovermode": "x unified",
        "margin": {"l": 70, "r": 20, "t": TOP_MARGIN, "b": 50},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        "height": 350,
    }
    layout.update(extra)
    return layout


def _rgba(css: str, alpha: float) -> str:
    return f"rgba({int(css[1:3], 16)},{int(css[3:5], 16)},{int(css[5:7], 16)},{alpha})"


def _not_built_shapes(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shapes = []
    for d in days:
        verdict = verdict_of(d)
        if verdict not in _SHADED:
            continue
        colour = _rgba(LOOK[verdict].css, _SHADE_ALPHA.get(verdict, 0.2))
        day = date.fromisoformat(d["day"])
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": (datetime.combine(day, datetime.min.time()) - timedelta(hours=12)).isoformat(),
                "x1": (datetime.combine(day, datetime.min.time()) + timedelta(hours=12)).isoformat(),
                "y0": 0,
                "y1": 1,
                "fillcolor": colour,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    return shapes


def _hover_status(days: list[dict[str, Any]]) -> list[str]:
    return [f"{d['day']} ({date.fromisoformat(d['day']).strftime('%a')}): {verdict_of(d)}" for d in days]


def overview_figures(data: dict[str, Any]) -> dict[str, Figure]:
    days = data["days"]
    x = [d["day"] for d in days]
    shapes = _not_built_shapes(days)
    users = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "daily active users",
                "x": x,
                "y": [d["active_users"] for d in days],
                "connectgaps": False,
                "text": _hover_status(days),
                "hovertemplate": "%{text}<br>%{y:,} users<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "7-day average",
                "x": x,
                "y": [d["active_users_7d_avg"] for d in days],
                "connectgaps": False,
                "line": {"dash": "dot", "width": 2},
                "hovertemplate": "7-day average %{y:,.1f} users<extra></extra>",
            },
        ],
        "layout": _layout(
            "Daily active users (sum over companies)", "active users (users/day)", shapes=shapes
        ),
    }
    companies = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "active companies",
                "x": x,
                "y": [d["active_companies"] for d in days],
                "connectgaps": False,
                "hovertemplate": "%{y:,} active companies<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "churn-risk companies",
                "x": x,
                "y": [d["churn_risk"] for d in days],
                "connectgaps": False,
                "line": {"color": "#c62828"},
                "hovertemplate": "%{y:,} at churn risk<extra></extra>",
            },
        ],
        "layout": _layout("Active and churn-risk companies", "companies (count/day)", shapes=shapes),
    }
    events = {
        "data": [
            {
                "type": "bar",
                "name": "events",
                "x": x,
                "y": [d["events"] for d in days],
                "hovertemplate": "%{y:,} events<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "7-day average",
                "x": x,
                "y": [d["events_7d_avg"] for d in days],
                "connectgaps": False,
                "hovertemplate": "7-day average %{y:,.0f} events<extra></extra>",
            },
        ],
        "layout": _layout("Events per day", "events (events/day)", shapes=shapes),
    }
    weekday_sum = [0.0] * 7
    weekday_n = [0] * 7
    for d in days:
        if d["active_users"] is not None:
            k = date.fromisoformat(d["day"]).weekday()
            weekday_sum[k] += d["active_users"]
            weekday_n[k] += 1
    weekday = {
        "data": [
            {
                "type": "bar",
                "name": "average by weekday",
                "x": _WEEKDAYS,
                "y": [round(weekday_sum[k] / weekday_n[k], 1) if weekday_n[k] else None for k in range(7)],
                "text": [f"{weekday_n[k]} day(s)" for k in range(7)],
                "textposition": "none",
                "hovertemplate": "%{x}: %{y:,.1f} users/day (%{text})<extra></extra>",
            }
        ],
        "layout": _layout(
            "Weekday pattern: average daily active users",
            "active users (users/day)",
            xaxis={"title": {"text": "weekday"}, "type": "category"},
            hovermode="closest",
        ),
    }
    return {
        "users": users,
        "companies": companies,
        "events": events,
        "weekday": weekday,
        "weekly": _period_figure(
            data["weeks"], "Weekly: average daily active users", "ISO week", _week_label
        ),
        "monthly": _period_figure(
            data["months"], "Monthly: average daily active users", "month", _month_label
        ),
    }


def _week_label(start: str) -> str:
    iso = date.fromisoformat(start).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def _month_label(start: str) -> str:
    return start[:7]


def _period_figure(periods: list[dict[str, Any]], title: str, x_title: str, label: Any) -> Figure:
    return {
        "data": [
            {
                "type": "bar",
                "name": "average daily active users",
                "x": [label(p["start"]) for p in periods],
                "y": [p["avg_active_users"] for p in periods],
                "marker": {"opacity": [0.45 if p["partial"] else 1.0 for p in periods]},
                "textposition": "none",
                "text": [
                    f"{p['start']} … {p['end']}: {p['built_days']}/{p['days']} days built"
                    + (" (partial)" if p["partial"] else "")
                    for p in periods
                ],
                "hovertemplate": "%{text}<br>%{y:,.1f} users/day<extra></extra>",
            }
        ],
        "layout": _layout(
            title + " — faded bars are partial periods",
            "active users (users/day, averaged)",
            xaxis={"title": {"text": x_title}, "type": "category"},
            hovermode="closest",
        ),
    }


def has_usage(data: dict[str, Any]) -> bool:
    """Whether the company used the product on any day shown (an active user or an event)."""
    return any((r["active_users"] or 0) > 0 or (r["events"] or 0) > 0 for r in data["days"])


def company_figure(data: dict[str, Any]) -> Figure | None:
    """The company's daily activity; None when it has none in the days shown (the page says so in words
    instead of drawing two flat lines on a 0 … 1 axis)."""
    if not has_usage(data):
        return None
    rows = {r["activity_date"]: r for r in data["days"]}
    first, last = date.fromisoformat(data["first_day"]), date.fromisoformat(data["last_day"])
    x = [(first + timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": f"{date.fromisoformat(s['start']) - timedelta(days=1)} 12:00:00",
            "x1": f"{s['end']} 12:00:00",
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(200,40,40,0.15)",
            "line": {"width": 0},
            "layer": "below",
        }
        for s in data["churn_spells"]
    ]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "active users",
                "x": x,
                "y": [rows[d]["active_users"] if d in rows else None for d in x],
                "connectgaps": False,
                "hovertemplate": "%{y:,} users<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "events",
                "x": x,
                "y": [rows[d]["events"] if d in rows else None for d in x],
                "connectgaps": False,
                "yaxis": "y2",
                "hovertemplate": "%{y:,} events<extra></extra>",
            },
        ],
        "layout": _layout(
            "Daily activity (red: churn-risk spells; gaps: no row that day)",
            "active users (users/day)",
            shapes=shapes,
            margin={"l": 70, "r": 80, "t": TOP_MARGIN, "b": 50},
            yaxis2={
                "title": {"text": "events (events/day)"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
            },
        ),
    }


def run_figure(data: dict[str, Any]) -> Figure:
    """The run's steps as a timeline (a Gantt chart): one bar per step and day, coloured by status."""
    traces: dict[str, dict[str, Any]] = {}
    for st in data["steps"]:
        if st["started_at"] is None:
            continue
        start = datetime.fromisoformat(st["started_at"])
        end = datetime.fromisoformat(st["finished_at"]) if st["finished_at"] else start
        trace = traces.setdefault(
            st["status"],
            {
                "type": "bar",
                "orientation": "h",
                "name": st["status"],
                "base": [],
                "x": [],
                "y": [],
                "text": [],
                "marker": {"color": _STATUS_COLOURS.get(st["status"], "#607d8b")},
                "textposition": "none",
                "hovertemplate": "%{y}<br>%{text}<extra>%{fullData.name}</extra>",
            },
        )
        trace["base"].append(start.isoformat(sep=" "))
        trace["x"].append(max(1.0, (end - start).total_seconds() * 1000))
        trace["y"].append(f"{st['step_day']} {st['step']}")
        trace["text"].append(f"{(end - start).total_seconds():.3f} s, rows {_or_dash(st['rows_loaded'])}")
    n = len({y for t in traces.values() for y in t["y"]})
    return {
        "data": list(traces.values()),
        "layout": _layout(
            "Steps of the run (time, UTC)",
            "step and day",
            xaxis={"title": {"text": "time (UTC)"}, "type": "date"},
            yaxis={
                "title": {"text": "day · step"},
                "type": "category",
                "autorange": "reversed",
                "automargin": True,
            },
            barmode="overlay",
            hovermode="closest",
            height=min(1000, max(300, 130 + 16 * n)),
        ),
    }


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
