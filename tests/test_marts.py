"""The weekly and monthly marts equal a plain-Python model of them, on DuckDB and PostgreSQL.

The model reads the published daily table and groups it by ISO week and calendar month; the marts are
what the build's hook (``marts.refresh``) left, after a first build and after a rebuild of a few days.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse

from . import pg
from .helpers import Attrs, build_from_state, days, seed_and_build, seed_usage

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url
any_wh = pg.any_wh

COMPANIES = ["C1", "C2", "C3"]
# first days: mid-week across a month's end, and the last ISO week (53) of 2026 into 2027
STARTS = [date(2026, 11, 25), date(2026, 12, 24), date(2026, 12, 1)]

WEEKLY = (
    "select week_start, company_id, week_end, iso_year, iso_week, company_name, days_in_period, "
    "days_covered, active_days, avg_active_users, peak_active_users, events, is_churn_risk, is_partial "
    "from analytics.company_weekly_activity"
)
MONTHLY = (
    "select month_start, company_id, month_end, company_name, days_in_period, days_covered, active_days, "
    "avg_active_users, peak_active_users, events, is_churn_risk, is_partial "
    "from analytics.company_monthly_activity"
)
DAILY = (
    "select activity_date, company_id, company_name, active_users, events, is_churn_risk "
    "from analytics.company_daily_activity"
)

Key = tuple[date, str]


def model(wh: Warehouse) -> tuple[dict[Key, tuple[object, ...]], dict[Key, tuple[object, ...]]]:
    """The marts from the daily table, in Python: (weekly, monthly) keyed by (period start, company)."""
    daily = wh.execute(DAILY)
    weekly_start = {r[0]: r[0] - timedelta(days=r[0].weekday()) for r in daily}
    monthly_start = {r[0]: r[0].replace(day=1) for r in daily}

    def month_end(start: date) -> date:
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return nxt - timedelta(days=1)

    def group(starts: dict[date, date]) -> dict[Key, list[tuple[object, ...]]]:
        out: dict[Key, list[tuple[object, ...]]] = defaultdict(list)
        for r in daily:
            out[(starts[r[0]], r[1])].append(r)
        return out

    def built(starts: dict[date, date]) -> dict[date, int]:
        count: dict[date, set[date]] = defaultdict(set)
        for r in daily:
            count[starts[r[0]]].add(r[0])
        return {k: len(v) for k, v in count.items()}

    def figures(rows: list[tuple[object, ...]], length: int, built_days: int) -> tuple[object, ...]:
        rows = sorted(rows, key=lambda r: r[0])  # type: ignore[arg-type,return-value]
        last = rows[-1]
        users = [int(r[3]) for r in rows]  # type: ignore[call-overload]
        events = sum(int(r[4]) for r in rows)  # type: ignore[call-overload]
        return (
            last[2],
            length,
            len(rows),
            sum(1 for u in users if u > 0),
            pytest.approx(sum(users) / len(users)),
            max(users),
            events,
            last[5],
            built_days < length,
        )

    weekly_built, monthly_built = built(weekly_start), built(monthly_start)
    weekly = {}
    for (start, cid), rows in group(weekly_start).items():
        iso = start.isocalendar()
        weekly[(start, cid)] = (
            start + timedelta(days=6),
            iso.year,
            iso.week,
            *figures(rows, 7, weekly_built[start]),
        )
    monthly = {}
    for (start, cid), rows in group(monthly_start).items():
        end = month_end(start)
        monthly[(start, cid)] = (end, *figures(rows, (end - start).days + 1, monthly_built[start]))
    return weekly, monthly


def marts(wh: Warehouse) -> tuple[dict[Key, tuple[object, ...]], dict[Key, tuple[object, ...]]]:
    weekly = {(r[0], r[1]): tuple(r[2:]) for r in wh.execute(WEEKLY)}
    monthly = {(r[0], r[1]): tuple(r[2:]) for r in wh.execute(MONTHLY)}
    return weekly, monthly


@st.composite
def histories(draw: st.DrawFn) -> tuple[date, int, dict[date, dict[str, tuple[int, int]]], dict[str, Attrs]]:
    first = draw(st.sampled_from(STARTS))
    n_days = draw(st.integers(min_value=1, max_value=20))
    usage: dict[date, dict[str, tuple[int, int]]] = {}
    for day in days(first, first + timedelta(days=n_days - 1)):
        active = draw(st.lists(st.sampled_from(COMPANIES), unique=True, max_size=3))
        usage[day] = {c: draw(st.sampled_from([(0, 0), (0, 3), (2, 0), (5, 9), (1, 1)])) for c in active}
    crm = {
        c: (f"{c}-name", "DE", None, None) for c in draw(st.lists(st.sampled_from(COMPANIES), unique=True))
    }
    return first, n_days, usage, crm


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=histories(),
    gap=st.integers(min_value=0, max_value=25),
    changed=st.integers(0, 19),
    chunk_days=st.sampled_from([3, 1000]),  # a build in chunks refreshes the periods of each chunk
)
def test_marts_equal_the_model(
    any_wh: Warehouse,
    history: tuple,  # type: ignore[type-arg]
    gap: int,
    changed: int,
    chunk_days: int,
) -> None:
    wh = any_wh
    first, n_days, usage, crm = history
    all_days = days(first, first + timedelta(days=n_days - 1))
    complete = [d for d in all_days if d != first + timedelta(days=gap)]  # maybe one pending day
    with wh.transaction():
        for derived in ("company_weekly_activity", "company_monthly_activity", "company_activity_parts"):
            wh.execute(f"delete from analytics.{derived}")  # noqa: S608 - fixed names
        wh.execute("delete from analytics.activity_summary_daily")
    seed_and_build(wh, {first - timedelta(days=1): crm}, usage, all_days, complete, chunk_days=chunk_days)
    assert marts(wh) == model(wh)
    # a later build of one day (new usage figures) rebuilds the periods around it, and only those
    day = all_days[changed % len(all_days)]
    if day in complete and RunStateStore(wh).check_gate([day])[0]:
        seed_usage(wh, day, {c: (u + 7, e + 1) for c, (u, e) in usage[day].items()} | {"C9": (3, 3)})
        first_usage = RunStateStore(wh).first_usage_day()
        assert first_usage is not None
        build_from_state(wh, day, day, first_usage_day=first_usage, loaded_at=datetime(2026, 12, 2))
        assert marts(wh) == model(wh)


def test_a_week_and_a_month_by_hand(any_wh: Warehouse) -> None:
    """Fixed case: Mon 30 Nov … Thu 3 Dec 2026, one company; the week and both months are partial."""
    wh = any_wh
    first = date(2026, 11, 30)
    usage = {
        first: {"A": (4, 10)},
        first + timedelta(days=1): {"A": (0, 0)},
        first + timedelta(days=2): {"A": (6, 1)},
        first + timedelta(days=3): {},
    }
    seed_and_build(wh, {first: {"A": ("Acme", "DE", None, None)}}, usage, list(usage), list(usage))
    weekly, monthly = marts(wh)
    assert weekly == {(first, "A"): (date(2026, 12, 6), 2026, 49, "Acme", 7, 4, 2, 2.5, 6, 11, False, True)}
    assert monthly == {
        (date(2026, 11, 1), "A"): (date(2026, 11, 30), "Acme", 30, 1, 1, 4.0, 4, 10, False, True),
        (date(2026, 12, 1), "A"): (date(2026, 12, 31), "Acme", 31, 3, 1, 2.0, 6, 1, False, True),
    }


def test_a_build_that_changes_no_row_rewrites_no_mart_row_and_empty_marts_are_filled(
    any_wh: Warehouse,
) -> None:
    """Marts follow the daily table's rows, not the builds: a rebuild that changes nothing leaves every
    mart row (``built_at`` included); a changed day restamps its week's and month's rows only; marts with
    no figures for days that have rows (a warehouse from before the marts) are filled by the next build."""
    wh = any_wh
    first = date(2026, 11, 25)  # Wed: the days cross a week's and a month's end
    all_days = days(first, first + timedelta(days=9))
    usage = {d: {"C1": (d.day % 4, d.day), "C2": (1, 2)} for d in all_days}
    crm = {c: (f"{c}-name", "DE", None, None) for c in COMPANIES}
    seed_and_build(wh, {first - timedelta(days=1): crm}, usage, all_days, all_days)
    stamps = "select week_start, company_id, built_at from analytics.company_weekly_activity order by 1, 2"
    month_stamps = (
        "select month_start, company_id, built_at from analytics.company_monthly_activity order by 1, 2"
    )
    first_usage = RunStateStore(wh).first_usage_day()
    assert first_usage is not None
    before = (
        marts(wh),
        wh.execute(stamps),
        wh.execute(month_stamps),
        wh.execute("select * from analytics.activity_summary_daily order by 1, 2, 3"),
    )
    assert (
        before[0] == model(wh) and len(before[1]) == len(before[2]) == 3 * 2
    )  # 3 companies, 2 weeks, 2 months

    build_from_state(wh, first, all_days[-1], first_usage_day=first_usage, loaded_at=datetime(2026, 12, 20))
    assert (
        marts(wh),
        wh.execute(stamps),
        wh.execute(month_stamps),
        wh.execute("select * from analytics.activity_summary_daily order by 1, 2, 3"),
    ) == before

    changed, at = date(2026, 12, 2), datetime(2026, 12, 21)  # in the week of Nov 30 and in December
    seed_usage(wh, changed, {"C1": (9, 9), "C2": (1, 2)})
    build_from_state(wh, changed, changed, first_usage_day=first_usage, loaded_at=at)
    assert marts(wh) == model(wh)
    old = {(r[0], r[1]): r[2] for r in before[1]} | {(r[0], r[1]): r[2] for r in before[2]}
    for start, cid, built_at in [*wh.execute(stamps), *wh.execute(month_stamps)]:
        touched = start in (date(2026, 11, 30), date(2026, 12, 1))
        assert built_at == (at if touched else old[(start, cid)]), (start, cid)

    with wh.transaction():
        for derived in ("company_weekly_activity", "company_monthly_activity", "company_activity_parts"):
            wh.execute(f"delete from analytics.{derived}")  # noqa: S608 - fixed names
        wh.execute("delete from analytics.activity_summary_daily")
    build_from_state(wh, first, all_days[-1], first_usage_day=first_usage, loaded_at=datetime(2026, 12, 22))
    assert marts(wh) == model(wh) and len(wh.execute(stamps)) == 6
