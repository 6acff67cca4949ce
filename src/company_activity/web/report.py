"""``company-activity report``: the overview, the churn list and the pipeline-health calendar as one
self-contained HTML file (plotly.js, script and style inlined: it opens offline, to mail or archive)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ..config import Settings
from . import queries as q
from .charts import overview_figures
from .db import reader_for
from .render import render
from .routes import generated_at

#: the churn list of a report shows at most this many companies
REPORT_CHURN_ROWS = 1000


def write_report(
    settings: Settings, out: str | Path, *, start: date | None = None, end: date | None = None
) -> Path:
    """Write the report of ``start … end`` (default: the last 90 built days) to ``out``; returns its path."""
    reader = reader_for(settings)
    with reader.session() as s:
        lo, hi = q.resolve_range(s, start, end)
        data = q.overview(s, lo, hi, None, None)
        calendar = q.calendar(s, lo, hi)
        built = [d["day"] for d in data["days"] if d["active_users"] is not None]
        churn_day = date.fromisoformat(built[-1]) if built else None
        churn = (
            q.churn(s, churn_day, "days_since_usage", "desc")
            if churn_day
            else q.churn(s, None, "company_id", "asc")
        )
    churn["companies"] = churn["companies"][:REPORT_CHURN_ROWS]
    page = render(
        "report.html",
        inline=True,
        base=(settings.ui_url or "").rstrip("/"),
        data=data,
        calendar=calendar,
        figures=overview_figures(data),
        churn=churn,
        generated=generated_at(),
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
