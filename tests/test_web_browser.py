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

from company_activity.state.verdict import LOOK, ORDER, Verdict
from company_activity.web.report import write_report
from company_activity.web.server import BackgroundServer

from .web_site import FIRST, HOSTILE, LAST, TODAY, Site, built_site

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
        "/days",
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
    built = watched.page.locator("#calendar [data-day]").evaluate_all(
        "cs => cs.filter(c => ['ok', 'warning', 'last attempt failed'].includes(c.dataset.verdict)).length"
    )
    assert built == len(site.built_days)
    assert watched.page.locator('#calendar [data-verdict="no data"]').count() == 4
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
    watched.page.wait_for_function(  # its chart, or the words that it has no usage to chart
        "(f => f ? f.getAttribute('data-drawn') : document.getElementById('no-usage'))"
        "(document.getElementById('fig-company'))"
    )
    assert first in watched.page.inner_text("dl.facts")
    assert watched.errors == []
    # sorting: a click on the header sorts descending
    watched.open(f"{server.url}/churn?date={LAST.isoformat()}&sort=company_id&order=asc")
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
        cells = w.page.locator("#calendar [data-day]")
        assert cells.count() == (LAST - FIRST).days + 1
        for title, verdict in cells.evaluate_all("cs => cs.map(c => [c.title, c.dataset.verdict])"):
            assert f": {verdict}" in title
        assert w.page.locator("#churn-table tbody tr").count() == len(site.churn_ids)
        assert HOSTILE in w.page.locator("#churn-table td.name").all_inner_texts()
        assert w.errors == [] and w.dialogs == []
        assert w.outside == []
    finally:
        w.close()


# -- issue 23: the health strip, its legend, the /days index, a company without usage, the modebar -----------
def _rgb(css: str) -> str:
    return f"rgb({int(css[1:3], 16)}, {int(css[3:5], 16)}, {int(css[5:7], 16)})"


def _expected(entry: dict[str, Any]) -> Verdict:
    old: dict[str, Verdict] = {
        "built": "ok",
        "partial": "pending",
        "pending": "pending",
        "failed": "failed",
        "missing": "no data",
    }
    verdict: Verdict = entry["verdict"] if "verdict" in entry else old[str(entry["health"])]
    return verdict


def test_the_strip_shows_each_days_verdict(watched: Watched, server: BackgroundServer) -> None:
    end = LAST + timedelta(days=4)
    query = f"start={FIRST.isoformat()}&end={end.isoformat()}"
    calendar = watched.page.request.get(f"{server.url}/api/calendar?{query}").json()
    watched.open(f"{server.url}/?{query}")
    cells = watched.page.locator("#calendar [data-day]").evaluate_all(
        "cs => cs.map(c => [c.dataset.day, c.title, getComputedStyle(c).backgroundColor, c.innerText])"
    )
    cells.sort()  # the DOM has them row by row (Mondays first)
    assert [c[0] for c in cells] == [d["day"] for d in calendar]  # one element per day
    for (day, title, colour, text), entry in zip(cells, calendar, strict=True):
        verdict = _expected(entry)
        assert title.startswith(f"{day} (") and f": {verdict}" in title
        if entry.get("verdict_note"):
            assert title.endswith(" — " + entry["verdict_note"])
        assert colour == _rgb(LOOK[verdict].css)  # the strip's colour is the verdict's
        assert LOOK[verdict].glyph in text  # … and its glyph, for a reader without colour
    weekdays = watched.page.locator("#calendar th.weekday").all_inner_texts()
    assert weekdays == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    months = watched.page.locator("#calendar th.month").all_inner_texts()
    assert [" ".join(m.split()) for m in months] == ["Nov 2026"]
    today = watched.page.locator("#calendar .day.today")
    assert today.count() == 1 and today.get_attribute("data-day") == TODAY.isoformat()
    assert today.get_attribute("aria-current") == "date"
    assert "today" in (today.get_attribute("title") or "")
    # a day's element opens its page
    watched.page.locator(f'#calendar a[data-day="{LAST.isoformat()}"]').click()
    watched.page.wait_for_url(f"**/days/{LAST.isoformat()}")
    assert watched.errors == []


def test_the_legend_lists_the_seven_states(watched: Watched, server: BackgroundServer) -> None:
    watched.open(server.url + "/")
    items = watched.page.locator("#strip-legend li[data-state]")
    states = items.evaluate_all("ls => ls.map(l => l.dataset.state)")
    assert states[:7] == list(ORDER) and len(ORDER) == 7
    assert {"warning", "last attempt failed"} <= set(states)
    for v in ORDER:
        item = watched.page.locator(f'#strip-legend li[data-state="{v}"]')
        text = item.inner_text()
        assert LOOK[v].glyph in text and v in text and LOOK[v].meaning in text
        swatch = item.locator(".swatch").evaluate("s => getComputedStyle(s).backgroundColor")
        assert swatch == _rgb(LOOK[v].css)


def test_the_days_page_lists_the_strips_verdicts(watched: Watched, server: BackgroundServer) -> None:
    query = f"start={FIRST.isoformat()}&end={(LAST + timedelta(days=2)).isoformat()}"
    watched.open(f"{server.url}/?{query}")
    strip: dict[str, Verdict] = dict(
        watched.page.locator("#calendar [data-day]").evaluate_all(
            "cs => cs.map(c => [c.dataset.day, c.dataset.verdict])"
        )
    )
    watched.page.get_by_role("link", name="every day, with its counts").click()
    watched.page.wait_for_url("**/days?*")
    rows = watched.page.locator("#days-table tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.day, r.querySelector('.verdict').innerText.trim()])"
    )
    assert [day for day, _ in rows] == sorted(strip, reverse=True)
    for day, shown in rows:
        assert shown == f"{LOOK[strip[day]].glyph} {strip[day]}"  # the glyph and the word
    assert watched.page.locator("header nav a", has_text="Days").get_attribute("href") == "/days"
    watched.page.get_by_role("link", name=LAST.isoformat(), exact=True).click()
    watched.page.wait_for_url(f"**/days/{LAST.isoformat()}")
    assert watched.errors == []


def _idle_company(site: Site) -> str:
    import duckdb

    with duckdb.connect(site.settings.warehouse, read_only=True) as con:
        row = con.execute(
            "select company_id from analytics.company_daily_activity group by 1 "
            "having max(coalesce(active_users, 0)) = 0 and max(coalesce(events, 0)) = 0 order by 1 limit 1"
        ).fetchone()
    assert row is not None, "the test world has no company without usage"
    return str(row[0])


def test_a_company_without_usage_says_so(watched: Watched, server: BackgroundServer, site: Site) -> None:
    watched.open(f"{server.url}/companies/{_idle_company(site)}")
    message = watched.page.locator("#no-usage")
    assert message.is_visible()
    assert message.inner_text().startswith(
        f"No usage recorded from {FIRST.isoformat()} to {LAST.isoformat()}"
    )
    assert watched.page.locator("div.chart").count() == 0  # no empty chart on a 0 … 1 axis
    assert watched.errors == []


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


@pytest.mark.parametrize("width", [1280, 900])
def test_the_modebar_never_covers_a_title(
    watched: Watched, server: BackgroundServer, site: Site, width: int
) -> None:
    watched.page.set_viewport_size({"width": width, "height": 900})
    checked = 0
    for path in ("/", f"/companies/{site.churn_ids[-1]}", f"/runs/{site.run_id}"):
        watched.open(server.url + path)
        for chart in watched.page.locator("div.chart").all():
            chart.scroll_into_view_if_needed()
            chart.hover()  # the modebar shows on hover
            modebar = chart.locator(".modebar")
            modebar.wait_for(state="visible")
            bar = modebar.bounding_box()
            title = chart.locator(".gtitle").bounding_box()
            assert bar is not None and title is not None
            assert not _overlap(bar, title), (path, chart.get_attribute("id"), bar, title)
            legend = chart.locator(".infolayer > .legend")  # not the hover label's
            if legend.count():
                box = legend.bounding_box()
                assert box is not None and not _overlap(bar, box) and not _overlap(title, box)
            checked += 1
    assert checked == 6 + 1 + 1
