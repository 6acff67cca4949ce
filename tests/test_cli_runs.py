"""`runs` and `runs show` through the real entry point (a real process), over a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake

TODAY = date(2026, 11, 12)
DAYS = [date(2026, 11, d) for d in (4, 5, 6)]


def company_activity(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=os.environ | env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two runs: 11-04 and 11-05 succeed; 11-06 fails its CRM step (the snapshot is missing)."""
    tmp = tmp_path_factory.mktemp("runs")
    with SimulatorServer(
        SimulatorOptions(seed=11, companies=40, today=TODAY, epoch=date(2026, 10, 20))
    ) as sim:
        lake = tmp / "lake"
        sim.data.write_crm_snapshots(open_lake(str(lake)), DAYS[:2])
        env = {
            "COMPANY_ACTIVITY_WAREHOUSE": str(tmp / "wh.duckdb"),
            "COMPANY_ACTIVITY_LAKE": str(lake),
            "COMPANY_ACTIVITY_API_URL": sim.url,
            "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
            "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
            "COMPANY_ACTIVITY_START_DATE": DAYS[0].isoformat(),
            "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
            "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
        }
        ok = company_activity(env, "backfill", "--start", "2026-11-04", "--end", "2026-11-05")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        failed = company_activity(env, "run", "--date", "2026-11-06")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        yield env


def test_runs_lists_newest_first_with_status_and_days(history: dict[str, str]) -> None:
    listed = company_activity(history, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert [r["command"] for r in runs] == [
        "run --date 2026-11-06",
        "backfill --start 2026-11-04 --end 2026-11-05",
    ]
    assert runs[1]["first_day"] == "2026-11-04" and runs[1]["last_day"] == "2026-11-05"
    assert runs[0]["failed_steps"] == 1
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in runs)

    table = company_activity(history, "runs")
    assert table.returncode == 0
    for r in runs:
        assert r["run_id"] in table.stdout
    assert "failed (1 step(s))" in table.stdout


def test_runs_filters_by_status_and_limits(history: dict[str, str]) -> None:
    failed = json.loads(company_activity(history, "runs", "--status", "failed", "--json").stdout)
    assert [r["command"] for r in failed] == ["run --date 2026-11-06"]
    one = json.loads(company_activity(history, "runs", "--limit", "1", "--json").stdout)
    assert len(one) == 1 and one[0]["status"] == "failed"
    none = company_activity(history, "runs", "--status", "interrupted")
    assert none.returncode == 0
    assert none.stdout.strip() == "no interrupted runs among the 2 recorded"


def test_runs_show_gives_steps_checks_and_the_rerun_command(history: dict[str, str]) -> None:
    runs = json.loads(company_activity(history, "runs", "--json").stdout)
    failed_id = runs[0]["run_id"]
    detail = json.loads(company_activity(history, "runs", "show", failed_id, "--json").stdout)
    assert detail["run"]["status"] == "failed"
    steps = {(s["day"], s["step"]): s for s in detail["steps"]}
    assert steps[("2026-11-06", "ingest_crm")]["status"] == "failed"
    assert "missing" in steps[("2026-11-06", "ingest_crm")]["message"]
    assert steps[("2026-11-06", "ingest_usage")]["status"] == "succeeded"
    assert steps[("2026-11-06", "ingest_usage")]["rows_loaded"] > 0
    assert detail["rerun"] == ["company-activity rerun --date 2026-11-06 --from-step ingest_crm"]

    shown = company_activity(history, "runs", "show", failed_id)
    assert shown.returncode == 0
    assert "company-activity rerun --date 2026-11-06 --from-step ingest_crm" in shown.stdout
    assert "ingest_usage" in shown.stdout and "build" in shown.stdout

    # the failed run's alerts, as sent (redacted), and the commands they suggest
    first = detail["alerts"][0]
    assert (first["severity"], first["title"], first["day"], first["step"]) == (
        "error",
        "step failure",
        "2026-11-06",
        "ingest_crm",
    )
    assert "alerts:" in shown.stdout and "step failure (2026-11-06 ingest_crm)" in shown.stdout

    ok = json.loads(company_activity(history, "runs", "show", runs[1]["run_id"], "--json").stdout)
    assert ok["rerun"] == []
    # a first build inserts every row of its days: nothing updated, kept or deleted
    assert [c["day"] for c in ok["changes"]] == ["2026-11-04", "2026-11-05"]
    builds = {s["day"]: s["rows_loaded"] for s in ok["steps"] if s["step"] == "build"}
    for c in ok["changes"]:
        assert (c["inserted"], c["updated"], c["unchanged"], c["deleted"]) == (builds[c["day"]], 0, 0, 0)
    # the failed run built its own day (with the snapshot in effect)
    assert [c["day"] for c in detail["changes"]] == ["2026-11-06"]
    assert {c["check"] for c in ok["checks"]} >= {"grain_unique", "crm_row_count"}
    assert len(ok["steps"]) == 6  # two days x three steps


def test_runs_show_accepts_a_unique_prefix_and_names_an_unknown_id(history: dict[str, str]) -> None:
    runs = json.loads(company_activity(history, "runs", "--json").stdout)
    run_id = runs[1]["run_id"]
    prefixed = json.loads(company_activity(history, "runs", "show", run_id[:-2], "--json").stdout)
    assert prefixed["run"]["run_id"] == run_id
    unknown = company_activity(history, "runs", "show", "nope-123")
    assert unknown.returncode == 2
    assert "no run 'nope-123'" in unknown.stderr


def test_runs_never_creates_a_warehouse(tmp_path: Path) -> None:
    target = tmp_path / "absent" / "wh.duckdb"
    result = company_activity({"COMPANY_ACTIVITY_WAREHOUSE": str(target)}, "runs")
    assert result.returncode == 1
    assert f"no warehouse at {target}" in result.stderr
    assert not (tmp_path / "absent").exists()


def test_status_reads_only_and_tells_no_warehouse_from_an_empty_window(
    history: dict[str, str], tmp_path: Path
) -> None:
    absent = tmp_path / "nothing" / "wh.duckdb"
    none = company_activity({"COMPANY_ACTIVITY_WAREHOUSE": str(absent)}, "status")
    assert none.returncode == 1 and f"no warehouse at {absent}" in none.stderr
    assert not (tmp_path / "nothing").exists()
    # the history's days are 11-04 ... 11-06; a window of one day before "today" 11-12 holds none of them
    empty = company_activity(history, "status", "--days", "1")
    assert empty.returncode == 0
    assert empty.stdout.strip() == (
        "no runs touched the last 1 day(s) (2 run(s) recorded; the newest day any run touched is 2026-11-06)"
    )


def test_status_rows_agree_with_the_calendar_and_name_the_failing_step(history: dict[str, str]) -> None:
    shown = company_activity(history, "status", "--days", "10")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    (failed,) = [ln for ln in lines if ln.startswith("2026-11-06")]
    assert failed.startswith("2026-11-06 ✗")
    assert "   6✗" in shown.stdout  # the calendar says the same
    note = lines[lines.index(failed) + 1]
    assert note.strip().startswith("failed at ingest_crm in run ") and "missing" in note
    rows = json.loads(company_activity(history, "status", "--days", "10", "--json").stdout)
    by_day = {r["day"]: r for r in rows}
    assert by_day["2026-11-06"]["failed_step"] == "ingest_crm"
    assert by_day["2026-11-05"]["failed_step"] is None and by_day["2026-11-05"]["steps_s"] >= 0
    assert by_day["2026-11-05"]["last_run_id"] != by_day["2026-11-06"]["last_run_id"]


def test_status_of_one_day(history: dict[str, str]) -> None:
    text = company_activity(history, "status", "--day", "2026-11-06")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("company-activity status --day 2026-11-06\n")
    assert "CRM snapshot: missing" in text.stdout and "usage: complete" in text.stdout
    data = json.loads(company_activity(history, "status", "--day", "2026-11-06", "--json").stdout)
    assert data["crm"]["status"] == "missing" and data["usage"]["status"] == "complete"
    assert [s["step"] for s in data["steps"]][-1] == "ingest_crm"
    assert {s["status"] for s in data["steps"] if s["step"] == "ingest_crm"} == {"failed"}
    assert {c["check"] for c in data["checks"]} >= {"crm_row_count"}
    bad = company_activity(history, "status", "--day", "11/06/2026")
    assert bad.returncode == 2 and "--day '11/06/2026' is not a date" in bad.stderr
