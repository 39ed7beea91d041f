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
from tests.web.console.conftest import PASSWORD, add_person, logged_in_client


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
    with logged_in_client(runtime, "ana") as client:
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
    with logged_in_client(runtime, "sue") as client:
        page = client.get("/console/tracing").text
        assert "SMTP server refused" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert client.post("/console/deadletters/retry", data={
            "csrf": csrf, "id": str(letter_id)}).status_code == 303
    assert runtime.enqueuer.ids(DISPATCH) == [7, 8]
    with runtime.session_factory() as session:
        assert session.execute(select(DeadLetter.retried_at)).scalar() is not None


def _waiting_case(runtime, host, *, attempts=0, reason=None, retry_in=None):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=now - timedelta(minutes=20), url=f"http://{host}/",
                         host=host, state="normalised", trace_attempts=attempts,
                         trace_wait_reason=reason,
                         retry_at=now + retry_in if retry_in is not None else None)
        return case.ref, case.id


def test_each_waiting_case_shows_its_attempts_reason_and_next_retry(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    ref, _ = _waiting_case(runtime, "slow.example", attempts=3,
                           reason="tracing waits for a registry: RDAP answered 429",
                           retry_in=timedelta(minutes=5))
    with logged_in_client(runtime, "ana") as client:
        page = client.get("/console/tracing").text
        row = page[page.index(ref):page.index("</tr>", page.index(ref))]
        assert "RDAP answered 429" in row
        assert '<td class="num">3</td>' in row
        next_retry = runtime.clock.now() + timedelta(minutes=5)
        assert f"{next_retry.hour % 12 or 12}:{next_retry.minute:02d}" in row
        assert 'id="send-on"' not in page  # supervisors only
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert client.post("/console/tracing/send-on",
                           data={"csrf": csrf, "ref": ref}).status_code == 403
    sr = TestClient(create_app(runtime), follow_redirects=False)
    form = sr.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    sr.post("/console/login", data={"name": "ana", "password": PASSWORD, "csrf": csrf})
    page = sr.get("/console/tracing").text
    next_retry = runtime.clock.now() + timedelta(minutes=5)
    assert next_retry.strftime("%d.%m.%Y.") in page  # the Serbian date


def test_a_supervisor_sends_a_waiting_case_on_as_origin_unknown(sqlite_runtime):
    from pipeline.store.models import Case, Event

    runtime = sqlite_runtime
    add_person(runtime, "sue", "supervisor")
    ref, case_id = _waiting_case(runtime, "slow.example", attempts=2, reason="429")
    with logged_in_client(runtime, "sue") as client:
        page = client.get("/console/tracing").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        sent = client.post("/console/tracing/send-on", data={"csrf": csrf, "ref": ref})
        assert sent.headers["location"] == "/console/tracing?done=sent-on"
        assert "marked origin unknown" in client.get(sent.headers["location"]).text
    with runtime.session_factory() as session:
        case = session.get(Case, case_id)
        assert (case.state, case.origin_unknown, case.trace_outcome) == (
            "awaiting_assessment", True, "sent_on_by_hand")
        actors = set(session.execute(select(Event.actor).where(
            Event.case_id == case_id, Event.to_state == "awaiting_assessment")).scalars())
    assert actors == {"user:sue"}


def test_in_the_browser_a_supervisor_sends_a_case_on_from_the_still_tracing_list(
        page, sqlite_runtime):
    from tests.web.console.conftest import log_in, screenshot

    runtime = sqlite_runtime
    add_person(runtime, "sue", "supervisor")
    ref, _ = _waiting_case(runtime, "slow.example", attempts=4, reason="RDAP answered 429",
                           retry_in=timedelta(minutes=2))
    log_in(page, "sue")
    page.wait_for_url("**/console/")
    page.click("#still-tracing-count")
    page.wait_for_url("**/console/tracing")
    row = page.locator("#tracing tbody tr", has_text=ref)
    assert "RDAP answered 429" in row.inner_text()
    page.check(f"input[name=ref][value='{ref}']")
    screenshot(page, "tracing-send-on")
    page.click("#send-on")
    page.wait_for_url("**/console/tracing?done=sent-on")
    assert ref not in page.inner_text("#still-tracing")
    page.goto(f"/console/cases/{ref}")
    assert "sue" in page.inner_text("body")
    assert page.js_errors == []
