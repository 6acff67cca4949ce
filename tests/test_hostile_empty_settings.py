"""An empty value is a value not set, for every setting and every source alike (issue 24).

Through ``load_settings`` (the CLI's loader) and the real entry point: every ``COMPANY_ACTIVITY_*``
variable empty gives the defaults; an empty TOML value, secret file or override too; an empty variable
does not hide the TOML file's value; API-key mode with empty OAuth variables runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from company_activity.config import Settings, known_environment, load_settings
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import open_lake

DEFAULTS: dict[str, Any] = {name: field.default for name, field in Settings.model_fields.items()}
OTHER_ENV = "AZURE_STORAGE_CONNECTION_STRING"  # a setting read without the prefix
TODAY = date(2026, 11, 12)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("COMPANY_ACTIVITY_") or key.upper() == OTHER_ENV:
            monkeypatch.delenv(key)
    return monkeypatch


def test_the_defaults_are_every_field_s_default() -> None:
    # the reference the other tests compare with: every setting has a default, none is required
    assert all(not field.is_required() for field in Settings.model_fields.values())
    assert Settings.model_validate({}).model_dump() == DEFAULTS


def test_every_setting_empty_in_the_environment_gives_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    names = sorted(known_environment() | {OTHER_ENV})
    assert "COMPANY_ACTIVITY_API_CLIENT_SECRET_FILE" in names and "COMPANY_ACTIVITY_SECRETS_DIR" in names
    for name in names:
        clean_env.setenv(name, "")
    assert load_settings().model_dump() == DEFAULTS


def test_every_setting_empty_in_the_toml_file_gives_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    keys = [*Settings.model_fields, "api_client_secret_file", "smtp_url_file"]
    config.write_text("".join(f'{key} = ""\n' for key in keys))
    assert load_settings(config).model_dump() == DEFAULTS


def test_empty_overrides_and_direct_values_are_not_set(tmp_path: Path) -> None:
    assert load_settings(warehouse="", api_key="", api_page_size="").model_dump() == DEFAULTS
    assert Settings(api_client_secret="", api_client_id="", today="").model_dump() == DEFAULTS  # type: ignore[arg-type]


def test_an_empty_variable_does_not_hide_the_toml_value(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('warehouse = "from-toml.duckdb"\napi_key = "k3y-from-toml"\n')
    clean_env.setenv("COMPANY_ACTIVITY_WAREHOUSE", "")
    clean_env.setenv("COMPANY_ACTIVITY_API_KEY", "")
    settings = load_settings(config)
    assert settings.warehouse == "from-toml.duckdb"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y-from-toml"


def test_an_empty_secret_file_is_not_set(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    clean_env.setenv("COMPANY_ACTIVITY_API_CLIENT_SECRET_FILE", str(tmp_path / "empty"))
    assert load_settings().api_client_secret is None


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(("COMPANY_ACTIVITY_", "AZURE_"))}
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        cwd=cwd,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_api_key_mode_with_empty_oauth_variables_runs(tmp_path: Path) -> None:
    with SimulatorServer(SimulatorOptions(seed=3, companies=20, today=TODAY)) as sim:
        sim.data.write_crm_snapshots(open_lake(str(tmp_path / "lake")), [date(2026, 11, 10)])
        env = {
            "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
            "COMPANY_ACTIVITY_API_URL": sim.url,
            "COMPANY_ACTIVITY_API_KEY": "demo-key",
            "COMPANY_ACTIVITY_API_CLIENT_ID": "",
            "COMPANY_ACTIVITY_API_CLIENT_SECRET": "",
            "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": "",
            "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake"),
            "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
            "COMPANY_ACTIVITY_START_DATE": "2026-11-10",
        }
        result = cli(tmp_path, env, "run", "--date", "2026-11-10")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "ingest_usage  succeeded" in result.stdout, result.stdout
    status = cli(tmp_path, env, "status", "--day", "2026-11-10")
    assert status.returncode == 0, status.stderr
