"""The JSON API against its own OpenAPI document, with schemathesis: every operation, generated parameters
(valid and not), and each answer checked for status codes, content types and bodies the document allows,
and for never being a server error. Small and derandomized: the same few examples on every run."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings

from company_activity.config import Settings
from company_activity.web.app import create_app
from company_activity.web.server import BackgroundServer

from .web_site import Site, built_site

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return built_site(tmp_path_factory.mktemp("schema"))


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[BackgroundServer]:
    with BackgroundServer(site.settings) as srv:
        yield srv


# the document the app serves (it does not depend on the settings; test_the_document_is_served checks)
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: object, server: BackgroundServer) -> None:
    # a schema-valid request may still be a 400 (a date before 1970, an end before the start, a range of
    # more than ten years): those rules are not expressible in the document, so that one check is left out
    case.call_and_validate(  # type: ignore[attr-defined]
        base_url=server.url, excluded_checks=[schemathesis.checks.positive_data_acceptance]
    )


def test_the_document_is_served_and_lists_every_api_call(server: BackgroundServer) -> None:
    doc = httpx.get(f"{server.url}/api/openapi.json").json()
    assert doc == DOCUMENT
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/api/overview",
        "/api/calendar",
        "/api/churn",
        "/api/companies/{company_id}",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/days/{day}",
    }
    for item in doc["paths"].values():
        assert "422" not in item["get"]["responses"] and "400" in item["get"]["responses"]
