"""Lake credentials the Azure way, each mode against Azurite over HTTPS (a throw-away CA) with OAuth on.

* identity: azure-identity's real ``DefaultAzureCredential``, its managed-identity source pointed (by the
  ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` variables Azure sets in a container) at a loopback stand-in
  that hands out tokens Azurite's ``--oauth basic`` accepts;
* a SAS token scoped to one container (also from a ``…_FILE``); an account key; a connection string.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from company_activity.azure_lake import account_from_url, auth_from_settings, container_path
from company_activity.cli import main
from company_activity.config import load_settings
from company_activity.errors import ConfigError
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.storage import Lake, open_lake_for
from company_activity.warehouse import connect

from . import azurite as az
from . import procs
from .helpers import days, table

secure_azurite = az.secure_azurite

TODAY = date(2026, 11, 12)
D1, D2 = date(2026, 11, 10), date(2026, 11, 11)


def _settings(azurite: az.SecureAzurite, container: str, **values: Any) -> Any:
    base = {
        "lake": f"az://{container}/lake",
        "lake_account_name": az.DEV_ACCOUNT,
        "lake_endpoint": azurite.endpoint,
        "lake_ca_file": str(azurite.tls.ca),
    }
    return load_settings(**(base | values))


def _round_trip(lake: Lake) -> None:
    lake.write_bytes("crm/crm_daily_2026-11-01.csv", b"company_id\r\nC1\r\n")
    assert lake.read_bytes("crm/crm_daily_2026-11-01.csv") == b"company_id\r\nC1\r\n"
    assert lake.list_files("crm") == ["crm_daily_2026-11-01.csv"]


# -- choosing the mode (no server) ------------------------------------------------------------------------
def test_auto_takes_the_most_preferred_configured_mode(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(az.DEV_KEY + "\n")
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "identity"),
        ({"azure_storage_connection_string": "UseDevelopmentStorage=true"}, "connection_string"),
        ({"lake_account_key_file": str(key_file), "azure_storage_connection_string": "x"}, "key"),
        ({"lake_sas_token": "?sv=1&sig=abc", "lake_account_key": "k"}, "sas"),
        ({"lake_auth": "identity", "lake_sas_token": "sv=1&sig=abc"}, "identity"),
    ]
    for values, mode in cases:
        auth = auth_from_settings(load_settings(**values))
        assert auth.mode == mode, values
    auth = auth_from_settings(load_settings(lake_account_key_file=str(key_file)))
    assert auth.account_key == az.DEV_KEY  # read from the file, stripped
    assert az.DEV_KEY not in repr(auth)
    assert auth_from_settings(load_settings(lake_sas_token="?sv=1&sig=abc")).sas_token == "sv=1&sig=abc"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lake_auth": "sas"}, "COMPANY_ACTIVITY_LAKE_AUTH=sas but COMPANY_ACTIVITY_LAKE_SAS_TOKEN"),
        ({"lake_auth": "key"}, "COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY"),
        ({"lake_sas_token": "a", "lake_sas_token_file": "/x"}, "both set"),
        (
            {"lake_account_key_file": "/nonexistent/key"},
            "COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY_FILE: cannot read",
        ),
    ],
)
def test_a_mode_without_its_secret_is_a_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        auth_from_settings(load_settings(**values))


def test_the_account_can_be_named_in_the_url() -> None:
    url = "az://raw@acme01.blob.core.windows.net/company-activity"
    assert account_from_url(url) == "acme01"
    assert account_from_url("abfs://raw@acme01.dfs.core.windows.net/x") == "acme01"
    assert account_from_url("az://raw/company-activity") is None
    assert container_path(url) == "raw/company-activity"
    assert container_path("az://raw/company-activity/") == "raw/company-activity"
    with pytest.raises(ConfigError, match="needs the storage account"):
        open_lake_for(load_settings(lake="az://raw/lake", lake_auth="identity"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"azure_storage_connection_string": "not;a=connection string"}, "not a valid connection string"),
        (
            {"lake_auth": "key", "lake_account_key": "k", "lake_endpoint": "ftp://x"},
            "must start with https://",
        ),
        (
            {"lake_auth": "sas", "lake_sas_token": "sig=1", "lake_endpoint": "http://acct.example.com"},
            "plain http",
        ),
    ],
)
def test_a_bad_endpoint_or_connection_string_is_a_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        open_lake_for(load_settings(lake="az://raw@acme01.blob.core.windows.net/x", **values))
    assert "sig=1" not in str(info.value) and "a=connection" not in str(info.value)


# -- each mode against Azurite ------------------------------------------------------------------------------
def test_identity_through_default_azure_credential(
    secure_azurite: az.SecureAzurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = secure_azurite.new_container()
    with az.managed_identity_endpoint(monkeypatch) as identity:
        lake = open_lake_for(_settings(secure_azurite, container))  # auto: no secret -> identity
        assert lake.credential_source.startswith("DefaultAzureCredential")
        _round_trip(lake)
    assert identity.requests, "the token came from the managed-identity endpoint"
    assert {tuple(r["resource"]) for r in identity.requests} == {("https://storage.azure.com",)}  # type: ignore[arg-type]


def test_a_token_for_another_audience_is_refused_naming_the_credential(
    secure_azurite: az.SecureAzurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = secure_azurite.new_container()
    with az.managed_identity_endpoint(monkeypatch, audience="https://vault.azure.net"):
        lake = open_lake_for(_settings(secure_azurite, container, lake_auth="identity"))
        with pytest.raises(ConfigError, match="refused the credentials of DefaultAzureCredential"):
            lake.exists("crm")


def test_a_container_sas_token_from_a_file(secure_azurite: az.SecureAzurite, tmp_path: Path) -> None:
    container, other = secure_azurite.new_container(), secure_azurite.new_container()
    sas_file = tmp_path / "sas"
    sas_file.write_text(secure_azurite.container_sas(container) + "\n")
    lake = open_lake_for(_settings(secure_azurite, container, lake_sas_token_file=str(sas_file)))
    assert lake.credential_source == "COMPANY_ACTIVITY_LAKE_SAS_TOKEN"
    _round_trip(lake)
    # scoped to its container: another one of the same account is out of reach
    elsewhere = open_lake_for(_settings(secure_azurite, other, lake_sas_token_file=str(sas_file)))
    with pytest.raises(ConfigError, match="refused the credentials of COMPANY_ACTIVITY_LAKE_SAS_TOKEN"):
        elsewhere.write_bytes("a.txt", b"a")
    # a read-only token cannot write
    read_only = secure_azurite.container_sas(container, permission="rl")
    lake = open_lake_for(_settings(secure_azurite, container, lake_sas_token=read_only))
    assert lake.list_files("crm") == ["crm_daily_2026-11-01.csv"]
    with pytest.raises(ConfigError, match="refused the credentials"):
        lake.write_bytes("crm/x.csv", b"x")


def test_an_account_key(secure_azurite: az.SecureAzurite) -> None:
    container = secure_azurite.new_container()
    lake = open_lake_for(_settings(secure_azurite, container, lake_account_key=az.DEV_KEY))
    assert lake.credential_source == "COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY"
    _round_trip(lake)
    wrong = open_lake_for(_settings(secure_azurite, container, lake_account_key="A" * len(az.DEV_KEY)))
    with pytest.raises(ConfigError, match="refused the credentials of COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY"):
        wrong.exists("crm")


def test_a_connection_string_over_https(secure_azurite: az.SecureAzurite) -> None:
    container = secure_azurite.new_container()
    lake = open_lake_for(
        load_settings(
            lake=f"az://{container}/lake",
            azure_storage_connection_string=secure_azurite.connection_string,
            lake_ca_file=str(secure_azurite.tls.ca),
        )
    )
    assert lake.credential_source == "AZURE_STORAGE_CONNECTION_STRING"
    _round_trip(lake)


def test_an_untrusted_lake_certificate_fails_at_once_naming_the_endpoint(
    secure_azurite: az.SecureAzurite,
) -> None:
    container = secure_azurite.new_container()
    settings = _settings(secure_azurite, container, lake_account_key=az.DEV_KEY, lake_ca_file=None)
    lake = open_lake_for(settings)
    port = secure_azurite.endpoint.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(ConfigError, match=f"at 127.0.0.1:{port} could not be verified") as info:
        lake.exists("crm")  # not retried: the SDK's backoff would take a minute
    assert "COMPANY_ACTIVITY_LAKE_CA_FILE" in str(info.value)


def test_the_pipeline_runs_with_a_managed_identity(
    secure_azurite: az.SecureAzurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    container = secure_azurite.new_container()
    with (
        az.managed_identity_endpoint(monkeypatch) as identity,
        SimulatorServer(SimulatorOptions(seed=5, companies=30, today=TODAY)) as sim,
    ):
        env = procs.cli_env(str(tmp_path / "wh.duckdb"), tmp_path, sim, start=D1, today=TODAY) | {
            "COMPANY_ACTIVITY_LAKE": f"az://{container}@{az.DEV_ACCOUNT}.blob.core.windows.net/lake",
            "COMPANY_ACTIVITY_LAKE_AUTH": "identity",
            "COMPANY_ACTIVITY_LAKE_ENDPOINT": secure_azurite.endpoint,
            "COMPANY_ACTIVITY_LAKE_CA_FILE": str(secure_azurite.tls.ca),
        }
        lake = open_lake_for(
            load_settings(**{k.removeprefix("COMPANY_ACTIVITY_").lower(): v for k, v in env.items()})
        )
        sim.data.write_crm_snapshots(lake, days(D1, D2))
        result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "2 day(s) built" in result.output
        with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as w:
            assert table(w) == procs.ground_truth(sim, days(D1, D2), days(D1, D2))
        assert len(lake.list_dirs("raw/product_usage")) == 2
    assert len(identity.requests) >= 1
