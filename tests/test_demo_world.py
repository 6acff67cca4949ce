"""The demo's synthetic world (issue 23): its weekday seasonality is in the user counts, so the daily
record count that the volume check watches stays level and a normal week raises no volume warning; the
default world, which the monitoring tests use, keeps its quiet weekends."""

from __future__ import annotations

import itertools
import statistics
from datetime import date, timedelta

import pytest

from company_activity.config import Settings
from company_activity.simulator.cli import WORLD_DAYS
from company_activity.simulator.data import SyntheticData
from company_activity.steps.checks import evaluate_volume, volume_rules

RULE = volume_rules(Settings())["usage"]  # the default rule: a drop of more than 10 % against both


def _counts(data: SyntheticData, days: list[date]) -> dict[date, int]:
    return {d: len(data.usage(d)) for d in days}


def _warnings(counts: dict[date, int], days: list[date]) -> list[str]:
    """The volume warnings the pipeline would raise on ``days`` (its first one has no earlier figure)."""
    out = []
    for day in days[1:]:
        check = evaluate_volume(
            "usage",
            day,
            counts[day],
            counts[day - timedelta(days=1)],
            counts.get(day - timedelta(days=7)),
            RULE,
        )
        if check.anomalous:
            out.append(check.message)
    return out


def test_the_demos_world_raises_no_volume_warning_in_any_demo_of_a_year() -> None:
    """Every 14-day demo with the default seed and population, `today` every other day of 2026-2027."""
    worst = 0.0
    for k in range(0, 730, 2):
        today = date(2026, 1, 1) + timedelta(days=k)
        data = SyntheticData(
            seed=7, companies=200, epoch=today - timedelta(days=WORLD_DAYS), seasonality="users"
        )
        days = [today - timedelta(days=14 - i) for i in range(14)]
        counts = _counts(data, days)
        assert _warnings(counts, days) == [], today
        worst = max(worst, *((counts[a] - counts[b]) / counts[a] for a, b in itertools.pairwise(days)))
    assert worst < 0.06  # the largest day-to-day drop (4.9 %): well under the threshold


def test_the_weekday_seasonality_is_in_the_demos_user_counts() -> None:
    data = SyntheticData(seed=7, companies=200, epoch=date(2026, 10, 1), seasonality="users")
    fri, sat = date(2026, 11, 13), date(2026, 11, 14)
    users = {d: sum(r.active_users for r in data.usage(d)) for d in (fri, sat)}
    assert users[sat] < 0.5 * users[fri]  # fewer users at weekends …
    assert abs(len(data.usage(sat)) - len(data.usage(fri))) <= 0.05 * len(
        data.usage(fri)
    )  # … as many records


def test_the_default_world_keeps_its_quiet_weekends_and_warns_on_a_new_pipelines_first_saturday() -> None:
    data = SyntheticData(seed=7, companies=200, epoch=date(2026, 10, 1))
    days = [date(2026, 11, 9) + timedelta(days=i) for i in range(14)]  # Monday 9 … Sunday 22
    counts = _counts(data, days)
    weekday = statistics.mean(counts[d] for d in days if d.weekday() < 5)
    weekend = statistics.mean(counts[d] for d in days if d.weekday() >= 5)
    assert weekend < 0.85 * weekday
    assert any("2026-11-14" in w for w in _warnings(counts, days))  # no figure a week earlier yet


def test_an_unknown_seasonality_is_refused() -> None:
    with pytest.raises(ValueError, match="seasonality must be one of companies, users"):
        SyntheticData(seasonality="weekly")
