"""The start date moves only by configuration or the first nightly run, never by a one-off run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake

from .helpers import days

TODAY = date(2026, 11, 12)


def company_activity(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_one_off_run_in_the_past_does_not_move_the_start_date(tmp_path: Path) -> None:
    with SimulatorServer(SimulatorOptions(seed=5, companies=30, today=TODAY, epoch=date(2026, 10, 1))) as sim:
        lake = tmp_path / "lake"
        sim.data.write_crm_snapshots(open_lake(str(lake)), days(date(2026, 10, 20), date(2026, 11, 13)))
        env = {
            "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
            "COMPANY_ACTIVITY_LAKE": str(lake),
            "COMPANY_ACTIVITY_API_URL": sim.url,
            "COMPANY_ACTIVITY_API_KEY": "demo-key",
            "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
            "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
        }
        one_off = company_activity(env, "run", "--date", "2026-10-20")
        assert one_off.returncode == 0, one_off.stdout + one_off.stderr
        assert "start date" not in one_off.stdout  # a one-off run neither sets nor names it
        nightly = company_activity(env, "run")
        assert nightly.returncode == 0, nightly.stdout + nightly.stderr
        assert "start date 2026-11-11: set by this first nightly run" in nightly.stdout
        runs = json.loads(company_activity(env, "runs", "--json").stdout)
        # no catch-up of the month since the one-off day: yesterday, and the six days its build needs
        assert runs[0]["command"] == "run"
        assert (runs[0]["first_day"], runs[0]["last_day"]) == ("2026-11-05", "2026-11-11")
        assert "OK: 1 day(s) built" in nightly.stdout  # the six days before the start are not built
        # the next nightly run goes on from there, not from the one-off's day
        env["COMPANY_ACTIVITY_TODAY"] = "2026-11-14"
        sim.options.today = date(2026, 11, 14)
        later = company_activity(env, "run")
        assert later.returncode == 0, later.stdout + later.stderr
        assert "start date 2026-11-05 (the first nightly run's day)" in later.stdout
        runs = json.loads(company_activity(env, "runs", "--json").stdout)
        assert (runs[0]["first_day"], runs[0]["last_day"]) == ("2026-11-12", "2026-11-13")
