"""The mailbox wired to a runtime (pipeline.app.mailbox): the deliverer takes mail in
with the runtime's database, clock, settings and enqueuer; the LMTP listener is built
from the `mail` settings; the acknowledgement thread sends what is due and keeps going
when sending fails."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import select

from pipeline.app import mailbox
from pipeline.core.messaging import NORMALISE
from pipeline.stages.mailbox import REPORTED_OUTCOME
from pipeline.store.mail_models import MailMessage

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail"


def test_the_deliverer_takes_mail_in_through_the_runtime(sqlite_runtime):
    rt = sqlite_runtime
    deliver = mailbox.deliverer(rt, "imap")
    taken = deliver((CORPUS / "03-gmail-alternative.eml").read_bytes())
    assert taken.outcome == REPORTED_OUTCOME and taken.report_ids
    assert rt.enqueuer.ids(NORMALISE) == taken.report_ids
    with rt.session_factory() as session:
        row = session.get(MailMessage, taken.message_id)
    assert row.via == "imap"
    assert row.received_at.replace(tzinfo=None) == rt.clock.now().replace(tzinfo=None)


def test_the_lmtp_listener_takes_its_address_and_size_limit_from_the_settings(
        settings_factory):
    from pipeline.app.runtime import build_runtime

    rt = build_runtime(settings_factory(mail={"lmtp_host": "127.0.0.1", "lmtp_port": 18_025,
                                              "max_message_bytes": 2_000_000}))
    try:
        listener = mailbox.lmtp_listener(rt)
        assert (listener.hostname, listener.port) == ("127.0.0.1", 18_025)
        assert listener.max_message_bytes == 2_000_000
        assert listener.factory().data_size_limit == 4 * 2_000_000
    finally:
        rt.close()


def test_the_ack_sender_sends_what_is_due_once(sqlite_runtime):
    rt = sqlite_runtime
    mailbox.deliverer(rt, "lmtp")((CORPUS / "03-gmail-alternative.eml").read_bytes())
    sender = mailbox.AckSender(rt)
    assert sender.send_now() == 1
    assert sender.send_now() == 0
    with rt.session_factory() as session:
        assert [m.ack_state for m in session.execute(select(MailMessage)).scalars()] == [
            "sent"]


def test_the_ack_thread_goes_on_after_a_failure_and_stops(sqlite_runtime, monkeypatch,
                                                          caplog):
    sender = mailbox.AckSender(sqlite_runtime, interval=0.01)
    calls = threading.Semaphore(0)

    def failing():
        calls.release()
        raise RuntimeError("database away")

    monkeypatch.setattr(sender, "send_now", failing)
    with caplog.at_level(logging.ERROR, logger="pipeline.app.mailbox"):
        sender.start()
        try:
            assert calls.acquire(timeout=30) and calls.acquire(timeout=30)  # tried again
        finally:
            sender.stop()
    assert not sender.thread.is_alive()
    assert "Sending mail acknowledgements failed; tried again later." in [
        r.getMessage() for r in caplog.records]
