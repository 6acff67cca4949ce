"""`dagster dev` serves the adapter's definitions: the [dagster] extra brings the web server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_dagster_dev_serves_the_company_activity_definitions(tmp_path: Path) -> None:
    dagster = shutil.which("dagster", path=os.path.dirname(sys.executable))
    assert dagster is not None, "the dagster extra is part of the dev install"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "DAGSTER_HOME": str(tmp_path),
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "w.duckdb"),
    }
    proc = subprocess.Popen(
        [dagster, "dev", "-m", "company_activity.orchestration.dagster", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        info = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).json()
                break
            except (httpx.HTTPError, ValueError):
                time.sleep(1)
        assert proc.poll() is None, "dagster dev exited"
        assert info is not None and "dagster_webserver_version" in info
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30).json()
        assert answer["data"]["repositoriesOrError"]["nodes"], answer
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
