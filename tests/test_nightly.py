"""The nightly path on fixed examples: the spec's worked example (shared/specs/company-daily-activity.md)
built one day at a time, as the nightly run builds it, and the build gate's ``D-6`` boundary.

The Hypothesis model test (test_build.py) covers the same code on random histories; these pin the cases a
reader can check by hand, so a wrong nightly formulation or gate boundary fails a named test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from company_activity.config import load_settings
from company_activity.pipeline import Pipeline
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse, connect

from .helpers import Attrs, Model, build_from_state, days, loaded_at, seed_crm, seed_usage, table
from .test_build import d

NIGHTS = days(d(1), d(11))


def worked_example() -> tuple[dict[date, dict[str, Attrs]], dict[date, dict[str, tuple[int, int]]]]:
    """The spec's worked example: its CRM snapshots and usage, day by day."""
    crm: dict[date, dict[str, Attrs]] = {}
    usage: dict[date, dict[str, tuple[int, int]]] = {}
    for day in NIGHTS:
        crm[day] = {
            "A": ("Acme Corp" if day >= d(5) else "Acme", "DE", "saas", None),
            "B": ("Beta", "FR", None, None),
        }
        if day >= d(5):
            crm[day]["C"] = ("Gamma", None, "retail", None)
        usage[day] = {}
        if day != d(4):
            usage[day]["A"] = (10, 100)
        if day == d(1):
            usage[day]["B"] = (3, 5)
        if day == d(6):
            usage[day]["X"] = (1, 1)
    return crm, usage


def model_until(night: date) -> dict[tuple[date, str], tuple[object, ...]]:
    """The model of what is known after the night that loaded ``night``: its inputs up to that day."""
    crm, usage = worked_example()
    known = days(d(1), night)
    return Model({k: v for k, v in crm.items() if k <= night}, {k: usage[k] for k in known}, known).rows()


def assert_the_spec_table(t: dict[tuple[date, str], tuple[object, ...]]) -> None:
    """The rows the spec's worked example lists (name, active_users, events, 7d_active_users, churn)."""
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
    assert {k: (t[k][0], *t[k][4:]) for k in expected} == expected
    assert len(t) == 30
    assert {c: sum(1 for _, cid in t if cid == c) for c in "ABCX"} == {"A": 11, "B": 11, "C": 7, "X": 1}


class QueryLog:
    """Records the named queries a real warehouse runs (to see which build formulation ran)."""

    def __init__(self, wh: Warehouse) -> None:
        self.names: list[str] = []
        self._run = wh.run

        def run(file: str, name: str | None = None, params: dict[str, Any] | None = None) -> Any:
            self.names.append(name or file)
            return self._run(file, name, params)

        wh.run = run  # type: ignore[method-assign]


def test_the_worked_example_built_night_by_night_equals_the_model(wh: Warehouse) -> None:
    crm, usage = worked_example()
    log = QueryLog(wh)
    stamps: dict[tuple[date, str], datetime] = {}
    for n, night in enumerate(NIGHTS):
        # the night after `night`: its CRM snapshot and usage arrive, and that one day is built
        seed_crm(wh, night, crm[night])
        seed_usage(wh, night, usage[night])
        ok, blocked = RunStateStore(wh).check_gate([night])
        assert (ok, blocked) == ([night], {})
        first = RunStateStore(wh).first_usage_day()
        assert first == d(1)
        log.names.clear()
        built, rejected = build_from_state(
            wh, night, night, first_usage_day=first, loaded_at=datetime(2026, 12, 1, 2, n)
        )
        assert "candidate_short" in log.names and "candidate" not in log.names  # the nightly formulation
        assert [b.day for b in built] == [night] and rejected == {}
        assert table(wh) == model_until(night)
        now = loaded_at(wh)
        assert {k: v for k, v in now.items() if k[0] < night} == stamps  # earlier nights' rows untouched
        assert {v for k, v in now.items() if k[0] == night} == {datetime(2026, 12, 1, 2, n)}
        stamps = now
    assert_the_spec_table(table(wh))


# -- the same nights through the whole pipeline: `company-activity run`, once a day ------------------------
@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=1, companies=5, today=d(2))) as server:
        yield server


def test_the_worked_example_run_nightly_through_the_pipeline_equals_the_model(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    crm, usage = worked_example()
    lake = tmp_path / "lake"
    (lake / "crm").mkdir(parents=True)
    warehouse = str(tmp_path / "wh.duckdb")
    for day in NIGHTS:
        sim.options.overrides[day] = [UsageRecord(c, u, e) for c, (u, e) in usage[day].items()]
    for night in NIGHTS:
        lines = ["company_id,name,country,industry_tag,last_contact_at"]
        lines += [f"{c},{n},{co or ''},{i or ''}," for c, (n, co, i, _) in crm[night].items()]
        (lake / "crm" / f"crm_daily_{night.isoformat()}.csv").write_text("\r\n".join(lines) + "\r\n")
        today = night + timedelta(days=1)
        sim.set_today(today)
        settings = load_settings(
            warehouse=warehouse,
            lake=str(lake),
            api_url=sim.url,
            api_client_id="demo-client",
            api_client_secret="demo-secret",
            start_date=d(1),
            today=today,
            api_rate_limit=1000,
        )
        with Pipeline(settings, sinks=[]) as pipeline:
            report = pipeline.run()
        assert not report.failed, [(s.step, s.day, s.message) for s in report.steps if s.status == "failed"]
        assert [b.day for b in report.built] == [night]
        with connect(warehouse) as wh:
            assert table(wh) == model_until(night)
    with connect(warehouse) as wh:
        assert_the_spec_table(table(wh))


# -- the build gate's D-6 boundary ---------------------------------------------------------------------------
def test_the_gate_needs_d_minus_6_and_not_d_minus_7(wh: Warehouse) -> None:
    hole = d(3)
    for day in days(d(1), d(12)):
        if day != hole:
            seed_usage(wh, day, {"A": (1, 1)})
    ok, blocked = RunStateStore(wh).check_gate(days(d(1), d(12)))
    # d(9): its window d(3) … d(9) reaches the hole (D-6); d(10): its window starts on d(4) (the hole is D-7)
    assert ok == [d(1), d(2), d(10), d(11), d(12)]
    assert sorted(blocked) == days(d(3), d(9))
    assert all(blocked[day].missing == (hole,) for day in blocked)
    assert "2026-11-03" in str(blocked[d(9)])


def test_days_before_the_first_usage_day_do_not_block(wh: Warehouse) -> None:
    # usage starts on d(5): d(5) … d(10) need no day before d(5); d(11) is blocked only by its own day
    for day in days(d(5), d(10)):
        seed_usage(wh, day, {"A": (1, 1)})
    ok, blocked = RunStateStore(wh).check_gate(days(d(4), d(11)))
    assert ok == days(d(5), d(10))
    assert blocked[d(4)].missing == (d(4),)
    assert blocked[d(11)].missing == (d(11),)


def test_the_pipeline_refuses_the_day_whose_d_minus_6_is_incomplete(wh: Warehouse) -> None:
    """The gate as the build step applies it: the D-6 day incomplete keeps D out, D+1 is built."""
    crm, usage = worked_example()
    for day in NIGHTS:
        seed_crm(wh, day, crm[day])
        if day != d(4):
            seed_usage(wh, day, usage[day])
    ok, blocked = RunStateStore(wh).check_gate([d(10), d(11)])
    assert ok == [d(11)] and blocked[d(10)].missing == (d(4),)
    first = RunStateStore(wh).first_usage_day()
    assert first is not None
    build_from_state(wh, d(11), d(11), first_usage_day=first, loaded_at=datetime(2026, 12, 1))
    assert {day for day, _ in table(wh)} == {d(11)}
