"""No input reaches a 5xx: the rules of `schemas.guards` at every door (intake,
partner intake, `hotline submit`, `hotline import`), the body limit while reading,
JSON only on the JSON API, unhandled errors logged as JSON with the request id and
without the body; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pipeline.app import users
from pipeline.core.config import LoggingSection
from pipeline.core.logs import make_handler
from pipeline.store.models import Report
from pipeline.web.app import create_app
from pipeline.web.guard import RequestGuard

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def partner(runtime) -> dict[str, str]:
    with runtime.session_factory.begin() as session:
        token, _ = users.add_token(session, scope="partner", label="Stopline AT",
                                   at=runtime.clock.now())
    return {"Authorization": f"Bearer {token}"}


def _reports(runtime) -> int:
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(Report)).scalar_one()


def _exchange(**report: Any) -> dict[str, Any]:
    return {"format": "hotline-exchange", "version": 1,
            "sender": {"name": "Stopline", "country": "AT"}, "sent_at": "2026-01-05T08:00:00Z",
            "reports": [{"reference": "AT-1", "url": "http://example.at/p",
                         "received_at": "2026-01-05T07:00:00Z", **report}]}


HOSTILE = [
    # (body, status, words the answer must hold)
    (b'{"url": "http://a.example/\\u0000x"}', 422, ["url", "NUL"]),
    (b'{"url": "http://a.example/", "description": "a\\u0000b"}', 422, ["description", "NUL"]),
    (b'{"url": "http://a.example/", "reporter_contact": "\\ud800"}', 422,
     ["reporter_contact", "unicode"]),
    (b'{"url": "http://a.example/", "received_at": "9999-12-31T23:59:59-12:00"}', 422,
     ["received_at", "out of range"]),
    (b'{"url": "http://a.example/", "received_at": "0001-01-01T00:00:00+01:00"}', 422,
     ["received_at", "out of range"]),
    (b"[" * 100_000, 400, ["nests deeper"]),
    (b'{"reports": ' + b"[" * 40 + b"]" * 40 + b"}", 400, ["nests deeper"]),
    (b'{"url": "http://a.example/\xff\xfe"}', 400, ["UTF-8"]),
    (b'{"url": NaN}', 400, ["NaN"]),
]


@pytest.mark.parametrize(("body", "status", "words"), HOSTILE)
def test_hostile_bodies_get_a_4xx_naming_the_field_and_the_reason(
        client, runtime, body, status, words):
    response = client.post("/api/v1/reports", content=body, headers=JSON)
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]
    assert _reports(runtime) == 0


@pytest.mark.parametrize(("report", "words"), [
    ({"notes": "x\u0000y"}, ["reports.0.notes", "NUL"]),
    ({"url": "http://a.example/\u0000"}, ["reports.0.url", "NUL"]),
    ({"received_at": "9999-12-31T23:59:59-12:00"}, ["reports.0.received_at", "out of range"]),
    ({"hosting": {"asn": 2**70}}, ["reports.0.hosting.asn", "64 bits"]),
])
def test_partner_intake_meets_the_same_rules(client, runtime, partner, report, words):
    response = client.post("/api/v1/partner/reports", json=_exchange(**report),
                           headers=partner)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.text
    assert _reports(runtime) == 0


def test_deep_or_broken_partner_bodies_are_400(client, partner):
    for body in (b"[" * 100_000, b'{"format": "\xff"}'):
        response = client.post("/api/v1/partner/reports", content=body,
                               headers={**partner, **JSON})
        assert response.status_code == 400, response.text


def test_the_json_api_takes_only_json_bodies(client, runtime, partner):
    body = json.dumps({"url": "http://a.example/"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x"):
        response = client.post("/api/v1/reports", content=body,
                               headers={"content-type": content_type})
        assert response.status_code == 415, content_type
        assert "application/json" in response.json()["error"]
    assert client.post("/api/v1/partner/reports", content=json.dumps(_exchange()),
                       headers={**partner, "content-type": "text/plain"}).status_code == 415
    assert _reports(runtime) == 0
    assert client.post("/api/v1/reports", content=body,
                       headers={"content-type": "application/json; charset=utf-8"}
                       ).status_code == 201


def test_a_nul_in_the_address_is_refused(client):
    assert client.get("/api/v1/reports/R-%00").status_code == 400
    assert client.get("/api/v1/queue?state=%00").status_code == 400


def test_a_chunked_body_over_the_limit_is_refused(settings_factory):
    from pipeline.app.runtime import build_runtime
    from pipeline.store.migrate import upgrade

    settings = settings_factory(web={"max_body_bytes": 2048})
    upgrade(settings.database.url)
    runtime = build_runtime(settings)

    def chunks():
        yield b'{"url": "http://e.com/'
        for _ in range(10):
            yield b"a" * 1024
        yield b'"}'

    with TestClient(create_app(runtime)) as client:
        response = client.post("/api/v1/reports", content=chunks(), headers=JSON)
        assert response.status_code == 413
        assert "larger than 2048 bytes" in response.json()["error"]
        assert _reports(runtime) == 0
    runtime.close()


def test_the_limit_holds_while_reading_never_more_than_it_is_taken_in():
    """The guard itself, fed an endless chunked body: it stops taking chunks once the
    limit is passed, and answers 413 (nothing read whole first)."""
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1000
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def app(scope, receive_, send):
        body = b""
        while True:  # a route reading its whole body
            message = await receive_()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break

    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/reports", "query_string": b"",
             "headers": [(b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")]}
    # A thread of its own: another test's event loop may still run in this one.
    runner = threading.Thread(target=asyncio.run, args=(
        RequestGuard(app, max_bytes=5_000)(scope, receive, send),))
    runner.start()
    runner.join()
    assert sent[0]["status"] == 413
    assert taken <= 6_000


def test_an_unhandled_error_is_logged_as_json_with_the_request_id_and_never_the_body(
        runtime):
    app = create_app(runtime)

    async def failing(request: Request) -> None:
        body = await request.body()
        raise RuntimeError(f"could not store {body.decode()}")

    app.add_api_route("/api/v1/boom", failing, methods=["POST"])
    stream = io.StringIO()
    handler = make_handler(LoggingSection(format="json"), stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.post("/api/v1/boom", json={"secret": "s3cr3t-body"},
                                   headers={"X-Request-ID": "req-42"})
    finally:
        root.removeHandler(handler)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "request_id": "req-42"}
    assert response.headers["x-request-id"] == "req-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [entry] = [e for e in lines if e.get("request_id") == "req-42" and e["level"] == "ERROR"]
    assert "RuntimeError" in entry["message"] and "/api/v1/boom" in entry["message"]
    assert "s3cr3t-body" not in stream.getvalue()


def test_hotline_submit_and_import_meet_the_same_rules(runtime, tmp_path, monkeypatch):
    from pipeline.cli import main

    monkeypatch.setenv("HOTLINE_DATABASE__URL", runtime.settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", str(tmp_path / "var"))
    cli = CliRunner()
    refused = cli.invoke(main, ["submit", "http://a.example/\x00x"])
    assert refused.exit_code != 0 and "url" in refused.output.lower() and "NUL" in refused.output
    lines = tmp_path / "in.jsonl"
    lines.write_bytes(b'{"url": "http://ok.example/1"}\n'
                      b'{"url": "http://a.example/\\u0000"}\n'
                      b'{"url": "http://a.example/\xff"}\n'
                      + b"[" * 50_000 + b"\n"
                      b'{"url": "http://a.example/", "received_at": "9999-12-31T23:59:59-12:00"}\n'
                      b'{"url": "http://ok.example/2"}\n')
    result = cli.invoke(main, ["import", str(lines)])
    assert result.exit_code == 1, result.output
    for number, words in ((2, "NUL"), (3, "UTF-8"), (4, "nests deeper"), (5, "out of range")):
        assert f"{lines}:{number}:" in result.output and words in result.output, result.output
    assert "Imported 2 reports" in result.output
    assert _reports(runtime) == 2


# -- property: arbitrary JSON and bytes never reach a 5xx ---------------------------

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["\x00", "\ud800", "http://a.example/x", "9999-12-31T23:59:59-12:00",
     "0001-01-01T00:00:00+01:00", "2026-01-05T07:00:00Z", "csam", "web", "sr-Latn"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)
_report = st.fixed_dictionaries({"url": _text}, optional={
    "description": _text, "reporter_contact": _text, "received_at": _text,
    "claimed_category": _text, "language": _text, "urgent": _json, "channel": _text})
_exchange_report = st.fixed_dictionaries(
    {"reference": _text, "url": _text, "received_at": _text},
    optional={"notes": _text, "category": _text, "hosting": _json, "urgent": _json})
_bodies = (_json.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)
           | _report.map(lambda v: json.dumps(v).encode())
           | st.lists(_report, min_size=1, max_size=3).map(
               lambda v: json.dumps({"reports": v}).encode()))
_partner_bodies = (_json.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)
                   | st.lists(_exchange_report, min_size=1, max_size=3).map(
                       lambda v: json.dumps({**_exchange(), "reports": v}).encode()))
PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _readable(client, response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        for accepted in response.json()["reports"]:
            ref = accepted.get("our_reference") or accepted["reference"]
            assert client.get(f"/api/v1/reports/{ref}").status_code == 200


@PROPERTY
@given(body=_bodies)
def test_any_body_posted_to_intake_gets_an_answer_below_500(client, body):
    _readable(client, client.post("/api/v1/reports", content=body, headers=JSON))


@PROPERTY
@given(body=_partner_bodies)
def test_any_body_posted_to_partner_intake_gets_an_answer_below_500(client, partner, body):
    _readable(client, client.post("/api/v1/partner/reports", content=body,
                                  headers={**partner, **JSON}))


def test_a_nul_in_a_console_form_is_refused_not_a_server_error(client):
    import re

    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    response = client.post("/console/login", data={
        "name": "ana\x00", "password": "x" * 12, "csrf": csrf.group(1)})
    assert response.status_code == 400, response.text
    assert "NUL" in response.text
