"""The mailbox over real LMTP on loopback (smtplib.LMTP against the aiosmtpd
listener): reports stored through intake, a message delivered twice reported once,
mail without URL kept for a person, 451 only for a passing fault."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.adapters.mail.lmtp import LmtpListener
from pipeline.app.mailbox import deliverer
from pipeline.core.errors import RetryLater
from pipeline.core.messaging import NORMALISE
from pipeline.stages.mailbox import look_at_queue, mark_looked_at
from pipeline.store.mail_models import MailMessage
from pipeline.store.models import Event, Report
from tests.loopback import free_port

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"


@pytest.fixture
def listener(runtime):
    # Small limits keep the oversized-message test quick.
    runtime.settings = runtime.settings.model_copy(update={
        "mail": runtime.settings.mail.model_copy(update={"max_message_bytes": 200_000})})
    server = LmtpListener(deliverer(runtime, "lmtp"), host="127.0.0.1", port=free_port(),
                          max_message_bytes=runtime.settings.mail.max_message_bytes)
    server.start()
    yield server
    server.stop()


def _lmtp(server, raw: bytes, recipients=("prijava@hotline.example",)):
    with smtplib.LMTP("127.0.0.1", server.port) as client:
        return client.sendmail("sender@example.org", list(recipients), raw)


def test_a_delivered_message_makes_one_report_per_url_in_one_submission(listener, runtime):
    raw = (CORPUS / "04-gmail-inline-forward.eml").read_bytes()
    assert _lmtp(listener, raw) == {}  # every recipient accepted (250)
    with runtime.session_factory() as session:
        message = session.execute(select(MailMessage)).scalar_one()
        reports = session.execute(select(Report).order_by(Report.id)).scalars().all()
        assert [r.url for r in reports] == ["http://pics.bad.example/boy/12.jpg",
                                            "http://pics.bad.example/boy/13.jpg"]
        assert {r.channel for r in reports} == {"email"}
        assert {r.submission_ref for r in reports} == {message.submission_ref}
        assert {r.reporter_contact for r in reports} == {"petar.n@gmail.example"}
        assert reports[0].description.startswith("Subject: Fwd: Check this out")
        assert message.state == "reported" and message.report_count == 2
        assert message.sender == "petar.n@gmail.example" and message.via == "lmtp"
        assert message.ack_state == "queued"
        assert len(session.execute(select(Event).where(
            Event.action == "report_received")).all()) == 2
    assert runtime.enqueuer.ids(NORMALISE) == [r.id for r in reports]


def test_a_message_delivered_twice_makes_its_reports_once(listener, runtime):
    raw = (CORPUS / "03-gmail-alternative.eml").read_bytes()
    _lmtp(listener, raw)
    _lmtp(listener, raw)  # the mail server lost our first answer and retried
    with runtime.session_factory() as session:
        assert len(session.execute(select(Report)).all()) == 1
        assert len(session.execute(select(MailMessage)).all()) == 1


def test_mail_without_a_url_bounces_and_lists_wait_for_a_person_unanswered(listener, runtime):
    _lmtp(listener, (CORPUS / "21-no-url-question.eml").read_bytes())
    _lmtp(listener, (CORPUS / "23-bounce-dsn.eml").read_bytes())
    _lmtp(listener, (CORPUS / "24-mailing-list.eml").read_bytes())
    with runtime.session_factory.begin() as session:
        waiting = look_at_queue(session)
        assert [m.subject for m in waiting] == ["Pitanje", "Undelivered Mail Returned to Sender"]
        assert waiting[0].reason.startswith("no URL found")
        assert waiting[0].language == "sr-Latn"
        listed = session.execute(select(MailMessage).where(
            MailMessage.subject == "[safety-news] weekly")).scalar_one()
        assert listed.state == "reported" and listed.ack_state == "none"
        assert "mailing list" in listed.ack_note
        assert mark_looked_at(session, waiting[0].id, by="user:ana", clock=runtime.clock)
    with runtime.session_factory() as session:
        assert len(look_at_queue(session)) == 1


def test_bad_mail_is_kept_for_a_person_and_answered_250(listener, runtime):
    garbage = b"\x00\xff not a message at all \r\n\r\n\xfe\xfe"
    huge_headers = (b"From: big@mail.example\r\nMessage-ID: <huge@mail.example>\r\n"
                    b"Subject: huge\r\n\r\n")
    big = huge_headers + (b"x" * 76 + b"\r\n") * 3000  # 234,000 bytes
    assert _lmtp(listener, garbage) == {}
    assert _lmtp(listener, big) == {}
    with runtime.session_factory() as session:
        waiting = look_at_queue(session)
        assert len(waiting) == 2
        too_big = next(m for m in waiting if m.subject == "huge")
        assert "larger than" in too_big.reason and too_big.sender == "big@mail.example"
        assert not session.execute(select(Report)).all()


def test_every_recipient_gets_an_answer_and_a_passing_fault_answers_451(runtime):
    calls = []

    def flaky(raw: bytes):
        calls.append(raw)
        if len(calls) == 1:
            raise RetryLater("the database did not answer")
        return deliverer(runtime, "lmtp")(raw)

    server = LmtpListener(flaky, host="127.0.0.1", port=free_port(),
                          max_message_bytes=1_000_000)
    server.start()
    try:
        raw = (CORPUS / "11-defanged-brackets.eml").read_bytes()
        with pytest.raises(smtplib.SMTPDataError) as refused:
            _lmtp(server, raw)
        assert refused.value.smtp_code == 451
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            client.ehlo_or_helo_if_needed()
            client.mail("sender@example.org")
            client.rcpt("a@hotline.example")
            client.rcpt("b@hotline.example")
            code, _ = client.data(raw)
            assert code == 250
            # LMTP: one answer per recipient; the second is waiting on the wire.
            assert client.getreply()[0] == 250
    finally:
        server.stop()
    with runtime.session_factory() as session:
        assert sorted(r.url for r in session.execute(select(Report)).scalars()) == [
            "http://evil.example.com/a/b.html", "https://cdn.bad.example/x?y=1"]
