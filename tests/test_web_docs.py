"""`/api/docs`: Swagger UI from the installed package, under the app's strict CSP, in a real Chromium.

The page (reached from the nav) renders every operation of the OpenAPI document with no console error,
and the browser asks nothing of any address but the app's on 127.0.0.1 (every other request is recorded
and refused), so no CDN is involved.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from company_activity.config import Settings, load_settings
from company_activity.warehouse.duckdb import DuckDBWarehouse
from company_activity.web.server import BackgroundServer

CHROMIUM = "/usr/bin/chromium"

playwright_api = pytest.importorskip("playwright.sync_api")

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("docs")
    with DuckDBWarehouse(str(folder / "warehouse.duckdb")) as wh:
        wh.init_schema()
    return load_settings(warehouse=str(folder / "warehouse.duckdb"), lake=str(folder / "lake"))


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(settings) as srv:
        yield srv


def test_the_docs_page_is_served_with_the_csp(server: BackgroundServer) -> None:
    r = httpx.get(server.url + "/api/docs")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text  # no inline script: the set-up is /static/api-docs.js
    assert "//" not in r.text.replace("<!DOCTYPE", "").split("<body>")[0].replace("/static/", "")
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css", "/static/api-docs.js"):
        assert asset in r.text
        served = httpx.get(server.url + asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert httpx.get(server.url + "/static/swagger-ui-bundle.js").text.count("SwaggerUIBundle") > 0


def test_swagger_ui_renders_every_operation_offline(server: BackgroundServer) -> None:
    paths = sorted(httpx.get(server.url + "/api/openapi.json").json()["paths"])
    assert "/api/calendar" in paths and len(paths) >= 7
    outside: list[str] = []
    errors: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def route(r: Any) -> None:
                if r.request.url.startswith(server.url + "/"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(server.url + "/settings")
            page.get_by_role("link", name="API docs").click()  # the nav's link
            page.wait_for_url("**/api/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20000)
            shown = sorted(
                {t.replace("\u200b", "") for t in page.locator(".opblock-summary-path").all_inner_texts()}
            )
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert shown == paths  # every operation of the document, by its path
    assert "/api/calendar" in shown
    assert title.startswith("company-activity")
    assert errors == []
    assert outside == []
