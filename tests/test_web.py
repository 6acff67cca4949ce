"""The web UI over HTTP: pages and API answer, values are escaped, bad input is a 400, unknown things a
404, secrets never show, the CSV is safe in a spreadsheet, the token guards everything when set, and the
warehouse is opened read-only. A real uvicorn server on a loopback port; a real built warehouse."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.web.queries import csv_cell
from company_activity.web.server import BackgroundServer

from .web_site import FIRST, HOSTILE, LAST, SECRET, TODAY, Site, built_site

#: the verdicts of a day that is built (its data is in the table)
BUILT_VERDICTS = {"ok", "warning", "last attempt failed"}
#: the calendar's former health words, as the verdict they stand for (until every entry has ``verdict``)
HEALTH_AS_VERDICT = {
    "built": "ok",
    "partial": "pending",
    "pending": "pending",
    "failed": "failed",
    "missing": "no data",
}


def expected_verdict(entry: dict[str, object]) -> str:
    return str(entry["verdict"]) if "verdict" in entry else HEALTH_AS_VERDICT[str(entry["health"])]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return built_site(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def http(site: Site) -> Iterator[httpx.Client]:
    with BackgroundServer(site.settings) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


def test_every_page_answers(http: httpx.Client, site: Site) -> None:
    for path in (
        "/",
        "/churn",
        f"/companies/{site.churn_ids[0]}",
        "/runs",
        f"/runs/{site.run_id}",
        f"/days/{LAST.isoformat()}",
        "/days",
        "/settings",
        "/static/plotly.min.js",
        "/static/app.js",
        "/api/openapi.json",
    ):
        r = http.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-security-policy"].startswith("default-src 'self'")


def test_overview_api_shows_days_not_built_as_gaps(http: httpx.Client, site: Site) -> None:
    end = LAST + timedelta(days=3)
    data = http.get("/api/overview", params={"start": FIRST.isoformat(), "end": end.isoformat()}).json()
    days = {d["day"]: d for d in data["days"]}
    assert len(days) == (end - FIRST).days + 1
    for day in site.built_days:
        assert days[day.isoformat()]["status"] in BUILT_VERDICTS | {"built"}  # built: the former word
        assert days[day.isoformat()]["active_users"] > 0
    for k in (1, 2, 3):
        later = days[(LAST + timedelta(days=k)).isoformat()]
        assert later["active_users"] is None and later["events"] is None  # a gap, not a zero
    # the first six days have no full 7-day window: no rolling average
    assert days[FIRST.isoformat()]["active_users_7d_avg"] is None
    assert days[(FIRST + timedelta(days=6)).isoformat()]["active_users_7d_avg"] is not None
    weeks = data["weeks"]
    assert weeks[-1]["partial"] is True and weeks[-1]["built_days"] < 7


def test_overview_filters_by_country(http: httpx.Client) -> None:
    everything = http.get("/api/overview").json()
    country = everything["countries"][0]
    one = http.get("/api/overview", params={"country": country}).json()
    total = sum(d["companies"] or 0 for d in everything["days"])
    part = sum(d["companies"] or 0 for d in one["days"])
    assert 0 < part < total


def test_hostile_names_are_escaped(http: httpx.Client, site: Site) -> None:
    for path in (f"/companies/{site.hostile_id}", f"/churn?date={LAST.isoformat()}"):
        page = http.get(path).text
        assert HOSTILE not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert http.get(f"/api/companies/{site.hostile_id}").json()["company_name"] == HOSTILE


def test_churn_list_and_csv(http: httpx.Client, site: Site) -> None:
    data = http.get(
        "/api/churn", params={"date": LAST.isoformat(), "sort": "company_id", "order": "asc"}
    ).json()
    assert [c["company_id"] for c in data["companies"]] == site.churn_ids
    default = http.get("/api/churn", params={"date": LAST.isoformat()}).json()  # most at risk first
    assert (default["sort"], default["order"]) == ("days_since_usage", "desc")
    assert sorted(c["company_id"] for c in default["companies"]) == site.churn_ids
    waits = [c["days_since_usage"] for c in default["companies"]]
    assert waits == [w for w in waits if w is None] + sorted(
        (w for w in waits if w is not None), reverse=True
    )
    assert data["total"] == len(site.churn_ids)
    assert all(len(c["trend"]) == data["trend_days"] for c in data["companies"])
    by_name = http.get("/api/churn", params={"date": LAST.isoformat(), "sort": "company_id", "order": "desc"})
    assert [c["company_id"] for c in by_name.json()["companies"]] == site.churn_ids[::-1]
    r = http.get("/churn.csv", params={"date": LAST.isoformat()})
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][0] == "company_id" and len(rows) == len(site.churn_ids) + 1
    for row in rows[1:]:
        assert not any(cell[:1] in ("=", "+", "-", "@") for cell in row), row


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+49 30", "'+49 30"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("Acme", "Acme"),
        (None, ""),
        (7, "7"),
    ],
)
def test_csv_cells_are_neutralised(value: object, shown: str) -> None:
    assert csv_cell(value) == shown


def test_company_page_has_timeline_spells_and_marts(http: httpx.Client, site: Site) -> None:
    data = http.get(f"/api/companies/{site.churn_ids[0]}").json()
    assert data["last_day"] == LAST.isoformat()
    assert data["churn_spells"] and data["churn_spells"][-1]["end"] == LAST.isoformat()
    assert data["weeks"] and data["months"]
    assert sum(w["days_covered"] for w in data["weeks"]) == len(data["days"])


def test_run_page_has_steps_and_rerun_command(http: httpx.Client, site: Site) -> None:
    data = http.get(f"/api/runs/{site.run_id}").json()
    assert data["status"] == "succeeded"
    assert {s["step"] for s in data["steps"]} == {"ingest_crm", "ingest_usage", "build"}
    assert data["rerun_command"].startswith("company-activity run")
    assert [r["run_id"] for r in http.get("/api/runs").json()] == [site.run_id]


def test_day_page_shows_sources_and_manifest(http: httpx.Client) -> None:
    data = http.get(f"/api/days/{LAST.isoformat()}").json()
    assert data["crm"]["status"] == "loaded"
    assert data["usage"]["status"] == "complete"
    assert data["build"]["status"] == "built"
    assert data["manifest"] is not None
    assert "pages" in http.get(f"/days/{LAST.isoformat()}").text


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/?start=yesterday", 400, "start='yesterday' is not a date"),
        ("/api/overview?start=2026-11-10&end=2026-11-01", 400, "is after end"),
        ("/api/overview?start=1900-01-01", 400, "outside"),
        ("/api/churn?sort=password", 400, "sort='password'"),
        ("/api/runs?limit=abc", 400, "limit"),
        ("/api/companies/NOPE", 404, "no company 'NOPE'"),
        ("/runs/NOPE", 404, "no run 'NOPE'"),
        ("/days/2001-01-01", 404, "nothing recorded for 2001-01-01"),
        ("/days/not-a-day", 400, "is not a date"),
        ("/no/such/page", 404, "no page"),
    ],
)
def test_bad_requests_say_why(http: httpx.Client, path: str, status: int, words: str) -> None:
    r = http.get(path)
    assert r.status_code == status, r.text[:300]
    assert words.replace("'", "&#39;") in r.text or words in r.text
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_settings_mask_secrets(http: httpx.Client) -> None:
    page = http.get("/settings").text
    assert "COMPANY_ACTIVITY_API_CLIENT_SECRET" in page
    assert SECRET not in page
    assert "•••••••• (set)" in page


def test_warehouse_is_opened_read_only(
    http: httpx.Client, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    real = duckdb.connect

    def spy(*args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        seen.append(kwargs.get("read_only"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", spy)
    assert http.get("/api/runs").status_code == 200
    assert seen == [True]


def test_a_token_guards_every_page_and_call(site: Site) -> None:
    settings = site.settings.model_copy(update={"ui_token": __import__("pydantic").SecretStr("s3cret-token")})
    with BackgroundServer(settings) as srv, httpx.Client(base_url=srv.url) as client:
        for path in ("/", "/api/runs", "/api/openapi.json", "/static/app.js", "/churn.csv"):
            assert client.get(path).status_code == 401, path
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        r = client.get("/runs?token=s3cret-token")
        assert r.status_code == 303 and r.headers["location"] == "/runs"
        assert "httponly" in r.headers["set-cookie"].lower()
        assert client.get("/runs").status_code == 200  # the cookie now
        assert "s3cret-token" not in client.get("/settings").text


def test_serve_refuses_a_public_address_without_token(site: Site, tmp_path: Path) -> None:
    env = {"COMPANY_ACTIVITY_WAREHOUSE": site.settings.warehouse}
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2
    assert "not a loopback address" in result.output and "COMPANY_ACTIVITY_UI_TOKEN" in result.output


def test_report_is_one_self_contained_file(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    env = {"COMPANY_ACTIVITY_WAREHOUSE": site.settings.warehouse, "COMPANY_ACTIVITY_LAKE": site.settings.lake}
    result = CliRunner().invoke(
        main, ["report", "--out", str(out), "--start", FIRST.isoformat(), "--end", LAST.isoformat()], env=env
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "plotly.js (basic - minified) v" in page  # inlined: the partial bundle
    markup = re.sub(
        r"<script>.*?</script>", "<script></script>", page, flags=re.S
    )  # outside the inlined code
    assert " src=" not in markup and 'href="http' not in markup and "<link" not in markup
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count('id="calendar"') == 1
    strip = dict(re.findall(r'data-day="([0-9-]+)" data-verdict="([a-z ]+)"', page))
    assert sorted(strip) == [d.isoformat() for d in site.built_days]
    assert {strip[d.isoformat()] for d in site.built_days} <= BUILT_VERDICTS
    bad = CliRunner().invoke(main, ["report", "--out", str(out), "--start", "soon"], env=env)
    assert bad.exit_code == 2 and "--start='soon' is not a date" in bad.output


def test_serve_command_serves_the_ui(site: Site, tmp_path: Path) -> None:
    """`make demo` then `company-activity serve`, with nothing configured, shows the demo's data."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = tmp_path / "data" / "demo"
    demo.mkdir(parents=True)
    shutil.copy(site.settings.warehouse, demo / "warehouse.duckdb")
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("COMPANY_ACTIVITY_WAREHOUSE", "COMPANY_ACTIVITY_LAKE")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "company_activity", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/runs", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert r.status_code == 200 and site.run_id in r.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"company-activity UI on http://127.0.0.1:{port}/" in out
    assert "showing the demo's" in out


# -- issue 23: one verdict per day, shown the same everywhere; labels in words -------------------------------
def _strip(page: str) -> dict[str, tuple[str, str]]:
    """The overview strip's cells: day -> (verdict attribute, title)."""
    cells = re.findall(r'data-day="([0-9-]+)" data-verdict="([a-z ]+)" title="([^"]*)"', page)
    return {day: (verdict, title) for day, verdict, title in cells}


def test_the_strip_shows_each_days_calendar_verdict(http: httpx.Client, site: Site) -> None:
    end = LAST + timedelta(days=3)
    params = {"start": FIRST.isoformat(), "end": end.isoformat()}
    calendar = http.get("/api/calendar", params=params).json()
    cells = _strip(http.get("/", params=params).text)
    assert sorted(cells) == [d["day"] for d in calendar]
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for d in calendar:
        verdict, title = cells[d["day"]]
        assert verdict == expected_verdict(d)
        weekday = weekdays[date.fromisoformat(d["day"]).weekday()]
        assert title.startswith(f"{d['day']} ({weekday}") and f": {verdict}" in title
    assert {cells[d.isoformat()][0] for d in site.built_days} <= BUILT_VERDICTS
    assert [cells[(LAST + timedelta(days=k)).isoformat()][0] for k in (1, 2, 3)] == ["no data"] * 3
    # today (the settings' today) is marked, and only it
    assert "today UTC)" in cells[TODAY.isoformat()][1]
    assert sum("today UTC" in t for _, t in cells.values()) == 1


def test_the_days_page_lists_every_day_with_the_calendars_verdict(http: httpx.Client, site: Site) -> None:
    end = LAST + timedelta(days=2)
    params = {"start": FIRST.isoformat(), "end": end.isoformat()}
    calendar = http.get("/api/calendar", params=params).json()
    page = http.get("/days", params=params).text
    rows = re.findall(r'<tr data-day="([0-9-]+)" data-verdict="([a-z ]+)">', page)
    assert rows == [(d["day"], expected_verdict(d)) for d in reversed(calendar)]  # newest first
    for d in calendar:
        linked = f'<a href="/days/{d["day"]}">{d["day"]}</a>' in page
        assert linked == (expected_verdict(d) != "no data"), d["day"]
    row = page[page.index(f'<tr data-day="{LAST.isoformat()}"') :]
    row = row[: row.index("</tr>")]
    last = next(d for d in calendar if d["day"] == LAST.isoformat())
    assert (
        f'<td class="num">{last["rows"]}</td>' in row and f'<td class="num">{last["churn_risk"]}</td>' in row
    )
    assert "Rows built" in page and "Churn-risk companies" in page
    assert '<a href="/days">Days</a>' in page  # in the nav
    assert http.get("/days", params={"start": "soon"}).status_code == 400


def test_fields_are_labelled_in_words_not_column_names(http: httpx.Client, site: Site) -> None:
    page = http.get(f"/days/{LAST.isoformat()}").text
    for words in ("Records loaded", "API pages", "Churn-risk companies", "Built at (UTC)", "Rows built"):
        assert f">{words}<" in page, words
    keys = {
        k
        for part in ("crm", "usage", "build")
        for k in http.get(f"/api/days/{LAST.isoformat()}").json()[part]
    }
    assert "records" in keys or "record_count" in keys  # what the day's API calls the fields
    for column in keys | {"rows_loaded", "raw_run_id", "last_error", "churn_risk_count"}:
        assert f">{column}<" not in page, column  # … the page says in words
    company = http.get(f"/companies/{site.churn_ids[0]}").text
    assert "<td>last_contact_at</td>" not in company


def _idle_companies(site: Site) -> list[str]:
    """Companies with a row every day and no usage on any (the simulator's world has a few)."""
    with duckdb.connect(site.settings.warehouse, read_only=True) as con:
        rows = con.execute(
            "select company_id from analytics.company_daily_activity group by 1 "
            "having max(coalesce(active_users, 0)) = 0 and max(coalesce(events, 0)) = 0 order by 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_a_company_without_usage_says_so(http: httpx.Client, site: Site) -> None:
    idle = _idle_companies(site)
    assert idle, "the test world has no company without usage"
    page = http.get(f"/companies/{idle[0]}").text
    assert f"No usage recorded from {FIRST.isoformat()} to {LAST.isoformat()}" in page
    assert 'id="fig-company"' not in page
    busy = http.get(f"/companies/{site.churn_ids[-1]}").text
    if site.churn_ids[-1] not in idle:
        assert 'id="fig-company"' in busy and "No usage recorded" not in busy
