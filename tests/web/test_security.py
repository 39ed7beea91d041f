"""Console security (pipeline.web.security) without a browser: sessions, cookies, CSRF, CSP,
roles, rate limits."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.store.console_models import ConsoleSession
from pipeline.store.models import Event
from pipeline.web.app import create_app
from tests.web.console.conftest import PASSWORD, add_person


def _client(runtime, base_url="http://testserver"):
    return TestClient(create_app(runtime), base_url=base_url, follow_redirects=False,
                      headers={"Accept-Language": "en"})  # the English texts


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _log_in(client, name, password=PASSWORD):
    form = client.get("/console/login")
    return client.post("/console/login", data={
        "name": name, "password": password, "csrf": _csrf(form.text)})


@pytest.fixture(params=["sqlite_runtime", "pg_runtime"])
def runtime(request):
    """Both databases: sessions and login attempts are compared by time in SQL."""
    runtime = request.getfixturevalue(request.param)
    add_person(runtime, "ana", "analyst")
    add_person(runtime, "root", "admin")
    return runtime


def test_a_page_without_a_session_sends_the_browser_to_the_login_page(runtime):
    with _client(runtime) as client:
        response = client.get("/console/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/admin"


def test_the_session_cookie_is_httponly_and_samesite_and_not_secure_over_plain_http(runtime):
    with _client(runtime) as client:
        response = _log_in(client, "root")
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    assert "hotline_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie


def test_the_session_cookie_is_secure_when_the_console_is_served_over_tls(runtime):
    with _client(runtime, base_url="https://testserver") as client:
        response = _log_in(client, "root")
    assert response.status_code == 303, response.text
    assert "Secure" in response.headers["set-cookie"]


def test_the_session_token_is_stored_only_as_a_hash(runtime):
    with _client(runtime) as client:
        response = _log_in(client, "root")
    token = response.cookies["hotline_session"]
    with runtime.session_factory() as session:
        ids = list(session.execute(select(ConsoleSession.id)).scalars())
    assert len(ids) == 1 and ids[0] != token and len(ids[0]) == 64


def test_console_pages_carry_a_content_security_policy_without_inline_scripts(runtime):
    with _client(runtime) as client:
        response = client.get("/console/login")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in response.text and "http" not in re.sub(
        r'(action|href|src)="/[^"]*"', "", response.text).replace("http-equiv", "")


def test_a_form_posted_without_the_sessions_csrf_token_is_refused(runtime):
    with _client(runtime) as client:
        _log_in(client, "root")
        refused = client.post("/console/admin/users", data={"name": "eve", "role": "admin"})
        wrong = client.post("/console/admin/users",
                            data={"name": "eve", "role": "admin", "csrf": "x" * 43})
        page = client.get("/console/admin")
        accepted = client.post("/console/admin/users", data={
            "name": "zoe", "role": "analyst", "csrf": _csrf(page.text)})
    assert refused.status_code == 400 and wrong.status_code == 400
    assert accepted.status_code == 200 and "One-time password" in accepted.text
    with runtime.session_factory() as session:
        from pipeline.store.models import User

        names = set(session.execute(select(User.name)).scalars())
    assert "eve" not in names and "zoe" in names


def test_the_login_form_without_its_double_submitted_token_is_refused(runtime):
    with _client(runtime) as client:
        client.get("/console/login")
        response = client.post("/console/login", data={
            "name": "root", "password": PASSWORD, "csrf": "forged-token-" + "x" * 30})
    assert response.status_code == 400
    assert "hotline_session" not in response.headers.get("set-cookie", "")


def test_an_analyst_is_shown_a_denied_page_for_the_admin_page_and_it_is_audited(runtime):
    with _client(runtime) as client:
        _log_in(client, "ana")
        response = client.get("/console/admin")
    assert response.status_code == 403
    assert "Not allowed" in response.text
    assert "for administrator only; you are signed in as analyst." in response.text
    with runtime.session_factory() as session:
        events = list(session.execute(
            select(Event).where(Event.stream == "user:ana", Event.action == "access_denied")
        ).scalars())
    assert len(events) == 1 and events[0].data["page"] == "/console/admin"


def test_login_attempts_are_refused_after_too_many_failures_even_with_the_right_password(
        runtime):
    limit = runtime.settings.console.login_max_failures
    with _client(runtime) as client:
        for _ in range(limit):
            assert _log_in(client, "ana", "wrong password").status_code == 401
        response = _log_in(client, "ana")
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text


def test_failed_logins_stop_counting_once_the_window_has_passed(runtime):
    limit = runtime.settings.console.login_max_failures
    with _client(runtime) as client:
        for _ in range(limit):
            _log_in(client, "ana", "wrong password")
        runtime.clock.advance(seconds=runtime.settings.console.login_window_seconds + 1)
        response = _log_in(client, "ana")
    assert response.status_code == 303


def test_logging_out_ends_the_session_on_the_server(runtime):
    with _client(runtime) as client:
        _log_in(client, "root")
        token = client.cookies.get("hotline_session")
        page = client.get("/console/admin")
        client.post("/console/logout", data={"csrf": _csrf(page.text)})
        client.cookies.set("hotline_session", token)
        response = client.get("/console/admin")
    assert response.status_code == 303 and "/console/login" in response.headers["location"]


def test_an_idle_session_expires(runtime):
    with _client(runtime) as client:
        _log_in(client, "root")
        assert client.get("/console/admin").status_code == 200
        runtime.clock.advance(minutes=runtime.settings.console.session_idle_minutes + 1)
        response = client.get("/console/admin")
    assert response.status_code == 303


def test_a_one_time_password_must_be_changed_before_any_page(runtime):
    add_person(runtime, "newbie", "admin", password="one-time-pw", must_change=True)
    with _client(runtime) as client:
        _log_in(client, "newbie", "one-time-pw")
        assert client.get("/console/admin").headers["location"] == "/console/password"
        form = client.get("/console/password")
        short = client.post("/console/password", data={
            "csrf": _csrf(form.text), "current": "one-time-pw", "new": "short",
            "again": "short"})
        changed = client.post("/console/password", data={
            "csrf": _csrf(form.text), "current": "one-time-pw",
            "new": "a much longer secret", "again": "a much longer secret"})
        after = client.get("/console/admin")
    assert short.status_code == 422 and changed.status_code == 303
    assert after.status_code == 200


def test_the_login_page_never_redirects_off_the_console(runtime):
    with _client(runtime) as client:
        form = client.get("/console/login?next=//evil.example/")
        response = client.post("/console/login", data={
            "name": "root", "password": PASSWORD, "csrf": _csrf(form.text),
            "next": "//evil.example/"})
    assert response.headers["location"] == "/console/admin"
