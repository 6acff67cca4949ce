"""Where `company-activity demo` writes (issue 13): a configured spark:ROOT is kept, and clearing it last
time's tables never deletes what the demo did not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from company_activity.config import Settings
from company_activity.demo import DEMO_MARK, clear_spark_tables, demo_warehouse
from company_activity.errors import ConfigError


def test_the_demo_keeps_a_spark_warehouse_with_its_own_state_file_unless_one_is_set(tmp_path: Path) -> None:
    folder = str(tmp_path / "demo")
    duck = demo_warehouse(Settings(), folder)
    assert duck.warehouse == duck.state == str(tmp_path / "demo" / "warehouse.duckdb")
    assert duck.spark_root is None

    spark = demo_warehouse(Settings(warehouse=f"spark:{tmp_path}/tables"), folder)
    assert spark.warehouse == f"spark:{tmp_path}/tables"
    assert spark.state == str(tmp_path / "demo" / "state.duckdb")
    assert spark.duckdb_files == (spark.state,)  # the demo's own: cleared with its tables

    mine = str(tmp_path / "mine.duckdb")
    kept = demo_warehouse(Settings(warehouse=f"spark:{tmp_path}/tables", state=mine), folder)
    assert (kept.state, kept.duckdb_files) == (mine, ())  # a state store the user set is never cleared


def test_clearing_removes_only_the_tables_the_demo_wrote(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    clear_spark_tables(str(root))  # a fresh root: nothing to clear, the mark written
    assert (root / DEMO_MARK).is_file()
    part = root / "analytics" / "company_daily_activity" / "activity_date=2026-11-11"
    part.mkdir(parents=True)
    (part / "part-0.parquet").write_bytes(b"x")
    (root / "stg" / "crm_daily" / "snapshot_date=2026-11-11").mkdir(parents=True)
    (root / "analytics" / "notes").mkdir()
    (root / "analytics" / "notes" / "keep.txt").write_text("mine", encoding="utf-8")
    (root / "keep.csv").write_text("mine", encoding="utf-8")

    clear_spark_tables(str(root))
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == [DEMO_MARK, "analytics", "analytics/notes", "analytics/notes/keep.txt", "keep.csv"]


def test_a_root_with_tables_the_demo_did_not_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    part = root / "stg" / "product_usage_daily" / "activity_date=2026-11-11"
    part.mkdir(parents=True)
    with pytest.raises(ConfigError, match=f"{DEMO_MARK} is missing"):
        clear_spark_tables(str(root))
    assert part.is_dir()  # untouched
    clear_spark_tables("abfss://lake@account.dfs.core.windows.net/tables")  # never cleared: no error
