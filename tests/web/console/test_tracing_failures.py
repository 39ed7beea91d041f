"""Tracing failures in view: the "still tracing" count opens the list, cases are sent
to be traced again, supervisors retry dead letters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.core.messaging import DISPATCH, TRACE
from pipeline.store.models import DeadLetter
from pipeline.web.app import create_app
from tests.factories import make_case
from tests.web.console.conftest import PASSWORD, add_person


def _client(runtime, name):
    client = TestClient(create_app(runtime), follow_redirects=False,
                        headers={"Accept-Language": "en"})
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    assert client.post("/console/login", data={"name": name, "password": PASSWORD,
                                                "csrf": csrf}).status_code == 303
    return client


def test_still_tracing_cases_are_listed_and_traced_again(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        slow = make_case(session, at=now - timedelta(minutes=90), url="http://slow.example/",
                         host="slow.example", state="normalised")
        done = make_case(session, at=now, url="http://done.example/", host="done.example",
                         state="awaiting_assessment")
        refs = (slow.ref, slow.id, done.ref)
    with _client(runtime, "ana") as client:
        queue = client.get("/console/").text
        assert 'href="/console/tracing" id="still-tracing-count"' in queue
        page = client.get("/console/tracing").text
        assert refs[0] in page and refs[2] not in page
        assert "1 h 30 min" in page  # how long it has waited
        assert "dead-letters" not in page  # supervisors only
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        sent = client.post("/console/tracing/retry", data={"csrf": csrf, "ref": refs[0]})
        assert sent.status_code == 303
        assert runtime.enqueuer.ids(TRACE) == [refs[1]]
        refused = client.post("/console/tracing/retry", data={"csrf": csrf, "ref": refs[2]})
        assert refused.status_code == 422


def test_supervisors_retry_dead_letters(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "sue", "supervisor")
    with runtime.session_factory.begin() as session:
        letter = DeadLetter(message_id="m1", actor=DISPATCH, queue="default", args=[[7, 8]],
                            kwargs={}, error="SMTP server refused", retries=5,
                            failed_at=datetime(2026, 1, 1, tzinfo=UTC))
        session.add(letter)
        session.flush()
        letter_id = letter.id
    with _client(runtime, "sue") as client:
        page = client.get("/console/tracing").text
        assert "SMTP server refused" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert client.post("/console/deadletters/retry", data={
            "csrf": csrf, "id": str(letter_id)}).status_code == 303
    assert runtime.enqueuer.ids(DISPATCH) == [7, 8]
    with runtime.session_factory() as session:
        assert session.execute(select(DeadLetter.retried_at)).scalar() is not None
