"""Benchmark: building analytics.company_daily_activity.

Fills a fresh warehouse with N companies x D days of staging data (generated in SQL: one CRM snapshot per
day, as in a warehouse that loads a file a day), then times
(1) building the last day alone and (2) building / rebuilding the whole range. Prints wall time and the
process's peak RSS. Run by hand, never by `make test`:

    .venv/bin/python benchmarks/bench_build.py                      # both standard cases, DuckDB
    .venv/bin/python benchmarks/bench_build.py --companies 1000000 --days 8 --case day
    .venv/bin/python benchmarks/bench_build.py --warehouse postgresql://postgres@127.0.0.1/bench
    .venv/bin/python benchmarks/bench_build.py --companies 100000 --days 365 --case pipeline

PostgreSQL: the database of the URL is created when it does not exist. Each case starts from an empty
warehouse, so its schemas (stg, analytics, ops) are dropped first: the database's name must start with
``bench`` or end with ``_bench`` (a scratch database, never a real warehouse). Server settings are the
server's own; the figures depend much on ``work_mem`` and ``shared_buffers``. Staging is ANALYZEd after it
is filled, as autovacuum would have done in a warehouse that loads a day at a time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from company_activity.config import load_settings
from company_activity.pipeline import Pipeline
from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse, connect
from company_activity.warehouse.build import CHUNK_DAYS, build_segment

START = date(2025, 1, 1)
STAGING = ("stg.crm_daily", "stg.product_usage_daily", "ops.usage_days")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(wh: Warehouse, companies: int, days: int) -> None:
    """One CRM snapshot per day (as a warehouse that loads a file a day holds), usage for ~60% of the
    companies each day, all days complete. A company's name changes every 97 days, so later snapshots are
    not all copies of the first."""
    now = datetime(2026, 1, 1)
    end = START + timedelta(days=days - 1)
    with wh.transaction():
        wh.execute(
            "insert into stg.crm_daily "
            "select cast(:start as date) + cast(dd as integer), 'C' || lpad(cast(i as varchar), 7, '0'), "
            "'Company ' || cast(i as varchar) || '/' "
            "|| cast(cast(floor((i + dd) / 97.0) as integer) as varchar), "
            "'DE', 'saas', null, 'bench.csv', cast(i as integer), cast(:now as timestamp), 'bench' "
            "from generate_series(1, :n) as g(i) cross join generate_series(0, :d) as h(dd)",
            {"start": START, "now": now, "n": companies, "d": days - 1},
        )
        wh.execute(
            "insert into stg.product_usage_daily "
            "select cast(:start as date) + cast(dd as integer), 'C' || lpad(cast(i as varchar), 7, '0'), "
            "cast(1 + (i % 50) as integer), cast(10 + (i % 500) as integer), 'bench', "
            "cast(:now as timestamp) "
            "from generate_series(1, :n) as g(i) cross join generate_series(0, :d) as h(dd) "
            "where (i * 7 + dd * 13) % 10 < 6",
            {"start": START, "now": now, "n": companies, "d": days - 1},
        )
        wh.execute(
            "insert into ops.usage_days (activity_date, status, raw_run_id, record_count, page_count, "
            "completed_at, updated_at) select cast(:start as date) + cast(dd as integer), 'complete', "
            "'bench', 0, 0, cast(:now as timestamp), cast(:now as timestamp) "
            "from generate_series(0, :d) as h(dd)",
            {"start": START, "now": now, "d": days - 1},
        )
    assert end == START + timedelta(days=days - 1)


def timed(label: str, fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - t0
    print(f"  {label:<44} {elapsed:8.2f} s   peak RSS {peak_rss_mb():7.0f} MB", flush=True)
    return elapsed


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def prepare_postgres(url: str) -> None:
    """Create the benchmark database if needed, and empty it: a scratch database named ``bench*`` only."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not (name.startswith("bench") or name.endswith("_bench")):
        raise SystemExit(
            f"--warehouse: the benchmark drops the warehouse schemas of its database; give a scratch "
            f"database whose name starts with 'bench' or ends with '_bench', not {name!r}"
        )
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as con:
        if con.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is None:
            con.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            print(f"  created database {name}")
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("drop schema if exists stg, analytics, ops cascade")


def pipeline_case(url: str, end: date, memory_limit: str | None, lake: str) -> None:
    """The range through the pipeline's ``build`` (ledger, gate, checks, marts): the first build, the
    default build (every day skipped: nothing changed) and ``build --full``."""
    settings = load_settings(
        warehouse=url, lake=lake, today=end + timedelta(days=1), duckdb_memory_limit=memory_limit
    )

    def build(full: bool) -> None:
        with Pipeline(settings, sinks=[]) as pipeline:
            report = pipeline.build(START, end, full=full)
        skipped = sum(1 for s in report.steps if s.status == "skipped")
        print(f"    built {len(report.built)} day(s), skipped {skipped}, exit code {report.exit_code}")

    days = (end - START).days + 1
    timed(f"pipeline: build all {days} days (empty table)", lambda: build(False))
    timed("pipeline: build again (nothing changed: skips)", lambda: build(False))
    timed("pipeline: build --full (nothing changes)", lambda: build(True))


def case(
    url: str,
    companies: int,
    days: int,
    what: str,
    memory_limit: str | None = None,
    chunk_days: int = CHUNK_DAYS,
    lake: str = "lake",
) -> None:
    print(f"{companies:,} companies x {days} days on {url.split('://')[0] if '://' in url else 'duckdb'}:")
    if is_postgres(url):
        prepare_postgres(url)
    wh = connect(url, duckdb_memory_limit=memory_limit)
    wh.init_schema()
    timed("fill staging", lambda: fill(wh, companies, days))
    if is_postgres(url):
        timed("analyze staging", lambda: [wh.execute(f"analyze {t}") for t in STAGING])
    end = START + timedelta(days=days - 1)

    def build(s: date, e: date, at: datetime) -> None:
        build_segment(
            wh,
            s,
            e,
            complete_days=RunStateStore(wh).complete_days(s - timedelta(days=6), e),
            first_usage_day=START,
            loaded_at=at,
            chunk_days=chunk_days,
        )

    if what in ("day", "both"):
        if days > 7:
            timed(
                f"build days before the last ({days - 1})",
                lambda: build(START, end - timedelta(days=1), datetime(2026, 1, 2)),
            )
        timed("build one day (the last)", lambda: build(end, end, datetime(2026, 1, 2)))
        timed("rebuild that day (nothing changes)", lambda: build(end, end, datetime(2026, 1, 3)))
    if what in ("range", "both"):
        timed(f"build all {days} days (empty table)", lambda: build(START, end, datetime(2026, 1, 4)))
        timed(f"rebuild all {days} days (nothing changes)", lambda: build(START, end, datetime(2026, 1, 5)))
    if what == "pipeline":
        wh.close()
        pipeline_case(url, end, memory_limit, lake)
        wh = connect(url, duckdb_memory_limit=memory_limit)
    rows = wh.execute("select count(*) from analytics.company_daily_activity")[0][0]
    print(f"  analytics rows: {rows:,}")
    wh.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--warehouse", default=None, help="DuckDB path or postgresql:// URL (default: temp DuckDB)"
    )
    ap.add_argument("--companies", type=int, default=None)
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument(
        "--case",
        choices=["day", "range", "both", "pipeline"],
        default=None,
        help="pipeline: the range through `build` (first build, default build that skips, --full)",
    )
    ap.add_argument("--chunk-days", type=int, default=CHUNK_DAYS, help="days built per chunk of a range")
    ap.add_argument(
        "--duckdb-memory-limit", default=None, help="e.g. 3GB (DuckDB's own default: 80%% of RAM)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.warehouse or str(Path(tmp) / "bench.duckdb")
        if args.companies or args.days:
            case(
                url,
                args.companies or 100_000,
                args.days or 365,
                args.case or "both",
                args.duckdb_memory_limit,
                args.chunk_days,
                str(Path(tmp) / "lake"),
            )
            return 0
        case(url, 1_000_000, 8, "day", args.duckdb_memory_limit)
        url2 = args.warehouse or str(Path(tmp) / "bench2.duckdb")
        case(url2, 100_000, 365, "range", args.duckdb_memory_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
