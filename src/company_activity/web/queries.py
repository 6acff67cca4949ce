"""What each page and API call shows, read through a read-only :class:`~.db.Session`.

Values come out JSON-ready (dates as ISO strings, numbers as numbers, a day that is not built as None,
never as 0). Bad parameters raise :class:`BadRequest` (a 400), unknown things :class:`NotFound` (a 404).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from ..run.vocab import rerun_hint
from ..state.read_model import RunNotFound, RunStateReader, from_session
from ..state.rows import DayStatus
from ..state.verdict import LOOK
from .db import Session

UI = "ui.sql"
MAX_RANGE_DAYS = 3700  # ten years of days
DEFAULT_RANGE_DAYS = 90
TREND_DAYS = 14
MIN_DAY, MAX_DAY = date(1970, 1, 1), date(9999, 1, 1)
CHURN_SORTS = ("company_id", "company_name", "country", "industry_tag", "last_contact_at", "days_since_usage")


class BadRequest(ValueError):
    """A parameter the UI cannot use: the message says which and why."""


class NotFound(LookupError):
    """No such company, run or day."""


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}={excerpt(value)} is not a date (YYYY-MM-DD)") from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise BadRequest(f"{name}={day.isoformat()} is outside {MIN_DAY.isoformat()} … {MAX_DAY.isoformat()}")
    return day


def check_text(value: str, name: str, limit: int = 200) -> str:
    if not value or len(value) > limit or "\x00" in value or not value.isprintable():
        raise BadRequest(f"{name} {excerpt(value)} is not a valid value")
    return value


def excerpt(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _number(iso(v)) for k, v in row.items()}


def _number(value: Any) -> Any:
    # DECIMAL sums (PostgreSQL) come back as Decimal
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return value


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


# -- the date range every page works in --------------------------------------------------------------------
def data_range(s: Session) -> tuple[date | None, date | None]:
    return state(s).data_range()


def state(s: Session) -> RunStateReader:
    """The run-state read model over this request's session (every ``ops.*`` read goes through it)."""
    return RunStateReader(from_session(s))


def resolve_range(s: Session, start: date | None, end: date | None) -> tuple[date, date]:
    """The range asked for; by default the last 90 days up to the latest built day (none before the first)."""
    first, last = data_range(s)
    end = end or last or date.today()
    if start is None:
        start = end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if first is not None and first <= end:
            start = max(start, first)
    if start > end:
        raise BadRequest(f"start={start.isoformat()} is after end={end.isoformat()}")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise BadRequest(
            f"the range {start.isoformat()} … {end.isoformat()} is longer than {MAX_RANGE_DAYS} days"
        )
    return start, end


# -- overview -----------------------------------------------------------------------------------------------
def calendar(s: Session, start: date, end: date) -> list[dict[str, Any]]:
    """One entry per day of the range: its ``verdict`` (the word ``status`` shows), why (``verdict_note``),
    each source's status, and whether the table holds the day's rows (``published``)."""
    return [calendar_entry(d) for d in state(s).calendar(start, end)]


def calendar_entry(d: DayStatus) -> dict[str, Any]:
    return {
        "day": d.day.isoformat(),
        "verdict": d.verdict,
        "verdict_note": d.note,
        "glyph": LOOK[d.verdict].glyph,
        "crm": d.crm_status,
        "usage": d.usage_status,
        "build": d.build_status,
        "records": d.usage_records,
        "rows": d.build_rows,
        "churn_risk": d.churn_risk,
        "published": d.build_status in ("built", "stale"),
        "error": d.last_error,
        "last_run_id": d.last_run_id,
        "data_run_id": d.data_run_id,
    }


def overview(s: Session, start: date, end: date, country: str | None, industry: str | None) -> dict[str, Any]:
    params = {"start_day": start, "end_day": end, "country": country, "industry": industry}
    by_day = {r["activity_date"]: jsonable(r) for r in s.rows(UI, "overview_days", params)}
    verdicts = {c["day"]: c for c in calendar(s, start, end)}
    days: list[dict[str, Any]] = []
    for day in days_between(start, end):
        r = by_day.get(day)
        c = verdicts.get(day.isoformat(), {})
        built = r is not None and bool(c.get("published"))
        entry = {
            "day": day.isoformat(),
            "status": c.get("verdict", "no data"),
            "companies": r["companies"] if r and built else None,
            "active_companies": r["active_companies"] if r and built else None,
            "active_users": r["active_users"] if r and built else None,
            "events": r["events"] if r and built else None,
            "churn_risk": r["churn_risk"] if r and built else None,
        }
        days.append(entry)
    _rolling(days, "active_users", "active_users_7d_avg")
    _rolling(days, "events", "events_7d_avg")
    values = s.rows(UI, "filter_values", {"since": start - timedelta(days=366)})
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "country": country,
        "industry": industry,
        "countries": sorted({v["country"] for v in values if v["country"] is not None}),
        "industries": sorted({v["industry_tag"] for v in values if v["industry_tag"] is not None}),
        "days": days,
        "weeks": _periods(days, lambda d: d - timedelta(days=d.weekday()), lambda p: p + timedelta(days=6)),
        "months": _periods(days, lambda d: d.replace(day=1), _month_end),
    }


def _rolling(days: list[dict[str, Any]], key: str, out: str) -> None:
    """The mean of ``key`` over the 7 days ending on each day; None unless all 7 are built."""
    for i, entry in enumerate(days):
        window = [d[key] for d in days[max(0, i - 6) : i + 1]]
        entry[out] = (
            round(sum(window) / 7, 2) if len(window) == 7 and all(v is not None for v in window) else None
        )


def _month_end(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _periods(days: list[dict[str, Any]], start_of: Any, end_of: Any) -> list[dict[str, Any]]:
    """Weekly or monthly figures from the daily ones: averages over the built days; partial unless all are."""
    groups: dict[date, list[dict[str, Any]]] = {}
    for entry in days:
        groups.setdefault(start_of(date.fromisoformat(entry["day"])), []).append(entry)
    out = []
    for start, entries in sorted(groups.items()):
        built = [e for e in entries if e["active_users"] is not None]
        end = end_of(start)
        length = (end - start).days + 1
        out.append(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "built_days": len(built),
                "days": length,
                "partial": len(built) < length,
                "avg_active_users": round(sum(e["active_users"] for e in built) / len(built), 1)
                if built
                else None,
                "avg_active_companies": round(sum(e["active_companies"] for e in built) / len(built), 1)
                if built
                else None,
                "events": sum(e["events"] for e in built) if built else None,
                "churn_risk_at_end": built[-1]["churn_risk"] if built else None,
            }
        )
    return out


# -- churn --------------------------------------------------------------------------------------------------
def churn(s: Session, day: date | None, sort: str, order: str) -> dict[str, Any]:
    """The churn-risk companies as of ``day`` (default: the latest built day), sorted by ``sort``.

    A company's last usage is looked for back to the first day loaded (``first_day``); one with none in
    the warehouse has ``days_since_usage`` None and ``no_usage_since`` = that day. Those are the most at
    risk: they come first whenever the list is sorted by ``days_since_usage`` (the default, descending),
    either way; a value missing in another column (a company not in the CRM) sorts last.
    """
    if sort not in CHURN_SORTS:
        raise BadRequest(f"sort={excerpt(sort)}: use one of {', '.join(CHURN_SORTS)}")
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={excerpt(order)}: use asc or desc")
    first, last = data_range(s)
    if day is None:
        day = last
    head: dict[str, Any] = {"trend_days": TREND_DAYS, "sort": sort, "order": order}
    if day is None or first is None or day < first:
        return {"day": iso(day), "first_day": iso(first), "total": 0, "companies": [], **head}
    window_start = (day - timedelta(days=TREND_DAYS - 1)).replace(day=1)
    params = {
        "day": day,
        "first_day": first,
        "first_month": first.replace(day=1),
        "window_start": window_start,
    }
    companies = []
    for r in s.rows(UI, "churn_list", params):
        used = r["last_usage"]
        c = jsonable(
            {k: r[k] for k in ("company_id", "company_name", "country", "industry_tag", "last_contact_at")}
        )
        c["last_usage"] = iso(used)
        c["days_since_usage"] = (day - used).days if used else None
        c["no_usage_since"] = None if used else first.isoformat()
        c["trend"] = [None if r[f"t{k}"] is None else int(r[f"t{k}"]) for k in range(TREND_DAYS - 1, -1, -1)]
        companies.append(c)
    return {
        "day": day.isoformat(),
        "first_day": first.isoformat(),
        "total": len(companies),
        **head,
        "companies": sort_churn(companies, sort, order),
    }


def sort_churn(companies: list[dict[str, Any]], sort: str, order: str) -> list[dict[str, Any]]:
    """Sorted by ``sort`` (ties by company id); companies without the value last, but for
    ``days_since_usage``, where no value means no usage in the warehouse: first, either way."""
    present = [c for c in companies if c[sort] is not None]
    missing = sorted((c for c in companies if c[sort] is None), key=lambda c: c["company_id"])
    present.sort(key=lambda c: c["company_id"])
    present.sort(key=lambda c: c[sort], reverse=order == "desc")  # stable: ties stay by company id
    return missing + present if sort == "days_since_usage" else present + missing


CSV_COLUMNS = (
    "company_id",
    "company_name",
    "country",
    "industry_tag",
    "last_contact_at",
    "last_usage",
    "days_since_usage",
    "no_usage_since",
)


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab / CR) gets a leading '."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


# -- one company --------------------------------------------------------------------------------------------
def company(s: Session, company_id: str, start: date, end: date) -> dict[str, Any]:
    """One company's days ``start … end`` (its weeks overlapping them, all its months)."""
    params = {"company_id": company_id, "start_day": start, "end_day": end}
    rows = s.rows(UI, "company_days", params)
    if not rows:
        raise NotFound(
            f"no company {excerpt(company_id)} in analytics.company_daily_activity "
            f"between {start.isoformat()} and {end.isoformat()}"
        )
    last = rows[-1]
    return {
        "company_id": company_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "company_name": last["company_name"],
        "country": last["country"],
        "industry_tag": last["industry_tag"],
        "last_contact_at": iso(last["last_contact_at"]),
        "first_day": iso(rows[0]["activity_date"]),
        "last_day": iso(last["activity_date"]),
        "days": [jsonable(r) for r in rows],
        "churn_spells": _spells([r["activity_date"] for r in rows if r["is_churn_risk"]]),
        "changes": _changes(rows),
        "weeks": [jsonable(r) for r in s.rows(UI, "company_weeks", params)],
        "months": [jsonable(r) for r in s.rows(UI, "company_months", params)],
    }


def _spells(days: Iterable[date]) -> list[dict[str, Any]]:
    spells: list[list[date]] = []
    for day in sorted(days):
        if spells and spells[-1][1] + timedelta(days=1) == day:
            spells[-1][1] = day
        else:
            spells.append([day, day])
    return [{"start": a.isoformat(), "end": b.isoformat(), "days": (b - a).days + 1} for a, b in spells]


_ATTRIBUTES = ("company_name", "country", "industry_tag", "last_contact_at")


def _changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each CRM attribute change from one day to the next."""
    out = []
    for before, after in pairwise(rows):
        for field in _ATTRIBUTES:
            if before[field] != after[field]:
                out.append(
                    {
                        "day": iso(after["activity_date"]),
                        "field": field,
                        "old": iso(before[field]),
                        "new": iso(after[field]),
                    }
                )
    return out


# -- runs ---------------------------------------------------------------------------------------------------
def runs(s: Session, limit: int) -> list[dict[str, Any]]:
    if not 1 <= limit <= 1000:
        raise BadRequest(f"limit={limit}: use 1 … 1000")
    return [jsonable(asdict(r)) for r in state(s).recent_runs(limit=limit)]


def run(s: Session, run_id: str) -> dict[str, Any]:
    try:
        detail = state(s).run(run_id)
    except RunNotFound:
        raise NotFound(f"no run {excerpt(run_id)} in ops.runs") from None
    out = jsonable(asdict(detail.run))
    out["steps"] = [
        jsonable(asdict(st)) | {"step_day": st.day.isoformat(), "started_at": iso(st.started_at)}
        for st in detail.steps
    ]
    out["checks"] = [jsonable({"check_day": c.day, "check_name": c.check} | asdict(c)) for c in detail.checks]
    out["alerts"] = [jsonable(asdict(a)) for a in detail.alerts]
    out["changes"] = [jsonable(asdict(c)) for c in detail.changes]
    out["days_verdicts"] = [calendar_entry(d) for d in detail.days]
    out["rerun_command"] = rerun_hint("verbatim", verbatim=detail.run.command)
    out["rerun_failed"] = detail.rerun
    return out


# -- one day ------------------------------------------------------------------------------------------------
def day_detail(
    s: Session, day: date, load_manifest: Callable[[str | None], dict[str, Any] | None]
) -> dict[str, Any]:
    """Everything run state knows of ``day``, and the lake's manifest of its raw run (``load_manifest``
    gets the raw run id of the usage day, None when there is none)."""
    detail = state(s).day(day)
    if detail.crm is None and detail.usage is None and detail.build is None and not detail.steps:
        raise NotFound(f"nothing recorded for {day.isoformat()}: no run has touched that day")
    manifest = load_manifest(detail.usage.get("raw_run_id") if detail.usage else None)
    return {
        "day": day.isoformat(),
        "verdict": detail.status.verdict,
        "verdict_note": detail.status.note,
        "crm": jsonable(detail.crm) if detail.crm else None,
        "usage": jsonable(detail.usage) if detail.usage else None,
        "build": jsonable(detail.build) if detail.build else None,
        "steps": [jsonable(asdict(st)) for st in detail.steps],
        "checks": [jsonable({"check_name": c.check} | asdict(c)) for c in detail.checks],
        "quarantined": [jsonable(asdict(q)) for q in detail.quarantined],
        "manifest": manifest,
        "manifest_text": json.dumps(manifest, indent=2, sort_keys=True)[:20000] if manifest else None,
    }
