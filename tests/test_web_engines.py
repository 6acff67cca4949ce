"""The web UI's reads give the same answers on DuckDB and PostgreSQL, through read-only connections."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from company_activity.warehouse import Warehouse
from company_activity.web import queries as q
from company_activity.web.db import Reader, WarehouseUnavailable

from . import pg
from .helpers import days, seed_and_build

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url
any_wh = pg.any_wh

FIRST = date(2026, 11, 2)
ALL = days(FIRST, FIRST + timedelta(days=13))


def seed(wh: Warehouse) -> None:
    crm = {
        FIRST: {
            "A": ("Acme", "DE", "saas", datetime(2026, 10, 1, 9)),
            "B": ("<b>Bold</b>", "FR", "retail", None),
            "C": ("Quiet", "DE", "saas", None),
        },
        FIRST + timedelta(days=5): {
            "A": ("Acme GmbH", "DE", "saas", datetime(2026, 11, 5, 9)),
            "B": ("<b>Bold</b>", "FR", "retail", None),
            "C": ("Quiet", "DE", "saas", None),
        },
    }
    usage = {d: {"A": (3 + d.weekday(), 10), "B": (1, 1)} if d.weekday() < 5 else {"A": (1, 2)} for d in ALL}
    usage[FIRST] = {**usage[FIRST], "C": (2, 2)}
    complete = [d for d in ALL if d != ALL[-1]]  # the last day pending
    seed_and_build(wh, crm, usage, ALL, complete)
    now = datetime(2026, 11, 20)
    for d in complete:
        wh.run(
            "ops.sql",
            "build_day_upsert",
            {
                "day": d,
                "status": "built",
                "row_count": 3,
                "churn_risk_count": 0,
                "missing_crm_count": 0,
                "crm_snapshot_date": FIRST,
                "built_at": now,
                "last_error": None,
            },
        )
    wh.run("ops.sql", "run_start", {"run_id": "r1", "command": "run", "started_at": now})


def answers(url: str) -> dict[str, object]:
    reader = Reader(url)
    with reader.session() as s:
        start, end = q.resolve_range(s, None, ALL[-1])
        return {
            "range": (start, end),
            "overview": q.overview(s, start, end, "DE", None),
            "calendar": q.calendar(s, start, end),
            "churn": q.churn(s, ALL[-2], "company_id", "asc"),
            "company": q.company(s, "A", start, end),
            "runs": [{k: v for k, v in r.items() if k != "duration_s"} for r in q.runs(s, 10)],
        }


def test_reads_agree_on_both_engines(any_wh: Warehouse, wh_url: str, engine: str) -> None:
    seed(any_wh)
    any_wh.close()  # DuckDB: one process holds a file with one configuration at a time
    got = answers(wh_url)
    assert got["range"] == (FIRST, ALL[-1])
    overview = got["overview"]
    assert isinstance(overview, dict)
    by_day = {d["day"]: d for d in overview["days"]}
    assert by_day[ALL[-1].isoformat()]["active_users"] is None  # pending: a gap
    assert by_day[FIRST.isoformat()]["companies"] == 2  # A and C are in DE
    assert by_day[FIRST.isoformat()]["active_users"] == 3 + FIRST.weekday() + 2
    churn = got["churn"]
    assert isinstance(churn, dict)
    assert [c["company_id"] for c in churn["companies"]] == ["C"]
    assert churn["companies"][0]["days_since_usage"] == (ALL[-2] - FIRST).days
    company = got["company"]
    assert isinstance(company, dict)
    assert company["changes"][0]["field"] == "company_name" and company["changes"][0]["new"] == "Acme GmbH"
    assert len(company["weeks"]) == 2 and company["weeks"][-1]["is_partial"] is True
    if engine == "postgresql":
        duck = answers_on_duckdb.get("value")
        if duck is not None:
            assert got == duck
    else:
        answers_on_duckdb["value"] = got


answers_on_duckdb: dict[str, object] = {}


def test_connections_are_read_only(any_wh: Warehouse, wh_url: str) -> None:
    seed(any_wh)
    any_wh.close()
    with Reader(wh_url).session() as s, pytest.raises(Exception, match=r"(?i)read.only"):
        s._execute("delete from ops.runs", {})


def test_a_missing_warehouse_is_a_503_message(tmp_path: object) -> None:
    with (
        pytest.raises(WarehouseUnavailable, match="no warehouse at"),
        Reader(f"{tmp_path}/none.duckdb").session(),
    ):
        pass
