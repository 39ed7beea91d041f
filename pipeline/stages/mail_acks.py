"""Stage: acknowledge mailed reports, each message at most once, through the dispatch
channels (the file-drop outbox, or SMTP with its hand-over marker).

The acknowledgement of a message lives in the message's own row (`mail_messages`,
`ack_*`): queued by `stages.mailbox` in the transaction that made the reports, only
for mail that may be answered (never automatic mail, bounces or mailing lists: RFC
3834; never the hotline's own address). Its text comes from
`adapters/mail/templates/ack.txt` in the message's language (Serbian or English,
`mail.ack_language`), with the references and their status links.

Steps of `send_acks`:
1. claim: the due ones (queued, or failed and past `ack_due_at`, or `sending` whose
   lease ran out) become `sending` under a lease; a `handing_over` one whose lease ran
   out becomes `unconfirmed` (never sent again by itself: as for notices);
2. deliver each through `dispatch.Channels`; for SMTP the row is committed
   `handing_over` before the final dot, so a crash after it never sends twice;
3. mark it `sent`, or `failed` (retried after dispatch's backoff), or `dead`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import jinja2
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.adapters.channels import Channels, DeliveryUnconfirmed
from pipeline.core import i18n
from pipeline.core.clock import Clock
from pipeline.core.config import Settings
from pipeline.core.errors import BadInput, PermanentError, RetryLater
from pipeline.stages.dispatch import backoff
from pipeline.store.mail_models import MailMessage
from pipeline.store.models import Notice, Report
from pipeline.store.states import AckState, NoticeState

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "adapters" / "mail" / "templates"
_env = i18n.install(jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,  # noqa: S701 - text/plain
    keep_trailing_newline=True))
SUBJECT = i18n.N_("Your report was received: %(reference)s")


def ack_language(message_language: str | None, settings: Settings) -> str:
    chosen = settings.mail.ack_language
    if chosen != "auto":
        return i18n.canonical(chosen) or i18n.ENGLISH
    return i18n.SERBIAN_LATIN if (message_language or "").startswith("sr") else i18n.ENGLISH


def render_ack(references: list[str], language: str, settings: Settings) -> tuple[str, str]:
    """The subject and text of an acknowledgement."""
    texts = settings.public.texts.get(language)
    hotline = (texts.hotline_name if texts and texts.hotline_name else settings.app.name)
    status_base = settings.web.public_url.rstrip("/") + "/report/status?ref="
    with i18n.set_language(language):
        body = _env.get_template("ack.txt").render(
            references=references, hotline=hotline, status_base=status_base)
        subject = i18n._(SUBJECT) % {"reference": references[0] if references else ""}
    return subject, body


def _claim(session: Session, now: datetime, lease: timedelta, limit: int) -> list[int]:
    session.execute(update(MailMessage).where(
        MailMessage.ack_state == AckState.HANDING_OVER, MailMessage.ack_lease_until < now)
        .values(ack_state=AckState.UNCONFIRMED))
    ids = list(session.execute(select(MailMessage.id).where(or_(
        MailMessage.ack_state.in_((AckState.QUEUED, AckState.FAILED))
        & (MailMessage.ack_due_at <= now),
        (MailMessage.ack_state == AckState.SENDING) & (MailMessage.ack_lease_until < now),
    )).order_by(MailMessage.id).limit(limit)).scalars())
    if ids:
        session.execute(update(MailMessage).where(MailMessage.id.in_(ids)).values(
            ack_state=AckState.SENDING, ack_lease_until=now + lease))
    return ids


def send_acks(session_factory: sessionmaker[Session], *, channels: Channels,
              settings: Settings, clock: Clock, limit: int = 100) -> int:
    """Deliver the due acknowledgements; how many were sent."""
    now = clock.now()
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    with session_factory.begin() as session:
        ids = _claim(session, now, lease, limit)
    sent = 0
    for ack_id in ids:
        with session_factory() as session:
            row = session.get(MailMessage, ack_id)
            if row is None or row.ack_state != AckState.SENDING or not row.sender:
                continue
            references = list(session.execute(select(Report.ref).where(
                Report.submission_ref == row.submission_ref).order_by(Report.id)).scalars())
            language = ack_language(row.language, settings)
            subject, body = render_ack(references, language, settings)
            notice = Notice(id=row.id, case_id=0, destination="reporter",
                            destination_kind="reporter", kind="ack", round=1, channel="smtp",
                            address=row.sender, language=language,
                            state=NoticeState.SENDING,
                            token=row.ack_token, subject=subject, body=body, payload={})
            attempts = row.ack_attempts + 1

        def handover(ack_id: int = ack_id) -> None:
            with session_factory.begin() as marker:
                marker.execute(update(MailMessage).where(MailMessage.id == ack_id).values(
                    ack_state=AckState.HANDING_OVER))

        values: dict[str, object]
        try:
            channels.for_notice(notice).deliver(notice, at=clock.now(), handover=handover)
            values = {"ack_state": AckState.SENT, "ack_sent_at": clock.now()}
            sent += 1
            log.info("Acknowledgement of mail message %s sent.", ack_id)
        except RetryLater as exc:
            give_up = attempts >= settings.dispatch.max_attempts
            values = {"ack_state": AckState.DEAD if give_up else AckState.FAILED,
                      "ack_due_at": clock.now() + backoff(settings, attempts),
                      "ack_note": str(exc)[:200]}
            log.warning("Acknowledgement of mail message %s failed (attempt %d): %s",
                        ack_id, attempts, exc)
        except DeliveryUnconfirmed as exc:
            values = {"ack_state": AckState.UNCONFIRMED, "ack_note": str(exc)[:200]}
            log.warning("Acknowledgement of mail message %s is unconfirmed: %s", ack_id, exc)
        except (PermanentError, BadInput) as exc:
            values = {"ack_state": AckState.DEAD, "ack_note": str(exc)[:200]}
            log.warning("Acknowledgement of mail message %s cannot be sent: %s", ack_id, exc)
        values["ack_attempts"] = attempts
        with session_factory.begin() as session:
            session.execute(update(MailMessage).where(MailMessage.id == ack_id).values(
                **values))
    return sent
