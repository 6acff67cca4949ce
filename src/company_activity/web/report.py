"""``company-activity report``: the overview, the churn list and the pipeline-health calendar as one
self-contained HTML file (plotly.js, script and style inlined: it opens offline, to mail or archive).

Small enough to mail (about 1.2 MB for the demo, against 4.7 MB with the full plotly.js):

- plotly.js is the *basic* partial bundle (scatter, bar and pie traces: all the overview draws), vendored
  from the npm package ``plotly.js-basic-dist-min`` as ``static/plotly-basic.min.js`` (MIT, its licence
  beside it), at the version of the plotly.js the ``plotly`` package ships: :data:`PLOTLY_BASIC`;
- every series is embedded once: an array that several figures share (the days, the hover texts, the
  shading of the days not built) is kept in one pool (``<script id="report-shared">``) and the figures
  refer to it (``{"$shared": n}``); ``static/report.js`` puts them back before the charts are drawn.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from ..config import Settings
from . import queries as q
from .charts import overview_figures
from .db import reader_for
from .render import render, static_path
from .routes import generated_at

#: the churn list of a report shows at most this many companies
REPORT_CHURN_ROWS = 1000
#: the vendored partial bundle: file name and the npm package and version it is taken from
PLOTLY_BASIC = ("plotly-basic.min.js", "plotly.js-basic-dist-min", "4.1.1")
#: arrays shorter than this (as JSON) are left where they are: a reference would save nothing
MIN_SHARED = 40


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
            else q.churn(s, None, "days_since_usage", "desc")
        )
    churn["companies"] = churn["companies"][:REPORT_CHURN_ROWS]
    figures, shared = share_arrays(overview_figures(data))
    page = render(
        "report.html",
        inline=True,
        plotly_js=static_path(PLOTLY_BASIC[0]),
        base=(settings.ui_url or "").rstrip("/"),
        data=data,
        calendar=calendar,
        figures=figures,
        shared=shared,
        report_js=static_path("report.js").read_text(encoding="utf-8"),
        churn=churn,
        generated=generated_at(),
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def share_arrays(figures: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``figures`` with each array found more than once (as a whole) replaced by ``{"$shared": n}``, and
    the pool of those arrays (``pool[n]``). The outermost repeated array is shared, not its parts."""

    def key(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    seen: Counter[str] = Counter()

    def count(value: Any) -> None:
        if isinstance(value, list):
            seen[key(value)] += 1
        for child in value if isinstance(value, list) else value.values() if isinstance(value, dict) else ():
            count(child)

    count(figures)
    pool: list[Any] = []
    index: dict[str, int] = {}

    def share(value: Any) -> Any:
        if isinstance(value, list):
            k = key(value)
            if seen[k] > 1 and len(k) >= MIN_SHARED:
                if k not in index:
                    index[k] = len(pool)
                    pool.append(value)
                return {"$shared": index[k]}
            return [share(v) for v in value]
        if isinstance(value, dict):
            return {name: share(v) for name, v in value.items()}
        return value

    return {name: share(fig) for name, fig in figures.items()}, pool
