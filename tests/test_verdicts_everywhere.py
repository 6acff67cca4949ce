"""One verdict per day, the same on every surface (issue 23).

A warehouse is built through the real CLI (processes of their own) against the simulator, with one day of
each verdict: ``lost`` (outside the API's retention), ``ok``, ``warning`` (a CRM row rejected),
``failed`` (the CRM snapshot missing), ``last attempt failed`` (built, then a re-fetch with the API down),
``no data`` (no run touched it) and ``pending`` (the API's day not final). Then ``status --json``,
``runs show --json``, ``/api/calendar``, the overview's strip in a real Chromium and the offline report
must all say the same word for each day.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_activity.config import load_settings
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake
from company_activity.web.report import write_report
from company_activity.web.server import BackgroundServer

TODAY = date(2026, 11, 20)
EXPECTED = {
    date(2026, 11, 12): "lost",
    date(2026, 11, 13): "ok",
    date(2026, 11, 14): "warning",
    date(2026, 11, 15): "failed",
    date(2026, 11, 16): "last attempt failed",
    date(2026, 11, 17): "no data",
    date(2026, 11, 18): "pending",
}
CHROMIUM = "/usr/bin/chromium"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=os.environ | env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("verdicts")
    lake = tmp / "lake"
    options = SimulatorOptions(
        seed=3,
        companies=40,
        today=TODAY,
        epoch=date(2026, 10, 1),
        seasonality="users",
        retention_days=7,  # 11-12 and before answer 404 date_not_available: lost
        not_final_days=frozenset({date(2026, 11, 18)}),
    )
    env = {
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp / "wh.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": "2026-11-12",
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
        "COMPANY_ACTIVITY_API_RETENTION_DAYS": "7",
        "COMPANY_ACTIVITY_API_MAX_ATTEMPTS": "2",
        "COMPANY_ACTIVITY_API_BACKOFF_INITIAL": "0.05",
        "COMPANY_ACTIVITY_API_TIMEOUT": "5",
    }
    runs: list[str] = []
    with SimulatorServer(options) as sim:
        days = [date(2026, 11, d) for d in (12, 13, 14, 16, 18)]  # 11-15: no CRM snapshot (failed)
        sim.data.write_crm_snapshots(open_lake(str(lake)), days)
        crm = lake / "crm" / "crm_daily_2026-11-14.csv"
        crm.write_text(
            crm.read_text(encoding="utf-8") + "C9999,Broken Row,,,not-a-timestamp\n", encoding="utf-8"
        )
        env["COMPANY_ACTIVITY_API_URL"] = sim.url
        first = cli(env, "backfill", "--start", "2026-11-12", "--end", "2026-11-16")
        assert first.returncode == 1, first.stdout + first.stderr  # 11-12 lost, 11-15 failed
        pending = cli(env, "run", "--date", "2026-11-18")
        assert pending.returncode == 0, pending.stdout + pending.stderr
    down = env | {"COMPANY_ACTIVITY_API_URL": f"http://127.0.0.1:{_closed_port()}"}
    refetch = cli(down, "rerun", "--date", "2026-11-16", "--from-step", "ingest_usage")
    assert refetch.returncode == 1, refetch.stdout + refetch.stderr
    listed = json.loads(cli(env, "runs", "--json").stdout)
    runs = [r["run_id"] for r in listed]
    assert len(runs) == 3
    yield {"env": env, "tmp": tmp, "runs": runs}


def test_status_json_gives_each_day_its_verdict(world: dict[str, Any]) -> None:
    shown = cli(world["env"], "status", "--days", "10", "--json")
    assert shown.returncode == 0, shown.stderr
    got = {date.fromisoformat(r["day"]): r["verdict"] for r in json.loads(shown.stdout)}
    assert {d: got.get(d, "no data") for d in EXPECTED} == EXPECTED
    table = cli(world["env"], "status", "--days", "10")
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("2026-11-16"))
    assert line.startswith("2026-11-16 ↻")
    note = table.stdout.splitlines()[table.stdout.splitlines().index(line) + 1]
    assert "the last attempt failed at ingest_usage" in note and "data from run" in note
    assert "↻ last attempt failed" in table.stdout  # the legend


def test_runs_show_json_gives_the_same_verdicts(world: dict[str, Any]) -> None:
    seen: dict[date, str] = {}
    for run_id in world["runs"]:
        detail = json.loads(cli(world["env"], "runs", "show", run_id, "--json").stdout)
        for d in detail["days"]:
            seen[date.fromisoformat(d["day"])] = d["verdict"]
    assert seen == {d: v for d, v in EXPECTED.items() if v != "no data"}


@pytest.fixture(scope="module")
def server(world: dict[str, Any]) -> Iterator[BackgroundServer]:
    env = world["env"]
    settings = load_settings(
        warehouse=env["COMPANY_ACTIVITY_WAREHOUSE"], lake=env["COMPANY_ACTIVITY_LAKE"], today=TODAY
    )
    with BackgroundServer(settings) as srv:
        yield srv


def test_api_calendar_gives_the_same_verdicts(server: BackgroundServer) -> None:
    answer = httpx.get(f"{server.url}/api/calendar", params={"start": "2026-11-12", "end": "2026-11-18"})
    assert answer.status_code == 200, answer.text
    got = {date.fromisoformat(c["day"]): c["verdict"] for c in answer.json()}
    assert got == EXPECTED
    by_day = {c["day"]: c for c in answer.json()}
    assert "last attempt failed at ingest_usage" in by_day["2026-11-16"]["verdict_note"]


def _titles(html: str) -> dict[date, str]:
    """The title of each ``data-day`` element of a page (the strip), unescaped."""
    out = {}
    for tag in re.findall(r"<[^>]*\bdata-day=\"[0-9-]+\"[^>]*>", html):
        day = re.search(r"data-day=\"([0-9-]+)\"", tag)
        title = re.search(r"title=\"([^\"]*)\"", tag)
        if day and title:
            out.setdefault(date.fromisoformat(day.group(1)), unescape(title.group(1)))
    return out


def _word(title: str) -> str:
    """The verdict word a title carries (the longest that appears, so 'last attempt failed' wins)."""
    words = sorted(set(EXPECTED.values()), key=len, reverse=True)
    return next(w for w in words if w in title)


def test_the_report_gives_the_same_verdicts(world: dict[str, Any]) -> None:
    env = world["env"]
    settings = load_settings(
        warehouse=env["COMPANY_ACTIVITY_WAREHOUSE"], lake=env["COMPANY_ACTIVITY_LAKE"], today=TODAY
    )
    path = write_report(settings, Path(world["tmp"]) / "report.html", start=min(EXPECTED), end=max(EXPECTED))
    titles = _titles(path.read_text(encoding="utf-8"))
    assert {d: _word(titles[d]) for d in EXPECTED} == EXPECTED


def test_the_strip_in_a_browser_gives_the_same_verdicts(server: BackgroundServer) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/?start=2026-11-12&end=2026-11-18")
            titles = page.eval_on_selector_all(
                "[data-day]", "els => els.map(e => [e.dataset.day, e.getAttribute('title') || ''])"
            )
        finally:
            browser.close()
    got: dict[date, str] = {}
    for day, title in titles:
        if title:
            got.setdefault(date.fromisoformat(day), title)
    assert {d: _word(got[d]) for d in EXPECTED} == EXPECTED
