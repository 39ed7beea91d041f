"""The mailbox stage (pipeline.stages.mailbox) on its own, without a listener: a
message with URLs becomes reports of one submission queued for normalising, the same
message twice is taken once, a message without a URL waits for a person, who marks it
looked at; on SQLite and PostgreSQL."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from pipeline.core.messaging import NORMALISE
from pipeline.stages.mailbox import (
    DUPLICATE,
    LOOK_AT_OUTCOME,
    REPORTED_OUTCOME,
    look_at_queue,
    mark_looked_at,
    take_message,
)
from pipeline.store.mail_models import LOOK_AT, LOOKED_AT, MailMessage
from pipeline.store.models import Report


def mail(body: str, *, message_id: str = "<m1@example.org>", subject: str = "Prijava") -> bytes:
    message = EmailMessage()
    message["From"] = "Jelena <jelena@example.org>"
    message["To"] = "prijava@hotline.example"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message.as_bytes()


def take(rt, raw: bytes):
    return take_message(rt.session_factory, raw, via="lmtp", clock=rt.clock,
                        settings=rt.settings, enqueuer=rt.enqueuer)


@pytest.fixture(params=["sqlite_runtime", "pg_runtime"])
def rt(request):
    return request.getfixturevalue(request.param)


def test_urls_become_reports_of_one_submission_queued_for_normalising(rt):
    taken = take(rt, mail("Molim vas pogledajte http://bad.example/a i\n"
                          "https://other.example/b?x=1\n"))
    assert taken.outcome == REPORTED_OUTCOME and taken.submission.startswith("S-")
    assert len(taken.references) == 2 and all(r.startswith("R-") for r in taken.references)
    assert rt.enqueuer.ids(NORMALISE) == taken.report_ids
    with rt.session_factory() as session:
        reports = session.execute(select(Report).where(Report.id.in_(taken.report_ids))
                                  .order_by(Report.id)).scalars().all()
        row = session.get(MailMessage, taken.message_id)
    assert [r.url for r in reports] == ["http://bad.example/a", "https://other.example/b?x=1"]
    assert {r.source for r in reports} == {"mailbox"}
    assert (row.state, row.report_count, row.via) == ("reported", 2, "lmtp")
    assert row.ack_state == "queued" and row.ack_token


def test_the_same_message_twice_is_taken_once(rt):
    raw = mail("http://bad.example/a")
    first = take(rt, raw)
    again = take(rt, raw)
    assert (again.outcome, again.message_id) == (DUPLICATE, first.message_id)
    assert again.report_ids == [] and rt.enqueuer.ids(NORMALISE) == first.report_ids
    with rt.session_factory() as session:
        assert session.execute(select(func.count()).select_from(Report)).scalar_one() == 1


def test_a_message_without_a_url_waits_for_a_person_who_marks_it_looked_at(rt):
    taken = take(rt, mail("Dobar dan, kako da prijavim sadrzaj?", message_id="<q@x>"))
    other = take(rt, mail("Nema adrese ni ovde.", message_id="<q2@x>"))
    assert taken.outcome == LOOK_AT_OUTCOME and taken.reason.startswith("no URL found")
    assert taken.report_ids == [] and rt.enqueuer.ids(NORMALISE) == []
    with rt.session_factory() as session:
        assert [m.id for m in look_at_queue(session)] == [taken.message_id, other.message_id]
        assert session.get(MailMessage, taken.message_id).ack_state == "none"
    with rt.session_factory.begin() as session:
        assert mark_looked_at(session, taken.message_id, by="ana", clock=rt.clock)
    with rt.session_factory.begin() as session:
        assert not mark_looked_at(session, taken.message_id, by="bo", clock=rt.clock)
        assert not mark_looked_at(session, 999_999, by="bo", clock=rt.clock)
        row = session.get(MailMessage, taken.message_id)
        assert (row.state, row.looked_at_by) == (LOOKED_AT, "ana")
        assert [m.id for m in look_at_queue(session)] == [other.message_id]
        assert session.get(MailMessage, other.message_id).state == LOOK_AT
