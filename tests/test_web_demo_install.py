"""`/settings` (and the other pages that read no data) on the install `make demo` makes: `.[ui]` only.

The UI runs in a fresh interpreter in which the optional extras other than ``ui`` (psycopg, adlfs and
azure, dagster, pyspark, pyarrow, sqlglot) cannot be imported, as on that install: a ``sys.meta_path``
finder refuses them. The settings page must answer 200 with its content, and none of them may have been
imported on the way (a PostgreSQL URL's password is masked without psycopg too).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent(
    """
    import json, sys

    BLOCKED = ("psycopg", "adlfs", "azure", "dagster", "pyspark", "pyarrow", "sqlglot")

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    import httpx
    from company_activity.config import load_settings
    from company_activity.web.routes import settings_rows
    from company_activity.web.server import BackgroundServer

    folder = sys.argv[1]
    settings = load_settings(warehouse=folder + "/warehouse.duckdb", lake=folder + "/lake")
    out = {}
    with BackgroundServer(settings) as srv:
        for path in ("/settings", "/api/openapi.json", "/api/docs"):
            r = httpx.get(srv.url + path, timeout=30)
            out[path] = [r.status_code, r.text]
    pg = settings.model_copy(update={"warehouse": "postgresql://ui:pg-s3cret@db.example/wh?password=pg-s3cret"})
    out["pg_row"] = dict(settings_rows(pg))["COMPANY_ACTIVITY_WAREHOUSE"]
    out["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED and sys.modules[m])
    print(json.dumps(out))
    """
)


def test_settings_answer_without_the_other_extras(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    status, page = out["/settings"]
    assert status == 200, page[-2000:]
    assert 'id="settings-table"' in page
    assert "COMPANY_ACTIVITY_WAREHOUSE" in page and str(tmp_path / "warehouse.duckdb") in page
    assert "COMPANY_ACTIVITY_UI_TOKEN" in page
    assert out["/api/openapi.json"][0] == 200 and out["/api/docs"][0] == 200
    assert out["pg_row"] == "postgresql://ui:***@db.example/wh?password=***"
    assert out["imported"] == []
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
