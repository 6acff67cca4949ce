"""Issue 24: a usage record over one of the project's OWN limits is quarantined, not the whole day.

End to end through the CLI, the simulator on loopback (its ``oversized_id_days`` fault serves company ids of
300 characters, over the 256-character cap), a real lake folder and real DuckDB / PostgreSQL warehouses:
the day is published without the record, which is kept in the lake's ``_quarantine.json``, in
``ops.usage_quarantine`` and counted in ``ops.usage_days.quarantined_count``; the step is a warning with an
alert. Past 5% of the day's records the day fails naming ``replay``; the spec's own contract errors still
fail the day; ``replay`` quarantines the same records again. See ``docs/usage-api-policy.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from company_activity.cli import main
from company_activity.raw.landing import StagedDay
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.simulator.server import OVERSIZED_ID_LENGTH
from company_activity.storage import open_lake
from company_activity.warehouse import Warehouse, connect, migrations

from . import pg
from .helpers import days

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
DAY = date(2026, 11, 10)  # a Tuesday: ~85 active companies of 120, 4 pages of 25
SECRET = "s3cret-Quarantine-do-not-print"
PAGE_SIZE = 25
LONG_REASON = (
    f"field 'company_id' is {OVERSIZED_ID_LENGTH} characters long, more than the 256 a company id may have"
)


class World:
    """A simulator, a lake with the CRM snapshots, a warehouse, and the CLI over them."""

    def __init__(self, tmp: Path, sim: SimulatorServer, warehouse: str | None) -> None:
        self.sim = sim
        self.lake = tmp / "lake"
        self.warehouse = warehouse or str(tmp / "wh.duckdb")
        sim.data.write_crm_snapshots(open_lake(str(self.lake)), days(TODAY - timedelta(days=10), TODAY))

    def cli(self, *args: str) -> Result:
        env = {
            "WAREHOUSE": self.warehouse,
            "LAKE": str(self.lake),
            "API_URL": self.sim.url,
            "API_CLIENT_ID": "demo-client",
            "API_CLIENT_SECRET": SECRET,
            "TODAY": TODAY.isoformat(),
            "START_DATE": DAY.isoformat(),
            "API_PAGE_SIZE": str(PAGE_SIZE),
            "API_RATE_LIMIT": "1000",
            "API_BACKOFF_INITIAL": "0.01",
            "API_BACKOFF_MAX": "0.05",
        }
        return CliRunner().invoke(
            main, list(args), env={f"COMPANY_ACTIVITY_{k}": v for k, v in env.items()}, catch_exceptions=False
        )

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with connect(self.warehouse) as wh:
            return [tuple(r) for r in wh.execute(sql, params or None)]

    def staged(self, day: date) -> dict[str, tuple[int, int]]:
        rows = self.query(
            "select company_id, active_users, events from stg.product_usage_daily where activity_date = :d",
            d=day,
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def truth(self, day: date) -> dict[str, tuple[int, int]]:
        return {r.company_id: (r.active_users, r.events) for r in self.sim.usage(day)}

    def raw_runs(self, day: date) -> list[Path]:
        folder = self.lake / "raw" / "product_usage" / f"date={day.isoformat()}"
        return sorted(r for r in folder.glob("run=*") if (r / "_manifest.json").exists())

    def served(self, day: date) -> list[tuple[int, int, str]]:
        """(page, index, company_id) of every record of the day's one complete raw run, as served."""
        (run,) = self.raw_runs(day)
        out = []
        for page in sorted(run.glob("page-*.json")):
            number = int(page.name[5:10])
            for index, record in enumerate(json.loads(page.read_text())["data"]):
                out.append((number, index, record["company_id"]))
        return out

    def quarantine_rows(self, day: date) -> list[tuple[Any, ...]]:
        return self.query(
            "select page, record_index, reason, excerpt, raw_run_id from ops.usage_quarantine "
            "where activity_date = :d order by page, record_index",
            d=day,
        )

    def usage_day(self, day: date) -> tuple[Any, ...]:
        (row,) = self.query(
            "select status, record_count, quarantined_count, raw_run_id, last_error from ops.usage_days "
            "where activity_date = :d",
            d=day,
        )
        return row

    def usage_steps(self, day: date) -> list[tuple[Any, ...]]:
        return self.query(
            "select status, rows_loaded, rows_rejected, message from ops.run_steps "
            "where step = 'ingest_usage' and step_day = :d order by started_at",
            d=day,
        )

    def alerts(self, title: str) -> list[tuple[Any, ...]]:
        return self.query(
            "select severity, alert_day, step, message from ops.run_alerts where title = :t "
            "order by run_id, seq",
            t=title,
        )


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    servers: list[SimulatorServer] = []

    def make(warehouse: str | None = None, **options: Any) -> World:
        opts = SimulatorOptions(
            seed=5, companies=120, today=TODAY, epoch=date(2026, 10, 1), client_secret=SECRET, **options
        )
        sim = SimulatorServer(opts)
        sim.start()
        servers.append(sim)
        return World(tmp_path / f"w{len(servers)}", sim, warehouse)

    yield make
    for sim in servers:
        sim.stop()


def published(world: World, day: date) -> dict[str, tuple[int, int]]:
    rows = world.query(
        "select company_id, active_users, events from analytics.company_daily_activity "
        "where activity_date = :d",
        d=day,
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_one_oversized_id_is_quarantined_and_the_rest_of_the_day_published_then_replayed_alike(
    make_world: Callable[..., World], wh_url: str
) -> None:
    world = make_world(warehouse=wh_url, oversized_id_days=frozenset({DAY}))
    (victim,) = world.sim.oversized_ids(DAY)
    truth = world.truth(DAY)
    expected = {cid: v for cid, v in truth.items() if cid != victim}
    assert len(expected) == len(truth) - 1 > 50

    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output

    # the rest of the day is staged and published, the oversized record is not
    assert world.staged(DAY) == expected
    crm = {r[0] for r in world.query("select company_id from stg.crm_daily where snapshot_date = :d", d=DAY)}
    rows = published(world, DAY)
    assert set(rows) == crm | set(expected)
    assert {cid: rows[cid] for cid in expected} == expected
    assert rows.get(victim, (0, 0)) == (0, 0)  # a CRM company without usage that day
    assert not any(len(cid) > 256 for cid in rows)

    # where the record is: its page and index in the raw run, as served
    ((page, index, served_id),) = [s for s in world.served(DAY) if len(s[2]) > 256]
    assert len(served_id) == OVERSIZED_ID_LENGTH and served_id.startswith(victim)

    status, record_count, quarantined, raw_run_id, last_error = world.usage_day(DAY)
    assert (status, record_count, quarantined, last_error) == ("complete", len(expected), 1, None)
    excerpt = repr(served_id[:40]) + "…"
    assert world.quarantine_rows(DAY) == [(page, index, LONG_REASON, excerpt, raw_run_id)]

    # the lake: _quarantine.json beside the pages, named by the manifest
    (run,) = world.raw_runs(DAY)
    manifest = json.loads((run / "_manifest.json").read_text())
    assert manifest["quarantine"]["file"] == "_quarantine.json" and manifest["quarantine"]["records"] == 1
    kept = json.loads((run / "_quarantine.json").read_text())
    assert (kept["date"], kept["quarantined"], kept["accepted"], kept["truncated"]) == (
        DAY.isoformat(),
        1,
        len(expected),
        False,
    )
    assert kept["records"] == [
        {
            "page": page,
            "file": f"page-{page:05d}.json",
            "record": index,
            "field": "company_id",
            "reason": LONG_REASON,
            "excerpt": excerpt,
        }
    ]

    # the step is a warning with the count and the first record; one warning alert names day and count
    ((step_status, loaded, rejected, message),) = world.usage_steps(DAY)
    assert (step_status, loaded, rejected) == ("warning", len(expected), 1)
    assert message.startswith(f"{len(expected)} records loaded, 1 quarantined (page {page}, record {index} ")
    assert LONG_REASON in message
    ((severity, alert_day, step, alert),) = world.alerts("usage records quarantined")
    assert (severity, alert_day, step) == ("warning", DAY, "ingest_usage")
    assert alert.startswith(f"usage for {DAY.isoformat()}: 1 record(s) (")
    assert f"page {page}, record {index} " in alert and LONG_REASON in alert
    assert "_quarantine.json" in alert
    assert "usage records quarantined" in result.output  # the alert was sent, not only recorded

    # status and runs show it (issue 23's read model): the day is a warning that says why
    shown = world.cli("status", "--json", "--days", "30")
    assert shown.exit_code == 0, shown.output
    (day_row,) = [r for r in json.loads(shown.output) if r["day"] == DAY.isoformat()]
    assert (day_row["verdict"], day_row["usage_quarantined"]) == ("warning", 1)
    assert "1 usage record quarantined" in day_row["verdict_note"]
    one = json.loads(world.cli("status", "--day", DAY.isoformat(), "--json").output)
    assert [(q["page"], q["record_index"], q["reason"]) for q in one["quarantined"]] == [
        (page, index, LONG_REASON)
    ]
    runs = json.loads(world.cli("runs", "--json").output)
    shown_run = json.loads(world.cli("runs", "show", runs[0]["run_id"], "--json").output)
    (usage_step,) = [st for st in shown_run["steps"] if st["step"] == "ingest_usage"]
    assert (usage_step["status"], usage_step["rows_rejected"]) == ("warning", 1)
    assert [d["verdict"] for d in shown_run["days"] if d["day"] == DAY.isoformat()] == ["warning"]

    # replay re-reads the lake: the same records quarantined again, the same day published
    before = world.quarantine_rows(DAY)
    replayed = world.cli("replay", "--date", DAY.isoformat())
    assert replayed.exit_code == 0, replayed.output
    assert world.raw_runs(DAY) == [run]  # no new raw run: read from the lake
    assert world.quarantine_rows(DAY) == before
    assert world.usage_day(DAY)[:4] == ("complete", len(expected), 1, raw_run_id)
    assert world.staged(DAY) == expected
    assert published(world, DAY) == rows
    steps = world.usage_steps(DAY)
    assert len(steps) == 2 and steps[1] == steps[0]
    assert len(world.alerts("usage records quarantined")) == 2


def test_past_five_percent_quarantined_the_day_fails_and_says_how_to_replay(
    make_world: Callable[..., World],
) -> None:
    world = make_world(oversized_id_days=frozenset({DAY}), oversized_id_count=10)
    assert len(world.sim.oversized_ids(DAY)) == 10
    total = len(world.truth(DAY))
    other = DAY - timedelta(days=1)

    result = world.cli("backfill", "--start", other.isoformat(), "--end", DAY.isoformat())
    assert result.exit_code == 1, result.output
    head = f"usage for {DAY}: 10 of {total} records ({10 / total:.2%}) break the project's own limits"
    assert head in result.output
    assert f"replay --date {DAY.isoformat()}" in result.output
    assert world.staged(DAY) == {}  # nothing of the day
    assert world.staged(other) == world.truth(other)  # the other day of the run is loaded
    status, _records, quarantined, _run, last_error = world.usage_day(DAY)
    assert (status, quarantined) == ("failed", None)
    assert last_error.startswith(head) and "company-activity replay --date 2026-11-10" in last_error
    assert world.quarantine_rows(DAY) == []  # only a published day has quarantined records
    ((step_status, _loaded, rejected, message),) = world.usage_steps(DAY)
    assert (step_status, rejected, message) == ("failed", 10, last_error)
    (run,) = world.raw_runs(DAY)
    assert json.loads((run / "_quarantine.json").read_text())["quarantined"] == 10  # kept for inspection
    failures = world.alerts("usage records over the project's limits")
    assert [(a[0], a[1]) for a in failures] == [("error", DAY)]
    rerun = world.query(
        "select rerun from ops.run_alerts where title = 'usage records over the project''s limits'"
    )
    assert rerun == [("company-activity replay --date 2026-11-10",)]


def _override(n: int, *extra: UsageRecord) -> list[UsageRecord]:
    return [UsageRecord(f"C{k:07d}", k, 10 * k) for k in range(2, n + 2)] + list(extra)


@pytest.mark.parametrize(
    ("good", "bad", "published_day"),
    [(19, 1, True), (18, 2, False)],  # 1 of 20 is 5%: allowed; 2 of 20 is 10%: past the threshold
    ids=["5pct-published", "10pct-fails"],
)
def test_the_threshold_is_five_percent_of_the_days_records(
    make_world: Callable[..., World], good: int, bad: int, published_day: bool
) -> None:
    world = make_world()
    oversized = [UsageRecord(f"C{k:07d}-" + "x" * 300, 1, 1) for k in range(900, 900 + bad)]
    world.sim.options.overrides[DAY] = _override(good, *oversized)
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == (0 if published_day else 1), result.output
    if published_day:
        assert world.staged(DAY) == {f"C{k:07d}": (k, 10 * k) for k in range(2, good + 2)}
        assert world.usage_day(DAY)[2] == bad
        assert [r[2] for r in world.quarantine_rows(DAY)] == [
            "field 'company_id' is 309 characters long, more than the 256 a company id may have"
        ]
    else:
        assert world.staged(DAY) == {}
        assert f"{bad} of {good + bad} records (10.00%)" in result.output
        assert world.usage_day(DAY)[0] == "failed"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (UsageRecord("C0000003", -1, 1), "field 'active_users' must be an integer >= 0, got integer -1"),
        (UsageRecord("", 1, 1), "field 'company_id' must be a non-empty string, got string \"\""),
    ],
    ids=["negative", "empty-id"],
)
def test_the_specs_own_contract_errors_still_fail_the_day(
    make_world: Callable[..., World], bad: UsageRecord, fragment: str
) -> None:
    world = make_world()
    # one record over the project's cap beside the contract error: the contract error decides
    world.sim.options.overrides[DAY] = _override(40, bad, UsageRecord("C0000001-" + "x" * 300, 1, 1))
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 1, result.output
    assert f"usage for {DAY.isoformat()} breaks the API contract" in result.output
    assert fragment in result.output
    assert world.staged(DAY) == {}
    status, _records, quarantined, _run, last_error = world.usage_day(DAY)
    assert (status, quarantined) == ("failed", None) and fragment in last_error
    assert world.quarantine_rows(DAY) == []
    (run,) = world.raw_runs(DAY)
    assert not (run / "_quarantine.json").exists()
    assert world.usage_steps(DAY)[0][0] == "failed"


def test_a_quarantined_count_beside_another_record_of_its_company_is_a_conflict(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.sim.options.overrides[DAY] = _override(40, UsageRecord("C0000005", 2**63, 1))  # C0000005 twice
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 1, result.output
    assert 'different records for one company ("C0000005")' in result.output
    assert world.staged(DAY) == {}
    assert world.usage_day(DAY)[0] == "failed"


def test_a_quarantined_count_alone_is_published_without_it(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.sim.options.overrides[DAY] = _override(40, UsageRecord("C0000999", 1, 2**63))
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert set(world.staged(DAY)) == {f"C{k:07d}" for k in range(2, 42)}
    ((page, index, reason, excerpt, _run),) = world.quarantine_rows(DAY)
    assert (page, index, excerpt) == (2, 15, "'C0000999'")  # sorted: the 41st record, page 2 of 25
    assert (
        reason
        == "field 'events' is 9223372036854775808, more than a 64-bit count holds (9223372036854775807)"
    )


def test_the_spool_holds_only_the_accepted_records(tmp_path: Path) -> None:
    """What every engine loads (DuckDB reads the spool, PostgreSQL and Spark stream ``rows()``)."""
    staged = StagedDay(DAY, tmp_path)
    doc = {
        "date": DAY.isoformat(),
        "next_cursor": None,
        "data": [
            {"company_id": "a", "active_users": 1, "events": 2},
            {"company_id": "b" * 257, "active_users": 3, "events": 4},
            {"company_id": "C\x00x", "active_users": 3, "events": 4},
            {"company_id": "c", "active_users": 5, "events": 6},
        ],
    }
    staged.add("page-00007.json", "lake/page-00007.json", doc=doc)
    staged.settle()
    try:
        assert staged.error is None
        assert list(staged.rows()) == [("a", 1, 2), ("c", 5, 6)]
        assert staged.records == 2 and len(staged.quarantine) == 2
        assert [(r.page, r.record, r.field) for r in staged.quarantine.records] == [
            (7, 1, "company_id"),
            (7, 2, "company_id"),
        ]
        assert staged.quarantine.records[1].excerpt == "'C\\x00x'"  # escaped, storable
    finally:
        staged.discard()


def test_a_version_4_warehouse_gets_the_quarantine_columns_and_keeps_its_days(
    wh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert migrations.MIGRATIONS[4].version == 5
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
        with connect(wh_url) as wh:
            assert wh.init_schema() == [1, 2, 3, 4]
            wh.execute(
                "insert into ops.usage_days (activity_date, status, record_count, updated_at) "
                "values (:d, 'complete', 7, :d)",
                {"d": DAY},
            )
    with connect(wh_url) as wh:
        assert wh.init_schema() == [5]
        assert _rows(wh, "select status, record_count, quarantined_count from ops.usage_days") == [
            ("complete", 7, None)
        ]
        assert _rows(wh, "select count(*) from ops.usage_quarantine") == [(0,)]


def _rows(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in wh.execute(sql)]
