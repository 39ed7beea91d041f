"""The API documentation in a real browser (Chromium): Swagger UI renders the API
from the app's own files with every request outside the app refused. The page's
assets are checked without a browser in tests/web/test_apidocs.py; this one lives
beside the console's other browser tests, which share the browser and the server."""

from __future__ import annotations


def test_swagger_ui_renders_the_api_without_the_network(browser, live_server):
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
