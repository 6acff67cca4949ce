"""``run``, ``backfill`` and ``build`` with ``--dry-run``: the plan is printed and nothing is touched —
no run recorded, no file or folder created — through the real CLI entry point (a ``python -m`` process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from company_activity.state import RunStateStore
from company_activity.warehouse import connect

TODAY = date(2026, 11, 12)


def cli(tmp: Path, *args: str, warehouse: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COMPANY_ACTIVITY_WAREHOUSE": str(warehouse),
        "COMPANY_ACTIVITY_LAKE": str(tmp / "lake"),
        "COMPANY_ACTIVITY_API_URL": "http://127.0.0.1:9/",  # never called
        "COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP": "true",
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": "2026-11-05",
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def test_dry_run_on_a_fresh_setup_creates_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    before = tree(tmp_path)
    out = cli(
        tmp_path, "backfill", "--start", "2026-11-08", "--end", "2026-11-10", "--dry-run", warehouse=warehouse
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "days: 2026-11-08, 2026-11-09, 2026-11-10" in lines
    assert "steps: ingest_crm, ingest_usage, build" in lines
    assert lines[-1] == "dry run: nothing was run, recorded or created"
    build = cli(
        tmp_path, "build", "--start", "2026-11-08", "--end", "2026-11-08", "--dry-run", warehouse=warehouse
    )
    assert build.returncode == 0, build.stderr
    assert "steps: build (only these)" in build.stdout.splitlines()
    assert tree(tmp_path) == before  # no warehouse file, no data/ folder, no lake


def test_dry_run_plans_the_catch_up_from_the_recorded_state_and_records_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(str(warehouse)) as wh:
        wh.init_schema()
        state = RunStateStore(wh)
        at = datetime(2026, 11, 10, 1)
        for day in (date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 8)):
            state.usage_complete(day, raw_run_id="r", record_count=1, page_count=1, drift=[], at=at)
    before = tree(tmp_path)
    out = cli(tmp_path, "run", "--dry-run", warehouse=warehouse)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "command: company-activity run" in lines
    assert "days: 2026-11-07, 2026-11-09, 2026-11-10, 2026-11-11" in lines
    assert "catch-up: 2026-11-07, 2026-11-09, 2026-11-10" in lines
    assert "lost: none" in lines
    assert tree(tmp_path) == before
    with connect(str(warehouse), read_only=True) as wh:
        assert wh.execute("select count(*) from ops.runs") == [(0,)]


def test_dry_run_refuses_what_the_real_command_refuses(tmp_path: Path) -> None:
    out = cli(tmp_path, "run", "--date", TODAY.isoformat(), "--dry-run", warehouse=tmp_path / "w.duckdb")
    assert out.returncode == 2
    assert "not a closed day yet" in out.stderr
    assert list(tmp_path.iterdir()) == []
