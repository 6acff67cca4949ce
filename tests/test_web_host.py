"""The web UI's Host allow-list (issue 24, DNS rebinding): a real uvicorn server on a loopback port.

A page on evil.example whose name rebinds to 127.0.0.1 makes the user's browser send ``Host:
evil.example`` to the UI: that request gets a 400 saying why, whatever the path; the loopback names and
addresses (with their port) are served; a configured public name is served only when a token is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from company_activity.cli import main
from company_activity.config import Settings, load_settings
from company_activity.errors import ConfigError
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.web.app import allowed_hosts
from company_activity.web.server import BackgroundServer

TOKEN = "host-test-token"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("host")
    with DuckDBWarehouse(str(folder / "warehouse.duckdb")) as wh:
        wh.init_schema()  # empty: /api/churn answers 200 with no day
    return load_settings(warehouse=str(folder / "warehouse.duckdb"), lake=str(folder / "lake"))


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(settings) as srv:
        yield srv


def _get(srv: BackgroundServer, path: str, host: str, **headers: str) -> httpx.Response:
    return httpx.get(srv.url + path, headers={"Host": host, **headers}, timeout=10)


@pytest.mark.parametrize("path", ["/api/churn", "/churn", "/api/openapi.json", "/static/app.js", "/nowhere"])
def test_a_foreign_host_is_refused_on_every_path(server: BackgroundServer, path: str) -> None:
    r = _get(server, path, "evil.example")
    assert r.status_code == 400, r.text[:200]
    assert "Host 'evil.example' is not allowed" in r.text.replace("&#39;", "'")
    assert "COMPANY_ACTIVITY_UI_HOSTS" in r.text
    assert "company_id" not in r.text  # nothing of the data
    if path.startswith("/api/"):
        assert r.json()["detail"].startswith(
            "Host 'evil.example' is not allowed; this UI answers to localhost"
        )


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.2", "[::2]", ""],
)
def test_names_that_only_look_local_are_refused(server: BackgroundServer, host: str) -> None:
    r = _get(server, "/api/churn", host.format(port=server.port))
    assert r.status_code == 400, host


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST", "localhost"]
)
def test_loopback_names_are_served(server: BackgroundServer, host: str) -> None:
    r = _get(server, "/api/churn", host.format(port=server.port))
    assert r.status_code == 200, r.text[:200]
    assert r.json()["companies"] == []


def test_a_configured_name_is_served_only_with_a_token(settings: Settings) -> None:
    name = "activity.example.com"
    without = settings.model_copy(update={"ui_hosts": name})
    assert allowed_hosts(without) == ["localhost", "127.0.0.1", "[::1]"]  # no token: loopback names only
    with BackgroundServer(without) as srv:
        assert _get(srv, "/api/churn", f"{name}:{srv.port}").status_code == 400
    with_token = settings.model_copy(
        update={
            "ui_hosts": f"{name}, *.corp.example, 10.0.0.5, ::1",
            "ui_token": SecretStr(TOKEN),
            "ui_url": "https://ui.example.org:8443/activity",
        }
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with BackgroundServer(with_token) as srv:
        for host in (name, f"{name}:{srv.port}", "eu.corp.example", "10.0.0.5:80", "ui.example.org", "[::1]"):
            r = _get(srv, "/api/churn", host, **bearer)
            assert r.status_code == 200, (host, r.text[:200])
        assert _get(srv, "/api/churn", name).status_code == 401  # the name is allowed, the token still needed
        for host in ("evil.example", "corp.example.evil", "10.0.0.6", f"www.{name}"):
            r = _get(srv, "/api/churn", host, **bearer)
            assert r.status_code == 400, host
            assert "is not allowed" in r.json()["detail"]


@pytest.mark.parametrize(
    "bad", ["https://activity.example.com", "activity.example.com:8080", "a b", "x/y", "*x"]
)
def test_a_bad_host_setting_is_a_config_error(settings: Settings, bad: str) -> None:
    with pytest.raises(ConfigError, match="COMPANY_ACTIVITY_UI_HOSTS"):
        allowed_hosts(settings.model_copy(update={"ui_hosts": bad, "ui_token": SecretStr(TOKEN)}))


def test_serve_says_a_bad_host_setting_and_exits_2(settings: Settings, tmp_path: Path) -> None:
    env = {
        "COMPANY_ACTIVITY_WAREHOUSE": settings.warehouse,
        "COMPANY_ACTIVITY_UI_TOKEN": TOKEN,
        "COMPANY_ACTIVITY_UI_HOSTS": "https://activity.example.com/",
    }
    result = CliRunner().invoke(main, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 2, result.output
    assert "COMPANY_ACTIVITY_UI_HOSTS: 'https://activity.example.com/' is not a host name" in result.output
