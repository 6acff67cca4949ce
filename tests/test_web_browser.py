"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Each page loads without console errors, the charts draw the right number of points, the churn list's link
opens the company page, a hostile company name shows as text (no script runs), and the browser asks
nothing of any address but the app's (every other request is intercepted, recorded and refused). The
one-file report opens from disk and asks nothing of anyone either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from company_activity.web.report import write_report
from company_activity.web.server import BackgroundServer

from .web_site import FIRST, HOSTILE, LAST, Site, built_site

CHROMIUM = "/usr/bin/chromium"

playwright_api = pytest.importorskip("playwright.sync_api")

if not os.path.exists(CHROMIUM):  # .ci/run installs it; a developer without it gets a clear skip
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return built_site(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[BackgroundServer]:
    with BackgroundServer(site.settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Watched:
    """A page whose console errors, page errors, dialogs and outside requests are recorded."""

    def __init__(self, browser: Any, origin: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

        def route(r: Any) -> None:
            url = r.request.url
            if (origin and url.startswith(origin + "/")) or (url.startswith("file://") and not origin):
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        self.context.route("**/*", route)

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function(
            "[...document.querySelectorAll('div.chart')].every(d => d.getAttribute('data-drawn'))",
            timeout=20000,
        )
        return response

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any, server: BackgroundServer) -> Iterator[Watched]:
    w = Watched(browser, server.url)
    yield w
    w.close()
    assert w.outside == [], "the browser asked for something outside the app"
    assert w.dialogs == [], "a script ran"


def test_every_page_loads_without_console_errors(
    watched: Watched, server: BackgroundServer, site: Site
) -> None:
    for path in (
        "/",
        f"/?start={FIRST.isoformat()}&end={LAST.isoformat()}&country=DE",
        "/churn",
        f"/companies/{site.churn_ids[0]}",
        "/runs",
        f"/runs/{site.run_id}",
        f"/days/{LAST.isoformat()}",
        "/settings",
    ):
        response = watched.open(server.url + path)
        assert response.status == 200, path
        assert watched.errors == [], (path, watched.errors)
        assert watched.page.title().endswith("company-activity")


def test_charts_draw_one_point_per_built_day(watched: Watched, server: BackgroundServer, site: Site) -> None:
    end = LAST + timedelta(days=4)  # four days that are not built: gaps, not points
    watched.open(f"{server.url}/?start={FIRST.isoformat()}&end={end.isoformat()}")
    days = (end - FIRST).days + 1
    for chart in ("fig-users", "fig-companies"):
        xs = watched.page.evaluate(f"document.getElementById('{chart}').data[0].x.length")
        assert xs == days
        drawn = watched.page.locator(f"#{chart} .scatterlayer .trace:first-child .points path.point").count()
        assert drawn == len(site.built_days)
    bars = watched.page.locator("#fig-weekday .barlayer .point").count()
    assert bars == 7  # Monday … Sunday
    assert watched.page.locator("#calendar .day.built").count() == len(site.built_days)
    assert watched.page.locator("#calendar .day.missing").count() == 4
    # hover says the value and the unit
    title = watched.page.evaluate("document.getElementById('fig-users').layout.yaxis.title.text")
    assert title == "active users (users/day)"


def test_run_timeline_draws_every_step(watched: Watched, server: BackgroundServer, site: Site) -> None:
    watched.open(f"{server.url}/runs/{site.run_id}")
    bars = watched.page.evaluate(
        "document.getElementById('fig-run').data.reduce((n, t) => n + t.x.length, 0)"
    )
    assert bars == watched.page.locator("#steps-table tbody tr").count() == 3 * len(site.built_days)
    assert watched.page.locator("#fig-run .barlayer .point").count() == bars
    assert watched.page.inner_text("#rerun-command").startswith("company-activity run")


def test_a_click_in_the_churn_list_opens_the_company(
    watched: Watched, server: BackgroundServer, site: Site
) -> None:
    watched.open(f"{server.url}/churn?date={LAST.isoformat()}")
    rows = watched.page.locator("#churn-table tbody tr")
    assert rows.count() == len(site.churn_ids)
    first = site.churn_ids[0]
    watched.page.get_by_role("link", name=first, exact=True).click()
    watched.page.wait_for_url(f"**/companies/{first}")
    watched.page.wait_for_function("document.getElementById('fig-company').getAttribute('data-drawn')")
    assert first in watched.page.inner_text("dl.facts")
    assert watched.errors == []
    # sorting: a click on the header sorts descending
    watched.open(f"{server.url}/churn?date={LAST.isoformat()}")
    watched.page.get_by_role("link", name="Company id ▲").click()
    watched.page.wait_for_load_state("networkidle")
    ids = watched.page.locator("#churn-table tbody tr td:first-child").all_inner_texts()
    assert ids == site.churn_ids[::-1]


def test_a_hostile_company_name_is_text(watched: Watched, server: BackgroundServer, site: Site) -> None:
    watched.open(f"{server.url}/companies/{site.hostile_id}")
    assert watched.page.inner_text("#company-name") == HOSTILE
    watched.open(f"{server.url}/churn?date={LAST.isoformat()}")
    assert HOSTILE in watched.page.locator("#churn-table td.name").all_inner_texts()
    assert watched.errors == []


def test_the_report_opens_offline(browser: Any, site: Site, tmp_path: Path) -> None:
    path = write_report(site.settings, tmp_path / "report.html", start=FIRST, end=LAST)
    w = Watched(browser, "")
    try:
        w.open(path.as_uri())
        assert w.page.locator("div.chart[data-drawn]").count() == 6
        assert w.page.locator("#churn-table tbody tr").count() == len(site.churn_ids)
        assert HOSTILE in w.page.locator("#churn-table td.name").all_inner_texts()
        assert w.errors == [] and w.dialogs == []
        assert w.outside == []
    finally:
        w.close()
