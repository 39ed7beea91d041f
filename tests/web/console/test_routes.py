"""The console's shell (pipeline.web.console.routes): the start redirect, the language
switch, where each role lands after logging in, no open redirect, logout, and HTML
error pages on console paths while the API keeps answering in JSON."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pipeline.web.app import create_app
from pipeline.web.console.render import LANGUAGE_COOKIE
from pipeline.web.console.routes import HOME, _safe_next
from tests.web.console.conftest import PASSWORD, add_person


def _client(runtime):
    return TestClient(create_app(runtime), follow_redirects=False,
                      headers={"Accept-Language": "en"})


def _log_in(client, name, next_path=""):
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return client.post("/console/login", data={"name": name, "password": PASSWORD,
                                                "csrf": csrf, "next": next_path})


@pytest.mark.parametrize(("value", "kept"), [
    ("/console/cases/C-1", "/console/cases/C-1"),
    ("/console/stats?start=2026-01-01", "/console/stats?start=2026-01-01"),
    ("//evil.example/", None),
    ("/console//evil.example/", None),
    ("/console/\\evil", None),
    ("https://evil.example/console/", None),
    ("/console/login?next=/console/", None),
    ("/api/v1/queue", None),
    (None, None),
    (42, None),
])
def test_only_console_paths_are_followed_after_logging_in(value, kept):
    assert _safe_next(value) == kept


def test_the_root_goes_to_the_console(sqlite_runtime):
    response = _client(sqlite_runtime).get("/")
    assert (response.status_code, response.headers["location"]) == (303, "/console/")


def test_the_language_switch_remembers_the_choice_and_goes_back_only_inside(sqlite_runtime):
    client = _client(sqlite_runtime)
    response = client.get("/console/language/en?next=/console/stats")
    assert (response.status_code, response.headers["location"]) == (303, "/console/stats")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{LANGUAGE_COOKIE}=en;") and "HttpOnly" in cookie
    assert "Max-Age=31536000" in cookie
    away = client.get("/console/language/sr-Latn?next=//evil.example/")
    assert away.headers["location"] == "/console/"
    unknown = client.get("/console/language/xx")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(
        "text/html")


@pytest.mark.parametrize("role", ["analyst", "admin", "auditor", "counsellor"])
def test_each_role_lands_on_its_own_start_page(sqlite_runtime, role):
    add_person(sqlite_runtime, "pat", role)
    with _client(sqlite_runtime) as client:
        response = _log_in(client, "pat")
        assert response.headers["location"] == HOME[role]
        again = client.get("/console/login")  # logged in already: sent on
        assert (again.status_code, again.headers["location"]) == (303, HOME[role])


def test_a_wanted_console_page_is_kept_through_the_login(sqlite_runtime):
    add_person(sqlite_runtime, "sue", "supervisor")
    with _client(sqlite_runtime) as client:
        assert _log_in(client, "sue", "/console/team").headers["location"] == "/console/team"


def test_logging_out_sends_to_the_login_page_and_the_pages_ask_for_it_again(sqlite_runtime):
    add_person(sqlite_runtime, "ana", "analyst")
    with _client(sqlite_runtime) as client:
        _log_in(client, "ana")
        page = client.get("/console/")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        out = client.post("/console/logout", data={"csrf": csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/console/login")
        after = client.get("/console/")
        assert after.status_code == 303
        assert after.headers["location"].startswith("/console/login?next=/console/")


def test_errors_are_pages_on_the_console_and_json_on_the_api(sqlite_runtime):
    add_person(sqlite_runtime, "ana", "analyst")
    with _client(sqlite_runtime) as client:
        _log_in(client, "ana")
        page = client.get("/console/no-such-page")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "There is no such page." in page.text
        api = client.get("/api/v1/no-such-route")
        assert api.status_code == 404
        assert api.headers["content-type"].startswith("application/json")
