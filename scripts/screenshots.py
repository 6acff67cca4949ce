"""Screenshots of the web UI for the README, from the demo's data.

    make demo                       # or: .venv/bin/company-activity demo
    .venv/bin/python scripts/screenshots.py [--dir data/demo] [--out docs/img]

Starts the UI on a free loopback port over the demo's warehouse and lake, and has Debian's headless
Chromium (/usr/bin/chromium, driven by Playwright) save the overview, the churn list and the latest run's
timeline as PNG files.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from playwright.sync_api import sync_playwright

from company_activity.config import load_settings
from company_activity.web.server import BackgroundServer

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default="data/demo", help="the demo's folder (default data/demo)")
    parser.add_argument("--out", default="docs/img", help="where the PNG files go (default docs/img)")
    args = parser.parse_args()
    warehouse = os.path.join(args.dir, "warehouse.duckdb")
    if not os.path.exists(warehouse):
        raise SystemExit(f"no demo warehouse at {warehouse}: run `make demo` first")
    settings = load_settings(warehouse=warehouse, lake=os.path.join(args.dir, "lake"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with BackgroundServer(settings) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        runs = page.request.get(f"{srv.url}/api/runs?limit=1").json()
        shots = [("overview.png", "/"), ("churn.png", "/churn")]
        if runs:
            shots.append(("run-timeline.png", f"/runs/{runs[0]['run_id']}"))
        for name, path in shots:
            page.goto(srv.url + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_function(
                "[...document.querySelectorAll('div.chart')].every(d => d.getAttribute('data-drawn'))"
            )
            page.screenshot(path=str(out / name), full_page=name == "overview.png")
            print(f"wrote {out / name}")
        browser.close()


if __name__ == "__main__":
    main()
