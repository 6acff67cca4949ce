from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from company_activity.warehouse import Warehouse
from company_activity.warehouse.duckdb import DuckDBWarehouse

# Hypothesis profiles. "ci" (chosen when the CI variable is set, as `.ci/run` is run with `CI=true`):
# derandomized (the same examples on every run, so a red CI is always a real regression), no example
# database (a fresh clone has none anyway), the reproduction blob printed on a failure, and no timing
# checks (no per-example deadline, no "too slow" health check: a loaded machine is no regression).
# "dev" (the default elsewhere): randomized, with the local example database, to keep finding new cases.
# Pick one explicitly with `pytest --hypothesis-profile=ci` or HYPOTHESIS_PROFILE=ci.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: shared fixtures: the alert receivers (``receiver``, ``smtp_server``) of tests/alert_servers.py
pytest_plugins = ["tests.alert_servers"]

settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    """A real DuckDB file with the schema created."""
    warehouse = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"))
    warehouse.init_schema()
    yield warehouse
    warehouse.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs the PostgreSQL server (``-m postgres`` / ``-m "not postgres"``) and what lives
    under tests/unit/ (``-m unit``: no database, no server, no process)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("engine") if callspec is not None else None
        if "pg_server" in names or engine == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if "tests/unit/" in item.nodeid or item.nodeid.startswith("unit/"):
            item.add_marker(pytest.mark.unit)
