"""Two runs against one warehouse at the same time, as real processes, on both engines.

The second run waits for the per-warehouse lock a bounded time, then exits 1 with a clear message; a run
that waits long enough goes after the first one; nothing is corrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from company_activity.errors import WarehouseBusyError
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect
from company_activity.warehouse.duckdb import DuckDBWarehouse

from . import pg, procs
from .helpers import table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
D1, D2 = date(2026, 11, 9), date(2026, 11, 10)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=3, companies=60, today=TODAY)) as server:
        yield server


def test_a_second_run_waits_a_bounded_time_then_goes_after_the_first(
    wh_url: str, tmp_path: Path, sim: SimulatorServer
) -> None:
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, [D1, D2])
    env = procs.cli_env(wh_url, lake, sim, start=D1, today=TODAY)
    with connect(wh_url) as wh:
        wh.init_schema()

    # the first run stops in the middle of loading staging, holding the lock and an open transaction
    first = procs.start(
        env, "run", "--date", D1.isoformat(), tmp=tmp_path, pause_at="staging.sql:usage_replace_day"
    )
    first.wait_paused()

    # a second run gives up after its lock timeout, saying why
    started = time.monotonic()
    code, output = procs.run(
        env | {"COMPANY_ACTIVITY_LOCK_TIMEOUT": "1"}, "run", "--date", D2.isoformat(), tmp=tmp_path
    )
    assert code == 1, output
    assert "another company-activity run holds the lock on " in output
    assert "waited 1s" in output
    assert time.monotonic() - started < 15

    # a third one waits long enough: it runs once the first has finished
    third = procs.start(
        env | {"COMPANY_ACTIVITY_LOCK_TIMEOUT": "60"}, "run", "--date", D2.isoformat(), tmp=tmp_path
    )
    time.sleep(1.0)
    assert third.popen.poll() is None, third.output
    first.resume()
    assert first.wait() == 0, first.output
    assert third.wait() == 0, third.output

    with connect(wh_url) as wh:
        assert table(wh) == procs.ground_truth(sim, [D1, D2], [D1, D2])
        runs = wh.execute("select command, status, started_at, finished_at from ops.runs order by started_at")
        assert [(r[0], r[1]) for r in runs] == [
            (f"run --date {D1.isoformat()}", "succeeded"),
            (f"run --date {D2.isoformat()}", "succeeded"),
        ]
        assert runs[1][2] >= runs[0][3]  # the third run started after the first had finished
        assert wh.execute("select status, count(*) from ops.usage_days group by status") == [("complete", 2)]


def test_lock_is_re_entrant_and_exclusive_between_connections(
    engine: str, new_warehouse_url: Callable[[str], str]
) -> None:
    url = new_warehouse_url(engine)
    with connect(url) as wh:
        wh.init_schema()
        with wh.lock(timeout=1):
            with wh.lock(timeout=1):
                assert wh.locked
            assert wh.locked
            if engine == "duckdb":
                # the same file opened twice in one process shares DuckDB's database: only the lock file
                # tells the two connections apart
                other = DuckDBWarehouse(url, lock_timeout=1)
            else:
                other = connect(url, lock_timeout=1)
            with pytest.raises(WarehouseBusyError, match=r"waited 0\.3s"), other.lock(timeout=0.3):
                pass
        assert not wh.locked
        with other.lock(timeout=1):
            assert other.locked
        other.close()


def test_duckdb_lock_file_names_the_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "wh.duckdb")
    with DuckDBWarehouse(path) as a, DuckDBWarehouse(path) as b, a.lock(timeout=1):
        assert Path(path + ".lock").read_text().strip().isdigit()
        with pytest.raises(WarehouseBusyError) as err, b.lock(timeout=0.2):
            pass
    message = str(err.value)
    assert f"another company-activity run holds the lock on {path}" in message
    assert "lock file" in message and "pid" in message
