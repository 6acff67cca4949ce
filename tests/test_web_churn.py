"""The churn list's look-back is the data's extent (issue 23), and the most at risk come first.

A warehouse of 112 days (2026-08-01 … 2026-11-20, four months: the list's look-up through the monthly mart
is exercised) with companies whose last usage is known: never, at month ends and starts, by events only,
long ago, resuming after the day asked for, and 40 at random. For many days, each churn-risk company's last
usage must equal the brute-force answer over the whole daily table up to that day; the ones never seen
using the product say "no usage since the first day loaded, 2026-08-01" and come first, on the page, in
the API and in the CSV alike.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest

from company_activity import marts
from company_activity.config import Settings, load_settings
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.web import queries as q
from company_activity.web.db import reader_for
from company_activity.web.server import BackgroundServer

FIRST = date(2026, 8, 1)
LAST = date(2026, 11, 20)
DAYS = [FIRST + timedelta(days=k) for k in range((LAST - FIRST).days + 1)]
LOADED = datetime(2026, 11, 21)


def _span(a: date, b: date) -> set[date]:
    return {d for d in DAYS if a <= d <= b}


#: company -> {day: (active_users, events)}; every company has a row on every day (it is in the CRM)
def _usage() -> dict[str, dict[date, tuple[int, int]]]:
    usage: dict[str, dict[date, tuple[int, int]]] = {
        "N-never-1": {},
        "N-never-2": {},
        "L-aug05": {d: (3, 9) for d in _span(FIRST, date(2026, 8, 5))},
        "L-aug31": {d: (2, 4) for d in _span(date(2026, 8, 20), date(2026, 8, 31))},
        "L-sep01": {date(2026, 9, 1): (1, 1)},
        "L-oct31": {d: (5, 5) for d in _span(date(2026, 10, 25), date(2026, 10, 31))},
        "L-nov01": {date(2026, 11, 1): (4, 0)},  # active users, no events: usage
        "E-oct10": {date(2026, 9, 3): (2, 2), date(2026, 10, 10): (0, 3)},  # events only: usage too
        "R-resumes": {d: (1, 2) for d in _span(FIRST, date(2026, 9, 24)) | _span(date(2026, 11, 4), LAST)},
        "A-always": {d: (7, 70) for d in DAYS},
    }
    rng = random.Random(23)
    for k in range(40):
        days = rng.sample(DAYS, rng.choice([0, 1, 2, 5, 20]))
        usage[f"X-{k:02d}"] = {d: (rng.randint(0, 3), rng.randint(0, 3) or 1) for d in days}
    return usage


@dataclass(frozen=True)
class World:
    settings: Settings
    usage: dict[str, dict[date, tuple[int, int]]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("churn")
    usage = _usage()
    path = str(folder / "warehouse.duckdb")
    with DuckDBWarehouse(path) as wh:
        wh.init_schema()
        con = wh.con  # type: ignore[attr-defined]
        con.execute("create temp table used (company_id varchar, activity_date date, au integer, ev integer)")
        con.executemany(
            "insert into used values (?, ?, ?, ?)",
            [(c, d, au, ev) for c, days in usage.items() for d, (au, ev) in days.items()],
        )
        con.execute("create temp table companies (company_id varchar)")
        con.executemany("insert into companies values (?)", [(c,) for c in usage])
        with wh.transaction():
            con.execute(
                """
                insert into analytics.company_daily_activity
                select g.activity_date, g.company_id, 'Name of ' || g.company_id, 'DE', 'saas', null,
                    coalesce(u.au, 0), coalesce(u.ev, 0),
                    sum(coalesce(u.au, 0)) over w,
                    count(*) over w = 7
                        and max(case when coalesce(u.au, 0) > 0 or coalesce(u.ev, 0) > 0 then 1 else 0 end)
                            over w = 0,
                    ?
                from (
                    select cast(d as date) as activity_date, c.company_id
                    from range(cast(? as date), cast(? as date) + 1, interval 1 day) as t(d)
                    cross join companies as c
                ) as g
                left join used as u on u.company_id = g.company_id and u.activity_date = g.activity_date
                window w as (partition by g.company_id order by g.activity_date rows 6 preceding)
                """,
                [LOADED, FIRST, LAST],
            )
        month = FIRST
        while month <= LAST:
            end = min(LAST, (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1))
            marts.refresh(wh, month, end, built_at=LOADED)
            month = end + timedelta(days=1)
        with wh.transaction():
            for day in DAYS:
                wh.run(
                    "ops.sql",
                    "build_day_upsert",
                    {
                        "day": day,
                        "status": "built",
                        "row_count": len(usage),
                        "churn_risk_count": None,
                        "missing_crm_count": 0,
                        "crm_snapshot_date": FIRST,
                        "built_at": LOADED,
                        "last_error": None,
                    },
                )
    return World(load_settings(warehouse=path, lake=str(folder / "lake")), usage)


def _expected(world: World, day: date) -> dict[str, date | None]:
    """Brute force: each churn-risk company of ``day`` and its last day with usage on or before it."""
    out: dict[str, date | None] = {}
    for company, days in world.usage.items():
        used = sorted(d for d, (au, ev) in days.items() if (au > 0 or ev > 0) and d <= day)
        window = [day - timedelta(days=k) for k in range(7)]
        at_risk = day - timedelta(days=6) >= FIRST and not any(d in window for d in used)
        if at_risk:
            out[company] = used[-1] if used else None
    return out


@pytest.mark.parametrize(
    "day", [LAST, date(2026, 11, 13), date(2026, 10, 31), date(2026, 9, 30), *DAYS[6::9]]
)
def test_last_usage_is_looked_for_back_to_the_first_day_loaded(world: World, day: date) -> None:
    with reader_for(world.settings).session() as s:
        data = q.churn(s, day, "days_since_usage", "desc")
    expected = _expected(world, day)
    got = {c["company_id"]: c for c in data["companies"]}
    assert set(got) == set(expected)
    assert data["first_day"] == FIRST.isoformat()
    for company, used in expected.items():
        c = got[company]
        assert c["last_usage"] == (used.isoformat() if used else None), company
        assert c["days_since_usage"] == ((day - used).days if used else None), company
        assert c["no_usage_since"] == (None if used else FIRST.isoformat()), company
    assert len(got[next(iter(got))]["trend"]) == q.TREND_DAYS


def test_the_designed_companies(world: World) -> None:
    with reader_for(world.settings).session() as s:
        on_last = {
            c["company_id"]: c["last_usage"] for c in q.churn(s, LAST, "company_id", "asc")["companies"]
        }
        on_oct31 = {
            c["company_id"]: c["last_usage"]
            for c in q.churn(s, date(2026, 10, 31), "company_id", "asc")["companies"]
        }
    assert on_last["N-never-1"] is None and on_last["N-never-2"] is None
    assert on_last["L-aug05"] == "2026-08-05"
    assert on_last["L-aug31"] == "2026-08-31"
    assert on_last["L-sep01"] == "2026-09-01"
    assert on_last["L-oct31"] == "2026-10-31"
    assert on_last["L-nov01"] == "2026-11-01"
    assert on_last["E-oct10"] == "2026-10-10"
    assert "A-always" not in on_last and "R-resumes" not in on_last  # both used in the last 7 days
    assert on_oct31["R-resumes"] == "2026-09-24"  # not its usage of November, after the day asked for


def _ids(companies: list[dict[str, object]]) -> list[str]:
    return [str(c["company_id"]) for c in companies]


def test_never_seen_companies_come_first(world: World) -> None:
    expected = _expected(world, LAST)
    never = sorted(c for c, used in expected.items() if used is None)
    seen = sorted((c for c, used in expected.items() if used is not None), key=lambda c: c)
    assert len(never) >= 2
    with reader_for(world.settings).session() as s:
        down = _ids(q.churn(s, LAST, "days_since_usage", "desc")["companies"])
        up = _ids(q.churn(s, LAST, "days_since_usage", "asc")["companies"])
    by_days = sorted(seen, key=lambda c: (LAST - expected[c]).days)  # type: ignore[operator]
    assert down == never + sorted(by_days, key=lambda c: -(LAST - expected[c]).days)  # type: ignore[operator]
    assert up == never + by_days
    assert down[:2] == ["N-never-1", "N-never-2"]


@pytest.fixture(scope="module")
def http(world: World) -> Iterator[httpx.Client]:
    with BackgroundServer(world.settings) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


def test_page_api_and_csv_agree(http: httpx.Client, world: World) -> None:
    api = http.get("/api/churn").json()  # the defaults: the latest built day, most at risk first
    assert api["day"] == LAST.isoformat() and api["sort"] == "days_since_usage" and api["order"] == "desc"
    ids = _ids(api["companies"])
    assert ids[:2] == ["N-never-1", "N-never-2"]
    page = http.get("/churn").text
    assert page.count("no usage since the first day loaded, 2026-08-01") == sum(
        1 for c in api["companies"] if c["days_since_usage"] is None
    )
    assert "none in 30 days" not in page
    shown = [
        line.split("/companies/")[1].split('"')[0] for line in page.splitlines() if "/companies/" in line
    ]
    assert shown == ids
    rows = list(csv.DictReader(io.StringIO(http.get("/churn.csv").text)))
    assert [r["company_id"] for r in rows] == ids
    first = rows[0]
    assert (
        first["days_since_usage"] == ""
        and first["last_usage"] == ""
        and first["no_usage_since"] == "2026-08-01"
    )
    aug05 = next(r for r in rows if r["company_id"] == "L-aug05")
    assert aug05["days_since_usage"] == str((LAST - date(2026, 8, 5)).days) and aug05["no_usage_since"] == ""
