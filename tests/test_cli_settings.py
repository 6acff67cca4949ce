"""Settings through the real entry point: unknown variables, secrets from files, --config anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from company_activity.cli import hoist_options
from company_activity.config import load_settings
from company_activity.errors import ConfigError

CLEAN = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMPANY_ACTIVITY_")}


def company_activity(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "company_activity", *args],
        env=CLEAN | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_variable_exits_2_with_a_did_you_mean_and_creates_nothing(tmp_path: Path) -> None:
    result = company_activity(tmp_path, {"COMPANY_ACTIVITY_API_PAGESIZE": "5"}, "status")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown setting COMPANY_ACTIVITY_API_PAGESIZE in the environment "
        "(did you mean COMPANY_ACTIVITY_API_PAGE_SIZE?)"
    )
    assert list(tmp_path.iterdir()) == []
    typo = company_activity(tmp_path, {"COMPANY_ACTIVITY_WAREHOUS": "x.duckdb"}, "runs")
    assert typo.returncode == 2 and "did you mean COMPANY_ACTIVITY_WAREHOUSE?" in typo.stderr


def test_an_unknown_toml_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("api_pagesize = 5\n")
    result = company_activity(tmp_path, {}, "status", "--config", str(config))
    assert result.returncode == 2
    assert (
        "unknown setting 'api_pagesize'" in result.stderr and "did you mean api_page_size?" in result.stderr
    )


def test_the_test_suites_own_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANY_ACTIVITY_TEST_POSTGRES", "required")
    assert load_settings().api_page_size == 1000


def test_a_secret_from_a_file_and_from_a_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "api_key.txt"
    key.write_text("k3y-from-file\n")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY_FILE", str(key))
    settings = load_settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y-from-file"
    monkeypatch.delenv("COMPANY_ACTIVITY_API_KEY_FILE")

    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "api_client_secret").write_text("s3cret-from-folder")
    (folder / "smtp_url").write_text("smtp://u:p@127.0.0.1:2525")
    monkeypatch.setenv("COMPANY_ACTIVITY_SECRETS_DIR", str(folder))
    settings = load_settings()
    assert settings.api_client_secret is not None
    assert settings.api_client_secret.get_secret_value() == "s3cret-from-folder"
    assert settings.smtp_url is not None and settings.smtp_url.get_secret_value().startswith("smtp://u:p@")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_CLIENT_SECRET", "direct-wins")
    direct = load_settings().api_client_secret
    assert direct is not None and direct.get_secret_value() == "direct-wins"


def test_secret_file_mistakes_name_the_setting_and_never_the_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"COMPANY_ACTIVITY_API_KEY_FILE: the file .*absent does not exist"):
        load_settings()
    secret = tmp_path / "k"
    secret.write_text("do-not-print-me")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY_FILE", str(secret))
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY", "also-set")
    with pytest.raises(ConfigError) as both:
        load_settings()
    assert "both set" in str(both.value) and "do-not-print-me" not in str(both.value)
    monkeypatch.delenv("COMPANY_ACTIVITY_API_KEY")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY_FILE", str(tmp_path))
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings()


def test_a_secret_file_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "webhook").write_text("https://example.webhook.office.com/x/y?sig=abc\n")
    config = tmp_path / "c.toml"
    config.write_text(f'teams_webhook_url_file = "{tmp_path / "webhook"}"\n')
    settings = load_settings(config)
    assert settings.teams_webhook_url is not None
    assert settings.teams_webhook_url.get_secret_value() == "https://example.webhook.office.com/x/y?sig=abc"


def test_config_is_accepted_anywhere_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'warehouse = "{tmp_path / "elsewhere" / "wh.duckdb"}"\n')
    for args in (
        ["--config", str(config), "runs"],
        ["runs", "--config", str(config)],
        ["runs", "--limit", "3", f"--config={config}"],
    ):
        result = company_activity(tmp_path, {}, *args)
        assert result.returncode == 1, args
        assert f"no warehouse at {tmp_path / 'elsewhere' / 'wh.duckdb'}" in result.stderr, args


def test_hoisting_keeps_everything_after_a_double_dash() -> None:
    assert hoist_options(["run", "--date", "2026-11-01", "--config", "a.toml"], ("--config",)) == [
        "--config",
        "a.toml",
        "run",
        "--date",
        "2026-11-01",
    ]
    assert hoist_options(["x", "--", "--config", "a"], ("--config",)) == ["x", "--", "--config", "a"]
