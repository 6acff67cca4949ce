"""Real ``company-activity`` processes for the concurrency and crash tests, over the API simulator.

A process can be made to pause at a named SQL query (inside whatever transaction is open) through the
test-only hook of :mod:`company_activity.warehouse` (``COMPANY_ACTIVITY_TEST_PAUSE_AT`` / ``_FILE``): the
test then SIGKILLs it there, or starts another run against the same warehouse, and resumes it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from company_activity.simulator import SimulatorServer
from company_activity.storage import open_lake
from company_activity.warehouse import TEST_PAUSE_AT, TEST_PAUSE_FILE, Warehouse

from .helpers import ground_truth as ground_truth  # re-exported: the process tests compare with it

_counter = itertools.count(1)


def cli_env(warehouse: str, lake: Path, sim: SimulatorServer, *, start: date, today: date) -> dict[str, str]:
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": warehouse,
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": start.isoformat(),
        "COMPANY_ACTIVITY_TODAY": today.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "1000",
        "COMPANY_ACTIVITY_LOG_LEVEL": "WARNING",
    }


@dataclass
class Proc:
    """A ``python -m company_activity ...`` process, its output in a file, maybe paused at a point."""

    popen: subprocess.Popen[bytes]
    log: Path
    pause_flag: Path | None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_paused(self, timeout: float = 60) -> None:
        assert self.pause_flag is not None
        deadline = time.monotonic() + timeout
        while not self.pause_flag.exists():
            if self.popen.poll() is not None:
                raise AssertionError(f"exited {self.popen.returncode} before pausing:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"did not reach its pause point in {timeout}s:\n{self.output}")
            time.sleep(0.02)

    def resume(self) -> None:
        assert self.pause_flag is not None
        self.pause_flag.unlink()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs in the process."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout}s:\n{self.output}") from None


def start(
    env: dict[str, str], *args: str, tmp: Path, pause_at: str | None = None, sigint_ignored: bool = False
) -> Proc:
    """The CLI in a child process. ``sigint_ignored``: it starts with SIGINT ignored, as a process started
    in the background by a script (``nohup … &``) does."""
    n = next(_counter)
    log = tmp / f"proc-{n}.log"
    full = {k: v for k, v in os.environ.items() if k not in (TEST_PAUSE_AT, TEST_PAUSE_FILE)} | env
    flag = None
    if pause_at is not None:
        flag = tmp / f"proc-{n}.paused"
        full |= {TEST_PAUSE_AT: pause_at, TEST_PAUSE_FILE: str(flag)}
    with log.open("wb") as out:
        command = [sys.executable, "-m", "company_activity", *args]
        if sigint_ignored:  # an ignored signal stays ignored across exec
            command = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *command]
        popen = subprocess.Popen(
            command,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Proc(popen, log, flag)


def run(env: dict[str, str], *args: str, tmp: Path, timeout: float = 120) -> tuple[int, str]:
    proc = start(env, *args, tmp=tmp)
    code = proc.wait(timeout)
    return code, proc.output


def write_crm(sim: SimulatorServer, lake: Path, days: Iterable[date]) -> None:
    sim.data.write_crm_snapshots(open_lake(str(lake)), list(days))


TABLES = {
    "stg.crm_daily": "select snapshot_date, company_id, company_name, country, industry_tag, "
    "last_contact_at, source_file, source_line, loaded_at, run_id from stg.crm_daily order by 1, 2",
    "stg.product_usage_daily": "select * from stg.product_usage_daily order by 1, 2",
    "analytics.company_daily_activity": "select * from analytics.company_daily_activity order by 1, 2",
    "ops.usage_days": "select * from ops.usage_days order by 1",
    "ops.crm_snapshots": "select * from ops.crm_snapshots order by 1",
    "ops.build_days": "select * from ops.build_days order by 1",
}


def snapshot(wh: Warehouse) -> dict[str, list[tuple[object, ...]]]:
    """Every data table of the warehouse (not the run ledger), row by row."""
    return {name: [tuple(r) for r in wh.execute(query)] for name, query in TABLES.items()}
