"""From the demo on, with only what it printed: its settings file, its API again, a rerun, a run's detail."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

TODAY = "2026-11-20"
CLEAN = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMPANY_ACTIVITY_")} | {
    "COMPANY_ACTIVITY_TODAY": TODAY
}


def company_activity(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=CLEAN | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def simulator(cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "company_activity", *args],
        env=CLEAN,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "listening on" in line or not line:
                break
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_demo_writes_its_settings_and_every_printed_command_works(tmp_path: Path) -> None:
    demo = company_activity(tmp_path, "demo", "--days", "10", "--companies", "40")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    config = tmp_path / "data" / "demo" / "company-activity.toml"
    assert config.is_file()
    commands = re.findall(r"company-activity (--config \S+ .+?)(?:   \(|$)", demo.stdout, re.MULTILINE)
    assert len(commands) == 5, demo.stdout
    assert all(c.startswith(f"--config {config.relative_to(tmp_path)} ") for c in commands)
    run_id = re.search(r"OK: run (\S+),", demo.stdout)
    assert run_id is not None

    status = company_activity(tmp_path, *commands[0].split())
    assert status.returncode == 0, status.stderr
    shown = company_activity(tmp_path, *commands[1].split(), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["run_id"] == run_id.group(1)

    # the demo's API again, from its settings (on a free port here; the environment wins over the file)
    port = free_port()
    rerun = commands[4].split()  # exactly as printed
    line = next(x for x in demo.stdout.splitlines() if "re-run a day:" in x)
    assert "(all its steps again: its CRM file, its usage from that API, its build)" in line
    day = rerun[rerun.index("--date") + 1]
    wh = tmp_path / "data" / "demo" / "warehouse.duckdb"
    before = _table(wh)
    with simulator(tmp_path, "--config", str(config), "simulate-api", "--port", str(port)):
        result = company_activity(
            tmp_path, *rerun, env={"COMPANY_ACTIVITY_API_URL": f"http://127.0.0.1:{port}"}
        )
    assert result.returncode == 0, result.stdout + result.stderr
    # what its words say: every step of the day ran again, the usage fetched from that API
    steps = re.findall(rf"^  {day}  (\S+) +succeeded", result.stdout, re.MULTILINE)
    assert steps == ["ingest_crm", "ingest_usage", "build"], result.stdout
    # the same world (its seasonality too, from the settings file): re-ingesting the day changes no row,
    # record_loaded_at included
    assert _table(wh) == before


def test_simulate_api_writes_the_demos_crm_snapshots_by_default(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    assert company_activity(demo_dir, "demo").returncode == 0
    lake = tmp_path / "lake"
    port = str(free_port())
    with simulator(tmp_path, "simulate-api", "--port", port, "--today", TODAY, "--write-crm", str(lake)):
        pass
    ours = sorted((lake / "crm").iterdir())
    theirs = sorted((demo_dir / "data" / "demo" / "lake" / "crm").iterdir())
    assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 14
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, theirs, strict=True))


PREVIOUS = "data/demo/previous/company-activity.toml"


def test_the_demo_run_again_moves_the_previous_one_aside_and_says_where(tmp_path: Path) -> None:
    first = company_activity(tmp_path, "demo", "--days", "3", "--companies", "40")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "moved the previous demo" not in first.stdout
    first_run = re.search(r"OK: run (\S+),", first.stdout)
    assert first_run is not None
    second = company_activity(tmp_path, "demo", "--days", "3", "--companies", "40")
    assert second.returncode == 0, second.stdout + second.stderr
    folder = tmp_path / "data" / "demo"
    assert "moved the previous demo (warehouse, lake, settings) aside to data/demo/previous/" in second.stdout
    shown = re.search(r"its status: .*company-activity (--config \S+ status)$", second.stdout, re.MULTILINE)
    assert shown is not None and shown.group(1) == "--config data/demo/previous/company-activity.toml status"

    # the previous demo, whole: its warehouse holds its run, its settings point at the moved files
    values = tomllib.loads((folder / "previous" / "company-activity.toml").read_text(encoding="utf-8"))
    assert values["warehouse"] == str(folder / "previous" / "warehouse.duckdb")
    assert values["lake"] == str(folder / "previous" / "lake")
    assert values["simulator"]["seasonality"] == "users"
    assert sorted(p.name for p in (folder / "previous" / "lake" / "crm").iterdir()) == sorted(
        p.name for p in (folder / "lake" / "crm").iterdir()
    )
    runs = company_activity(tmp_path, "--config", PREVIOUS, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert [r["run_id"] for r in json.loads(runs.stdout)] == [first_run.group(1)]
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        (count,) = con.execute("select count(*) from ops.runs").fetchone() or (0,)
    assert count == 1  # the new demo starts from empty tables

    third = company_activity(tmp_path, "demo", "--days", "3", "--companies", "40")
    assert third.returncode == 0, third.stdout + third.stderr
    runs = company_activity(tmp_path, "--config", PREVIOUS, "runs", "--json")
    second_run = re.search(r"OK: run (\S+),", second.stdout)
    assert second_run is not None
    assert [r["run_id"] for r in json.loads(runs.stdout)] == [second_run.group(1)]  # one kept, the latest


def _table(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "select * from analytics.company_daily_activity order by activity_date, company_id"
        ).fetchall()
