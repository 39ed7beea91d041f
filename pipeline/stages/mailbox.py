"""Stage: a message received by the mailbox becomes reports (or waits for a person).

Steps of `take_message`:
1. read the message (`adapters.mail.parse.read_message`: never raises; what it could
   not read is named);
2. in one transaction: if a message with the same Message-ID (or, without one, the
   same bytes) was taken before, nothing more (a message delivered twice makes its
   reports once); otherwise the message's row, then one report per URL through
   `pipeline.stages.intake.store_reports` (the function every intake path uses: channel
   `email`, the sender as the reporter contact, encrypted, the subject and text as
   the description, attachments by name, type, size and SHA-256 only), all of one
   submission; its acknowledgement queued in the same row when it may be sent;
3. commit; a twin committed meanwhile by another process hits the unique key and
   counts as the duplicate it is;
4. only then enqueue the new reports for normalisation.
A message without any URL, unreadable or too large makes no report: its row waits
in state `look_at` with the reason, for a person (`hotline mail look-at`).
A database that does not answer raises `RetryLater` (the LMTP listener answers 451,
the IMAP poller leaves the message where it is): nothing is lost.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.adapters.mail.parse import ParsedMail, message_key, read_message
from pipeline.core.clock import Clock
from pipeline.core.config import Settings
from pipeline.core.errors import RetryLater
from pipeline.core.messaging import NORMALISE, Enqueuer
from pipeline.stages.intake import new_reference, store_reports
from pipeline.store.mail_models import LOOK_AT, LOOKED_AT, REPORTED, MailMessage
from pipeline.store.states import AckState
from schemas.intake import Channel, ReportIn

log = logging.getLogger(__name__)

REPORTED_OUTCOME, LOOK_AT_OUTCOME, DUPLICATE = "reported", "look_at", "duplicate"
_REFERENCE = re.compile(r"\bR-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")


@dataclass(frozen=True)
class Taken:
    outcome: str  # reported, look_at or duplicate
    message_id: int
    submission: str | None = None
    references: list[str] = field(default_factory=list)
    reason: str | None = None
    report_ids: list[int] = field(default_factory=list)


def _description(parsed: ParsedMail, limit: int) -> str | None:
    pieces = []
    if parsed.subject:
        pieces.append(f"Subject: {parsed.subject}")
    if parsed.attachments:
        listed = "; ".join(
            f"{a.name or '(no name)'} ({a.content_type}, {a.size} bytes, sha256 {a.sha256})"
            for a in parsed.attachments[:20])
        pieces.append(f"Attachments (not kept): {listed}")
    if parsed.text:
        pieces.append(parsed.text)
    text = "\n\n".join(pieces)
    return text[:limit] or None


def _ack_blocked(parsed: ParsedMail, settings: Settings) -> str | None:
    """Why no acknowledgement may be sent, or None."""
    if not settings.mail.acknowledge:
        return "acknowledgements are switched off"
    if parsed.automatic:
        return f"not answered: {parsed.automatic}"[:200]
    if not parsed.sender:
        return "no sender address"
    own = settings.dispatch.sender_address.lower()
    if parsed.sender.lower() == own:
        return "not answered: sent by the hotline itself"
    # A message about an existing report (its reference in the subject, as in our
    # answers) or quoting our status links is a reply to us: answering it again could
    # start a loop with a robot that ignores RFC 3834. A person handles it.
    if _REFERENCE.search(parsed.subject or "") or parsed.quotes_own_links:
        return "not answered: a reply about an existing report"
    return None


def _reports_of(parsed: ParsedMail, settings: Settings) -> tuple[list[ReportIn], list[str]]:
    """One report per URL that intake can take; the reasons for the others."""
    limits = settings.intake
    description = _description(parsed, limits.max_description_chars)
    contact = parsed.sender[:limits.max_contact_chars] if parsed.sender else None
    items, left = [], []
    for url in parsed.urls[:settings.mail.max_urls_per_message]:
        if len(url.encode()) > limits.max_url_bytes:
            left.append(f"a URL longer than {limits.max_url_bytes} bytes was left out")
            continue
        items.append(ReportIn(url=url, channel=Channel.EMAIL, description=description,
                              reporter_contact=contact, language=parsed.language))
    if len(parsed.urls) > settings.mail.max_urls_per_message:
        left.append(f"{len(parsed.urls) - settings.mail.max_urls_per_message} URLs over "
                    f"the limit of {settings.mail.max_urls_per_message} were left out")
    return items, left


def take_message(
    session_factory: sessionmaker[Session],
    raw: bytes,
    *,
    via: str,
    clock: Clock,
    settings: Settings,
    enqueuer: Enqueuer,
    size: int | None = None,
) -> Taken:
    """Take one received message in (see the module's docstring for the steps).
    `size`: the real size when `raw` holds only the headers of a huge message."""
    own = settings.web.public_url.rstrip("/").lower()
    parsed = read_message(raw, max_bytes=settings.mail.max_message_bytes,
                          url_limit=settings.mail.max_urls_per_message + 1,
                          ignore_prefixes=(own + "/report", own + "/api/v1/reports"),
                          size=size)
    key = message_key(parsed, raw)
    try:
        with session_factory() as session, session.begin():
            taken = _store(session, parsed, key, via=via, clock=clock, settings=settings)
    except IntegrityError:
        with session_factory() as session:
            existing = session.execute(select(MailMessage.id).where(
                MailMessage.message_key == key)).scalar_one_or_none()
        if existing is None:
            raise
        taken = Taken(DUPLICATE, existing)
    except OperationalError as exc:
        raise RetryLater(f"the database did not take the message: {type(exc).__name__}"
                         ) from None
    if taken.report_ids:
        enqueuer.send(NORMALISE, taken.report_ids)
    if taken.outcome == DUPLICATE:
        log.info("Mail message %s was taken before (same Message-ID); no new report.",
                 taken.message_id)
    elif taken.outcome == LOOK_AT_OUTCOME:
        log.warning("Mail message %s made no report and waits for a person: %s.",
                    taken.message_id, taken.reason)
    else:
        log.info("Mail message %s made %d report(s), submission %s.", taken.message_id,
                 len(taken.references), taken.submission)
    return taken


def _store(session: Session, parsed: ParsedMail, key: str, *, via: str, clock: Clock,
           settings: Settings) -> Taken:
    existing = session.execute(select(MailMessage.id).where(
        MailMessage.message_key == key)).scalar_one_or_none()
    if existing is not None:
        return Taken(DUPLICATE, existing)
    now = clock.now()
    items, left = _reports_of(parsed, settings) if parsed.parsed else ([], [])
    reasons = [*parsed.problems, *left]
    row = MailMessage(
        message_key=key, message_id=parsed.message_id[:500] if parsed.message_id else None,
        via=via, received_at=now, sender=parsed.sender, subject=parsed.subject,
        size=parsed.size, language=parsed.language, attachments=[
            a.as_dict() for a in parsed.attachments[:100]], report_count=len(items),
        ack_state=AckState.NONE, ack_attempts=0)
    submission = None
    references: list[str] = []
    report_ids: list[int] = []
    if items:
        submission = new_reference("S")
        row.state, row.submission_ref = REPORTED, submission
        row.reason = "; ".join(reasons)[:2000] or None
        session.add(row)
        session.flush()  # the unique Message-ID key is checked before the reports
        accepted = store_reports(session, items, clock=clock, limits=settings.intake,
                                 source="mailbox", actor=f"mail:{via}",
                                 submission_ref=submission)
        references = [a.ref for a in accepted]
        report_ids = [a.id for a in accepted]
        blocked = _ack_blocked(parsed, settings)
        if blocked is None:
            row.ack_state, row.ack_token, row.ack_due_at = (
                AckState.QUEUED, secrets.token_hex(16), now)
        else:
            row.ack_note = blocked
        outcome = REPORTED_OUTCOME
    else:
        if not parsed.parsed:
            reason = "; ".join(reasons) or "the message could not be read"
        elif not parsed.urls:
            reason = "; ".join(["no URL found", *reasons])
        else:
            reason = "; ".join(["no URL could be taken", *reasons])
        row.state, row.reason = LOOK_AT, reason[:2000]
        row.ack_note = "no report: a person looks at it first"
        session.add(row)
        session.flush()
        outcome = LOOK_AT_OUTCOME
    return Taken(outcome, row.id, submission, references, row.reason, report_ids)


def look_at_queue(session: Session, limit: int = 100) -> list[MailMessage]:
    """The messages waiting for a person, oldest first."""
    return list(session.execute(
        select(MailMessage).where(MailMessage.state == LOOK_AT)
        .order_by(MailMessage.received_at, MailMessage.id).limit(limit)).scalars())


def mark_looked_at(session: Session, message_id: int, *, by: str, clock: Clock) -> bool:
    row = session.get(MailMessage, message_id)
    if row is None or row.state != LOOK_AT:
        return False
    row.state, row.looked_at_by, row.looked_at_at = LOOKED_AT, by[:120], clock.now()
    return True

