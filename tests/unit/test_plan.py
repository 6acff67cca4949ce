"""The pure plan (``run/plan.py``): no database, no lake, no clock — run state is passed in."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from company_activity.errors import ConfigError
from company_activity.run import plan
from company_activity.run.vocab import STEPS, rerun_hint

TODAY = date(2026, 11, 20)


def d(n: int) -> date:
    return date(2026, 11, n)


def test_run_catches_up_incomplete_days_and_always_redoes_yesterday() -> None:
    statuses = {d(15): "complete", d(16): "failed", d(17): "complete", d(18): "pending", d(19): "complete"}
    p = plan.plan_run(today=TODAY, start=d(15), retention_days=30, statuses=statuses)
    assert p.days == (d(16), d(18), d(19))
    assert p.catch_up == (d(16), d(18))
    assert p.lost == ()
    assert p.steps == STEPS and not p.only


def test_run_marks_days_past_retention_lost_and_skips_lost_ones() -> None:
    statuses = {d(1): "lost", d(3): "complete"}
    p = plan.plan_run(today=TODAY, start=d(1), retention_days=16, statuses=statuses)  # oldest served: d(4)
    assert p.lost == (d(2),)
    assert p.days[0] == d(4) and p.days[-1] == d(19)
    assert d(3) not in p.days


def test_closed_days_only() -> None:
    with pytest.raises(ConfigError, match="not a closed day yet"):
        plan.closed(TODAY, TODAY, "--date")
    with pytest.raises(ConfigError, match="--end 2026-11-01 is before --start 2026-11-02"):
        plan.closed_range(d(2), d(1), TODAY, "--start")
    assert plan.closed_range(d(1), d(3), TODAY, "--start") == [d(1), d(2), d(3)]


def test_rerun_starts_at_the_first_step_not_done() -> None:
    assert plan.first_unfinished_step({}) == "ingest_crm"
    assert plan.first_unfinished_step({"ingest_crm": "warning", "ingest_usage": "failed"}) == "ingest_usage"
    assert plan.first_unfinished_step(dict.fromkeys(STEPS, "succeeded")) == "build"
    assert plan.steps_from("ingest_usage") == ("ingest_usage", "build")
    with pytest.raises(ConfigError, match="is not one of"):
        plan.steps_from("load")


def test_affected_days() -> None:
    assert plan.usage_affected_days(d(10)) == {d(10) + timedelta(days=k) for k in range(7)}
    # a CRM snapshot is in effect until the next one; its churn flags reach 6 days further
    assert plan.crm_affected_days(d(10), d(12), TODAY) == set(plan.days(d(10), d(17)))
    assert plan.crm_affected_days(d(10), None, TODAY) == set(plan.days(d(10), TODAY + timedelta(days=6)))


def test_gate_and_segments() -> None:
    complete = {d(k) for k in (1, 2, 3, 4, 5, 6, 7, 9)}
    ok, blocked = plan.split_gate([d(3), d(7), d(8), d(9)], complete, first=d(1))
    assert ok == [d(3), d(7)]
    assert list(blocked[d(8)].missing) == [d(8)]
    assert list(blocked[d(9)].missing) == [d(8)]
    assert plan.gate_missing(d(3), complete, None) == [d(3)]
    assert plan.segments([d(1), d(2), d(3), d(5)]) == [(d(1), d(3)), (d(5), d(5))]


@given(st.sets(st.integers(min_value=0, max_value=60)))
def test_segments_cover_the_days_exactly_and_never_touch(offsets: set[int]) -> None:
    ds = {d(1) + timedelta(days=k) for k in offsets}
    segs = plan.segments(ds)
    assert {x for s, e in segs for x in plan.days(s, e)} == ds
    for (_, e1), (s2, _) in itertools.pairwise(segs):
        assert s2 - e1 > timedelta(days=1)


def test_rerun_hints() -> None:
    assert rerun_hint("run", d(3)) == "company-activity run --date 2026-11-03"
    assert (
        rerun_hint("rerun", d(3), from_step="build")
        == "company-activity rerun --date 2026-11-03 --from-step build"
    )
    assert rerun_hint("build", d(3), end=d(4)) == "company-activity build --start 2026-11-03 --end 2026-11-04"
    assert (
        rerun_hint("verbatim", verbatim="replay --date 2026-11-03")
        == "company-activity replay --date 2026-11-03"
    )


def test_a_plan_describes_itself() -> None:
    p = plan.plan_run(today=TODAY, start=d(18), retention_days=30, statuses={})
    assert p.describe()[:5] == [
        "command: company-activity run",
        "days: 2026-11-18, 2026-11-19",
        "steps: ingest_crm, ingest_usage, build",
        "catch-up: 2026-11-18",
        "lost: none",
    ]


def test_run_fetches_the_gate_window_before_the_start_date_only_from_the_first_usage_day() -> None:
    today = date(2026, 11, 12)
    start = date(2026, 11, 11)  # the first nightly run; an earlier one-off run made 10-20 complete
    statuses = {date(2026, 10, 20): "complete"}
    p = plan.plan_run(
        today=today, start=start, retention_days=30, statuses=statuses, first_usage_day=date(2026, 10, 20)
    )
    window = tuple(date(2026, 11, d) for d in range(5, 11))
    assert p.days == (*window, start)
    assert p.gate_only == window  # ingested for the gate of 11-11, not built
    # nothing before the first usage day, nothing complete, nothing past retention
    statuses[date(2026, 11, 7)] = "complete"
    p = plan.plan_run(
        today=today, start=start, retention_days=7, statuses=statuses, first_usage_day=date(2026, 11, 6)
    )
    assert p.gate_only == (date(2026, 11, 6), date(2026, 11, 8), date(2026, 11, 9), date(2026, 11, 10))
    # no first usage day before the start: the window is not needed
    assert plan.plan_run(
        today=today, start=start, retention_days=30, statuses={}, first_usage_day=None
    ).days == (start,)
