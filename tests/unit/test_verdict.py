"""The verdict rules (company_activity.state.verdict), as docs/verdicts.md states them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from company_activity.state.verdict import LOOK, ORDER, RANK, DayFacts, day_verdict, part_levels, worst

pytestmark = pytest.mark.unit

BUILT = {"crm_status": "loaded", "usage_status": "complete", "build_status": "built"}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (DayFacts(), "no data"),
        (DayFacts(**BUILT, check_statuses=("pass", "pass")), "ok"),
        (DayFacts(**BUILT, check_statuses=("pass", "warn")), "warning"),
        (DayFacts(**BUILT, crm_rejected=2), "warning"),
        (DayFacts(**BUILT, usage_quarantined=1), "warning"),
        (DayFacts(**BUILT, check_statuses=("fail",)), "failed"),
        (DayFacts(crm_status="missing", usage_status="complete", build_status="built"), "failed"),
        (DayFacts(crm_status="loaded", usage_status="pending"), "pending"),
        (DayFacts(crm_status="loaded", usage_status="complete", build_status="stale"), "pending"),
        (DayFacts(crm_status="loaded", usage_status="complete", build_status="not built"), "pending"),
        (
            DayFacts(usage_status="lost", attempt_failed_step="ingest_usage", attempt_failed_status="failed"),
            "lost",
        ),
        # a lost day whose CRM also failed: failed is worse
        (DayFacts(crm_status="missing", usage_status="lost"), "failed"),
        # built from complete data, then a re-fetch failed: the data stands, the attempt is said
        (
            DayFacts(**BUILT, attempt_failed_step="ingest_usage", attempt_failed_status="failed"),
            "last attempt failed",
        ),
        (
            DayFacts(
                **BUILT, check_statuses=("warn",), attempt_failed_step="build", attempt_failed_status="failed"
            ),
            "last attempt failed",
        ),
        (
            DayFacts(**BUILT, attempt_failed_step="ingest_crm", attempt_failed_status="interrupted"),
            "last attempt failed",
        ),
        # not built yet and the attempt failed: failed; interrupted: the next run resumes it
        (
            DayFacts(
                crm_status="loaded",
                usage_status="pending",
                attempt_failed_step="ingest_usage",
                attempt_failed_status="failed",
            ),
            "failed",
        ),
        (
            DayFacts(
                crm_status="loaded", attempt_failed_step="ingest_usage", attempt_failed_status="interrupted"
            ),
            "pending",
        ),
        (DayFacts(**BUILT, running=True), "pending"),
    ],
)
def test_rules(facts: DayFacts, expected: str) -> None:
    assert day_verdict(facts) == expected


def test_the_order_and_every_look() -> None:
    assert ORDER == ("failed", "lost", "pending", "last attempt failed", "warning", "ok", "no data")
    assert [RANK[v] for v in ORDER] == sorted(RANK.values(), reverse=True)
    assert set(LOOK) == set(ORDER)
    assert len({look.glyph for look in LOOK.values()}) == len(ORDER)  # each state its own glyph
    assert len({look.ascii for look in LOOK.values()}) == len(ORDER)
    assert len({look.css for look in LOOK.values()}) == len(ORDER)


STATUSES = st.sampled_from(
    [
        None,
        "loaded",
        "missing",
        "complete",
        "pending",
        "lost",
        "failed",
        "built",
        "stale",
        "not built",
        "warning",
    ]
)


@given(
    crm=STATUSES,
    usage=STATUSES,
    build=STATUSES,
    checks=st.lists(st.sampled_from(["pass", "warn", "fail"]), max_size=3),
    rejected=st.integers(0, 3),
)
def test_without_a_failed_attempt_the_verdict_is_the_worst_part(
    crm: str | None, usage: str | None, build: str | None, checks: list[str], rejected: int
) -> None:
    facts = DayFacts(
        crm_status=crm,
        crm_rejected=rejected,
        usage_status=usage,
        build_status=build,
        check_statuses=tuple(checks),
    )
    parts = part_levels(facts)
    assert day_verdict(facts) == worst(parts.values())
    assert all(RANK[day_verdict(facts)] >= RANK[p] for p in parts.values())
