"""Acknowledgements of mailed reports: once per message, in the message's language,
through the dispatch channels; never to automatic mail, bounces or lists."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from sqlalchemy import select

from pipeline.adapters.channels import Channels, outbox_folder
from pipeline.app.mailbox import deliverer
from pipeline.stages.mail_acks import render_ack, send_acks
from pipeline.store.mail_models import MailMessage
from pipeline.store.models import Report
from tests.dispatch_support import SMTP_PASSWORD, SmtpServer

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail"


def _take(runtime, *names):
    deliver = deliverer(runtime, "lmtp")
    for name in names:
        deliver((CORPUS / name).read_bytes())


def test_each_answerable_message_gets_one_answer_in_its_language_in_the_outbox(
        sqlite_runtime):
    runtime = sqlite_runtime
    _take(runtime, "05-apple-mail-flowed.eml", "03-gmail-alternative.eml",
          "22-out-of-office.eml", "24-mailing-list.eml", "23-bounce-dsn.eml")
    channels = Channels(runtime.settings)
    assert send_acks(runtime.session_factory, channels=channels, settings=runtime.settings,
                     clock=runtime.clock) == 2
    # Exactly once: nothing is due any more.
    assert send_acks(runtime.session_factory, channels=channels, settings=runtime.settings,
                     clock=runtime.clock) == 0
    files = sorted(outbox_folder(runtime.settings).glob("*.eml"))
    assert len(files) == 2
    answers = {m["To"]: m for m in (email.message_from_bytes(f.read_bytes(),
                                                             policy=policy.default)
                                    for f in files)}
    assert set(answers) == {"milica@icloud.example", "ana.jovanovic.1990@gmail.example"}
    with runtime.session_factory() as session:
        refs = {r.reporter_contact: r.ref for r in session.execute(select(Report)).scalars()}
        states = {m.subject: (m.ack_state, m.ack_note) for m in
                  session.execute(select(MailMessage)).scalars()}
    serbian = answers["milica@icloud.example"]
    assert serbian["Subject"] == f"Vaša prijava je primljena: {refs['milica@icloud.example']}"
    assert serbian["Auto-Submitted"] == "auto-generated"
    assert "vam zahvaljuje na poruci" in serbian.get_content()
    assert "/report/status?ref=" + refs["milica@icloud.example"] in serbian.get_content()
    english = answers["ana.jovanovic.1990@gmail.example"].get_content()
    assert "We made a report of the address you sent" in english
    assert states["Prijava sajta"][0] == "sent"
    assert states["Automatic reply: Your report R-ABCD"][0] == "none"
    assert "Auto-Submitted" in states["Automatic reply: Your report R-ABCD"][1]
    assert "mailing list" in states["[safety-news] weekly"][1]


def test_answers_go_out_over_smtp_once_and_can_be_switched_off(settings_factory, tmp_path,
                                                               monkeypatch):
    from pipeline.app.runtime import build_runtime
    from pipeline.store.migrate import upgrade

    smtp = SmtpServer(tmp_path)
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    try:
        settings = settings_factory(dispatch={"deliver": "live",
                                              "sender_address": "prijava@hotline.example",
                                              **smtp.settings()})
        upgrade(settings.database.url)
        runtime = build_runtime(settings)
        _take(runtime, "11-defanged-brackets.eml")
        channels = Channels(settings)
        assert send_acks(runtime.session_factory, channels=channels, settings=settings,
                         clock=runtime.clock) == 1
        assert send_acks(runtime.session_factory, channels=channels, settings=settings,
                         clock=runtime.clock) == 0
        assert smtp.count() == 1
        assert smtp.messages[0]["To"] == "analyst@partner.example"
        # Switched off: nothing queued for the next message.
        runtime.settings = settings.model_copy(update={
            "mail": settings.mail.model_copy(update={"acknowledge": False})})
        _take(runtime, "12-defanged-dot-words-and-scheme-brackets.eml")
        assert send_acks(runtime.session_factory, channels=channels, settings=settings,
                         clock=runtime.clock) == 0
        # A message from the hotline's own address is never answered (no loop).
        own = (CORPUS / "03-gmail-alternative.eml").read_bytes().replace(
            b"Ana Jovanovic <ana.jovanovic.1990@gmail.example>", b"<prijava@hotline.example>")
        runtime.settings = settings
        deliverer(runtime, "lmtp")(own)
        assert send_acks(runtime.session_factory, channels=channels, settings=settings,
                         clock=runtime.clock) == 0
        assert smtp.count() == 1
        runtime.close()
    finally:
        smtp.stop()


def test_the_answer_lists_every_reference_with_its_status_link(sqlite_runtime):
    subject, body = render_ack(["R-AAAA-BBBB-CCCC-DDDD", "R-EEEE-FFFF-GGGG-HHHH"], "en",
                               sqlite_runtime.settings)
    assert subject == "Your report was received: R-AAAA-BBBB-CCCC-DDDD"
    assert "We made a report of each address you sent. Their references:" in body
    assert body.count("/report/status?ref=R-") == 2


def test_a_reply_to_an_answer_is_never_answered_again(sqlite_runtime):
    """A robot that ignores RFC 3834 and replies to our answer, quoting it and adding
    its own signature link, makes a report at most, never a second answer: no loop."""
    runtime = sqlite_runtime
    _take(runtime, "03-gmail-alternative.eml")
    channels = Channels(runtime.settings)
    send_acks(runtime.session_factory, channels=channels, settings=runtime.settings,
              clock=runtime.clock)
    answer = next(outbox_folder(runtime.settings).glob("*.eml")).read_text()
    quoted = "\n".join("> " + line for line in answer.splitlines()[-12:])
    reply = (b"From: robot@helpdesk.example\r\nTo: prijava@hotline.example\r\n"
             b"Subject: Ticket 4411 opened\r\nMessage-ID: <robot-1@helpdesk.example>\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
             b"We got your mail. Our portal: https://helpdesk.example/portal\r\n\r\n"
             + quoted.encode())
    deliverer(runtime, "lmtp")(reply)
    assert send_acks(runtime.session_factory, channels=channels, settings=runtime.settings,
                     clock=runtime.clock) == 0
    with runtime.session_factory() as session:
        row = session.execute(select(MailMessage).where(
            MailMessage.subject == "Ticket 4411 opened")).scalar_one()
        assert row.ack_state == "none" and "reply about an existing report" in row.ack_note
        urls = session.execute(select(Report.url).where(
            Report.submission_ref == row.submission_ref)).scalars().all()
    assert urls == ["https://helpdesk.example/portal"]  # our own status links are not
