"""Configuration first (issue 9): every command checks its whole configuration before it touches anything.

A mistake exits 2 naming the setting, with no alert, no run recorded and no file or folder created (the CLI
runs in an empty folder, where the default warehouse and lake would be made). An expected OS error is one
line naming the path and the cause, without a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from company_activity.simulator import SimulatorOptions, SimulatorServer

from .alert_servers import Receiver

TODAY = date(2026, 11, 12)
# never called: the checks come first
API = {"COMPANY_ACTIVITY_API_URL": "http://127.0.0.1:9", "COMPANY_ACTIVITY_API_KEY": "k3y-value"}


def cli(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPANY_ACTIVITY_", "AZURE_"))}
    done = subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        cwd=cwd,
        env=base | {"COMPANY_ACTIVITY_TODAY": TODAY.isoformat()} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


CASES = [
    # (settings, command, the setting or option the message names)
    ({**API, "COMPANY_ACTIVITY_API_CLIENT_ID": "c"}, ["run"], "COMPANY_ACTIVITY_API_CLIENT_SECRET"),
    (API | {"COMPANY_ACTIVITY_API_CLIENT_SECRET": "s3cret"}, ["status"], "COMPANY_ACTIVITY_API_CLIENT_ID"),
    ({}, ["run", "--date", "2026-11-10"], "COMPANY_ACTIVITY_API_URL"),
    ({}, ["backfill", "--start", "2026-11-01", "--end", "2026-11-10"], "COMPANY_ACTIVITY_API_URL"),
    (API | {"COMPANY_ACTIVITY_SMTP_URL": "smtp://127.0.0.1:9"}, ["run"], "COMPANY_ACTIVITY_ALERT_EMAIL_FROM"),
    (API | {"COMPANY_ACTIVITY_ALERT_EMAIL_TO": "a@example.com"}, ["run"], "COMPANY_ACTIVITY_SMTP_URL"),
    (API | {"COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": "ftp://x"}, ["init"], "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL"),
    ({"COMPANY_ACTIVITY_SCHEDULE_CRON": "61 * * * *"}, ["status"], "COMPANY_ACTIVITY_SCHEDULE_CRON"),
    (API, ["run", "--date", TODAY.isoformat()], "--date"),
    ({}, ["build", "--start", "2026-11-01", "--end", TODAY.isoformat()], "--end"),
    ({}, ["replay", "--date", "2026-11-05", "--end", "2026-11-01"], "--end"),
    (
        {"COMPANY_ACTIVITY_API_URL": "http://127.0.0.1:9"},
        ["run", "--date", "2026-11-10"],
        "COMPANY_ACTIVITY_API_KEY",
    ),  # no credentials at all
    (API | {"COMPANY_ACTIVITY_API_TIMEOUT": "-1"}, ["run"], "COMPANY_ACTIVITY_API_TIMEOUT"),
    (API | {"COMPANY_ACTIVITY_RUN_DEADLINE": "0"}, ["run"], "COMPANY_ACTIVITY_RUN_DEADLINE"),
]


@pytest.mark.parametrize(
    ("settings", "command", "named"), CASES, ids=[" ".join(c[1]) + " " + c[2] for c in CASES]
)
def test_a_configuration_mistake_exits_2_before_anything_is_touched(
    settings: dict[str, str],
    command: list[str],
    named: str,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    env = {"COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": receiver.url} | settings
    code, out, err = cli(tmp_path, env, *command)
    assert code == 2, (out, err)
    assert named in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no warehouse, no lake, no data folder
    assert receiver.requests == []  # no alert


def test_a_warehouse_path_that_is_a_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "warehouse.duckdb"
    folder.mkdir()
    code, out, err = cli(tmp_path, {"COMPANY_ACTIVITY_WAREHOUSE": str(folder)}, "status")
    assert code in (1, 2), (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(folder) in lines[0] and "directory" in lines[0].lower(), err


def test_a_lake_that_is_a_file_fails_the_steps_with_one_line_naming_it(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.write_text("not a folder")
    with SimulatorServer(SimulatorOptions(seed=3, companies=20, today=TODAY)) as sim:
        env = {
            "COMPANY_ACTIVITY_API_URL": sim.url,
            "COMPANY_ACTIVITY_API_KEY": "demo-key",
            "COMPANY_ACTIVITY_LAKE": str(lake),
            "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
            "COMPANY_ACTIVITY_LOG_LEVEL": "ERROR",
        }
        code, out, err = cli(tmp_path, env, "run", "--date", "2026-11-10")
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    usage = [line for line in out.splitlines() if "ingest_usage" in line]
    assert len(usage) == 1 and str(lake) in usage[0] and "not a directory" in usage[0], out
