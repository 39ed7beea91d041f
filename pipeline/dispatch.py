"""Stage: deliver planned notices, each once, through its channel.

Channels: SMTP (STARTTLS and login), an HTTPS webhook (JSON signed with HMAC-SHA256,
with an idempotency key), and a file-drop outbox folder, which is where every notice
goes when `dispatch.deliver` is `outbox` (the default in embedded mode, so that a test
installation never sends anything by accident).

Steps of `deliver_notices`:
1. claim: in one short transaction, the given notices that are due (planned, or
   failed and past their retry time, or `sending` under a lease that ran out) become
   `sending` with a lease owned by this call; a sent notice is never claimed again,
   so delivering it twice is a no-op,
2. deliver each claimed notice; the notice token is the e-mail's Message-ID and the
   webhook's Idempotency-Key, and names the outbox file, so a receiver can recognise
   a repeat,
3. right after each delivery, mark it `sent` (only if this call still owns it) with
   an audit event on its case, in its own transaction,
4. a passing failure (`RetryLater`: timeouts, 4xx SMTP, 5xx/429 HTTP) makes it
   `failed` with the next attempt after an exponential backoff (the reconciler sends
   it again when due); a permanent one, or too many attempts, makes it `dead` with a
   row in `dead_letters` (`hotline deadletters retry` tries it again).

The guarantee: no notice is lost (a claimed notice whose worker died is claimed
again after `dispatch.lease_seconds`), and a notice is delivered more than once only
when a worker dies between the delivery and its commit of `sent`; the repeat then
carries the same Message-ID / Idempotency-Key / file name. See README, "Dispatch".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.audit import build_event
from pipeline.clock import Clock
from pipeline.config import Settings
from pipeline.db import is_postgresql
from pipeline.errors import BadInput, PermanentError, RetryLater
from pipeline.models import Case, DeadLetter, Notice
from pipeline.notices import build_email, safe_header, webhook_body

log = logging.getLogger(__name__)

SMTP_PASSWORD_ENV = "HOTLINE_SMTP_PASSWORD"  # noqa: S105 - a variable name, not a secret
SIGNATURE_HEADER = "X-Hotline-Signature"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Channel(Protocol):
    def deliver(self, notice: Notice, *, at: datetime) -> None:
        """Deliver or raise `RetryLater` / `PermanentError` / `BadInput`."""


# ------------------------------------------------------------------------ channels


class OutboxChannel:
    """Writes each notice as a file: `notice-<id>-<token>.eml` (e-mail) or `.json`
    (webhook). Written to a temporary name and renamed, so a reader never sees half a
    file and a repeat overwrites the same file."""

    def __init__(self, folder: Path, settings: Settings):
        self.folder = folder
        self.settings = settings

    def deliver(self, notice: Notice, *, at: datetime) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if notice.channel == "webhook":
            data = json.dumps(webhook_body(notice, self.settings), indent=2,
                              ensure_ascii=False).encode()
            suffix = ".json"
        elif notice.address:
            data = build_email(notice, self.settings, at=at).as_bytes()
            suffix = ".eml"
        else:  # a placeholder destination: keep what would be sent, without headers
            data = ((notice.subject or "") + "\n\n" + (notice.body or "")).encode()
            suffix = ".txt"
        target = self.folder / f"notice-{notice.id}-{notice.token}{suffix}"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class SmtpChannel:
    def __init__(self, settings: Settings, password: str | None = None):
        self.settings = settings
        self.password = password

    def deliver(self, notice: Notice, *, at: datetime) -> None:
        cfg = self.settings.dispatch
        message = build_email(notice, self.settings, at=at)
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port,
                              timeout=cfg.smtp_timeout_seconds) as smtp:
                smtp.ehlo()
                if cfg.smtp_starttls:
                    context = ssl.create_default_context(cafile=cfg.smtp_ca_file)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if cfg.smtp_user:
                    password = self.password or os.environ.get(SMTP_PASSWORD_ENV)
                    if not password:
                        raise PermanentError(f"dispatch.smtp_user is set but {SMTP_PASSWORD_ENV}"
                                             " is not in the environment")
                    mechanisms = smtp.esmtp_features.get("auth", "").upper().split()
                    if "PLAIN" in mechanisms:
                        # One mechanism, so a refusal is one clear 535 (smtplib's login()
                        # would go on trying the others).
                        smtp.user, smtp.password = cfg.smtp_user, password
                        smtp.auth("PLAIN", smtp.auth_plain)
                    else:
                        smtp.login(cfg.smtp_user, password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentError(f"recipient refused: {codes}") from None
            raise RetryLater(f"recipient deferred: {codes}") from None
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if exc.smtp_code >= 500:
                raise PermanentError(text) from None
            raise RetryLater(text) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, TLS
            raise RetryLater(f"SMTP: {type(exc).__name__}: {exc}") from None
        if refused:
            raise PermanentError(f"recipients refused: {sorted(refused)}")


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: HMAC-SHA256 over "<timestamp>.<body>"."""
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(key: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time check of `sign`."""
    return hmac.compare_digest(sign(key, timestamp, body), signature)


class WebhookChannel:
    """POSTs the notice as JSON; headers Idempotency-Key (the notice token),
    X-Hotline-Timestamp and X-Hotline-Signature (sha256=HMAC of "timestamp.body").
    2xx (and 409, "already have it") count as delivered; 408, 425, 429 and 5xx are
    retried; other answers are permanent failures."""

    def __init__(self, settings: Settings, secrets: Mapping[str, str] | None = None):
        self.settings = settings
        self.secrets = secrets  # destination key -> HMAC key; default: from the environment

    def _key(self, notice: Notice) -> bytes:
        if self.secrets is not None and notice.destination in self.secrets:
            return self.secrets[notice.destination].encode()
        from pipeline.rules import cached_ruleset

        dest = cached_ruleset(self.settings.routing.rules_dir).directory.get(notice.destination)
        env = dest.secret_env if dest else None
        value = os.environ.get(env) if env else None
        if not value:
            raise PermanentError(f"no HMAC key for webhook destination {notice.destination} "
                                 f"(environment variable {env or '(secret_env not set)'})")
        return value.encode()

    def deliver(self, notice: Notice, *, at: datetime) -> None:
        cfg = self.settings.dispatch
        url = notice.address or ""
        if not url.startswith("https://") and not (cfg.webhook_allow_http and
                                                   url.startswith("http://")):
            raise PermanentError(f"webhook address of notice {notice.id} is not https")
        body = json.dumps(webhook_body(notice, self.settings), separators=(",", ":"),
                          ensure_ascii=False).encode()
        timestamp = str(int(at.timestamp()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: safe_header(IDEMPOTENCY_HEADER, notice.token),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._key(notice), timestamp, body),
            "User-Agent": "hotline/0.1",
        }
        try:
            response = httpx.post(url, content=body, headers=headers,
                                  timeout=cfg.webhook_timeout_seconds, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise RetryLater(f"webhook: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            return
        if status in (408, 425, 429) or status >= 500:
            delay = response.headers.get("Retry-After", "")
            raise RetryLater(f"webhook answered {status}",
                             delay_ms=int(delay) * 1000 if delay.isdigit() else 5_000)
        raise PermanentError(f"webhook answered {status}")


@dataclass
class Channels:
    """The channels this process delivers through (tests pass their own)."""

    settings: Settings
    smtp: Channel | None = None
    webhook: Channel | None = None
    outbox: Channel | None = None

    def __post_init__(self) -> None:
        self.smtp = self.smtp or SmtpChannel(self.settings)
        self.webhook = self.webhook or WebhookChannel(self.settings)
        self.outbox = self.outbox or OutboxChannel(outbox_folder(self.settings), self.settings)

    def for_notice(self, notice: Notice) -> Channel:
        assert self.smtp and self.webhook and self.outbox
        if delivers_to_outbox(self.settings) or notice.channel == "file":
            return self.outbox
        if not notice.address:
            raise PermanentError(f"destination {notice.destination} has no address yet "
                                 "(a placeholder in destinations.yaml)")
        return self.webhook if notice.channel == "webhook" else self.smtp


def outbox_folder(settings: Settings) -> Path:
    return Path(settings.dispatch.outbox_dir or settings.data_path / "outbox")


def delivers_to_outbox(settings: Settings) -> bool:
    mode = settings.dispatch.deliver
    return mode == "outbox" or (mode == "auto" and settings.app.mode == "embedded")


# ----------------------------------------------------------------------- the stage


@dataclass
class DispatchResult:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    lost_lease: list[int] = field(default_factory=list)


def backoff(settings: Settings, attempts: int, hint_ms: int = 0) -> timedelta:
    cfg = settings.dispatch
    seconds = min(cfg.max_backoff_seconds, cfg.min_backoff_seconds * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=max(seconds, hint_ms / 1000))


def due_condition(now: datetime) -> ColumnElement[bool]:
    """Notices a dispatcher may take now."""
    return or_(
        (Notice.state.in_(("planned", "failed")))
        & (Notice.due_at.is_(None) | (Notice.due_at <= now)),
        (Notice.state == "sending") & (Notice.lease_until < now),
    )


def claim(session: Session, notice_ids: Sequence[int], *, now: datetime, owner: str,
          lease: timedelta) -> list[Notice]:
    """Step 1: take the due notices among `notice_ids` (and dead ones named explicitly,
    which is how `hotline deadletters retry` revives them)."""
    query = (select(Notice)
             .where(Notice.id.in_(list(notice_ids)),
                    or_(due_condition(now), Notice.state == "dead"))
             .order_by(Notice.id))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    notices = list(session.execute(query).scalars())
    for notice in notices:
        if notice.state == "dead":
            notice.attempts = 0
        notice.state = "sending"
        notice.lease_owner = owner
        notice.lease_until = now + lease
        notice.attempts += 1
    return notices


def _finish(session: Session, notice_id: int, owner: str, values: dict[str, object]) -> bool:
    result = session.execute(
        update(Notice)
        .where(Notice.id == notice_id, Notice.state == "sending", Notice.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _audit(session: Session, notice: Notice, *, at: datetime, action: str,
           data: dict[str, object]) -> None:
    query = select(Case).where(Case.id == notice.case_id)
    if is_postgresql(session):
        query = query.with_for_update()
    case = session.execute(query).scalar_one()
    session.add(build_event(case, actor="dispatch", action=action, at=at, case_id=case.id,
                            data={"notice": notice.id, "destination": notice.destination,
                                  **data}))


def deliver_notices(
    session_factory: sessionmaker[Session],
    notice_ids: Sequence[int],
    *,
    clock: Clock,
    settings: Settings,
    channels: Channels | None = None,
) -> DispatchResult:
    channels = channels or Channels(settings)
    owner = uuid.uuid4().hex
    result = DispatchResult()
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    with session_factory.begin() as session:
        claimed = claim(session, notice_ids, now=clock.now(), owner=owner, lease=lease)
        session.flush()
        session.expunge_all()
    for notice in claimed:
        now = clock.now()
        error: Exception | None = None
        try:
            channels.for_notice(notice).deliver(notice, at=now)
        except (RetryLater, PermanentError, BadInput) as exc:
            error = exc
        except Exception as exc:  # a bug or an unexpected library error: retry, visibly
            log.exception("Notice %s failed unexpectedly.", notice.id)
            error = RetryLater(f"{type(exc).__name__}: {exc}")
        with session_factory.begin() as session:
            if error is None:
                if _finish(session, notice.id, owner, {"state": "sent", "sent_at": now,
                                                       "last_error": None}):
                    _audit(session, notice, at=now, action="notice_sent",
                           data={"channel": notice.channel})
                    result.sent.append(notice.id)
                    log.info("Notice %s for case %s sent to %s.", notice.id, notice.case_id,
                             notice.destination)
                else:
                    result.lost_lease.append(notice.id)
                    log.warning("Notice %s was delivered after its lease ran out; another "
                                "worker owns it now.", notice.id)
                continue
            message = str(error)[:2000]
            permanent = not isinstance(error, RetryLater)
            if permanent or notice.attempts >= settings.dispatch.max_attempts:
                if _finish(session, notice.id, owner, {"state": "dead", "last_error": message}):
                    session.add(DeadLetter(
                        message_id=f"notice-{notice.id}-{notice.attempts}", actor="dispatch",
                        queue="dispatch", args=[[notice.id]], kwargs={}, error=message,
                        traceback=None, retries=notice.attempts, failed_at=now))
                    _audit(session, notice, at=now, action="notice_dead",
                           data={"error": message[:200]})
                    result.dead.append(notice.id)
                    log.error("Notice %s for case %s dead-lettered after %d attempts: %s",
                              notice.id, notice.case_id, notice.attempts, message)
            else:
                hint = error.delay_ms if isinstance(error, RetryLater) else 0
                retry_at = now + backoff(settings, notice.attempts, hint)
                if _finish(session, notice.id, owner, {"state": "failed", "due_at": retry_at,
                                                       "last_error": message}):
                    result.retrying.append(notice.id)
                    log.warning("Notice %s for case %s failed (attempt %d), retrying at %s: %s",
                                notice.id, notice.case_id, notice.attempts,
                                retry_at.isoformat(), message)
    return result


def due_notice_ids(session: Session, *, now: datetime, stuck_before: datetime,
                   limit: int) -> list[int]:
    """For the reconciler: planned notices nobody delivered by `stuck_before`, failed
    ones whose retry time has come, and claims whose lease ran out."""
    query = (select(Notice.id)
             .where(or_(
                 (Notice.state == "planned") & (Notice.due_at < stuck_before),
                 (Notice.state == "failed") & (Notice.due_at <= now),
                 (Notice.state == "sending") & (Notice.lease_until < now),
             ))
             .order_by(Notice.due_at)
             .limit(limit))
    return list(session.execute(query).scalars())

