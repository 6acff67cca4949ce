"""The lake on Azure Blob Storage (``az://container/prefix``), against Azurite started on a loopback port."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.errors import ConfigError
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.sources.usage_api import parse_usage_page
from company_activity.storage import Lake, open_lake
from company_activity.warehouse import connect

from . import azurite as az
from . import procs
from .helpers import days, table

azurite = az.azurite
az_lake_url = az.az_lake_url

TODAY = date(2026, 11, 12)
D1, D3 = date(2026, 11, 9), date(2026, 11, 11)
THREE = days(D1, D3)


def lake_at(url: str, azurite: az.Azurite) -> Lake:
    return open_lake(url, azure_connection_string=azurite.connection_string)


def test_lake_reads_lists_and_overwrites_blobs(az_lake_url: str, azurite: az.Azurite) -> None:
    lake = lake_at(az_lake_url, azurite)
    assert not lake.is_local
    assert not lake.exists("crm/crm_daily_2026-11-01.csv")
    assert lake.list_dirs("raw") == [] and lake.list_files("crm") == [] and list(lake.walk_files("raw")) == []
    lake.write_bytes("crm/crm_daily_2026-11-01.csv", b"company_id\r\nC1\r\n")
    for run in ("r1", "r2"):
        lake.write_bytes(f"raw/product_usage/date=2026-11-01/run={run}/page-00001.json", b"{}")
        lake.write_bytes(f"raw/product_usage/date=2026-11-01/run={run}/_manifest.json", b"{}")
    lake.write_bytes("raw/product_usage/date=2026-11-02/run=r3/page-00001.json", b"[]")

    assert lake.read_bytes("crm/crm_daily_2026-11-01.csv") == b"company_id\r\nC1\r\n"
    assert lake.list_dirs("raw/product_usage") == ["date=2026-11-01", "date=2026-11-02"]
    assert lake.list_dirs("raw/product_usage/date=2026-11-01") == ["run=r1", "run=r2"]
    assert lake.list_files("raw/product_usage/date=2026-11-01/run=r1") == [
        "_manifest.json",
        "page-00001.json",
    ]
    assert list(lake.walk_files("raw/product_usage/date=2026-11-02")) == [
        "raw/product_usage/date=2026-11-02/run=r3/page-00001.json"
    ]
    assert lake.url("crm/x.csv") == f"{az_lake_url}/crm/x.csv"

    # an overwrite replaces the whole blob in one step, and leaves nothing else behind
    big = bytes(range(256)) * 20_000  # 5 MB
    lake.write_bytes("crm/crm_daily_2026-11-01.csv", big)
    assert lake.read_bytes("crm/crm_daily_2026-11-01.csv") == big
    assert lake.list_files("crm") == ["crm_daily_2026-11-01.csv"]

    # another process's write is seen at once (no listing cache)
    lake_at(az_lake_url, azurite).write_bytes("crm/crm_daily_2026-11-02.csv", b"x")
    assert lake.list_files("crm") == ["crm_daily_2026-11-01.csv", "crm_daily_2026-11-02.csv"]
    assert lake.exists("crm/crm_daily_2026-11-02.csv")
    with pytest.raises(FileNotFoundError):
        lake.read_bytes("crm/nothing.csv")


def test_a_missing_container_and_rejected_credentials_are_config_errors(azurite: az.Azurite) -> None:
    with pytest.raises(ConfigError, match="container 'no-such-container' does not exist"):
        lake_at("az://no-such-container/lake", azurite).write_bytes("a.txt", b"a")
    bad = open_lake(
        "az://any-container/lake",
        azure_connection_string=azurite.connection_string.replace(az.DEV_KEY, "A" * len(az.DEV_KEY)),
    )
    with pytest.raises(ConfigError, match="refused the credentials of AZURE_STORAGE_CONNECTION_STRING"):
        bad.exists("a.txt")


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(seed=4, companies=60, today=TODAY)) as server:
        yield server


def test_the_pipeline_runs_on_an_azure_lake(
    az_lake_url: str, azurite: az.Azurite, sim: SimulatorServer, tmp_path: Path
) -> None:
    lake = lake_at(az_lake_url, azurite)
    sim.data.write_crm_snapshots(lake, THREE)
    # one bad row on the second day: quarantined, the file still loads
    rel = f"crm/crm_daily_{THREE[1].isoformat()}.csv"
    lake.write_bytes(rel, lake.read_bytes(rel) + b",No Id Inc,DE,saas,2026-01-02\r\n")
    wh = str(tmp_path / "wh.duckdb")
    env = procs.cli_env(wh, tmp_path, sim, start=D1, today=TODAY) | {
        "COMPANY_ACTIVITY_LAKE": az_lake_url,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 day(s) built" in result.output

    with connect(wh) as w:
        assert table(w) == procs.ground_truth(sim, THREE, THREE)
        staged = dict(w.execute("select activity_date, count(*) from stg.product_usage_daily group by 1"))
    quarantined = list(lake.walk_files("quarantine"))
    assert len(quarantined) == 1 and quarantined[0].startswith(f"quarantine/crm/date={THREE[1].isoformat()}/")
    assert b"No Id Inc" in lake.read_bytes(quarantined[0])

    # raw pages and manifests landed on the lake; a day can be re-parsed from them without the API
    for day in THREE:
        runs = lake.list_dirs(f"raw/product_usage/date={day.isoformat()}")
        assert len(runs) == 1
        prefix = f"raw/product_usage/date={day.isoformat()}/{runs[0]}"
        manifest = json.loads(lake.read_bytes(f"{prefix}/_manifest.json"))
        assert manifest["date"] == day.isoformat()
        records = []
        for page in manifest["pages"]:
            body = lake.read_bytes(f"{prefix}/{page['file']}")
            assert hashlib.sha256(body).hexdigest() == page["sha256"]
            records.extend(parse_usage_page(body, day=day, source=lake.url(prefix)).records)
        assert len(records) == manifest["record_count"] == staged[day] == len(sim.usage(day))

    # replay: staging reloaded from the raw runs on the lake, without one call to the API
    with connect(wh) as w:
        before = table(w)
    calls = sim.stats.requests
    result = CliRunner().invoke(
        main, ["replay", "--date", D1.isoformat(), "--end", D3.isoformat()], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert sim.stats.requests == calls
    with connect(wh) as w:
        assert table(w) == before
