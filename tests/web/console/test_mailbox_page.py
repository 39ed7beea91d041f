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
