"""The errors a new user meets (issue 23), through the real CLI in real processes: a port in use, an API
that cannot be reached, `status` with no warehouse beside the demo's settings."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_demo_carry_on import CLEAN, company_activity, free_port

DAY = "2026-11-19"  # the day before TODAY of test_demo_carry_on


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a real listening socket."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then let go)."""
    return free_port()


@pytest.mark.parametrize(("command", "holder"), [("serve", "serve"), ("simulate-api", "simulate-api")])
def test_a_port_in_use_is_one_line_and_exit_2(
    tmp_path: Path, busy_port: int, command: str, holder: str
) -> None:
    lake = tmp_path / "lake"
    extra = ["--write-crm", str(lake)] if command == "simulate-api" else []
    result = company_activity(tmp_path, command, "--port", str(busy_port), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: 127.0.0.1:{busy_port} is already in use (another {holder}?); pick another with --port"
    ]
    assert result.stdout == ""  # nothing announced, …
    assert not lake.exists()  # … nothing written
    assert not (tmp_path / "data").exists()


def test_serve_takes_the_port_the_system_gives_with_port_0(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "company_activity", "serve", "--port", "0"],
        env=CLEAN | {"COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb")},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("company-activity UI on http://127.0.0.1:"), line + proc.stderr.read()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        assert port != 0
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it listens where it said
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _run_env(tmp_path: Path) -> dict[str, str]:
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake"),
        "COMPANY_ACTIVITY_API_KEY": "demo-key",
        "COMPANY_ACTIVITY_API_MAX_ATTEMPTS": "1",
        "COMPANY_ACTIVITY_START_DATE": DAY,
    }


def test_an_unreachable_api_is_named_with_its_url_from_the_environment(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = _run_env(tmp_path) | {"COMPANY_ACTIVITY_API_URL": url + "/"}
    result = company_activity(tmp_path, "run", "--date", DAY, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if "ingest_usage  failed" in line]
    assert len(failed) == 1, result.stdout
    assert (
        f"cannot reach the product-usage API at {url} (COMPANY_ACTIVITY_API_URL from the environment): "
        "Connection refused (ConnectError)"
    ) in failed[0]
    assert "demo-key" not in result.stdout + result.stderr


def test_an_unreachable_api_is_named_with_its_url_from_the_config_file(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    config = tmp_path / "settings.toml"
    config.write_text(f'api_url = "{url}"\n', encoding="utf-8")
    result = company_activity(
        tmp_path, "--config", "settings.toml", "run", "--date", DAY, env=_run_env(tmp_path)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot reach the product-usage API at {url} (api_url in settings.toml): " in result.stdout


def test_status_with_no_warehouse_points_at_the_demos_settings(tmp_path: Path) -> None:
    alone = company_activity(tmp_path, "status")
    assert alone.returncode == 1
    assert alone.stderr.splitlines() == [
        "error: no warehouse at ./data/warehouse.duckdb (nothing has run against it yet)"
    ]

    demo = tmp_path / "data" / "demo"
    demo.mkdir(parents=True)
    (demo / "company-activity.toml").write_text('warehouse = "elsewhere.duckdb"\n', encoding="utf-8")
    for args in (["status"], ["runs", "show", "RUN"]):
        result = company_activity(tmp_path, *args)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "error: no warehouse at ./data/warehouse.duckdb (nothing has run against it yet); the demo's "
            "warehouse is configured in data/demo/company-activity.toml: company-activity --config "
            f"data/demo/company-activity.toml {' '.join(args[: 2 if args[0] == 'runs' else 1])}"
        ]
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()  # status created nothing

    # with --config given, the file named is the one to fix: no pointer elsewhere
    (tmp_path / "mine.toml").write_text('warehouse = "mine.duckdb"\n', encoding="utf-8")
    mine = company_activity(tmp_path, "--config", "mine.toml", "status")
    assert mine.returncode == 1
    assert "the demo's warehouse" not in mine.stderr and "no warehouse at mine.duckdb" in mine.stderr


def test_a_url_the_program_set_itself_is_not_said_to_come_from_the_environment_or_file(
    tmp_path: Path,
) -> None:
    """The demo runs against its own simulator: its URL is neither the environment's nor its file's."""
    from company_activity.preflight import setting_origin

    config = tmp_path / "c.toml"
    config.write_text('API_URL = "http://127.0.0.1:8765/"\n', encoding="utf-8")
    env = {"company_activity_api_url": "http://127.0.0.1:9"}
    assert setting_origin("api_url", "http://127.0.0.1:9", None, env) == (
        "COMPANY_ACTIVITY_API_URL from the environment"
    )
    assert setting_origin("api_url", "http://127.0.0.1:8765", str(config), env) == f"api_url in {config}"
    assert setting_origin("api_url", "http://127.0.0.1:41234", str(config), env) is None
    assert setting_origin("api_url", "http://127.0.0.1:9", None, {"COMPANY_ACTIVITY_API_URL": " "}) is None
