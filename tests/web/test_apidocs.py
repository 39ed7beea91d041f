"""/docs works offline: Swagger UI from the app's own packaged files, in Chromium
with every request outside the app refused."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from pipeline.web.app import create_app
from tests.web.console.conftest import browser, live_server  # noqa: F401 - the fixtures


def test_the_docs_page_loads_only_files_the_app_serves(sqlite_runtime):
    with TestClient(create_app(sqlite_runtime)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert client.get(source).status_code == 200, source
        assert "cdn" not in page.text.lower()
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "hotline"


def test_swagger_ui_renders_the_api_without_the_network(browser, live_server):  # noqa: F811
    context = browser.new_context(base_url=live_server.url)
    outside: list[str] = []

    def only_the_app(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_app)
    page = context.new_page()
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert page.locator(".swagger-ui .opblock").count() > 5
    assert outside == []
    context.close()
