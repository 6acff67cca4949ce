"""The one-file report on the demo's warehouse (issue 23): at most 1.5 MB, each series embedded once, and
it opens offline in a real Chromium with every chart drawn (every request that is not the file itself is
recorded and refused). `report --out` into a missing folder creates it and says so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.run.vocab import use_config_file
from company_activity.web.report import PLOTLY_BASIC, share_arrays

CHROMIUM = "/usr/bin/chromium"
LIMIT = 1_500_000  # bytes


@pytest.fixture(autouse=True)
def _no_config_left_behind() -> Iterator[None]:
    """`--config FILE` is remembered process-wide for the commands the output suggests: forget it after."""
    yield
    use_config_file(None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`company-activity demo` as a new user runs it: 200 companies, the last 14 days."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "company_activity", "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPANY_ACTIVITY_")},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def report(demo: Path) -> Path:
    out = demo.parent / "reports" / "2026" / "report.html"
    result = CliRunner().invoke(
        main, ["--config", str(demo / "company-activity.toml"), "report", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"created the folder {out.parent} (it did not exist)" in result.output
    assert f"wrote {out} (" in result.output
    return out


def test_the_demo_report_is_at_most_1_5_mb(report: Path) -> None:
    size = report.stat().st_size
    assert size <= LIMIT, f"{size} bytes"
    page = report.read_text(encoding="utf-8")
    assert "plotly.js (basic - minified) v" in page  # the partial bundle, inlined …
    assert "* plotly.js v" not in page  # … not the full one
    assert page.count("<script>") == 3  # plotly.js, report.js, app.js: nothing else runs


def test_each_series_is_embedded_once(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    figures = {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(
            r'<script type="application/json" id="(fig-[a-z]+)-data">(.*?)</script>', page, re.S
        )
    }
    pool = json.loads(re.search(r'id="report-shared">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert len(figures) == 6 and pool
    days = _resolve(figures["fig-users"], pool)["data"][0]["x"]
    assert len(days) == 14 and days == sorted(days)
    as_json = json.dumps(days, separators=(",", ":"))
    embedded = "".join(re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S))
    assert all(embedded.count(json.dumps(d)) == 1 for d in days)  # each day once in all the data
    assert as_json in json.dumps(pool, separators=(",", ":"))
    for name in ("fig-users", "fig-companies", "fig-events"):
        assert figures[name]["data"][0]["x"] == {"$shared": pool.index(days)}, name


def _resolve(value: Any, pool: list[Any]) -> Any:
    if isinstance(value, list):
        return [_resolve(v, pool) for v in value]
    if isinstance(value, dict):
        if list(value) == ["$shared"]:
            return pool[value["$shared"]]
        return {k: _resolve(v, pool) for k, v in value.items()}
    return value


def test_shared_arrays_round_trip() -> None:
    days = [f"2026-11-{d:02d}" for d in range(1, 15)]
    shapes = [{"type": "rect", "x0": d, "x1": d} for d in days[:3]]
    figures = {
        "a": {"data": [{"x": days, "y": list(range(14))}], "layout": {"shapes": shapes}},
        "b": {"data": [{"x": days, "y": [1, 2]}], "layout": {"shapes": shapes}},
        "c": {"data": [{"x": ["Mon", "Tue"], "y": [1, 2]}]},  # short arrays stay where they are
    }
    shared, pool = share_arrays(figures)
    assert pool == [days, shapes]  # outermost only: the shapes' own parts are not pooled on their own
    assert shared["a"]["data"][0]["x"] == {"$shared": 0} and shared["b"]["layout"]["shapes"] == {"$shared": 1}
    assert shared["c"] == figures["c"] and shared["b"]["data"][0]["y"] == [1, 2]
    assert {k: _resolve(v, pool) for k, v in shared.items()} == figures
    assert share_arrays({"a": {"x": [1, 2]}}) == ({"a": {"x": [1, 2]}}, [])


def test_the_report_opens_offline_with_every_chart(report: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    outside: list[str] = []
    errors: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(offline=True)

            def route(r: Any) -> None:
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_function(
                "[...document.querySelectorAll('div.chart')].every(d => d.getAttribute('data-drawn'))",
                timeout=20000,
            )
            plots = page.locator(".js-plotly-plot").count()
            xs = page.evaluate("document.getElementById('fig-companies').data[0].x.length")
            points = page.locator("#fig-users .scatterlayer .trace:first-child .points path.point").count()
            bars = page.locator("#fig-weekday .barlayer .point").count()
            rows = page.locator("#churn-table tbody tr").count()
        finally:
            browser.close()
    assert plots == 6
    assert xs == 14 and points == 14  # the days, back from the pool, drawn one point each
    assert bars == 7
    assert rows > 0
    assert errors == []
    assert outside == []


def test_report_out_into_an_existing_folder_says_nothing_of_it(demo: Path, tmp_path: Path) -> None:
    config = str(demo / "company-activity.toml")
    result = CliRunner().invoke(main, ["--config", config, "report", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "created the folder" not in result.output
    (tmp_path / "a-file").write_text("x")
    bad = CliRunner().invoke(
        main, ["--config", config, "report", "--out", str(tmp_path / "a-file" / "r.html")]
    )
    assert bad.exit_code == 2
    assert "cannot write it" in bad.output and "Traceback" not in bad.output


def test_the_vendored_bundle_is_the_named_version() -> None:
    from company_activity.web.render import static_path

    name, package, version = PLOTLY_BASIC
    head = static_path(name).read_text(encoding="utf-8")[:200]
    assert f"plotly.js (basic - minified) v{version}" in head, (package, head)
    assert "MIT License" in static_path("plotly-basic.LICENSE.txt").read_text(encoding="utf-8")
