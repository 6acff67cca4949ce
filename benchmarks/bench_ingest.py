"""Benchmark: usage ingestion from the product-usage API into staging, raw landing included.

The API simulator runs in its own process (``python -m company_activity simulate-api``), and so does each
measured ingestion, so that a figure's wall time and peak RSS are the ingesting process's alone (peak RSS
from ``wait4``'s resource usage of that child). Cases:

    (a) unthrottled: one day, 1,000,000 companies, page size 1000 -> wall time, peak RSS
        (targets: < 10 s, < 300 MB); and for scale a plain HTTP loop fetching and parsing the same pages
    (b) a server limit of 20 requests/s and 10 ms added latency, the client limited to 20/s:
        one day vs its bound max(pages / 20, pages x 0.01 s)   (target: within 10 %)
        a 7-day catch-up vs its bound (all pages / 20)        (target: within 15 %)
    (c) the same day as (a) through dlt's ``rest_api`` source into DuckDB, side by side with (a)
        (needs ``pip install "dlt[duckdb]"``; skipped with a message when dlt is not installed;
        dlt is not a dependency of company-activity)
    (s) a STRICT server (no burst: a request sooner than 1/R after the last accepted one gets a 429 with
        Retry-After: 1) with 10 ms latency, the client limited to the same R, at R = 20 and R = 5:
        one 1,000-page day (page size 750) vs max(pages / R, pages x 0.01 s)   (target: within 15 %)

Like with like: every measured run of (a) and (c) meets a warm server (one discarded warm-up pass over
the same pages first); (b) has a fresh server of its own.

"Into staging" is the pipeline's usage step as ``run`` does it (``IngestUsage.days`` with
``fetch_from_api``): fetch, land every raw page and the manifest in the lake, validate, load
``stg.product_usage_daily`` (the data engine), then record ``ops.usage_days``.
Run by hand, never by `make test`:

    .venv/bin/python benchmarks/bench_ingest.py                 # (a), (b) and (c): ~7 minutes
    .venv/bin/python benchmarks/bench_ingest.py --case a --case c
    .venv/bin/python benchmarks/bench_ingest.py --case b --companies 1000000 --catch-up-days 7
    .venv/bin/python benchmarks/bench_ingest.py --case s                  # strict server: ~4.5 minutes
    .venv/bin/python benchmarks/bench_ingest.py --case s --rate 20 --control   # + a bursty server
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TODAY = date(2026, 11, 12)
DAY = date(2026, 11, 10)  # a Tuesday: 749,474 active companies of 1,000,000 -> 750 pages of 1000
CLIENT_ID, CLIENT_SECRET, API_KEY = "demo-client", "demo-secret", "demo-key"


# -- processes --------------------------------------------------------------------------------------------
class Simulator:
    """``company-activity simulate-api`` in its own process."""

    def __init__(self, companies: int, *extra: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "company_activity",
            "simulate-api",
            "--port",
            "0",
            "--companies",
            str(companies),
            "--today",
            TODAY.isoformat(),
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "listening on" in line:
                self.url = line.split("listening on", 1)[1].strip()
                break
        else:
            raise SystemExit(f"the simulator did not start: {' '.join(cmd)}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_child(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """Run this script in child mode; returns (its JSON result, wall seconds, peak RSS in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], env=os.environ | env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed with status {proc.returncode}:\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    return result, wall, usage.ru_maxrss / 1024


def pipeline_env(url: str, folder: Path, rate_limit: float, page_size: int = 1000) -> dict[str, str]:
    return {
        "COMPANY_ACTIVITY_API_PAGE_SIZE": str(page_size),
        "COMPANY_ACTIVITY_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(folder / "lake"),
        "COMPANY_ACTIVITY_API_URL": url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": CLIENT_ID,
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": CLIENT_SECRET,
        "COMPANY_ACTIVITY_API_RATE_LIMIT": str(rate_limit),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_LOG_LEVEL": "WARNING",
    }


# -- child modes --------------------------------------------------------------------------------------------
def child_ingest(days: list[date]) -> dict[str, Any]:
    """The pipeline's usage step for ``days`` (settings from the environment)."""
    import concurrent.futures

    from company_activity.alerts import Alerter, LogSink
    from company_activity.config import load_settings
    from company_activity.logs import configure_from_settings
    from company_activity.pipeline import Pipeline
    from company_activity.run.context import RunContext, RunReport
    from company_activity.state import new_run_id
    from company_activity.steps.ingest_usage import IngestUsage, fetch_from_api

    settings = load_settings(None)
    configure_from_settings(settings)
    started = time.perf_counter()
    loaded: dict[str, int] = {}
    pages = 0
    landing_rss: list[float] = []  # peak RSS when each day's staging load begins: the landing's share

    class MeasuredIngest(IngestUsage):
        def finish_day(self, context: RunContext, day: date, fetched: Any, started: Any) -> Any:
            concurrent.futures.wait([fetched])
            landing_rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            return super().finish_day(context, day, fetched, started)

    with Pipeline(settings, sinks=[LogSink()]) as pipeline:
        run_id = new_run_id()
        report = RunReport(run_id, "bench ingest", days)
        ledger = pipeline.state.ledger(run_id)
        ledger.start_run(report.command)
        resources = pipeline.app.resources
        context = RunContext(resources, ledger, Alerter([LogSink()]), report, fetch_from_api(resources))
        for day, load in MeasuredIngest().days(context, days):
            if load is None:
                raise SystemExit(f"usage for {day} was not loaded: {report.steps[-1].message}")
            loaded[day.isoformat()] = load.records
            pages += load.pages
        ledger.finish_run("succeeded", "bench")
        staged = pipeline.wh.execute("select count(*) from stg.product_usage_daily")[0][0]
        requests = pipeline.client.requests_sent
        retry_wait = pipeline.client.retry_seconds_used
        pacer = pipeline.client.pacer
        throttled = pacer.throttled_count if pacer is not None else 0
    return {
        "seconds": time.perf_counter() - started,
        "records": sum(loaded.values()),
        "staged": staged,
        "pages": pages,
        "requests": requests,
        "retry_wait": retry_wait,
        "throttled": throttled,
        "landing_rss": max(landing_rss),
    }


def child_loop(url: str, day: date) -> dict[str, Any]:
    """For scale: a plain HTTP loop fetching and parsing every page of ``day`` (nothing stored)."""
    import httpx
    import orjson

    started = time.perf_counter()
    records = pages = 0
    with httpx.Client(timeout=30) as http:
        cursor: str | None = None
        while True:
            params = {"date": day.isoformat(), "limit": "1000"} | ({"cursor": cursor} if cursor else {})
            doc = orjson.loads(
                http.get(f"{url}/v1/usage/daily", params=params, headers={"X-API-Key": API_KEY}).content
            )
            records += len(doc["data"])
            pages += 1
            cursor = doc["next_cursor"]
            if cursor is None:
                break
    return {"seconds": time.perf_counter() - started, "records": records, "pages": pages}


def child_dlt(url: str, day: date, folder: Path) -> dict[str, Any]:
    """The same day through dlt's rest_api source into a DuckDB file (what a user might pick instead)."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": url,
                "auth": {"type": "api_key", "name": "X-API-Key", "api_key": API_KEY, "location": "header"},
                "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
            },
            "resources": [
                {
                    "name": "product_usage_daily",
                    "endpoint": {
                        "path": "v1/usage/daily",
                        "params": {"date": day.isoformat(), "limit": 1000},
                        "data_selector": "data",
                    },
                    "write_disposition": "replace",
                }
            ],
        }
    )
    started = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name="bench_ingest_dlt",
        destination=dlt.destinations.duckdb(str(folder / "dlt.duckdb")),
        dataset_name="usage",
        pipelines_dir=str(folder / "dlt-pipelines"),
    )
    pipeline.run(source)
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        records = client.execute_sql("select count(*) from product_usage_daily")[0][0]
    return {"seconds": seconds, "records": records}


# -- cases ------------------------------------------------------------------------------------------------
def warm_up(sim: Simulator) -> None:
    """One discarded pass over the day's pages, so that every measured run meets an equally warm server.

    The first pass over a day is slower (the simulator's per-chunk caches, the OS page cache, the
    interpreter's first imports): measured first, the plain loop took 5.0 s cold and 3.6 s warm.
    """
    loop, _, _ = run_child(["--child", "loop", "--url", sim.url], {})
    print(f"    warm-up pass (discarded)                {loop['seconds']:7.2f} s", flush=True)


def case_a(companies: int, scratch: Path, with_dlt: bool) -> None:
    sim = Simulator(companies)
    try:
        print(f"(a) unthrottled: one day ({DAY}), {companies:,} companies, page size 1000", flush=True)
        warm_up(sim)
        loop, _, loop_rss = run_child(["--child", "loop", "--url", sim.url], {})
        print(
            f"    plain HTTP loop (fetch + parse only)    {loop['seconds']:7.2f} s   "
            f"peak RSS {loop_rss:6.0f} MB   {loop['pages']} pages, {loop['records']:,} records",
            flush=True,
        )
        folder = scratch / "a"
        result, wall, rss = run_child(
            ["--child", "ingest", "--day", DAY.isoformat()], pipeline_env(sim.url, folder, 100_000)
        )
        verdict = "ok" if result["seconds"] < 10 and rss < 300 else "MISSED"
        print(
            f"    company-activity: API -> lake -> stg    {result['seconds']:7.2f} s   peak RSS {rss:6.0f} MB"
            f"   {result['pages']} pages, {result['staged']:,} rows staged   "
            f"[target < 10 s, < 300 MB: {verdict}]\n"
            f"        (peak RSS {result['landing_rss']:.0f} MB until the staging load began; "
            f"process wall incl. interpreter start-up {wall:.2f} s)",
            flush=True,
        )
        if with_dlt:
            case_c(sim.url, scratch)
    finally:
        sim.stop()


def case_c(url: str, scratch: Path) -> None:
    try:
        import dlt  # noqa: F401
    except ImportError:
        print('(c) dlt: skipped, dlt is not installed (pip install "dlt[duckdb]")', flush=True)
        return
    folder = scratch / "c"
    folder.mkdir(parents=True, exist_ok=True)
    result, wall, rss = run_child(["--child", "dlt", "--url", url, "--folder", str(folder)], {})
    print(
        f"(c) dlt rest_api -> DuckDB, same day        {result['seconds']:7.2f} s   peak RSS {rss:6.0f} MB"
        f"   {result['records']:,} rows (process wall incl. start-up {wall:.2f} s)",
        flush=True,
    )


def case_b(companies: int, scratch: Path, catch_up_days: int) -> None:
    limit, latency = 20.0, 0.01
    sim = Simulator(companies, "--rate-limit", str(limit), "--latency", str(latency))
    try:
        print(
            f"(b) server limit {limit:g} requests/s, {latency * 1000:g} ms latency, client limit {limit:g}/s",
            flush=True,
        )
        result, _, rss = run_child(
            ["--child", "ingest", "--day", DAY.isoformat()], pipeline_env(sim.url, scratch / "b1", limit)
        )
        pages = result["pages"]
        bound = max(pages / limit, pages * latency)
        ratio = result["seconds"] / bound
        print(
            f"    one day: {pages} pages                  {result['seconds']:7.2f} s   bound {bound:6.2f} s"
            f"   {ratio - 1:+6.1%}  [target within 10 %: {'ok' if ratio <= 1.10 else 'MISSED'}]"
            f"   {result['requests']} requests, {result['retry_wait']:.1f} s of retry waits, "
            f"peak RSS {rss:.0f} MB",
            flush=True,
        )
        days = [DAY - timedelta(days=k) for k in reversed(range(catch_up_days))]
        args = ["--child", "ingest"] + [a for d in days for a in ("--day", d.isoformat())]
        result, _, rss = run_child(args, pipeline_env(sim.url, scratch / "b7", limit))
        pages = result["pages"]
        bound = max(pages / limit, pages * latency / 4)
        ratio = result["seconds"] / bound
        print(
            f"    {catch_up_days}-day catch-up: {pages} pages          {result['seconds']:7.2f} s   "
            f"bound {bound:6.2f} s   {ratio - 1:+6.1%}  [target within 15 %: "
            f"{'ok' if ratio <= 1.15 else 'MISSED'}]   {result['requests']} requests, "
            f"{result['retry_wait']:.1f} s of retry waits, {result['staged']:,} rows staged, "
            f"peak RSS {rss:.0f} MB",
            flush=True,
        )
    finally:
        sim.stop()


def case_s(companies: int, scratch: Path, rates: list[float], control: bool) -> None:
    latency, page_size = 0.01, 750  # 749,474 records of 2026-11-10 (1,000,000 companies): 1,000 pages
    modes = ["--rate-limit-strict", "--rate-limit-burst"] if control else ["--rate-limit-strict"]
    for limit, mode in [(r, m) for r in rates for m in modes]:
        sim = Simulator(companies, "--rate-limit", str(limit), mode, "--latency", str(latency))
        try:
            result, _, rss = run_child(
                ["--child", "ingest", "--day", DAY.isoformat()],
                pipeline_env(sim.url, scratch / f"s{limit:g}{mode}", limit, page_size),
            )
        finally:
            sim.stop()
        pages = result["pages"]
        bound = max(pages / limit, pages * latency)
        ratio = result["seconds"] / bound
        print(
            f"(s) {'strict' if mode.endswith('strict') else 'bucket (control)'} server R={limit:g}/s, "
            f"{latency * 1000:g} ms latency, client R={limit:g}/s: "
            f"{pages} pages  {result['seconds']:7.2f} s   bound {bound:6.2f} s   {ratio - 1:+6.1%}  "
            f"[target within 15 %: {'ok' if ratio <= 1.15 else 'MISSED'}]   {result['requests']} requests, "
            f"{result['throttled']} answered 429, {result['retry_wait']:.1f} s of retry waits, "
            f"peak RSS {rss:.0f} MB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", choices=["a", "b", "c", "s"], help="default: a, b and c")
    parser.add_argument(
        "--rate", action="append", type=float, help="(s): the limits R to try (default: 20 and 5)"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="(s): also each R against a server that allows bursts (a token bucket), for comparison",
    )
    parser.add_argument("--companies", type=int, default=1_000_000)
    parser.add_argument("--catch-up-days", type=int, default=7)
    parser.add_argument("--keep", metavar="DIR", help="keep the lakes and warehouses in DIR")
    parser.add_argument("--child", choices=["ingest", "loop", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--day", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "ingest":
        print(json.dumps(child_ingest([date.fromisoformat(d) for d in args.day])))
        return
    if args.child == "loop":
        print(json.dumps(child_loop(args.url, DAY)))
        return
    if args.child == "dlt":
        print(json.dumps(child_dlt(args.url, DAY, Path(args.folder))))
        return

    cases = args.case or ["a", "b", "c"]
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    try:
        if "a" in cases:
            case_a(args.companies, scratch, with_dlt="c" in cases)
        elif "c" in cases:
            sim = Simulator(args.companies)
            try:
                warm_up(sim)
                case_c(sim.url, scratch)
            finally:
                sim.stop()
        if "b" in cases:
            case_b(args.companies, scratch, args.catch_up_days)
        if "s" in cases:
            case_s(args.companies, scratch, args.rate or [20.0, 5.0], args.control)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
