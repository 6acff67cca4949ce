"""Every fault of the product-usage API, end to end: the CLI, the simulator on loopback, a DuckDB file.

One test per fault of the usage-ingestion issue: 429 (delta-seconds, HTTP-date, a ``Retry-After: 0`` storm,
the cap on one wait, the run's retry budget), 5xx / resets / truncated bodies, a 401 in the middle of a
day's pages (once, and twice in a row), 404 (lost), 409 (pending), schema drift, records that break the
contract, identical duplicates, and the alert before an incomplete day leaves the API's retention.
The client's own behaviour is unit-tested in ``test_usage_api.py``; here it is the pipeline's outcome:
staging, ``ops.usage_days``, the raw lake, the exit status and the alerts.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer, UsageRecord
from company_activity.simulator.data import _mix
from company_activity.storage import open_lake
from company_activity.warehouse import Warehouse, connect

from . import pg
from .helpers import days

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
DAY = date(2026, 11, 10)  # a Tuesday: ~85 active companies of 120, 4 pages of 25
USAGE = "/v1/usage/daily"
SECRET = "s3cret-Pa55-do-not-print"
PAGE_SIZE = 25

# "... HTTP 429 rate_limited for 2026-11-10 page 2 (attempt 1 of 6); retrying 2026-11-10 page 2 in 1.00 s"
RETRY_LINE = re.compile(r"HTTP (\d{3})[^\n]*?; retrying (\S+) (page \d+|access token) in ([\d.]+) s")


class World:
    """A simulator, a lake with the CRM snapshots, a warehouse file, and the CLI over them."""

    def __init__(self, tmp: Path, sim: SimulatorServer, warehouse: str | None = None) -> None:
        self.sim = sim
        self.lake = tmp / "lake"
        self.warehouse = warehouse or str(tmp / "wh.duckdb")
        sim.data.write_crm_snapshots(open_lake(str(self.lake)), days(TODAY - timedelta(days=10), TODAY))

    def env(self, **settings: str) -> dict[str, str]:
        base = {
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
            "API_RETRY_AFTER_FLOOR": "0.02",
        }
        return {f"COMPANY_ACTIVITY_{k}": v for k, v in (base | settings).items()}

    def cli(self, *args: str, **settings: str) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env(**settings), catch_exceptions=False)

    def wh(self) -> Warehouse:
        return connect(self.warehouse)

    def staged(self, day: date) -> dict[str, tuple[int, int]]:
        with self.wh() as wh:
            rows = wh.execute(
                "select company_id, active_users, events from stg.product_usage_daily "
                "where activity_date = :d",
                {"d": day},
            )
        return {r[0]: (r[1], r[2]) for r in rows}

    def truth(self, day: date) -> dict[str, tuple[int, int]]:
        return {r.company_id: (r.active_users, r.events) for r in self.sim.usage(day)}

    def usage_status(self, day: date) -> tuple[Any, ...] | None:
        with self.wh() as wh:
            rows = wh.execute(
                "select status, record_count, schema_drift, last_error from ops.usage_days "
                "where activity_date = :d",
                {"d": day},
            )
        return tuple(rows[0]) if rows else None

    def raw_runs(self, day: date) -> list[Path]:
        return sorted((self.lake / "raw" / "product_usage" / f"date={day.isoformat()}").glob("run=*"))

    def manifest(self, day: date) -> dict[str, Any]:
        complete = [r for r in self.raw_runs(day) if (r / "_manifest.json").exists()]
        assert len(complete) == 1, complete
        return dict(json.loads((complete[0] / "_manifest.json").read_text()))

    def usage_200s(self) -> int:
        return self.sim.stats.count(path=USAGE, status=200)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    servers: list[SimulatorServer] = []

    def make(
        sim_class: type[SimulatorServer] = SimulatorServer, warehouse: str | None = None, **options: Any
    ) -> World:
        opts = SimulatorOptions(
            seed=5, companies=120, today=TODAY, epoch=date(2026, 10, 1), client_secret=SECRET, **options
        )
        sim = sim_class(opts)
        sim.start()
        servers.append(sim)
        return World(tmp_path / f"w{len(servers)}", sim, warehouse)

    yield make
    for sim in servers:
        sim.stop()


def when(
    condition: Callable[[], bool], action: Callable[[], None], timeout: float = 30.0
) -> threading.Thread:
    """Run ``action`` once, as soon as ``condition`` holds (polled every 2 ms), in a daemon thread."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def retries(output: str, status: int) -> list[float]:
    """The waits the client logged before retrying after ``status``."""
    return [float(m.group(4)) for m in RETRY_LINE.finditer(output) if int(m.group(1)) == status]


def assert_manifest_is_a_cursor_chain(world: World, day: date) -> dict[str, Any]:
    """Pages 1..n, each asked with the previous page's next_cursor, records adding up to the day."""
    m = world.manifest(day)
    pages = m["pages"]
    assert [p["file"] for p in pages] == [f"page-{k:05d}.json" for k in range(1, len(pages) + 1)]
    assert pages[0]["cursor"] is None and pages[-1]["next_cursor"] is None
    for before, after in itertools.pairwise(pages):
        assert after["cursor"] == before["next_cursor"] is not None
    assert m["record_count"] == sum(p["records"] for p in pages)
    return m


# == 429 =================================================================================================
@pytest.mark.parametrize("style", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(make_world: Callable[..., World], style: str) -> None:
    world = make_world(rate_limited_rate=1.0, retry_after=style, retry_after_seconds=1)
    sim = world.sim
    when(lambda: sim.stats.count(status=429) >= 2, lambda: _calm(sim))  # two 429s, then calm
    result = world.cli("run", "--date", DAY.isoformat(), API_BACKOFF_MAX="5")
    assert result.exit_code == 0, result.output
    assert world.staged(DAY) == world.truth(DAY)
    waits = retries(result.output, 429)
    assert len(waits) == sim.stats.count(path=USAGE, status=429) == 2
    if style == "seconds":
        assert waits == [1.0] * len(waits)  # "Retry-After: 1", not the 0.01 s backoff
    else:
        assert all(0.02 < w <= 2.0 for w in waits), waits  # an HTTP-date one or two seconds ahead
        assert max(waits) > 0.5


@pytest.mark.parametrize("floor", ["0.1", "0"])
def test_retry_after_zero_storm_does_not_burn_the_retries(
    make_world: Callable[..., World], floor: str
) -> None:
    # every request answers "429, Retry-After: 0" for 0.35 s; 6 attempts per request
    world = make_world(rate_limited_rate=1.0, retry_after="zero")
    sim = world.sim
    when(lambda: sim.stats.count(status=429) > 0, lambda: (time.sleep(0.35), _calm(sim)))
    result = world.cli(
        "run",
        "--date",
        DAY.isoformat(),
        API_RETRY_AFTER_FLOOR=floor,
        API_MAX_ATTEMPTS="6",
        API_BACKOFF_MAX="1",
    )
    waits = retries(result.output, 429)
    if floor == "0":  # without the floor, the six attempts are gone in a few milliseconds
        assert result.exit_code == 1
        assert "gave up after 6 attempts" in result.output and "API unavailable" in result.output
        assert world.staged(DAY) == {}
        return
    assert result.exit_code == 0, result.output
    assert world.staged(DAY) == world.truth(DAY)
    assert 2 <= len(waits) <= 5
    assert all(w == 0.1 for w in waits)


def _calm(sim: SimulatorServer) -> None:
    sim.options.rate_limited_rate = 0.0


def test_a_single_wait_is_capped(make_world: Callable[..., World]) -> None:
    world = make_world(rate_limited_rate=1.0, retry_after_seconds=600)
    sim = world.sim
    when(lambda: sim.stats.count(status=429) >= 3, lambda: _calm(sim))
    started = time.monotonic()
    result = world.cli("run", "--date", DAY.isoformat(), API_BACKOFF_MAX="0.2")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15
    waits = retries(result.output, 429)
    assert len(waits) >= 3 and waits == [0.2] * len(waits)  # the server asked for 600 s each time
    assert world.staged(DAY) == world.truth(DAY)


def test_retry_budget_ends_a_dead_api_run_in_bounded_time(make_world: Callable[..., World]) -> None:
    world = make_world(error_rate=1.0)  # every request, the token endpoint's too, answers 5xx
    start = DAY - timedelta(days=4)
    started = time.monotonic()
    result = world.cli(
        "run",
        START_DATE=start.isoformat(),
        API_MAX_ATTEMPTS="1000",
        API_BACKOFF_INITIAL="0.05",
        API_BACKOFF_MAX="0.2",
        API_RETRY_BUDGET="1",
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert elapsed < 10, f"a dead API kept the run busy for {elapsed:.1f} s"
    run_days = days(start, TODAY - timedelta(days=1))
    for day in run_days:
        assert f"ALERT [ERROR] API unavailable | day {day.isoformat()}" in result.output
        status = world.usage_status(day)
        assert status is not None and status[0] == "failed"
        assert "product-usage API unavailable" in status[3]
    assert "retry budget of 1 s for this run is exhausted" in result.output
    waited = [float(m.group(4)) for m in RETRY_LINE.finditer(result.output)]
    # the budget bounds the run's waiting; the log shows each wait rounded to 2 digits (±0.005 each)
    assert waited and sum(waited) <= 1.0 + 0.005 * len(waited)
    with world.wh() as wh:
        assert wh.execute("select count(*) from stg.product_usage_daily") == [(0,)]


# == 5xx, resets, truncated bodies =========================================================================
def test_5xx_resets_and_truncated_bodies_are_retried_and_the_days_complete(
    make_world: Callable[..., World],
) -> None:
    world = make_world(error_rate=0.25, reset_rate=0.2, truncate_rate=0.2)
    two = [DAY - timedelta(days=1), DAY]
    result = world.cli("run", START_DATE=two[0].isoformat(), API_MAX_ATTEMPTS="12", API_CONCURRENCY="1")
    assert result.exit_code == 0, result.output
    stats = world.sim.stats
    assert stats.resets > 0 and stats.truncated > 0
    assert sum(stats.count(path=USAGE, status=s) for s in (500, 502, 503, 504)) > 0
    pages = 0
    for day in [*two, TODAY - timedelta(days=1)]:
        assert world.staged(day) == world.truth(day)
        pages += assert_manifest_is_a_cursor_chain(world, day)["page_count"]
    # every page was received whole exactly once: each other 200 was a truncated body, retried
    assert world.usage_200s() == pages + stats.truncated


# == 401 ==================================================================================================
def test_401_mid_pagination_gets_a_new_token_and_repeats_the_same_cursor(
    make_world: Callable[..., World],
) -> None:
    world = make_world(latency=0.03)
    sim = world.sim
    when(lambda: world.usage_200s() >= 2, sim.revoke_all_tokens)  # while page 3 is on its way
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    rejected = re.findall(r"access token rejected for \S+ page (\d+)", result.output)
    assert len(rejected) == 1 and int(rejected[0]) >= 2, result.output
    assert sim.stats.count(path=USAGE, status=401) == 1
    assert sim.stats.tokens_issued == 2
    m = assert_manifest_is_a_cursor_chain(world, DAY)
    assert m["page_count"] >= 4
    assert world.usage_200s() == m["page_count"]  # no page asked twice, none skipped
    assert m["record_count"] == len(world.truth(DAY))
    assert world.staged(DAY) == world.truth(DAY)


def test_a_second_401_after_a_fresh_token_is_credentials_rejected_and_the_secret_is_never_printed(
    make_world: Callable[..., World],
) -> None:
    world = make_world(latency=0.03)
    sim = world.sim
    when(lambda: world.usage_200s() >= 2, lambda: setattr(sim.options, "revoke_rate", 1.0))
    result = world.cli("run", "--date", DAY.isoformat(), LOG_LEVEL="DEBUG")
    assert result.exit_code == 1, result.output
    assert "credentials rejected by the product-usage API for 2026-11-10" in result.output
    assert "again straight after a fresh access token" in result.output
    assert SECRET not in result.output
    assert "Bearer " not in result.output.replace("Bearer ***", "")
    assert sim.stats.tokens_issued == 2
    assert world.staged(DAY) == {}
    assert world.raw_runs(DAY) and not any((r / "_manifest.json").exists() for r in world.raw_runs(DAY))
    status = world.usage_status(DAY)
    assert status is not None and status[0] == "failed"
    assert f"ALERT [ERROR] credentials rejected | day {DAY.isoformat()} | step ingest_usage" in result.output


# == 404 and 409 ==========================================================================================
def test_a_day_the_api_no_longer_serves_is_lost_and_the_alert_names_it(
    make_world: Callable[..., World],
) -> None:
    world = make_world(retention_days=3)  # the API keeps less than the pipeline thinks (30 days)
    lost = [TODAY - timedelta(days=5), TODAY - timedelta(days=4)]
    result = world.cli("run", START_DATE=lost[0].isoformat())
    assert result.exit_code == 1, result.output
    assert "LOST (outside the API's retention): " + ", ".join(d.isoformat() for d in lost) in result.output
    for day in lost:
        assert f"ALERT [ERROR] usage day lost | day {day.isoformat()} | step ingest_usage" in result.output
        status = world.usage_status(day)
        assert status is not None and status[0] == "lost" and "date_not_available" in status[3]
        assert world.raw_runs(day) == []
    for day in days(TODAY - timedelta(days=3), TODAY - timedelta(days=1)):
        assert world.staged(day) == world.truth(day)
    # a lost day is not asked for again
    result = world.cli("run", START_DATE=lost[0].isoformat())
    assert result.exit_code == 0, result.output
    for day in lost:
        assert f"{day.isoformat()}  ingest_usage" not in result.output


def test_409_mid_pagination_leaves_the_day_pending_and_the_next_run_catches_it_up(
    make_world: Callable[..., World],
) -> None:
    world = make_world(latency=0.02)
    sim = world.sim
    when(lambda: world.usage_200s() >= 2, lambda: setattr(sim.options, "not_final_days", frozenset({DAY})))
    result = world.cli("run", API_CONCURRENCY="1")  # DAY, then yesterday
    assert result.exit_code == 0, result.output
    assert f"pending (API not final yet): {DAY.isoformat()}" in result.output
    status = world.usage_status(DAY)
    assert status is not None and status[0] == "pending"
    assert world.staged(DAY) == {}
    assert world.raw_runs(DAY) and not any((r / "_manifest.json").exists() for r in world.raw_runs(DAY))

    sim.options.not_final_days = frozenset()
    result = world.cli("run")
    assert result.exit_code == 0, result.output
    assert f"caught up: {DAY.isoformat()}" in result.output
    assert world.staged(DAY) == world.truth(DAY)
    assert_manifest_is_a_cursor_chain(world, DAY)  # the new raw run; the unfinished one has no manifest


# == records ==============================================================================================
def test_schema_drift_is_recorded_per_day_and_alerted(make_world: Callable[..., World]) -> None:
    world = make_world(drift_fields=True)
    first, second = DAY - timedelta(days=1), DAY
    result = world.cli("backfill", "--start", first.isoformat(), "--end", second.isoformat())
    assert result.exit_code == 0, result.output
    for day in (first, second):
        assert world.staged(day) == world.truth(day)
        status = world.usage_status(day)
        assert status is not None and status[0] == "complete" and status[2] == "plan,region"
        assert f"ALERT [WARNING] schema drift | day {day.isoformat()} | step ingest_usage" in result.output
    assert (
        f"schema drift: unlisted field(s) plan (first seen {first.isoformat()}; here from page-00001.json "
        f"record 0); region (first seen {first.isoformat()}; here from page-00001.json record 0)"
    ) in result.output
    assert re.search(rf"{second.isoformat()}  ingest_usage  warning   rows=\d+  schema drift", result.output)


def _bad_kind(seed: int, day: date) -> int:
    """Which invalid record the simulator serves on a bad-record day (its own formula)."""
    return _mix((seed ^ day.toordinal() ^ 0xBAD) & ((1 << 64) - 1)) % 3


class _WrongTypeSimulator(SimulatorServer):
    """Serves ``active_users`` as a string for one company on ``wrong_type_day``."""

    wrong_type_day = DAY

    def _emissions(self, day: date, pos: int, cid: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = super()._emissions(day, pos, cid, *args, **kwargs)
        if day == self.wrong_type_day and cid == self.usage(day)[40].company_id:
            out = [{**out[0], "active_users": str(out[0]["active_users"])}]
        return out


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("negative active_users", "field 'active_users' must be an integer >= 0, got integer -"),
        ("negative events", "field 'events' must be an integer >= 0, got integer -"),
        ("missing field", "missing field 'events'"),
        ("wrong type", "field 'active_users' must be an integer >= 0, got string"),
        ("conflict", "has different records for one company (C"),
    ],
)
def test_a_day_breaking_the_contract_fails_whole_and_keeps_its_raw_pages(
    make_world: Callable[..., World], kind: str, fragment: str
) -> None:
    candidates = days(TODAY - timedelta(days=8), TODAY - timedelta(days=1))
    if kind == "wrong type":
        bad = DAY
        world = make_world(_WrongTypeSimulator, duplicate_rate=1e-12)  # off the simulator's plain path
    elif kind == "conflict":
        bad = DAY
        world = make_world(conflict_days=frozenset({bad}))
    else:
        wanted = ["negative active_users", "negative events", "missing field"].index(kind)
        bad = next(d for d in candidates if _bad_kind(5, d) == wanted)
        world = make_world(bad_record_days=frozenset({bad}))
    good = bad - timedelta(days=1)
    result = world.cli("backfill", "--start", good.isoformat(), "--end", bad.isoformat())
    assert result.exit_code == 1, result.output
    assert fragment in result.output
    assert f"ALERT [ERROR] step failure | day {bad.isoformat()} | step ingest_usage" in result.output
    assert world.staged(bad) == {}  # nothing of the day
    assert world.staged(good) == world.truth(good)  # the other day of the run is loaded
    status = world.usage_status(bad)
    assert status is not None and status[0] == "failed" and fragment in status[3]
    # the raw run is complete and stays for inspection; the message says where
    m = assert_manifest_is_a_cursor_chain(world, bad)
    (run,) = world.raw_runs(bad)
    assert all((run / p["file"]).exists() for p in m["pages"])
    assert f"raw pages kept at {run}" in result.output
    # re-parsing the raw run gives the same verdict, without asking the API
    asked = world.sim.stats.requests
    result = world.cli("replay", "--date", bad.isoformat())
    assert result.exit_code == 1 and fragment in result.output
    assert world.sim.stats.requests == asked
    assert world.staged(bad) == {}


# == wide counts and values an engine cannot store (issue 9) ===========================================
def test_counts_near_2_31_on_two_days_build_with_a_64_bit_seven_day_sum(
    make_world: Callable[..., World], wh_url: str
) -> None:
    world = make_world(warehouse=wh_url)
    near = 2**31 - 5
    first, second = DAY - timedelta(days=1), DAY
    for day in (first, second):
        world.sim.options.overrides[day] = [
            UsageRecord("C0000001", near, 3_000_000_000),
            UsageRecord("C2", 1, 1),
        ]
    result = world.cli("backfill", "--start", (DAY - timedelta(days=7)).isoformat(), "--end", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert world.staged(second)["C0000001"] == (near, 3_000_000_000)
    with world.wh() as wh:
        rows = wh.execute(
            'select active_users, events, "7d_active_users" from analytics.company_daily_activity '
            "where activity_date = :d and company_id = 'C0000001'",
            {"d": second},
        )
    assert [tuple(r) for r in rows] == [(near, 3_000_000_000, 2 * near)]


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (
            UsageRecord("C0000001", 2**63, 1),
            "record 0 (company_id \"C0000001\"): field 'active_users' is "
            "9223372036854775808, more than a 64-bit count holds (9223372036854775807)",
        ),
        (UsageRecord("C0000001", 1, -1), "field 'events' must be an integer >= 0, got integer -1"),
        (UsageRecord("C\x00evil", 1, 1), "field 'company_id' contains a NUL character"),
        (
            UsageRecord("C" * 4_000_000, 1, 1),
            "field 'company_id' is 4000000 characters long, more than the 256",
        ),
    ],
    ids=["2**63", "negative", "nul", "4MB id"],
)
def test_a_record_no_engine_can_store_fails_its_day_alike_on_both_engines(
    make_world: Callable[..., World], wh_url: str, record: UsageRecord, fragment: str
) -> None:
    world = make_world(warehouse=wh_url)
    world.sim.options.overrides[DAY] = [record, UsageRecord("C0000002", 1, 1)]
    other = DAY - timedelta(days=1)
    result = world.cli("backfill", "--start", other.isoformat(), "--end", DAY.isoformat())
    assert result.exit_code == 1, result.output
    assert fragment in result.output
    # issue 24: a record over the project's own limits is quarantined; 1 of the 2 is past the 5% allowed
    assert f"usage for {DAY.isoformat()} breaks the API contract" in result.output or (
        "break the project's own limits" in result.output and f"replay --date {DAY}" in result.output
    )
    assert len(result.output) < 20_000  # the 4 MB id is quoted as a short excerpt, never whole
    assert world.staged(DAY) == {}
    assert world.staged(other) == world.truth(other)  # the other day of the run is loaded
    status = world.usage_status(DAY)
    assert status is not None and status[0] == "failed" and fragment in status[3]


def test_numbers_orjson_refuses_name_the_field_and_are_not_retried(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.sim.options.overrides[DAY] = [UsageRecord("C0000001", 1, 1)]

    asked: list[int] = []
    original = world.sim._handle_usage

    def handle(query: str, headers: Any, *args: Any) -> tuple[int, bytes, dict[str, str]]:
        status, payload, extra = original(query, headers, *args)
        if "2026-11-10" in query and status == 200:
            asked.append(1)
            payload = payload.replace(b'"active_users":1', b'"active_users":1e400')
        return status, payload, extra

    world.sim._handle_usage = handle  # type: ignore[method-assign]
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 1, result.output
    assert (
        "record 0 (company_id \"C0000001\"): field 'active_users' must be an integer >= 0, got number 1e400"
        in (result.output)
    )
    assert "API unavailable" not in result.output
    assert len(asked) == 1  # terminal: asked once, not retried as a truncated body
    assert world.staged(DAY) == {}


def test_a_conflicting_refetch_leaves_the_loaded_day_as_it_was(make_world: Callable[..., World]) -> None:
    world = make_world()
    assert world.cli("run", "--date", DAY.isoformat()).exit_code == 0
    before = world.staged(DAY)
    world.sim.options.conflict_days = frozenset({DAY})
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 1, result.output
    assert "has different records for one company" in result.output
    assert world.staged(DAY) == before == world.truth(DAY)


def test_identical_duplicates_collapse(make_world: Callable[..., World]) -> None:
    world = make_world(duplicate_rate=0.3)
    result = world.cli("run", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    m = assert_manifest_is_a_cursor_chain(world, DAY)
    truth = world.truth(DAY)
    assert m["record_count"] > len(truth) + 10  # the API repeated records, some across pages
    assert world.staged(DAY) == truth
    status = world.usage_status(DAY)
    assert status is not None and status[:2] == ("complete", len(truth))


# == retention ============================================================================================
def test_an_incomplete_day_near_the_end_of_retention_is_alerted(make_world: Callable[..., World]) -> None:
    stuck = TODAY - timedelta(days=5)
    world = make_world(retention_days=6, not_final_days=frozenset({stuck}))
    result = world.cli("run", START_DATE=(TODAY - timedelta(days=6)).isoformat(), API_RETENTION_DAYS="6")
    assert result.exit_code == 0, result.output  # pending is not a failure
    assert (
        f"ALERT [WARNING] usage day near the end of retention | day {stuck.isoformat()} | step ingest_usage"
    ) in result.output
    assert (
        f"usage for {stuck.isoformat()} is not complete and leaves the API's 6-day retention in 1 day(s)"
    ) in result.output
    # complete days near the edge are not alerted
    edge = TODAY - timedelta(days=6)
    assert world.staged(edge) == world.truth(edge)
    assert f"near the end of retention | day {edge.isoformat()}" not in result.output


# == the shared rate limit =================================================================================
def test_the_rate_limit_goes_to_the_oldest_waiting_day_first() -> None:
    """A catch-up completes its days oldest first (the ones nearest to leaving retention)."""
    from company_activity.sources.usage_api import _OldestDayFirst

    order: list[date] = []
    release = threading.Event()

    class Limiter:
        def try_acquire(self, name: str, blocking: bool) -> bool:
            if not order:
                release.wait(5)  # the first permit is slow: everyone else queues up behind it
            return True

        def close(self) -> None:
            pass

    gate = _OldestDayFirst(Limiter())  # type: ignore[arg-type]

    def take(day: date) -> None:
        gate.acquire(day)
        order.append(day)

    first = threading.Thread(target=take, args=(DAY,))
    first.start()
    time.sleep(0.05)
    waiting = [DAY - timedelta(days=k) for k in (1, 5, 3, 2, 4)]
    threads = [threading.Thread(target=take, args=(d,)) for d in waiting]
    for t in threads:
        t.start()
        time.sleep(0.01)
    release.set()
    for t in [first, *threads]:
        t.join(5)
    assert order == [DAY, *sorted(waiting)]


# == spools: in the project's folder, swept after killed runs (issue 9) ===================================
_SPOOLER = """
import sys, time
from datetime import date
import orjson
from company_activity.raw.landing import StagedDay
staged = StagedDay(date(2026, 11, 10), sys.argv[1])
record = {"company_id": "C1", "active_users": 1, "events": 2}
doc = {"date": "2026-11-10", "next_cursor": None, "data": [record]}
staged.add("page-00001.json", "src", body=orjson.dumps(doc))
staged.close()
print(staged.path, flush=True)
time.sleep(120)
"""


def test_spools_live_in_tmp_dir_and_a_killed_runs_spool_is_swept(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from company_activity.raw.landing import sweep_stale_spools

    tmp_dir = tmp_path / "data" / "tmp"  # made on first use
    child = subprocess.Popen(
        [sys.executable, "-c", _SPOOLER, str(tmp_dir)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    killed_spool = Path(child.stdout.readline().strip())
    assert killed_spool.parent == tmp_dir and f"-{child.pid}-" in killed_spool.name
    assert killed_spool.read_text() == '"C1",1,2\n'
    # a live run's spool (this process), an old one of a live pid, and a file that is not a spool
    live = tmp_dir / f"company-activity-usage-2026-11-09-{os.getpid()}-abc.csv"
    old = tmp_dir / f"company-activity-usage-2026-11-08-{os.getpid()}-def.csv"
    other = tmp_dir / "notes.csv"
    for path in (live, old, other):
        path.write_text("x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    assert sweep_stale_spools(tmp_dir) == 1  # the child still runs: only the old spool goes
    assert killed_spool.exists() and not old.exists()
    child.send_signal(signal.SIGKILL)  # a SIGKILL skips every clean-up
    child.wait(10)
    assert sweep_stale_spools(tmp_dir) == 1
    assert not killed_spool.exists()
    assert sorted(p.name for p in tmp_dir.iterdir()) == sorted([live.name, other.name])
    assert sweep_stale_spools(tmp_path / "missing") == 0


def test_a_spool_folder_that_cannot_be_made_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    from company_activity.errors import StorageError
    from company_activity.raw.landing import StagedDay

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    staged = StagedDay(DAY, blocker / "tmp")
    doc = {
        "date": DAY.isoformat(),
        "next_cursor": None,
        "data": [{"company_id": "C1", "active_users": 1, "events": 2}],
    }
    with pytest.raises(StorageError) as info:
        staged.add("page-00001.json", "src", doc=doc)
    assert str(blocker / "tmp") in str(info.value) and "Not a directory" in str(info.value)
    assert info.value.path == str(blocker / "tmp")
