"""Benchmark: the speed of a simulator page and of parsing a page (moved out of the unit tests, which
assert only values). Run by hand, never by `make test`:

    .venv/bin/python benchmarks/bench_simulator.py
    .venv/bin/python benchmarks/bench_simulator.py --companies 1000000 --repeat 15

(1) the simulator with N companies: the HTTP round trip of a 1000-record page deep into the day, cold (the
first request touching those companies) and warm (the same pages again), and the page built in-process;
(2) ``parse_usage_page`` on a 1000-record page (best of 30). Medians in milliseconds, with the targets the
unit tests used to assert (a warm page < 1000 ms; a parse < 2 ms).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from datetime import date

import httpx
import orjson

from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.sources.usage_api import parse_usage_page

TODAY = date(2026, 3, 10)
DAY = date(2026, 3, 2)
USAGE = "/v1/usage/daily"
KEY = {"X-API-Key": "demo-key"}


def cursor_for(day: date, position: int) -> str:
    return base64.urlsafe_b64encode(f"{day.isoformat()}:{position}:0".encode()).decode().rstrip("=")


def simulator_pages(companies: int, repeat: int) -> None:
    starts = [companies // 2 + (companies // 35) * k for k in range(repeat)]
    timings: dict[str, list[float]] = {"cold": [], "warm": [], "build": []}
    with (
        SimulatorServer(SimulatorOptions(companies=companies, today=TODAY)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for phase in ("cold", "warm"):
            for start in starts:
                params: dict[str, str | int] = {"date": DAY.isoformat(), "limit": 1000}
                params["cursor"] = cursor_for(DAY, start)
                t0 = time.perf_counter()
                response = client.get(USAGE, params=params, headers=KEY)
                timings[phase].append(time.perf_counter() - t0)
                assert len(response.json()["data"]) == 1000
        for start in starts:
            t0 = time.perf_counter()
            server._page(DAY, start, 0, 1000)
            timings["build"].append(time.perf_counter() - t0)
    ms = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    verdict = "ok" if ms["warm"] < 1000 else "MISSED"
    print(
        f"simulator, {companies:,} companies, 1000-record page (median of {repeat}): HTTP round trip "
        f"{ms['cold']:.2f} ms cold, {ms['warm']:.2f} ms warm [target warm < 1000 ms: {verdict}]; "
        f"page built in-process {ms['build']:.2f} ms"
    )


def parse_page() -> None:
    records = [
        {"company_id": f"company-{k:06d}", "active_users": k % 50, "events": k * 7, "plan": "pro"}
        for k in range(1000)
    ]
    raw = orjson.dumps({"date": DAY.isoformat(), "data": records, "next_cursor": "abc"})
    best = float("inf")
    for _ in range(30):
        t0 = time.perf_counter()
        parsed = parse_usage_page(raw, day=DAY, source="bench")
        best = min(best, time.perf_counter() - t0)
    assert len(parsed.records) == 1000
    verdict = "ok" if best < 0.002 else "MISSED"
    print(f"parse_usage_page, 1000 records (best of 30): {best * 1000:.3f} ms [target < 2 ms: {verdict}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--companies", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    simulator_pages(args.companies, args.repeat)
    parse_page()


if __name__ == "__main__":
    main()
