"""The console shows the mail that waits for a person and lets an analyst mark it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app.mailbox import deliverer
from pipeline.store.models import Event
from pipeline.web.app import create_app
from tests.web.console.conftest import PASSWORD, add_person

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"


def test_an_analyst_sees_the_look_at_queue_and_marks_a_message(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    add_person(runtime, "root", "admin")
    deliver = deliverer(runtime, "lmtp")
    deliver((CORPUS / "21-no-url-question.eml").read_bytes())
    deliver((CORPUS / "20-attachment-only-no-url.eml").read_bytes())
    deliver((CORPUS / "03-gmail-alternative.eml").read_bytes())  # made a report
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        login = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        client.post("/console/login", data={"name": "root", "password": PASSWORD,
                                            "csrf": token})
        assert client.get("/console/mail").status_code == 403  # admins do no casework
        client.post("/console/logout", data={"csrf": re.search(
            r'name="csrf" value="([^"]+)"', client.get("/console/admin").text).group(1)})
        login = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        client.post("/console/login", data={"name": "ana", "password": PASSWORD,
                                            "csrf": token})
        page = client.get("/console/mail")
        assert page.status_code == 200
        rows = re.findall(r"<tr><td>", page.text)
        assert len(rows) == 2
        assert "Pitanje" in page.text and "no URL found" in page.text
        assert "evidence.pdf (application/pdf" in page.text
        assert "mama@mail.example" not in page.text  # the sender is not shown
        assert 'href="/console/mail"' in page.text  # in the navigation
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        first = re.search(r'action="/console/mail/(\d+)/done"', page.text).group(1)
        assert client.post(f"/console/mail/{first}/done", data={"csrf": "wrong"}
                           ).status_code == 400
        done = client.post(f"/console/mail/{first}/done", data={"csrf": csrf})
        assert done.status_code == 303
        assert len(re.findall(r"<tr><td>", client.get("/console/mail").text)) == 1
        assert client.post(f"/console/mail/{first}/done", data={"csrf": csrf}
                           ).status_code == 404
    with runtime.session_factory() as session:
        assert session.execute(select(Event.actor).where(
            Event.action == "mail_looked_at")).scalars().all() == ["user:ana"]


def test_a_counsellor_turns_a_mail_message_into_a_helpline_contact_once(sqlite_runtime):
    from pipeline.store.helpline_models import HelplineContact
    from pipeline.store.mail_models import MailMessage
    from tests.web.console.test_casework import Person

    runtime = sqlite_runtime
    for name, role in [("ana", "analyst"), ("cara", "counsellor"), ("sue", "supervisor")]:
        add_person(runtime, name, role)
    deliver = deliverer(runtime, "lmtp")
    deliver((CORPUS / "21-no-url-question.eml").read_bytes())
    deliver((CORPUS / "03-gmail-alternative.eml").read_bytes())  # made a report
    ana, cara, sue = (Person(runtime, n) for n in ("ana", "cara", "sue"))
    page = cara.client.get("/console/mail")
    assert page.status_code == 200 and 'href="/console/mail"' in page.text
    assert len(re.findall(r"<tr><td>", page.text)) == 1  # never the message that reported
    assert "Turn into a helpline contact" in page.text and "Looked at" not in page.text
    assert "mama@mail.example" not in page.text
    message_id = re.search(r'action="/console/mail/(\d+)/helpline"', page.text).group(1)
    analyst_page = ana.client.get("/console/mail").text
    assert "Turn into a helpline contact" not in analyst_page and "Looked at" in analyst_page
    assert ana.post(f"/console/mail/{message_id}/helpline").status_code == 403
    assert cara.post(f"/console/mail/{message_id}/done").status_code == 403
    done = cara.post(f"/console/mail/{message_id}/helpline")
    assert done.status_code == 303 and "contact=K-" in done.headers["location"]
    ref = done.headers["location"].split("contact=")[1]
    shown = cara.client.get(done.headers["location"]).text
    assert f"helpline contact {ref}" in shown
    assert f'href="/console/helpline/contacts/{ref}"' in shown
    assert len(re.findall(r"<tr><td>", shown)) == 0  # it left the queue, for analysts too
    assert len(re.findall(r"<tr><td>", ana.client.get("/console/mail").text)) == 0
    # The second of two clicks is told which contact the first made; nothing more.
    twice = sue.post(f"/console/mail/{message_id}/helpline")
    assert twice.status_code == 303 and twice.headers["location"].endswith(f"twice={ref}")
    assert "Someone else had already" in sue.client.get(twice.headers["location"]).text
    assert ana.post(f"/console/mail/{message_id}/done").status_code == 404
    # The helpline console lists it, marked by channel and where it came from.
    helpline = cara.client.get("/console/helpline").text
    row = re.search(r'<tr data-channel="email" data-source="mailbox">.*?</tr>', helpline, re.S)
    assert row and ref in row.group(0) and "from the mailbox" in row.group(0)
    assert ana.client.get(f"/console/helpline/contacts/{ref}").status_code == 403
    contact_page = cara.client.get(f"/console/helpline/contacts/{ref}").text
    assert "E-mail: Pitanje" in contact_page and "mama@mail.example" in contact_page
    with runtime.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        message = session.get(MailMessage, int(message_id))
        assert (contact.ref, contact.channel, contact.counsellor) == (ref, "email", "cara")
        assert (message.state, message.helpline_contact_ref) == ("helpline", ref)
        assert session.execute(select(Event.actor).where(
            Event.action == "mail_to_helpline")).scalars().all() == ["user:cara"]


def test_a_counsellor_takes_up_a_request_from_the_form_and_its_urls_become_reports(
        sqlite_runtime):
    from pipeline.core.messaging import NORMALISE
    from pipeline.stages import helpline
    from pipeline.store.helpline_models import HelplineCase, HelplineCaseReport
    from tests.web.console.test_casework import Person

    runtime = sqlite_runtime
    add_person(runtime, "cara", "counsellor")
    with runtime.session_factory.begin() as session:
        ref = helpline.record_incoming(
            session, channel="contact_form", received_at=runtime.clock.now(),
            summary="He wants more photos: https://bad.example.net/u/x, see www.bad.example.org.",
            sender=None, language="en", now=runtime.clock.now(), settings=runtime.settings,
            source="form").ref
    cara = Person(runtime, "cara")
    listing = cara.client.get("/console/helpline").text
    waiting = re.search(r'<table id="waiting">.*?</table>', listing, re.S).group(0)
    assert ref in waiting and 'data-channel="contact_form" data-source="form"' in waiting
    page = cara.client.get(f"/console/helpline/contacts/{ref}")
    assert page.status_code == 200 and "from the public form" in page.text
    assert "https://bad.example.net/u/x\nwww.bad.example.org</textarea>" in page.text
    refused = cara.post(f"/console/helpline/contacts/{ref}/take-up", caller_type="child",
                        topic="weather")
    assert refused.status_code == 422 and "topic" in refused.text
    done = cara.post(f"/console/helpline/contacts/{ref}/take-up", caller_type="child",
                     topic="sextortion", case_type="sextortion", child_age_group="14_15",
                     urls="https://bad.example.net/u/x\nwww.bad.example.org")
    assert done.status_code == 303 and "/console/helpline/cases/H-" in done.headers["location"]
    with runtime.session_factory() as session:
        contact, case_ref = helpline.find_contact(session, ref)
        assert (contact.caller_type, contact.topic, contact.counsellor) == (
            "child", "sextortion", "cara")
        case = session.execute(select(HelplineCase)).scalar_one()
        assert case.ref == case_ref
        linked = session.execute(select(HelplineCaseReport.report_id)).scalars().all()
        assert len(linked) == 2 and runtime.enqueuer.ids(NORMALISE) == linked
        assert "contact_taken_up" in session.execute(select(Event.action)).scalars().all()
    assert 'id="waiting"' not in cara.client.get("/console/helpline").text  # taken up
    # Taken up once: the page no longer offers it, a second attempt is refused.
    assert 'id="take-up-form"' not in cara.client.get(f"/console/helpline/contacts/{ref}").text
    again = cara.post(f"/console/helpline/contacts/{ref}/take-up", caller_type="child",
                      topic="sextortion", case_type="grooming")
    assert again.status_code == 422 and "already belongs to a case" in again.text
