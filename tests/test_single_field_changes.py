"""One input field changes at a time, through the whole pipeline, on DuckDB and on PostgreSQL.

A ten-day history is run once (the simulator serves usage the test fixes company by company; the CRM
snapshots are CSV files the test writes, two of them missing at first). Then exactly one thing changes:

- a usage field (``active_users`` or ``events``) of one company on one day: the API serves the corrected
  day and ``run --date`` re-ingests it (and a user moved between two days, re-ingested by ``backfill``: a
  row whose ``active_users`` changes while its 7-day sum does not);
- a CRM attribute (``company_name``, ``country``, ``industry_tag``, ``last_contact_at``) of one company,
  a company leaving the snapshot, a company joining it: the missing snapshot arrives late and
  ``run --date`` loads it.

After each, the WHOLE analytics table must equal the plain-Python model of the spec (tests/helpers.py), and
``record_loaded_at`` must have moved on exactly the rows whose values changed (and on no other row).
Each publish-step comparison of ``sql/populate_company_daily_activity.sql`` is needed by one of these tests:
without it the changed row keeps its stale values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from company_activity.config import load_settings
from company_activity.pipeline import Pipeline, RunReport
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.warehouse import connect

from . import pg
from .helpers import Attrs, Model, days, loaded_at, table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
engine = pg.engine
new_warehouse_url = pg.new_warehouse_url
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 11)
ALL = days(FIRST, LAST)
LATE = date(2026, 11, 3)  # its snapshot (and the next day's) is missing until a test delivers it late
MISSING = {LATE, LATE + timedelta(days=1)}
USAGE_DAY = date(2026, 11, 5)  # the day whose usage is corrected

A, B, C, D, E, U = "C0000001", "C0000002", "C0000003", "C0000004", "C0000005", "C0000099"
CONTACT = datetime(2026, 10, 1, 12, 0)

# the CRM snapshot of every day that has one: four companies (E joins only in a test; U never is in the CRM)
BASE_CRM: dict[str, Attrs] = {
    A: ("Acme", "DE", "saas", CONTACT),
    B: ("Beta", "FR", None, None),
    C: ("Gamma", None, "retail", datetime(2026, 9, 30, 8, 15)),
    D: ("Delta", "US", "fintech", None),
}


def base_usage() -> dict[date, dict[str, tuple[int, int]]]:
    """A every day; B some days; C only the first day (churn risk later); D never (churn risk); U once."""
    usage: dict[date, dict[str, tuple[int, int]]] = {}
    for k, day in enumerate(ALL):
        records = {A: (5 + k % 3, 40 + k)}
        if k in (0, 1, 2, 5, 6):
            records[B] = (2, 7 + k)
        if k == 0:
            records[C] = (1, 1)
        if k == 3:
            records[U] = (1, 9)
        usage[day] = records
    return usage


def crm_csv(companies: dict[str, Attrs]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["company_id", "name", "country", "industry_tag", "last_contact_at"])
    for cid, (name, country, industry, contact) in companies.items():
        stamp = contact.strftime("%Y-%m-%dT%H:%M:%SZ") if contact else ""
        writer.writerow([cid, name or "", country or "", industry or "", stamp])
    return buffer.getvalue().encode()


class World:
    """The inputs (CRM files in a local lake, usage served by the simulator) and the model they give."""

    def __init__(self, sim: SimulatorServer, lake: Path, warehouse: str) -> None:
        self.sim, self.lake, self.warehouse = sim, lake, warehouse
        self.crm: dict[date, dict[str, Attrs]] = {}
        self.usage = base_usage()
        for day in ALL:
            if day not in MISSING:
                self.put_crm(day, dict(BASE_CRM))
            self.put_usage(day, self.usage[day])

    def put_crm(self, day: date, companies: dict[str, Attrs]) -> None:
        self.crm[day] = companies
        path = self.lake / "crm" / f"crm_daily_{day.isoformat()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(crm_csv(companies))

    def put_usage(self, day: date, records: dict[str, tuple[int, int]]) -> None:
        self.usage[day] = records
        self.sim.options.overrides[day] = [UsageRecord(c, u, e) for c, (u, e) in records.items()]

    def model(self) -> dict[tuple[date, str], tuple[object, ...]]:
        return Model(self.crm, self.usage, ALL).rows()

    def run(self, day: date | None = None, *, until: date | None = None) -> RunReport:
        """``run`` (catch up), ``run --date day``, or ``backfill --start day --end until``."""
        settings = load_settings(
            warehouse=self.warehouse,
            lake=str(self.lake),
            api_url=self.sim.url,
            api_client_id="demo-client",
            api_client_secret="demo-secret",
            start_date=FIRST,
            today=TODAY,
            api_rate_limit=1000,
        )
        with Pipeline(settings, sinks=[]) as pipeline:
            if day is not None and until is not None:
                return pipeline.backfill(day, until)
            return pipeline.run(day=day)

    def snapshot(self) -> tuple[dict[tuple[date, str], tuple[object, ...]], dict[tuple[date, str], datetime]]:
        with connect(self.warehouse) as wh:
            return table(wh), loaded_at(wh)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=3, companies=10, today=TODAY)) as server:
        yield server


@pytest.fixture
def world(sim: SimulatorServer, tmp_path: Path, wh_url: str) -> Iterator[World]:
    sim.options.overrides.clear()
    w = World(sim, tmp_path / "lake", wh_url)
    report = w.run()
    failed = {(s.step, s.day) for s in report.steps if s.status == "failed"}
    assert failed == {("ingest_crm", day) for day in MISSING}  # the late snapshots are not there yet
    assert sorted(b.day for b in report.built) == ALL
    rows, _ = w.snapshot()
    assert rows == w.model()
    assert any(row[7] for row in rows.values())  # churn risk is in the table: both outcomes are compared
    yield w
    sim.options.overrides.clear()


def changed_keys(
    before: dict[tuple[date, str], tuple[object, ...]], after: dict[tuple[date, str], tuple[object, ...]]
) -> set[tuple[date, str]]:
    """Rows that are new, or whose values differ (rows that left are not in the table any more)."""
    return {key for key, row in after.items() if before.get(key) != row}


def assert_only_changed_rows_reloaded(
    world: World, change: Callable[[], date], *, until: date | None = None
) -> set[tuple[date, str]]:
    """Apply ``change`` (returns the day to rerun), rerun that day (or backfill it ``until``), compare the
    whole table with the model and the moved ``record_loaded_at`` with the rows whose values changed.
    Returns the changed rows."""
    model_before = world.model()
    rows_before, stamps_before = world.snapshot()
    assert rows_before == model_before
    day = change()
    model_after = world.model()
    expected = changed_keys(model_before, model_after)
    assert expected, "the change must change some row of the model"
    report = world.run(day, until=until)
    assert not report.failed, [(s.step, s.day, s.message) for s in report.steps if s.status == "failed"]
    rows_after, stamps_after = world.snapshot()
    assert rows_after == model_after
    moved = {key for key, stamp in stamps_after.items() if stamps_before.get(key) != stamp}
    assert moved == expected
    # what the build says it changed, day by day, is what changed
    new = {key for key in expected if key not in rows_before}
    gone = {key for key in rows_before if key not in rows_after}
    for b in report.built:
        on_day = {k for k in expected if k[0] == b.day}
        assert b.inserted == len({k for k in new if k[0] == b.day}), b
        assert b.updated == len(on_day) - b.inserted, b
        assert b.deleted == len({k for k in gone if k[0] == b.day}), b
        assert b.unchanged == b.row_count - len(on_day), b
    assert {b.day for b in report.built} >= {k[0] for k in expected | gone}
    return expected


# -- usage fields: the API serves a corrected day, `run --date` re-ingests it -------------------------------
def test_a_corrected_events_figure_rewrites_that_row_alone(world: World) -> None:
    def change() -> date:
        records = dict(world.usage[USAGE_DAY])
        users, events = records[A]
        records[A] = (users, events + 5)
        world.put_usage(USAGE_DAY, records)
        return USAGE_DAY

    assert assert_only_changed_rows_reloaded(world, change) == {(USAGE_DAY, A)}


def test_corrected_active_users_rewrite_the_day_and_its_7_day_sums(world: World) -> None:
    def change() -> date:
        records = dict(world.usage[USAGE_DAY])
        users, events = records[A]
        records[A] = (users + 4, events)
        world.put_usage(USAGE_DAY, records)
        return USAGE_DAY

    changed = assert_only_changed_rows_reloaded(world, change)
    assert changed == {(day, A) for day in days(USAGE_DAY, USAGE_DAY + timedelta(days=6))}


def test_users_moved_between_two_days_rewrite_rows_whose_7_day_sum_stays(world: World) -> None:
    # one user moves from USAGE_DAY to the day after: on the day after only active_users differs (its 7-day
    # sum holds both days), so the publish step must compare active_users itself
    after = USAGE_DAY + timedelta(days=1)

    def change() -> date:
        for day, delta in ((USAGE_DAY, -1), (after, +1)):
            records = dict(world.usage[day])
            users, events = records[A]
            records[A] = (users + delta, events)
            world.put_usage(day, records)
        return USAGE_DAY

    changed = assert_only_changed_rows_reloaded(world, change, until=after)
    assert changed == {(USAGE_DAY, A), (after, A)}  # the later 7-day sums hold both days: unchanged


# -- CRM attributes: the missing snapshot of LATE arrives late --------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        (0, "Acme Renamed"),
        (1, "AT"),
        (2, "edtech"),
        (3, datetime(2026, 11, 2, 9, 30)),
    ],
    ids=["company_name", "country", "industry_tag", "last_contact_at"],
)
def test_a_late_snapshot_changing_one_attribute_rewrites_those_rows_alone(
    world: World, field: int, value: object
) -> None:
    def change() -> date:
        companies = dict(BASE_CRM)
        attrs = list(companies[A])
        attrs[field] = value
        companies[A] = (attrs[0], attrs[1], attrs[2], attrs[3])  # type: ignore[assignment]
        world.put_crm(LATE, companies)
        return LATE

    # in effect on LATE and the day after (the next snapshot is two days later)
    assert assert_only_changed_rows_reloaded(world, change) == {(LATE, A), (LATE + timedelta(days=1), A)}


def test_a_company_leaving_the_snapshot_loses_its_rows_and_its_later_churn_flag(world: World) -> None:
    def change() -> date:
        world.put_crm(LATE, {cid: attrs for cid, attrs in BASE_CRM.items() if cid != C})
        return LATE

    before, _ = world.snapshot()
    assert before[(LATE + timedelta(days=6), C)][7] is True  # C had a row six days earlier: churn risk
    changed = assert_only_changed_rows_reloaded(world, change)
    after, _ = world.snapshot()
    assert (LATE, C) not in after and (LATE + timedelta(days=1), C) not in after
    # without a row on D-6, C is no churn risk on D (LATE + 6 and the day after)
    assert changed == {(LATE + timedelta(days=6), C), (LATE + timedelta(days=7), C)}
    assert after[(LATE + timedelta(days=6), C)][7] is False


def test_a_company_joining_the_snapshot_gets_rows(world: World) -> None:
    def change() -> date:
        world.put_crm(LATE, dict(BASE_CRM) | {E: ("Epsilon", "NL", None, None)})
        return LATE

    changed = assert_only_changed_rows_reloaded(world, change)
    assert changed == {(LATE, E), (LATE + timedelta(days=1), E)}
