"""What each page and API call shows, read through a read-only :class:`~.db.Session`.

Values come out JSON-ready (dates as ISO strings, numbers as numbers, a day that is not built as None,
never as 0). Bad parameters raise :class:`BadRequest` (a 400), unknown things :class:`NotFound` (a 404).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from ..run.vocab import rerun_hint
from .db import Session

UI = "ui.sql"
MAX_RANGE_DAYS = 3700  # ten years of days
DEFAULT_RANGE_DAYS = 90
TREND_DAYS = 14
LAST_USAGE_LOOKBACK = 30  # days the churn list looks back for a company's last usage (sql/ui.sql)
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
    row = s.one(UI, "data_range") or {}
    return row.get("first_day"), row.get("last_day")


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
    """One entry per day of the range: each source's status and an overall health word."""
    found = {r["day"]: r for r in s.rows(UI, "day_statuses", {"start_day": start, "end_day": end})}
    out = []
    for day in days_between(start, end):
        r = found.get(day, {})
        out.append(
            {
                "day": day.isoformat(),
                "crm": r.get("crm_status"),
                "usage": r.get("usage_status"),
                "build": r.get("build_status"),
                "rows": r.get("build_rows"),
                "churn_risk": r.get("churn_risk_count"),
                "health": _health(r),
                "error": r.get("last_error"),
            }
        )
    return out


def _health(r: dict[str, Any]) -> str:
    """built | failed | pending | missing (nothing recorded) | partial (loaded, not built yet)."""
    if not r:
        return "missing"
    if r.get("build_status") == "built":
        return "built"
    if (
        "failed" in (r.get("build_status"), r.get("usage_status"), r.get("crm_status"))
        or r.get("usage_status") == "lost"
    ):
        return "failed"
    if r.get("usage_status") == "pending":
        return "pending"
    return "partial"


def overview(s: Session, start: date, end: date, country: str | None, industry: str | None) -> dict[str, Any]:
    params = {"start_day": start, "end_day": end, "country": country, "industry": industry}
    by_day = {r["activity_date"]: jsonable(r) for r in s.rows(UI, "overview_days", params)}
    health = {c["day"]: c["health"] for c in calendar(s, start, end)}
    days: list[dict[str, Any]] = []
    for day in days_between(start, end):
        r = by_day.get(day)
        built = r is not None and health.get(day.isoformat()) == "built"
        entry = {
            "day": day.isoformat(),
            "status": health.get(day.isoformat(), "missing"),
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
    if sort not in CHURN_SORTS:
        raise BadRequest(f"sort={excerpt(sort)}: use one of {', '.join(CHURN_SORTS)}")
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={excerpt(order)}: use asc or desc")
    if day is None:
        day = data_range(s)[1]
    if day is None:
        return {
            "day": None,
            "total": 0,
            "companies": [],
            "trend_days": TREND_DAYS,
            "lookback_days": LAST_USAGE_LOOKBACK,
            "sort": sort,
            "order": order,
        }
    companies = []
    for r in s.rows(UI, "churn_list", {"day": day}):
        used = r["last_usage"]
        c = jsonable(
            {k: r[k] for k in ("company_id", "company_name", "country", "industry_tag", "last_contact_at")}
        )
        c["last_usage"] = iso(used)
        c["days_since_usage"] = (day - used).days if used else None
        c["trend"] = [None if r[f"t{k}"] is None else int(r[f"t{k}"]) for k in range(TREND_DAYS - 1, -1, -1)]
        companies.append(c)
    reverse = order == "desc"
    present = [c for c in companies if c[sort] is not None]
    missing = [c for c in companies if c[sort] is None]
    present.sort(key=lambda c: (c[sort], c["company_id"]), reverse=reverse)
    ordered = present + missing  # companies without the value last, either way
    return {
        "day": day.isoformat(),
        "total": len(companies),
        "trend_days": TREND_DAYS,
        "lookback_days": LAST_USAGE_LOOKBACK,
        "sort": sort,
        "order": order,
        "companies": ordered,
    }


CSV_COLUMNS = (
    "company_id",
    "company_name",
    "country",
    "industry_tag",
    "last_contact_at",
    "last_usage",
    "days_since_usage",
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
    out = []
    for r in s.rows(UI, "runs", {"limit": limit}):
        entry = jsonable(r)
        entry["duration_s"] = _seconds(r["started_at"], r["finished_at"])
        out.append(entry)
    return out


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def run(s: Session, run_id: str) -> dict[str, Any]:
    head = s.one(UI, "run", {"run_id": run_id})
    if head is None:
        raise NotFound(f"no run {excerpt(run_id)} in ops.runs")
    steps = s.rows(UI, "run_steps", {"run_id": run_id})
    failed_days: dict[date, str] = {}
    for st in steps:
        if st["status"] == "failed":
            failed_days.setdefault(st["step_day"], st["step"])
    reruns = [rerun_hint("rerun", d, from_step=step) for d, step in sorted(failed_days.items())]
    out = jsonable(head)
    out["duration_s"] = _seconds(head["started_at"], head["finished_at"])
    out["steps"] = [
        jsonable(st) | {"duration_s": _seconds(st["started_at"], st["finished_at"])} for st in steps
    ]
    out["checks"] = [jsonable(c) for c in s.rows(UI, "run_checks", {"run_id": run_id})]
    out["alerts"] = [
        {
            "severity": "error" if st["status"] == "failed" else "warning",
            "step": st["step"],
            "day": iso(st["step_day"]),
            "message": st["message"],
        }
        for st in steps
        if st["status"] in ("failed", "warning")
    ]
    out["rerun_command"] = rerun_hint("verbatim", verbatim=str(head["command"]))
    out["rerun_failed"] = reruns
    return out


# -- one day ------------------------------------------------------------------------------------------------
def day_detail(s: Session, day: date, manifest: dict[str, Any] | None) -> dict[str, Any]:
    params = {"day": day}
    crm = s.one(UI, "day_crm", params)
    usage = s.one(UI, "day_usage", params)
    build = s.one(UI, "day_build", params)
    steps = s.rows(UI, "day_steps", params)
    if crm is None and usage is None and build is None and not steps:
        raise NotFound(f"nothing recorded for {day.isoformat()}: no run has touched that day")
    return {
        "day": day.isoformat(),
        "crm": jsonable(crm) if crm else None,
        "usage": jsonable(usage) if usage else None,
        "build": jsonable(build) if build else None,
        "steps": [jsonable(st) for st in steps],
        "checks": [jsonable(c) for c in s.rows(UI, "day_checks", params)],
        "manifest": manifest,
        "manifest_text": json.dumps(manifest, indent=2, sort_keys=True)[:20000] if manifest else None,
    }
