"""/docs works offline: Swagger UI from the app's own packaged files, no CDN (in a
browser with every request outside the app refused: console/test_apidocs_browser.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from pipeline.web.app import create_app


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
