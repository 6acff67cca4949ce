"""Benchmark: server time of each web UI page on N companies x D days (default 100k x 365).

Fills a fresh warehouse (staging generated in SQL: usage for ~60% of the companies each day, and one
company in 20 silent for its last 30 days, so the churn list has ~5% of them), builds every day through
``warehouse.build.build_segment`` (which also fills the marts and the daily summary), records the days in
``ops.build_days`` and one run with a step per day in ``ops.run_steps``, then serves the UI on a loopback
port and times each page (the median of ``--repeat`` requests, after one warm-up request). Run by hand,
never by `make test`:

    .venv/bin/python benchmarks/bench_ui.py --keep /tmp/bench-ui.duckdb     # build once, then reuse
    .venv/bin/python benchmarks/bench_ui.py --companies 10000 --days 90
    .venv/bin/python benchmarks/bench_ui.py --warehouse postgresql://postgres@127.0.0.1/bench_ui

PostgreSQL: the database must be a scratch one whose name starts with ``bench`` (its schemas are dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta

import httpx

from company_activity import marts
from company_activity.config import load_settings
from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse, connect
from company_activity.warehouse.build import DayBuild, build_segment
from company_activity.web.server import BackgroundServer

START = date(2025, 1, 1)
RUN_ID = "20260101T000000Z-bench0"
TARGET_MS = 300


def fill(wh: Warehouse, companies: int, days: int) -> None:
    now = datetime(2026, 1, 1)
    with wh.transaction():
        wh.execute(
            "insert into stg.crm_daily "
            "select cast(:start as date), 'C' || lpad(cast(i as varchar), 7, '0'), "
            "'Company ' || cast(i as varchar), "
            "case i % 4 when 0 then 'DE' when 1 then 'FR' when 2 then 'US' else 'JP' end, "
            "case i % 3 when 0 then 'saas' when 1 then 'retail' else 'media' end, null, 'bench.csv', "
            "cast(i as integer), cast(:now as timestamp), 'bench' from generate_series(1, :n) as g(i)",
            {"start": START, "now": now, "n": companies},
        )
        wh.execute(
            "insert into stg.product_usage_daily "
            "select cast(:start as date) + cast(dd as integer), 'C' || lpad(cast(i as varchar), 7, '0'), "
            "cast(1 + (i % 50) as integer), cast(10 + (i % 500) as integer), 'bench', "
            "cast(:now as timestamp) "
            "from generate_series(1, :n) as g(i) cross join generate_series(0, :d) as h(dd) "
            "where (i * 7 + dd * 13) % 10 < 6 and not (i % 20 = 0 and dd > :d - 30)",
            {"start": START, "now": now, "n": companies, "d": days - 1},
        )
        for k in range(days):
            wh.run(
                "ops.sql",
                "usage_day_upsert",
                {
                    "day": START + timedelta(days=k),
                    "status": "complete",
                    "raw_run_id": "bench",
                    "record_count": None,
                    "page_count": None,
                    "schema_drift": None,
                    "completed_at": now,
                    "updated_at": now,
                    "last_error": None,
                },
            )


def generate(wh: Warehouse, companies: int, days: int) -> list[DayBuild]:
    """PostgreSQL: the analytics rows written directly in SQL (the same shape as a build's), then the marts
    refreshed month by month. A year's build through ``build_segment`` takes far longer on PostgreSQL than
    this benchmark is about (see the build section of docs/benchmarks.md)."""
    with wh.transaction():
        wh.execute(
            "insert into analytics.company_daily_activity "
            "select cast(:start as date) + cast(dd as integer), 'C' || lpad(cast(i as varchar), 7, '0'), "
            "'Company ' || cast(i as varchar), "
            "case i % 4 when 0 then 'DE' when 1 then 'FR' when 2 then 'US' else 'JP' end, "
            "case i % 3 when 0 then 'saas' when 1 then 'retail' else 'media' end, null, "
            "case when used then 1 + (i % 50) else 0 end, case when used then 10 + (i % 500) else 0 end, "
            "case when silent and dd > :d - 30 then 0 else 7 * (1 + (i % 50)) end, "
            "silent and dd >= :d - 30 + 6, cast(:now as timestamp) "
            "from (select i, dd, (i * 7 + dd * 13) % 10 < 6 and not (i % 20 = 0 and dd > :d - 30) as used, "
            "i % 20 = 0 as silent "
            "from generate_series(1, :n) as g(i) cross join generate_series(0, :d) as h(dd)) as x",
            {"start": START, "now": datetime(2026, 1, 1), "n": companies, "d": days - 1},
        )
    wh.execute("analyze")
    end = START + timedelta(days=days - 1)
    day = START
    while day <= end:
        last = min(end, (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1))
        marts.refresh(wh, day, last, built_at=datetime(2026, 1, 1))
        day = last + timedelta(days=1)
    rows = wh.execute(
        "select activity_date, count(*), sum(case when is_churn_risk then 1 else 0 end) "
        "from analytics.company_daily_activity group by activity_date order by activity_date"
    )
    return [DayBuild(r[0], int(r[1]), int(r[2]), 0) for r in rows]


def build(wh: Warehouse, days: int, built: list[DayBuild] | None = None) -> None:
    end = START + timedelta(days=days - 1)
    if built is None:
        built, _ = build_segment(
            wh,
            START,
            end,
            complete_days=RunStateStore(wh).complete_days(START, end),
            first_usage_day=START,
            loaded_at=datetime(2026, 1, 1),
        )
    t0 = datetime(2026, 1, 2)
    with wh.transaction():
        wh.run("ops.sql", "run_start", {"run_id": RUN_ID, "command": "backfill", "started_at": t0})
        for k, b in enumerate(built):
            at = t0 + timedelta(seconds=k)
            for step in ("ingest_crm", "ingest_usage", "build"):
                wh.run(
                    "ops.sql",
                    "step_upsert",
                    {
                        "run_id": RUN_ID,
                        "step": step,
                        "day": b.day,
                        "status": "succeeded",
                        "started_at": at,
                        "finished_at": at + timedelta(milliseconds=300),
                        "rows_loaded": b.row_count,
                        "rows_rejected": 0,
                        "message": None,
                    },
                )
            wh.run(
                "ops.sql",
                "build_day_upsert",
                {
                    "day": b.day,
                    "status": "built",
                    "row_count": b.row_count,
                    "churn_risk_count": b.churn_risk_count,
                    "missing_crm_count": b.missing_crm_count,
                    "crm_snapshot_date": START,
                    "built_at": at,
                    "last_error": None,
                },
            )
        wh.run(
            "ops.sql",
            "run_finish",
            {"run_id": RUN_ID, "finished_at": t0 + timedelta(days=1), "status": "succeeded", "message": None},
        )


def prepare(url: str, companies: int, days: int) -> None:
    if url.startswith("postgres"):
        with connect(url) as wh:
            for schema in ("stg", "analytics", "ops"):
                wh.execute(f"drop schema if exists {schema} cascade")
    with connect(url, lock_timeout=5) as wh:
        wh.init_schema()
        t = time.perf_counter()
        fill(wh, companies, days)
        print(f"fill staging: {time.perf_counter() - t:.1f} s", flush=True)
        if url.startswith("postgres"):
            wh.execute("analyze")
        t = time.perf_counter()
        if url.startswith("postgres"):
            build(wh, days, generate(wh, companies, days))
        else:
            build(wh, days)
        how = "generated in SQL, marts refreshed" if url.startswith("postgres") else "built, with the marts"
        print(f"{days} days of analytics ({how}): {time.perf_counter() - t:.1f} s", flush=True)


def pages(days: int) -> list[tuple[str, str]]:
    last = START + timedelta(days=days - 1)
    return [
        ("overview (last 90 days)", "/"),
        ("overview, a year, one country", f"/?start={START.isoformat()}&end={last.isoformat()}&country=DE"),
        ("API overview (last 90 days)", "/api/overview"),
        ("churn list (500 of ~5%)", "/churn"),
        ("churn CSV (all)", "/churn.csv"),
        ("company page (90 days)", "/companies/C0000042"),
        ("company page, a year", f"/companies/C0000042?start={START.isoformat()}&end={last.isoformat()}"),
        ("runs", "/runs"),
        (f"run page ({3 * days} steps)", f"/runs/{RUN_ID}"),
        ("day page", f"/days/{last.isoformat()}"),
        ("settings", "/settings"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--companies", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--warehouse", default=None, help="a DuckDB path or a scratch postgresql:// URL")
    ap.add_argument("--keep", default=None, help="DuckDB file to build once and reuse on later runs")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    url = args.warehouse or args.keep or os.path.join(tempfile.mkdtemp(prefix="bench-ui-"), "wh.duckdb")
    if not (args.keep and os.path.exists(args.keep)):
        prepare(url, args.companies, args.days)
    settings = load_settings(warehouse=url, lake=tempfile.mkdtemp(prefix="bench-ui-lake-"))
    engine = "PostgreSQL" if url.startswith("postgres") else "DuckDB"
    print(f"\n{args.companies} companies x {args.days} days, {engine}")
    print(f"{'page':<34} {'median ms':>10} {'max ms':>8} {'KiB':>7}")
    slow = 0
    with BackgroundServer(settings) as srv, httpx.Client(base_url=srv.url, timeout=120) as client:
        for label, path in pages(args.days):
            r = client.get(path)
            r.raise_for_status()
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            median = statistics.median(times)
            slow += median > TARGET_MS
            mark = "" if median <= TARGET_MS else "  > target"
            print(f"{label:<34} {median:>10.0f} {max(times):>8.0f} {len(r.content) // 1024:>7}{mark}")
    print(f"target < {TARGET_MS} ms per page: {'met' if not slow else f'{slow} page(s) over'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
