"""Benchmark: the Spark engine's build, local[1] against local[2], beside DuckDB on the same data.

Generates N companies x D days of staging with bench_build.py's generator (one CRM snapshot a day, usage
for ~60% of the companies a day) in a scratch DuckDB file, times DuckDB's full build there, exports the two
staging tables to Hive-partitioned Parquet (the Spark engine's layout, written by DuckDB's COPY), then
times the Spark engine building every day into an empty table, once per master, each in a fresh process
(a Spark master is fixed for the life of its JVM). Run by hand, never by `make test`:

    .venv/bin/python benchmarks/bench_spark.py                                 # 100k x 365
    .venv/bin/python benchmarks/bench_spark.py --companies 20000 --days 365 --masters 'local[1]' 'local[2]'

Prints wall times; the speed-up is local[1] / local[2]. The check at the end compares the Spark table's
row count and 7-day sums with DuckDB's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench_build import START, fill, peak_rss_mb  # type: ignore[import-not-found]

from company_activity.state import RunStateStore
from company_activity.warehouse import connect
from company_activity.warehouse.build import build_segment

CHECK = 'select count(*), sum("7d_active_users"), sum(case when is_churn_risk then 1 else 0 end)'


def prepare(tmp: Path, companies: int, days: int) -> tuple[Path, float, list[int]]:
    """Staging in DuckDB and as Parquet under ROOT; DuckDB's full-build time and its check figures."""
    wh = connect(str(tmp / "bench.duckdb"))
    wh.init_schema()
    t0 = time.perf_counter()
    fill(wh, companies, days)
    print(f"  fill staging (DuckDB)                 {time.perf_counter() - t0:8.2f} s", flush=True)
    end = START + timedelta(days=days - 1)
    t0 = time.perf_counter()
    build_segment(
        wh,
        START,
        end,
        complete_days=RunStateStore(wh).complete_days(START, end),
        first_usage_day=START,
        loaded_at=datetime(2026, 1, 2),
    )
    duck = time.perf_counter() - t0
    print(f"  DuckDB: build all {days} days            {duck:8.2f} s   peak RSS {peak_rss_mb():.0f} MB")
    check = [int(x) for x in wh.execute(f"{CHECK} from analytics.company_daily_activity")[0]]
    root = tmp / "tables"
    t0 = time.perf_counter()
    for table, part, cols in (
        (
            "stg.crm_daily",
            "snapshot_date",
            "snapshot_date, company_id, company_name, country, industry_tag, last_contact_at, source_file, "
            "source_line, loaded_at, run_id",
        ),
        (
            "stg.product_usage_daily",
            "activity_date",
            "activity_date, company_id, cast(active_users as bigint) as active_users, "
            "cast(events as bigint) as events, raw_run_id, loaded_at",
        ),
    ):
        out = root / table.replace(".", "/")
        out.parent.mkdir(parents=True, exist_ok=True)
        wh.execute(
            f"copy (select {cols} from {table}) to '{out}' (format parquet, partition_by ({part}))"  # noqa: S608
        )
    print(f"  export staging to Parquet             {time.perf_counter() - t0:8.2f} s", flush=True)
    wh.close()
    return root, duck, check


def run_spark(root: str, master: str, days: int, memory: str) -> None:
    """One Spark build of every day into an empty table (the child process of main)."""
    from company_activity.warehouse.spark import SparkEngine

    conf = {"spark.driver.memory": memory, "spark.sql.shuffle.partitions": "64"}
    engine = SparkEngine(root, master=master, conf=conf)
    end = START + timedelta(days=days - 1)
    complete = {START + timedelta(days=k) for k in range(days)}
    engine.files.delete("analytics")
    t0 = time.perf_counter()
    built = engine.build_segment(
        START, end, complete_days=complete, first_usage_day=START, loaded_at=datetime(2026, 1, 2)
    )
    elapsed = time.perf_counter() - t0
    engine.register_views()
    check = [
        int(x or 0)
        for x in engine.spark.sql(
            CHECK.replace('"', "`") + " from analytics_company_daily_activity"
        ).collect()[0]
    ]
    engine.close()
    print(json.dumps({"seconds": elapsed, "days": len(built), "check": check}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--companies", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--child", nargs=2, metavar=("ROOT", "MASTER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_spark(args.child[0], args.child[1], args.days, args.driver_memory)
        return 0
    print(f"{args.companies:,} companies x {args.days} days:")
    with tempfile.TemporaryDirectory() as tmp:
        root, duck, expected = prepare(Path(tmp), args.companies, args.days)
        times = {}
        for master in args.masters:
            cmd = [sys.executable, __file__, "--days", str(args.days), "--driver-memory", args.driver_memory]
            out = subprocess.run(
                [*cmd, "--child", str(root), master], capture_output=True, text=True, check=True
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times[master] = result["seconds"]
            same = (
                "same as DuckDB" if result["check"] == expected else f"DIFFERS {result['check']} {expected}"
            )
            print(
                f"  Spark {master:<10}: build all {result['days']} days {result['seconds']:8.2f} s   ({same})"
            )
        if len(times) >= 2:
            first, *rest = args.masters
            for m in rest:
                print(f"  speed-up {first} -> {m}: {times[first] / times[m]:.2f}x")
        print(f"  DuckDB: {duck:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
