from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from company_activity.warehouse import Warehouse
from company_activity.warehouse.duckdb import DuckDBWarehouse


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    """A real DuckDB file with the schema created."""
    warehouse = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"))
    warehouse.init_schema()
    yield warehouse
    warehouse.close()
