"""Benchmark: one large CRM snapshot streamed into staging (``company_activity.warehouse.crm_load``).

Generates a snapshot of ``--rows`` rows (default 2,500,000, about 200 MB: quoted names with commas and
line breaks, an ignored notes column, 1% duplicate company_ids, 0.1% bad rows) in a local lake, then loads
it in a child process exactly as ``run`` does (read in chunks, bulk-load, duplicates resolved in SQL,
quarantine written, the day replaced in one transaction) and reports the child's wall time and peak RSS
(``wait4``'s resource usage of that child). Target: < 400 MB peak RSS. Run by hand, never by `make test`:

    .venv/bin/python benchmarks/bench_crm.py                                  # DuckDB
    .venv/bin/python benchmarks/bench_crm.py --duckdb-memory-limit 256MB      # DuckDB capped
    .venv/bin/python benchmarks/bench_crm.py --engine postgresql \\
        --pg-url postgresql://postgres@127.0.0.1:5432/postgres               # a scratch database
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

DAY = date(2026, 1, 2)
REL = f"crm/crm_daily_{DAY.isoformat()}.csv"


PLAIN = b"C%08d,Company number %d,DE,saas,2025-12-%02d,some notes here about the company\r\n"


def generate(path: Path, rows: int) -> int:
    """The snapshot file; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"company_id,name,country,industry_tag,last_contact_at,notes\r\n")
        batch: list[bytes] = []
        for i in range(1, rows + 1):
            cid = i - 1 if i % 100 == 0 else i  # 1% duplicates
            if i % 1000 == 500:
                batch.append(b'C%08d,"bad row",DE,saas,not-a-date,\r\n' % cid)
            elif i % 10 == 0:
                batch.append(
                    b'C%08d,"Company %d, Ltd\r\nsecond line",FR,retail,2026-01-01T10:00:00Z,\r\n' % (cid, i)
                )
            else:
                batch.append(PLAIN % (cid, i, 1 + i % 28))
            if len(batch) >= 50_000:
                fh.write(b"".join(batch))
                batch.clear()
        fh.write(b"".join(batch))
    return path.stat().st_size


def child(warehouse: str, lake_root: str, memory_limit: str | None) -> None:
    from company_activity.storage import Lake
    from company_activity.warehouse import connect
    from company_activity.warehouse.crm_load import load_crm_snapshot

    wh = connect(warehouse, duckdb_memory_limit=memory_limit)
    wh.init_schema()
    start = time.perf_counter()
    summary = load_crm_snapshot(
        wh,
        Lake(lake_root),
        REL,
        day=DAY,
        run_id="bench",
        now=datetime(2026, 1, 3),
        quarantine=f"quarantine/crm/date={DAY.isoformat()}/rejected-bench.csv",
        max_bad_fraction=0.05,
    )
    elapsed = time.perf_counter() - start
    staged = wh.execute("select count(*) from stg.crm_daily")[0][0]
    wh.close()
    print(
        json.dumps(
            {
                "seconds": round(elapsed, 1),
                "rows": summary.rows,
                "bad": summary.bad,
                "duplicates": summary.duplicates,
                "total": summary.total,
                "staged": staged,
            }
        )
    )


def measure(warehouse: str, lake_root: str, memory_limit: str | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", warehouse, lake_root]
    if memory_limit:
        cmd += ["--duckdb-memory-limit", memory_limit]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the load failed (exit {os.waitstatus_to_exitcode(status)})")
    result: dict[str, object] = json.loads(out)
    result["process_seconds"] = round(wall, 1)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--engine", choices=["duckdb", "postgresql"], default="duckdb")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duckdb-memory-limit")
    parser.add_argument("--child", nargs=2, metavar=("WAREHOUSE", "LAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.duckdb_memory_limit)
        return
    with tempfile.TemporaryDirectory(prefix="bench-crm-") as tmp:
        lake = Path(tmp) / "lake"
        t0 = time.perf_counter()
        size = generate(lake / REL, args.rows)
        print(f"generated {args.rows:,} rows, {size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        if args.engine == "duckdb":
            result = measure(str(Path(tmp) / "wh.duckdb"), str(lake), args.duckdb_memory_limit)
        else:
            import psycopg

            name = f"bench_crm_{secrets.token_hex(3)}"
            with psycopg.connect(args.pg_url, autocommit=True) as admin:
                admin.execute(f'create database "{name}"')
            try:
                url = args.pg_url.rsplit("/", 1)[0] + "/" + name
                result = measure(url, str(lake), None)
            finally:
                with psycopg.connect(args.pg_url, autocommit=True) as admin:
                    admin.execute(f'drop database if exists "{name}" with (force)')
        print(json.dumps({"engine": args.engine, "file_mb": round(size / 1e6), **result}, indent=2))


if __name__ == "__main__":
    main()
