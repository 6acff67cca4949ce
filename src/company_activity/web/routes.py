"""The pages and the JSON API: each page renders what its API call returns."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import SecretStr

from ..config import Settings
from . import queries as q
from .charts import company_figure, overview_figures, run_figure
from .db import Reader
from .render import day_columns, render

log = logging.getLogger("company_activity.web")

api_router = APIRouter(prefix="/api", tags=["api"])
page_router = APIRouter(include_in_schema=False)

#: the churn page shows this many rows (the CSV has them all)
CHURN_PAGE_ROWS = 500

Json = dict[str, Any]
ChurnSort = Literal[
    "company_id", "company_name", "country", "industry_tag", "last_contact_at", "days_since_usage"
]
Order = Literal["asc", "desc"]
_DATE = {"format": "date"}


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# -- data, shared by pages and API ---------------------------------------------------------------------------
def overview_data(
    reader: Reader, start: str | None, end: str | None, country: str | None, industry: str | None
) -> tuple[Json, list[Json]]:
    first, last = q.parse_day(start, "start"), q.parse_day(end, "end")
    country = q.check_text(country, "country") if country else None
    industry = q.check_text(industry, "industry") if industry else None
    with reader.session() as s:
        lo, hi = q.resolve_range(s, first, last)
        return q.overview(s, lo, hi, country, industry), q.calendar(s, lo, hi)


def churn_data(reader: Reader, day: str | None, sort: str, order: str) -> Json:
    the_day = q.parse_day(day, "date")
    with reader.session() as s:
        return q.churn(s, the_day, sort, order)


def company_data(reader: Reader, company_id: str, start: str | None, end: str | None) -> Json:
    q.check_text(company_id, "company id")
    first, last = q.parse_day(start, "start"), q.parse_day(end, "end")
    with reader.session() as s:
        lo, hi = q.resolve_range(s, first, last)
        return q.company(s, company_id, lo, hi)


def run_data(reader: Reader, run_id: str) -> Json:
    q.check_text(run_id, "run id")
    with reader.session() as s:
        return q.run(s, run_id)


def day_data(reader: Reader, settings: Settings, day: str) -> Json:
    the_day = q.parse_day(day, "day")
    assert the_day is not None
    with reader.session() as s:
        return q.day_detail(
            s, the_day, lambda raw_run_id: _manifest(settings, the_day.isoformat(), raw_run_id)
        )


def _manifest(settings: Settings, day: str, raw_run_id: str | None) -> Json | None:
    """The raw landing's manifest of ``day`` (that of the raw run staged, else the newest), or None."""
    from ..storage import open_lake

    try:
        secret = settings.azure_storage_connection_string
        lake = open_lake(settings.lake, azure_connection_string=secret.get_secret_value() if secret else None)
        folder = f"raw/product_usage/date={day}"
        names = ([raw_run_id] if raw_run_id else []) + list(reversed(lake.list_dirs(folder)))
        for name in names:
            path = f"{folder}/{name}/_manifest.json"
            if lake.exists(path):
                value = orjson.loads(lake.read_bytes(path))
                return value if isinstance(value, dict) else {"manifest": value}
    except Exception as exc:  # the page shows the day without it
        log.warning("web UI: cannot read the manifest of %s: %s", day, type(exc).__name__)
    return None


def settings_rows(settings: Settings) -> list[tuple[str, str]]:
    """Every setting as (environment variable, shown value): secrets masked, URLs without passwords."""
    from ..redact import redact  # not warehouse.postgres: psycopg is an extra `make demo` does not install

    rows = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "•••••••• (set)" if value.get_secret_value() else "(empty)"
        elif value is None:
            shown = "(not set)"
        elif name == "warehouse" and str(value).startswith(("postgres://", "postgresql://")):
            shown = redact(str(value))
        else:
            shown = str(value)
        rows.append((f"COMPANY_ACTIVITY_{name.upper()}", shown))
    return rows


def _given(**params: str | None) -> None:
    """The API takes a date or nothing: an empty value is a 400 (the HTML forms may send empty fields)."""
    for name, value in params.items():
        if value == "":
            raise q.BadRequest(f"{name}= is empty: give a date (YYYY-MM-DD) or leave the parameter out")


# -- the JSON API --------------------------------------------------------------------------------------------
@api_router.get("/overview", summary="Daily, weekly and monthly activity over a date range")
def api_overview(
    request: Request,
    start: str | None = Query(
        None, description="first day, YYYY-MM-DD (default: 90 days before end)", json_schema_extra=_DATE
    ),
    end: str | None = Query(
        None, description="last day, YYYY-MM-DD (default: the latest built day)", json_schema_extra=_DATE
    ),
    country: str | None = None,
    industry: str | None = None,
) -> Json:
    _given(start=start, end=end)
    data, _ = overview_data(_reader(request), start, end, country, industry)
    return data


@api_router.get("/calendar", summary="The pipeline's health per day")
def api_calendar(
    request: Request,
    start: str | None = Query(None, json_schema_extra=_DATE),
    end: str | None = Query(None, json_schema_extra=_DATE),
) -> list[Json]:
    _given(start=start, end=end)
    _, calendar = overview_data(_reader(request), start, end, None, None)
    return calendar


@api_router.get("/churn", summary="The churn-risk companies as of a day")
def api_churn(
    request: Request,
    date: str | None = Query(
        None, description="YYYY-MM-DD (default: the latest built day)", json_schema_extra=_DATE
    ),
    sort: ChurnSort = "days_since_usage",  # the most at risk first: no usage in the warehouse, longest silent
    order: Order = "desc",
) -> Json:
    _given(date=date)
    return churn_data(_reader(request), date, sort, order)


@api_router.get("/companies/{company_id:path}", summary="One company's timeline, weeks and months")
def api_company(
    request: Request,
    company_id: str,
    start: str | None = Query(
        None, description="first day, YYYY-MM-DD (default: 90 days before end)", json_schema_extra=_DATE
    ),
    end: str | None = Query(
        None, description="last day, YYYY-MM-DD (default: the latest built day)", json_schema_extra=_DATE
    ),
) -> Json:
    _given(start=start, end=end)
    return company_data(_reader(request), company_id, start, end)


@api_router.get("/runs", summary="The latest runs")
def api_runs(request: Request, limit: int = Query(100, ge=1, le=1000)) -> list[Json]:
    with _reader(request).session() as s:
        return q.runs(s, limit)


@api_router.get("/runs/{run_id}", summary="One run: steps, checks, alerts, rerun commands")
def api_run(request: Request, run_id: str) -> Json:
    return run_data(_reader(request), run_id)


@api_router.get("/days/{day}", summary="One day across runs: CRM, usage, build, checks, manifest")
def api_day(request: Request, day: str = Path(json_schema_extra=_DATE)) -> Json:
    data = day_data(_reader(request), _settings(request), day)
    data.pop("manifest_text", None)
    return data


# -- pages ---------------------------------------------------------------------------------------------------
def _page(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context))


@page_router.get("/")
def page_overview(
    request: Request,
    start: str | None = None,
    end: str | None = None,
    country: str | None = None,
    industry: str | None = None,
) -> HTMLResponse:
    data, calendar = overview_data(_reader(request), start, end, country, industry)
    return _page(
        "overview.html",
        data=data,
        calendar=calendar,
        figures=overview_figures(data),
        today=_today(request),
    )


def _today(request: Request) -> date:
    """The day the strip marks as today: the settings' ``today`` if set, else today in UTC."""
    return _settings(request).today or datetime.now(UTC).date()


@page_router.get("/days")
def page_days(request: Request, start: str | None = None, end: str | None = None) -> HTMLResponse:
    """Every day of the range with its verdict and counts: the calendar the overview's strip draws."""
    first, last = q.parse_day(start, "start"), q.parse_day(end, "end")
    with _reader(request).session() as s:
        lo, hi = q.resolve_range(s, first, last)
        calendar = q.calendar(s, lo, hi)
    parts, counts = day_columns(calendar)
    today = _today(request)
    return _page(
        "days.html",
        start=lo.isoformat(),
        end=hi.isoformat(),
        calendar=calendar,
        parts=parts,
        counts=counts,
        today=today,
        today_iso=today.isoformat(),
    )


@page_router.get("/churn")
def page_churn(
    request: Request, date: str | None = None, sort: str = "days_since_usage", order: str = "desc"
) -> HTMLResponse:
    data = churn_data(_reader(request), date, sort, order)
    data["companies"] = data["companies"][:CHURN_PAGE_ROWS]
    return _page("churn.html", data=data)


@page_router.get("/churn.csv")
def page_churn_csv(
    request: Request, date: str | None = None, sort: str = "days_since_usage", order: str = "desc"
) -> Response:
    data = churn_data(_reader(request), date, sort, order)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(q.CSV_COLUMNS)
    for c in data["companies"]:
        writer.writerow([q.csv_cell(c[k]) for k in q.CSV_COLUMNS])
    name = f"churn-risk-{data['day'] or 'none'}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@page_router.get("/companies/{company_id:path}")
def page_company(
    request: Request, company_id: str, start: str | None = None, end: str | None = None
) -> HTMLResponse:
    data = company_data(_reader(request), company_id, start, end)
    return _page("company.html", data=data, fig=company_figure(data))  # None: no usage, said in words


@page_router.get("/runs")
def page_runs(request: Request, limit: int = 100) -> HTMLResponse:
    with _reader(request).session() as s:
        return _page("runs.html", runs=q.runs(s, limit))


@page_router.get("/runs/{run_id}")
def page_run(request: Request, run_id: str) -> HTMLResponse:
    data = run_data(_reader(request), run_id)
    return _page("run.html", data=data, fig=run_figure(data))


@page_router.get("/days/{day}")
def page_day(request: Request, day: str) -> HTMLResponse:
    return _page("day.html", data=day_data(_reader(request), _settings(request), day))


@page_router.get("/settings")
def page_settings(request: Request) -> HTMLResponse:
    return _page("settings.html", settings=settings_rows(_settings(request)))


def generated_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
