"""The build (sql/populate_company_daily_activity.sql) against the spec, on a real DuckDB file."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from company_activity.errors import BuildGateError
from company_activity.run import plan
from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse

from .helpers import Attrs, Model, build_from_state, days, seed_and_build, seed_crm, seed_usage, table

NOV = date(2026, 11, 1)


def d(n: int) -> date:
    return date(2026, 11, n)


def build_all(wh: Warehouse, start: date, end: date, at: datetime | None = None) -> None:
    first = RunStateStore(wh).first_usage_day()
    assert first is not None
    ok, _blocked = RunStateStore(wh).check_gate(days(start, end))
    for s, e in plan.segments(ok):
        build_from_state(wh, s, e, first_usage_day=first, loaded_at=at or datetime(2026, 12, 1))


def seed_worked_example(wh: Warehouse) -> None:
    for day in days(d(1), d(11)):
        crm: dict[str, Attrs] = {
            "A": ("Acme Corp" if day >= d(5) else "Acme", "DE", "saas", None),
            "B": ("Beta", "FR", None, None),
        }
        if day >= d(5):
            crm["C"] = ("Gamma", None, "retail", None)
        seed_crm(wh, day, crm)
        usage = {}
        if day != d(4):
            usage["A"] = (10, 100)
        if day == d(1):
            usage["B"] = (3, 5)
        if day == d(6):
            usage["X"] = (1, 1)
        seed_usage(wh, day, usage)


def test_worked_example_row_for_row(wh: Warehouse) -> None:
    seed_worked_example(wh)
    build_all(wh, d(1), d(11))
    t = table(wh)
    # (name, active_users, events, 7d_active_users, is_churn_risk) per the spec's table
    expected = {
        (d(4), "A"): ("Acme", 0, 0, 30, False),
        (d(5), "A"): ("Acme Corp", 10, 100, 40, False),
        (d(11), "A"): ("Acme Corp", 10, 100, 70, False),
        (d(7), "B"): ("Beta", 0, 0, 3, False),
        (d(8), "B"): ("Beta", 0, 0, 0, True),
        (d(10), "C"): ("Gamma", 0, 0, 0, False),
        (d(11), "C"): ("Gamma", 0, 0, 0, True),
        (d(6), "X"): (None, 1, 1, 1, False),
    }
    for key, (name, users, events, s7, churn) in expected.items():
        row = t[key]
        assert (row[0], row[4], row[5], row[6], row[7]) == (name, users, events, s7, churn), key
    assert len(t) == 30
    per_company = {c: sum(1 for (_, cid) in t if cid == c) for c in "ABCX"}
    assert per_company == {"A": 11, "B": 11, "C": 7, "X": 1}
    assert [k for k in t if k[1] == "X"] == [(d(6), "X")]


def test_worked_example_matches_model(wh: Warehouse) -> None:
    seed_worked_example(wh)
    build_all(wh, d(1), d(11))
    crm = {}
    usage = {}
    for day in days(d(1), d(11)):
        rows = wh.execute(
            "select company_id, company_name, country, industry_tag, last_contact_at from stg.crm_daily "
            "where snapshot_date = :d",
            {"d": day},
        )
        crm[day] = {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}
        urows = wh.execute(
            "select company_id, active_users, events from stg.product_usage_daily where activity_date = :d",
            {"d": day},
        )
        usage[day] = {r[0]: (r[1], r[2]) for r in urows}
    assert table(wh) == Model(crm, usage, days(d(1), d(11))).rows()


def test_build_gate_names_missing_days(wh: Warehouse) -> None:
    for day in [d(1), d(2), d(3), d(5), d(6)]:
        seed_usage(wh, day, {"A": (1, 1)})
    ok, blocked = RunStateStore(wh).check_gate([d(3), d(5), d(6), d(7)])
    assert ok == [d(3)]
    assert blocked[d(5)].missing == (d(4),)
    assert blocked[d(6)].missing == (d(4),)
    assert blocked[d(7)].missing == (d(4), d(7))
    assert "2026-11-04" in str(blocked[d(5)])
    assert isinstance(blocked[d(5)], BuildGateError)


def test_no_churn_before_first_usage_day_plus_six(wh: Warehouse) -> None:
    for day in days(d(1), d(8)):
        seed_crm(wh, day, {"Q": ("Quiet", None, None, None)})
        seed_usage(wh, day, {})
    build_all(wh, d(1), d(8))
    t = table(wh)
    assert [t[(day, "Q")][7] for day in days(d(1), d(8))] == [False] * 6 + [True, True]


def test_missing_snapshot_carries_forward(wh: Warehouse) -> None:
    seed_crm(wh, d(1), {"A": ("Old", "DE", None, None)})
    seed_crm(wh, d(3), {"A": ("New", "DE", None, None), "B": ("Bee", None, None, None)})
    for day in days(d(1), d(4)):
        seed_usage(wh, day, {"A": (1, 2)})
    build_all(wh, d(1), d(4))
    t = table(wh)
    assert t[(d(2), "A")][0] == "Old"
    assert (d(2), "B") not in t
    assert t[(d(4), "A")][0] == "New"
    assert t[(d(4), "B")][0] == "Bee"


def test_rebuild_keeps_record_loaded_at_when_nothing_changes(wh: Warehouse) -> None:
    seed_worked_example(wh)
    build_all(wh, d(1), d(11), at=datetime(2026, 12, 1))
    before = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
    build_all(wh, d(1), d(11), at=datetime(2026, 12, 2))
    after = wh.execute("select * from analytics.company_daily_activity order by 1, 2")
    assert before == after


def test_changed_usage_rewrites_only_changed_rows(wh: Warehouse) -> None:
    seed_worked_example(wh)
    build_all(wh, d(1), d(11), at=datetime(2026, 12, 1))
    seed_usage(wh, d(6), {"A": (12, 100), "X": (1, 1)})
    build_all(wh, d(6), d(11), at=datetime(2026, 12, 2))
    rows = wh.execute(
        "select activity_date, company_id, record_loaded_at from analytics.company_daily_activity "
        "where record_loaded_at = :t order by 1, 2",
        {"t": datetime(2026, 12, 2)},
    )
    assert [(r[0], r[1]) for r in rows] == [(day, "A") for day in days(d(6), d(11))]
    assert table(wh)[(d(11), "A")][6] == 72


# -- property: the SQL equals the plain-Python model ------------------------------------------------------

COMPANIES = ["A", "B", "C", "D", "E"]


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[dict[date, dict[str, Attrs]], dict[date, dict[str, tuple[int, int]]], int]:
    n_days = draw(st.integers(min_value=1, max_value=16))
    all_days = days(NOV, NOV + timedelta(days=n_days - 1))
    crm: dict[date, dict[str, Attrs]] = {}
    # snapshots on a random subset of days (some start before usage, some missing days)
    for day in [NOV - timedelta(days=1), *all_days]:
        if draw(st.booleans()):
            members = draw(st.lists(st.sampled_from(COMPANIES), unique=True, min_size=1, max_size=4))
            crm[day] = {
                c: (
                    draw(st.sampled_from([f"{c}-name", f"{c}-renamed", None])),
                    draw(st.sampled_from(["DE", None])),
                    None,
                    draw(st.sampled_from([None, datetime(2026, 10, 1, 12)])),
                )
                for c in members
            }
    usage: dict[date, dict[str, tuple[int, int]]] = {}
    for day in all_days:
        active = draw(st.lists(st.sampled_from([*COMPANIES, "U1", "U2"]), unique=True, max_size=4))
        usage[day] = {c: draw(st.sampled_from([(0, 0), (0, 3), (2, 0), (5, 9), (1, 1)])) for c in active}
    return crm, usage, n_days


@pytest.mark.parametrize(
    ("short_range_days", "chunk_days"), [(0, 1000), (1000, 1000), (2, 3)], ids=["window", "short", "chunked"]
)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), gap=st.integers(min_value=0, max_value=20))
def test_sql_equals_model(
    wh: Warehouse,
    short_range_days: int,
    chunk_days: int,
    history: tuple,  # type: ignore[type-arg]
    gap: int,
) -> None:
    crm, usage, n_days = history
    all_days = days(NOV, NOV + timedelta(days=n_days - 1))
    # one day may be incomplete (a gap): the build gate keeps the days that need it out
    complete = [day for i, day in enumerate(all_days) if i != gap]
    seed_and_build(
        wh, crm, usage, all_days, complete, short_range_days=short_range_days, chunk_days=chunk_days
    )
    model_usage = {day: usage[day] for day in complete}
    assert table(wh) == Model(crm, model_usage, complete).rows()
